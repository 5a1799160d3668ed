"""One render, start to finish: audio -> lip sync -> scene -> frames -> MP4, WebM or GIF.

Used by the node daemon for farm jobs and by `toonz render` for local one-shots.
Frames and audio are streamed: memory does not grow with the video's length.
The compositor is chosen per node (node/render/backend.py): GL on a real GPU,
the CPU compositor (damage regions over a cached YUV background) elsewhere.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Sequence
from typing import Any, Callable

from farm import presets
from farm.audio import decode_audio, probe_duration
from farm.captions import caption_cues, display_words, webvtt
from farm.speakers import parse_turns, split_timeline, spoken_text
from farm.timeline import Timeline, WordTiming

AUDIO_RATE = 48_000
LIPSYNC_RATE = 16_000
LOSSLESS_ENV = "TOONZ_X264_QP0"  # "1": MP4s at x264 qp 0 (tests compare renders frame by frame)


@dataclass(frozen=True)
class RenderResult:
    video: Path  # its suffix is the format's
    timeline: Path
    poster: Path
    captions: Path | None  # WebVTT, when the timeline has words
    format: str
    codec: str
    backend: str  # "gl" or "cpu"
    frames: int
    unique_frames: int
    seconds: float
    stage_seconds: dict


@dataclass(frozen=True)
class Prepared:
    """A render's scene and what went into it: what `render` draws, and what a node
    rendering one chunk of a longer render (node/chunkjobs.py) rebuilds, identical, from
    the parent job's stored timeline."""

    scene: Any  # node.render.scene.Scene
    template: Any  # assets' Template
    timeline: Timeline  # fitted to the audio: its duration is the video's
    shown: tuple[WordTiming, ...]  # the words as displayed (captions)
    format: str
    fps: float
    width: int
    height: int
    stages: dict[str, float]


def prepare(audio_path: Path | None, *, transcript: str | None = None, timeline: Timeline | None = None,
            template: str = "explainer", character: str = "toonz", quality: str = "standard",
            format: str = "mp4", title: str | None = None, captions: bool | None = None,
            watermark: bool = False, logo: Path | None = None, expression: str = "neutral",
            second_character: str | None = None) -> Prepared:
    """Everything up to the frames: names checked, lip sync (unless `timeline` is given),
    the timeline fitted to the audio, captions, overlays and the scene. The options mean
    what `render`'s do. `audio_path` None: `timeline` is already fitted to its audio (a
    chunk of a longer render, rebuilt from its parent's timeline), and sets the length.
    """
    from assets.loader import load_character
    from node.render.scene import CastMember, build_cast

    t0 = time.perf_counter()
    stages: dict[str, float] = {}
    preset = presets.quality(quality)
    fmt = presets.output_format(format)
    tpl, char = check_request(template=template, character=character, quality=quality,
                              format=format, expression=expression,
                              second_character=second_character)  # fail fast on bad names
    partner = None
    if tpl.second_character is not None:
        partner = load_character(second_character or tpl.second_character.default or character)
    turns = parse_turns(transcript) if partner is not None and transcript else None
    spoken = spoken_text(turns) if turns else transcript
    if audio_path is None:
        if timeline is None:
            raise ValueError("prepare() needs the audio or a fitted timeline")
        duration = timeline.duration
    else:
        duration = probe_duration(audio_path)  # validates the file; audio is streamed later
    stages["decode"] = time.perf_counter() - t0
    if timeline is None:
        from node.lipsync import lipsync
        t = time.perf_counter()
        timeline = lipsync(decode_audio(audio_path, LIPSYNC_RATE), spoken)
        stages["lipsync"] = time.perf_counter() - t
    timeline = fit_timeline(timeline, duration)
    shown = tuple(display_words(spoken, timeline.words))
    burn = tpl.captions.enabled if captions is None else captions

    t = time.perf_counter()
    fps = min(preset.fps, presets.GIF_MAX_FPS) if fmt == "gif" else preset.fps
    width, height = frame_size(preset, tpl)
    cast = [CastMember(char, tpl.character, timeline, expression)]
    if partner is not None:
        parts = split_timeline(timeline, turns) if turns else [timeline]
        cast = [CastMember(char, tpl.character, parts[0], expression),
                CastMember(partner, tpl.second_character,
                           parts[1] if len(parts) > 1 else Timeline.silent(timeline.duration))]
    scene = build_cast(tpl, cast, width, height, fps, title=title,
                       captions=shown if burn else None,
                       overlays=overlays(tpl, width, height, watermark=watermark, logo=logo))
    stages["scene"] = time.perf_counter() - t
    return Prepared(scene=scene, template=tpl, timeline=timeline, shown=shown, format=fmt, fps=fps,
                    width=width, height=height, stages=stages)


def check_request(*, template: str = "explainer", character: str = "toonz",
                  quality: str = "standard", format: str = "mp4", expression: str = "neutral",
                  second_character: str | None = None, logo: Path | None = None) -> tuple[Any, Any]:
    """The checks `render` makes before any work, on their own: the names, the
    expression, a second character only where the template seats two, and the logo
    (size, format, readable). `toonz render` runs them before its progress bar.
    Returns the template and the character; raises InvalidInput."""
    from assets.loader import load_character, load_template
    from farm.errors import InvalidInput

    preset = presets.quality(quality)
    presets.output_format(format)
    tpl, char = load_template(template), load_character(character)
    char.expression(expression)
    if second_character:
        if tpl.second_character is None:
            raise InvalidInput(f"template {template!r} has one seat; a second character needs a "
                               "two-person template (such as podcast)", code="no_second_seat")
        load_character(second_character)
    if logo is not None:
        from assets import overlay
        overlay.logo(Path(logo), tpl, *frame_size(preset, tpl))
    return tpl, char


def render(audio_path: Path, out_path: Path, *, transcript: str | None = None,
           timeline: Timeline | None = None, template: str = "explainer", character: str = "toonz",
           quality: str = "standard", format: str = "mp4", title: str | None = None,
           progress: Callable[[float], None] | None = None, gl_context=None,
           backend: str | None = None, captions: bool | None = None, watermark: bool = False,
           logo: Path | None = None, expression: str = "neutral",
           second_character: str | None = None, lossless: bool | None = None) -> RenderResult:
    """Render `audio_path` to `out_path` (suffix set to `format`'s), with a timeline and a poster.

    Writes `<out>.timeline.json`, `<out>.poster.png` and, when words were aligned,
    `<out>.captions.vtt` beside the video (`timeline.json`, `poster.png` and
    `captions.vtt` when the video is named `video.*`). `progress(fraction)` is called
    as frames are encoded; it may raise to abort. `backend` ("gl", "cpu" or "auto")
    overrides TOONZ_RENDER_BACKEND. `captions` burns the words in (None: as the
    template says); there are captions only where the timeline has words. `watermark`
    marks the video (the free tier); `logo` is an image placed in the template's logo box.
    A 9:16 template turns the preset's frame upright. `expression` names one of the
    character's expressions or poses (InvalidInput unknown_expression otherwise).
    A two-person template seats `second_character` (default: the template's) beside
    `character`; a transcript with speaker labels ("NAME: ...") says who speaks when,
    the first name heard being `character`. `lossless` (None: TOONZ_X264_QP0=1) encodes
    an MP4 with x264 at qp 0, for tests that compare renders frame by frame.
    """
    from node.render.backend import choose_backend

    t0 = time.perf_counter()
    prep = prepare(audio_path, transcript=transcript, timeline=timeline, template=template,
                   character=character, quality=quality, format=format, title=title,
                   captions=captions, watermark=watermark, logo=logo, expression=expression,
                   second_character=second_character)
    stages = dict(prep.stages)
    fmt, scene = prep.format, prep.scene
    use = choose_backend(backend)
    video_path, timeline_path, poster_path = output_paths(Path(out_path), fmt)
    video_path.parent.mkdir(parents=True, exist_ok=True)
    timeline_path.write_text(prep.timeline.to_json_text())
    captions_path = write_captions(prep.shown, captions_path_for(video_path))
    if fmt == "gif":
        stats, codec = _render_gif(scene, video_path, poster_path, progress)
    else:
        stats, codec = _render_video(scene, audio_path, video_path, poster_path, fmt, quality, use,
                                     gl_context, progress, lossless)
    stages["render"], stages["encode"] = stats.render_s, stats.encode_s
    return RenderResult(video=video_path, timeline=timeline_path, poster=poster_path,
                        captions=captions_path, format=fmt,
                        codec=codec, backend="cpu" if fmt == "gif" else use, frames=stats.frames,
                        unique_frames=stats.unique, seconds=time.perf_counter() - t0,
                        stage_seconds=stages)


def video_codec(fmt: str, quality: str, *, lossless: bool | None = None,
                software: bool = False) -> tuple[str, dict[str, str]]:
    """The encoder and its options for `fmt` at `quality`: NVENC where the device has it
    (unless `software`), else the preset's software encoder. `lossless` (None: the
    TOONZ_X264_QP0 environment variable, read here as TOONZ_RENDER_BACKEND is read by
    the backend choice) makes an MP4 x264 at qp 0: decoded frames equal what was drawn."""
    from node.render.encode import choose_codec

    preset = presets.encoder_preset(fmt, quality)
    if lossless is None:
        lossless = os.environ.get(LOSSLESS_ENV, "") == "1"
    if lossless and presets.output_format(fmt) == "mp4":
        return preset.codec, {**{k: v for k, v in preset.options if k != "crf"}, "qp": "0"}
    if software:
        return preset.codec, dict(preset.options)
    return choose_codec(preset)


def _render_video(scene, audio_path: Path, video_path: Path, poster_path: Path, fmt: str,
                  quality: str, use: str, gl_context, progress, lossless: bool | None = None):
    from node.render.audio import FileSource
    from node.render.encode import VideoEncoder
    from node.render.frames import encode_cpu, encode_gl

    codec, options = video_codec(fmt, quality, lossless=lossless)
    art = scene.art
    if use == "gl":
        from node.render.gl import GLCompositor
        compositor = GLCompositor(art, ctx=gl_context)
    else:
        from node.render.cpu import CpuCompositor
        compositor = CpuCompositor(art)
    audio = FileSource(audio_path, AUDIO_RATE)
    try:
        with _poster_writer(scene, compositor, poster_path), \
                VideoEncoder(video_path, art.width, art.height, round(scene.fps), audio=audio,
                             audio_rate=AUDIO_RATE, codec=codec, options=options) as enc:
            loop = encode_gl if use == "gl" else encode_cpu
            stats = loop(scene, enc, compositor, progress)
    finally:
        audio.close()
        if use == "gl":
            compositor.close()
    return stats, codec


def _render_gif(scene, video_path: Path, poster_path: Path, progress):
    from node.render.cpu import CpuCompositor
    from node.render.frames import encode_gif

    compositor = CpuCompositor(scene.art)
    with _poster_writer(scene, compositor, poster_path):
        stats = encode_gif(scene, video_path, compositor, progress)
    return stats, "gif"


def write_poster(scene, path: Path, compositor=None) -> Path:
    """The poster frame as a PNG (what `render` writes beside the video)."""
    from node.render.cpu import CpuCompositor
    from node.render.frames import write_poster as write_png

    compositor = compositor or CpuCompositor(scene.art)
    write_png(compositor.render_rgba(scene.frame(scene.poster_frame())), path)
    return path


@contextlib.contextmanager
def _poster_writer(scene, compositor, path: Path):
    """Draw the poster frame now; compress its PNG on a thread while the frames encode
    (zlib releases the GIL); wait for it, and raise its error, on the way out."""
    from node.render.frames import write_poster

    rgba = compositor.render_rgba(scene.frame(scene.poster_frame()))
    with ThreadPoolExecutor(1, thread_name_prefix="toonz-poster") as pool:
        done = pool.submit(write_poster, rgba, path)
        yield
        done.result()


def output_paths(out_path: Path, fmt: str) -> tuple[Path, Path, Path]:
    """(video, timeline, poster) paths: the video gets the format's suffix."""
    video = out_path.with_suffix("." + fmt)
    if video.stem == "video":
        return video, video.with_name("timeline.json"), video.with_name("poster.png")
    return video, video.with_suffix(".timeline.json"), video.with_suffix(".poster.png")


def frame_size(preset: presets.Quality, template) -> tuple[int, int]:
    """The preset's frame, upright for a 9:16 template."""
    if template.aspect == "9:16":
        return preset.height, preset.width
    return preset.width, preset.height


def overlays(template, width: int, height: int, *, watermark: bool, logo: Path | None) -> list:
    """What goes over the character: the template's foreground, a logo, the watermark."""
    from assets import overlay

    out = [o for o in (overlay.foreground(template, width, height),) if o is not None]
    if logo is not None:
        out.append(overlay.logo(Path(logo), template, width, height))
    if watermark:
        out.append(overlay.watermark(width, height))
    return out


def captions_path_for(video: Path) -> Path:
    return video.with_name("captions.vtt") if video.stem == "video" else video.with_suffix(".captions.vtt")


def write_captions(words: Sequence[WordTiming], path: Path) -> Path | None:
    """WebVTT captions of `words` (as shown, see farm.captions.display_words); None
    (and no file) when there are none."""
    path.unlink(missing_ok=True)  # a re-render must not leave an old render's captions
    if not words:
        return None
    path.write_text(webvtt(caption_cues(words)))
    return path


def fit_timeline(timeline: Timeline, duration: float) -> Timeline:
    """The video follows the audio: cut (or extend, at rest) a timeline to `duration`.

    Rhubarb rounds its times to centiseconds, so a supplied timeline often ends a few
    milliseconds after the decoded audio does.
    """
    cues = tuple(dataclasses.replace(c, end=min(c.end, duration))
                 for c in timeline.cues if c.start < duration)
    words = tuple(dataclasses.replace(w, end=min(w.end, duration))
                  for w in timeline.words if w.start < duration)
    return Timeline(duration, cues, words)
