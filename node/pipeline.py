"""One render, start to finish: audio -> lip sync -> scene -> GL frames (YUV) -> MP4.

Used by the node daemon for farm jobs and by `toonz render` for local one-shots.
Frames are streamed: memory does not grow with the video's length.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from farm import presets
from farm.audio import decode_audio
from farm.timeline import Timeline

AUDIO_RATE = 48_000
LIPSYNC_RATE = 16_000


@dataclass(frozen=True)
class RenderResult:
    video: Path
    timeline: Path
    frames: int
    unique_frames: int
    seconds: float
    stage_seconds: dict


def render(audio_path: Path, out_path: Path, *, transcript: str | None = None,
           timeline: Timeline | None = None, template: str = "explainer", character: str = "toonz",
           quality: str = "standard", title: str | None = None,
           progress: Callable[[float], None] | None = None, gl_context=None) -> RenderResult:
    """Render `audio_path` to an MP4 at `out_path`; writes `<out>.timeline.json` beside it.

    `progress(fraction)` is called as frames are encoded; it may raise to abort.
    """
    from assets.loader import load_character, load_template
    from node.lipsync import lipsync
    from node.render.encode import VideoEncoder
    from node.render.gl import GLCompositor
    from node.render.scene import build_scene

    t0 = time.perf_counter()
    stages: dict[str, float] = {}
    preset = presets.quality(quality)
    tpl, char = load_template(template), load_character(character)  # fail fast on bad names
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)

    audio = decode_audio(audio_path, AUDIO_RATE)
    duration = len(audio) / AUDIO_RATE
    stages["decode"] = time.perf_counter() - t0
    if timeline is None:
        t = time.perf_counter()
        timeline = lipsync(decode_audio(audio_path, LIPSYNC_RATE), transcript)
        stages["lipsync"] = time.perf_counter() - t
    timeline = fit_timeline(timeline, duration)
    timeline_path = out_path.with_name("timeline.json") if out_path.name == "video.mp4" \
        else out_path.with_suffix(".timeline.json")
    timeline_path.write_text(timeline.to_json_text())

    t = time.perf_counter()
    scene = build_scene(tpl, char, timeline, preset.width, preset.height, preset.fps, title=title)
    compositor = GLCompositor(scene.art, ctx=gl_context)
    stages["scene"] = time.perf_counter() - t
    render_s = encode_s = 0.0
    unique = 0
    try:
        with VideoEncoder(out_path, preset.width, preset.height, preset.fps, audio=audio,
                          audio_rate=AUDIO_RATE, preset=preset.x264_preset, crf=preset.crf) as enc:
            last_key = None
            planes = None
            n = scene.n_frames
            for i in range(n):
                key = scene.frame_key(i)
                t = time.perf_counter()
                if key != last_key:  # consecutive identical frames are rendered once
                    planes = compositor.render_yuv(scene.frame(i))
                    last_key = key
                    unique += 1
                t2 = time.perf_counter()
                enc.write_yuv(*planes)
                t3 = time.perf_counter()
                render_s += t2 - t
                encode_s += t3 - t2
                if progress is not None and (i % 10 == 0 or i == n - 1):
                    progress((i + 1) / n)
    finally:
        compositor.close()
    stages["render"] = render_s
    stages["encode"] = encode_s
    return RenderResult(video=out_path, timeline=timeline_path, frames=scene.n_frames,
                        unique_frames=unique, seconds=time.perf_counter() - t0, stage_seconds=stages)


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
