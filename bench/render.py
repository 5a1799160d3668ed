"""Whole-render throughput beside the encoder alone and the straightforward baseline.

For each quality preset, in the same run and each measurement in its own process:

- whole render: `node.pipeline.render` from a lip-sync timeline to the encoded MP4
  (scene, compositing, encoding with audio, poster), the node's backend;
- encoder alone: the same encoder and settings fed the same frames as ready YUV
  planes (made before the clock starts), with the same AAC audio;
- free renderer: the whole render with each frame copied in from frames drawn
  before the clock starts: what the pipeline's other costs (scene, background,
  poster, audio from the file, opening files) leave of the encoder's speed;
- baseline: the straightforward renderer: every frame composited with Pillow's
  alpha_composite, RGB frames handed to PyAV (which converts them), same encoder.

Runs are interleaved so drift on a noisy machine hits all three; the table shows
medians; CPU seconds are every thread's, over the timed part only. Each process first renders (or encodes) a 1 s clip of the same scene:
a node that has worked before. `--memory` also renders 10 s and 10 min of narration and compares peak
resident memory. The timeline comes from lip sync on an espeak-ng narration; lip
sync is not part of the timed render (the issue's "timeline to encoded file").

    .venv/bin/python bench/render.py [--runs 3] [--qualities preview,standard,hd,ultra]
                                     [--seconds 30] [--ultra-seconds 10] [--memory]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

NARRATION = (
    "Welcome to Toonz Farm. Today we will look at how a render farm turns a voice into a "
    "moving picture. First, the audio is split into sounds. Each sound becomes a mouth shape: "
    "closed for the letters M, B and P, wide open for a long A, and round for an O. Then the "
    "character is drawn, frame by frame, on the graphics card, and every frame is handed to "
    "the video encoder. Finally the sound is added back, and the film is ready to watch. "
    "Thank you for listening, and see you next time."
)
QUALITIES = ("preview", "standard", "hd", "ultra")
MODES = ("render", "predrawn", "encoder", "baseline")


def make_clip(dest: Path, seconds: float) -> tuple[Path, str]:
    wav = dest / "narration.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(wav), NARRATION], check=True)
    trimmed = dest / "clip.wav"
    subprocess.run(["sox", str(wav), str(trimmed), "trim", "0", str(seconds)], check=True)
    return trimmed, NARRATION


def _scene(timeline_path: str, quality: str):
    from assets.loader import load_character, load_template
    from farm import presets
    from farm.timeline import Timeline
    from node.render.scene import build_scene

    from farm.captions import display_words

    q = presets.quality(quality)
    timeline = Timeline.from_dict(json.loads(Path(timeline_path).read_text()))
    # As the pipeline draws it: the words burned in as captions.
    return build_scene(load_template("explainer"), load_character("toonz"), timeline,
                       q.width, q.height, q.fps, captions=display_words(None, timeline.words))


def child(mode: str, audio: str, timeline_path: str, quality: str, out: str,
          warm_audio: str, warm_timeline: str) -> dict:
    """Runs in a fresh process: a warm-up on a 1 s clip, then one measurement, as JSON.

    The warm-up makes the process a node that has worked before: modules imported,
    the character's layers rasterized at this size (cached per process, as in the
    node daemon); the background is drawn again by every render.
    """
    measure(mode, warm_audio, warm_timeline, quality, out)
    return measure(mode, audio, timeline_path, quality, out)


class Clock:
    """Wall and CPU seconds (every thread: steadier than wall time on a shared
    machine) of what runs inside it: only the timed part of a measurement."""

    def __enter__(self) -> Clock:
        self._cpu, self._wall = _cpu_now(), time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._wall
        self.cpu_s = _cpu_now() - self._cpu


def _cpu_now() -> float:
    use = resource.getrusage(resource.RUSAGE_SELF)
    return use.ru_utime + use.ru_stime


def measure(mode: str, audio: str, timeline_path: str, quality: str, out: str) -> dict:
    from farm import presets
    from farm.audio import decode_audio
    from farm.timeline import Timeline
    from node.pipeline import AUDIO_RATE, render
    from node.render.encode import VideoEncoder, choose_codec
    codec, options = choose_codec(presets.encoder_preset("mp4", quality))
    q = presets.quality(quality)
    if mode == "render":
        timeline = Timeline.from_dict(json.loads(Path(timeline_path).read_text()))
        with RssSampler() as rss, Clock() as clock:
            res = render(Path(audio), Path(out), timeline=timeline, quality=quality, format="mp4")
        return {"seconds": clock.seconds, "cpu_s": clock.cpu_s, "frames": res.frames, "backend": res.backend,
                "codec": res.codec, "unique_frames": res.unique_frames, "stages": res.stage_seconds,
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "rss_quarters_mb": rss.quarters()}
    if mode == "predrawn":
        frames = _ready_frames(timeline_path, quality)  # before the clock starts
        _draw_by_copying(frames)
        timeline = Timeline.from_dict(json.loads(Path(timeline_path).read_text()))
        with Clock() as clock:
            res = render(Path(audio), Path(out), timeline=timeline, quality=quality, format="mp4")
        return {"seconds": clock.seconds, "cpu_s": clock.cpu_s, "frames": res.frames}
    if mode == "encoder":
        frames = _ready_frames(timeline_path, quality)  # before the clock starts
        pcm = decode_audio(audio, AUDIO_RATE)
        with Clock() as clock, VideoEncoder(Path(out), q.width, q.height, q.fps, audio=pcm,
                                            audio_rate=AUDIO_RATE, codec=codec,
                                            options=options) as enc:
            for y, u, v in frames:
                enc.write_yuv(y, u, v)
        return {"seconds": clock.seconds, "cpu_s": clock.cpu_s, "frames": len(frames)}
    # baseline: Pillow compositing of every frame, RGB to PyAV; timed from the timeline on.
    with Clock() as clock:
        frames = _baseline(timeline_path, quality, audio, out, codec, options)
    return {"seconds": clock.seconds, "cpu_s": clock.cpu_s, "frames": frames}


def _baseline(timeline_path: str, quality: str, audio: str, out: str, codec: str,
              options: dict) -> int:
    """The straightforward renderer, from the timeline on; how many frames it wrote."""
    from farm import presets
    from farm.audio import decode_audio
    from node.pipeline import AUDIO_RATE
    from node.render.encode import VideoEncoder
    q = presets.quality(quality)
    scene = _scene(timeline_path, quality)
    pcm = decode_audio(audio, AUDIO_RATE)
    with VideoEncoder(Path(out), q.width, q.height, q.fps, audio=pcm, audio_rate=AUDIO_RATE,
                      codec=codec, options=options) as enc:
        pillow_encode(scene.art, (scene.frame(i) for i in range(scene.n_frames)), enc)
    return scene.n_frames


def pillow_encode(art, draw_lists, encoder) -> None:
    """The baseline's frames: each composited whole with Pillow's alpha_composite over
    the background, handed to the encoder as RGB (PyAV converts it)."""
    import numpy as np
    from PIL import Image

    bg = Image.fromarray(art.background[..., :3]).convert("RGBA")
    sprites = {n: Image.fromarray(s.rgba, "RGBa").convert("RGBA") for n, s in art.sprites.items()}
    for draw in draw_lists:
        frame = bg.copy()
        for p in draw:
            sx, sy = max(0, -int(p.x)), max(0, -int(p.y))
            frame.alpha_composite(sprites[p.sprite], (int(p.x) + sx, int(p.y) + sy), (sx, sy))
        encoder.write_rgb(np.asarray(frame.convert("RGB")))


def _ready_frames(timeline_path: str, quality: str) -> list[tuple]:
    """Every frame of the scene as YUV planes; equal frames share one array (memory is
    per distinct frame)."""
    from node.render.cpu import CpuCompositor
    scene = _scene(timeline_path, quality)
    comp = CpuCompositor(scene.art)
    frames, last = [], None
    for i in range(scene.n_frames):
        draw = scene.frame(i)
        if draw != last:
            frames.append(tuple(p.copy() for p in comp.render_yuv(draw)))
            last = draw
        else:
            frames.append(frames[-1])
    return frames


def _draw_by_copying(frames: list[tuple]) -> None:
    """Make this process's renders copy `frames` into the encoder's instead of drawing
    them, in whichever loop the node would run: the whole render as it would be with
    a renderer that costs nothing."""
    from node.render import frames as loop

    def copy_in(encoder, slot: int, i: int) -> None:
        for dst, src in zip(encoder.frame_planes(slot), frames[i]):
            dst[...] = src

    class Copier:
        def __init__(self, scene, encoder, compositor) -> None:
            self.encoder = encoder

        def begin(self, i: int, slot: int) -> bool:
            copy_in(self.encoder, slot, i)
            return True

        def finish(self, handle: bool) -> bool:
            return handle

    def one_thread(scene, encoder, compositor, progress) -> loop.LoopStats:
        for i in range(scene.n_frames):
            copy_in(encoder, 0, i)
            encoder.write_frame(0)
        return loop.LoopStats(frames=scene.n_frames, unique=scene.n_frames)

    loop._CpuDrawer = Copier
    loop._encode_one_thread = one_thread


class RssSampler:
    """Resident memory every 0.2 s on a thread, to see whether a render's memory grows."""

    def __init__(self) -> None:
        import threading

        import psutil
        self._process, self._samples = psutil.Process(), []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self._samples.append(self._process.memory_info().rss / 2**20)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def quarters(self) -> list[float]:
        """Resident MB at 0, 25, 50, 75 and 100% of the render."""
        s = self._samples or [0.0]
        return [s[round(k * (len(s) - 1) / 4)] for k in range(5)]


def run_child(mode: str, audio: Path, timeline: Path, quality: str, out: Path,
              warm: tuple[Path, Path]) -> dict:
    res = subprocess.run([sys.executable, __file__, "--child", mode, str(audio), str(timeline),
                          quality, str(out), *map(str, warm)], capture_output=True, text=True,
                         cwd=REPO)
    if res.returncode != 0:
        sys.exit(f"bench: {mode} {quality} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def clip_and_timeline(tmp: Path, audio: Path, timeline, seconds: float, repeat: int = 1):
    """A `seconds`-long clip (the narration repeated `repeat` times first) and its timeline."""
    import dataclasses

    from farm.timeline import Timeline
    from node.pipeline import fit_timeline
    src = audio
    if repeat > 1:
        src = tmp / f"repeat{repeat}.wav"
        subprocess.run(["sox", str(audio), str(src), "repeat", str(repeat - 1)], check=True)
        d = timeline.duration
        cues = tuple(dataclasses.replace(c, start=c.start + k * d, end=c.end + k * d)
                     for k in range(repeat) for c in timeline.cues)
        timeline = Timeline(d * repeat, cues)
    clip = tmp / f"clip-{seconds:g}.wav"
    subprocess.run(["sox", str(src), str(clip), "trim", "0", str(seconds)], check=True)
    path = tmp / f"timeline-{seconds:g}.json"
    path.write_text(json.dumps(fit_timeline(timeline, seconds).to_dict()))  # words too: captions
    return clip, path


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        print(json.dumps(child(*sys.argv[2:9])))
        return 0
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--qualities", default=",".join(QUALITIES))
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--ultra-seconds", type=float, default=10.0,
                   help="ultra's clip: its encoder-alone run holds every distinct 4K frame")
    p.add_argument("--memory", action="store_true", help="also peak memory, 10 s vs 10 min")
    p.add_argument("--memory-quality", default="standard")
    p.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "render.json")
    args = p.parse_args()
    from farm.audio import decode_audio
    from node.lipsync import lipsync

    result = {"bench": "render", "runs": args.runs, "machine": platform.machine(),
              "python": platform.python_version(), "presets": {},
              "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        audio, text = make_clip(tmp, 30.0)
        t = time.perf_counter()
        timeline = lipsync(decode_audio(audio, 16000), text)
        result["lipsync_s_for_30s"] = time.perf_counter() - t
        warm = clip_and_timeline(tmp, audio, timeline, 1.0)
        for quality in [q for q in args.qualities.split(",") if q]:
            seconds = args.ultra_seconds if quality == "ultra" else args.seconds
            clip, tl = clip_and_timeline(tmp, audio, timeline, seconds)
            runs = {m: [] for m in MODES}
            for i in range(args.runs):  # interleaved, so drift on a noisy machine hits all
                for mode in MODES:
                    runs[mode].append(run_child(mode, clip, tl, quality, tmp / f"{mode}-{i}.mp4", warm))
            result["presets"][quality] = summarise(runs, seconds)
        if args.memory:
            result["memory"] = memory(tmp, audio, timeline, args.memory_quality, warm)
    print_tables(result)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    print(f"\nwrote {args.json}")
    return 0


def summarise(runs: dict, seconds: float) -> dict:
    fps = {m: statistics.median(r["frames"] / r["seconds"] for r in runs[m]) for m in MODES}
    cpu_ms = {m: statistics.median(1000 * r["cpu_s"] / r["frames"] for r in runs[m]) for m in MODES}
    # Ratios within each round (the three ran back to back), then their median:
    # slow drift on a shared machine cancels out.
    pairs = list(zip(runs["render"], runs["encoder"], runs["baseline"], runs["predrawn"]))
    rounds = [e["seconds"] / r["seconds"] for r, e, _, _ in pairs]
    vs_encoder = statistics.median(rounds)
    vs_baseline = statistics.median(b["seconds"] / r["seconds"] for r, _, b, _ in pairs)
    free_vs_encoder = statistics.median(e["seconds"] / f["seconds"] for _, e, _, f in pairs)
    first = runs["render"][0]
    stages = {k: statistics.median(r["stages"][k] for r in runs["render"]) for k in first["stages"]}
    return {"seconds_of_audio": seconds, "frames": first["frames"], "backend": first["backend"],
            "codec": first["codec"], "unique_frames": first["unique_frames"],
            "render_fps": fps["render"], "encoder_alone_fps": fps["encoder"],
            "baseline_fps": fps["baseline"], "predrawn_fps": fps["predrawn"],
            "ratio_vs_encoder": vs_encoder, "ratio_vs_encoder_range": [min(rounds), max(rounds)],
            "predrawn_vs_encoder": free_vs_encoder,
            "speedup_vs_baseline": vs_baseline, "cpu_ms_per_frame": cpu_ms,
            "render_stage_s": stages,
            "seconds": {m: [r["seconds"] for r in runs[m]] for m in MODES}}


def memory(tmp: Path, audio: Path, timeline, quality: str, warm: tuple[Path, Path],
           runs: int = 3) -> dict:
    """Peak resident memory of 10 s and 10 min renders (median of `runs` each), and how
    resident memory moved from a quarter of the way through the 10 min render to its end."""
    out = {"quality": quality, "runs": runs}
    for label, seconds, repeat in (("10s", 10.0, 1), ("10min", 600.0, 20)):
        clip, tl = clip_and_timeline(tmp, audio, timeline, seconds, repeat)
        rs = [run_child("render", clip, tl, quality, tmp / f"memory-{label}.mp4", warm)
              for _ in range(runs)]
        out[label] = {"frames": rs[0]["frames"], "seconds": statistics.median(r["seconds"] for r in rs),
                      "peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in rs),
                      "peak_rss_mb_runs": [r["peak_rss_mb"] for r in rs],
                      "rss_quarters_mb": [r["rss_quarters_mb"] for r in rs]}
    out["ratio"] = out["10min"]["peak_rss_mb"] / out["10s"]["peak_rss_mb"]
    out["growth_mb_last_three_quarters"] = statistics.median(
        q[4] - q[1] for q in out["10min"]["rss_quarters_mb"])
    return out


def print_tables(result: dict) -> None:
    print(f"\nmedians of {result['runs']} runs, each in its own process; frames/s (CPU ms a frame);"
          " ratios: median of the ratios within each round (whole / encoder: and their range)")
    print("| preset | frames | backend | whole render | free renderer | encoder alone | baseline |"
          " whole / encoder | free renderer / encoder | whole / baseline |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, r in result["presets"].items():
        cpu = r["cpu_ms_per_frame"]
        lo, hi = r["ratio_vs_encoder_range"]
        print(f"| {name} | {r['frames']} ({r['unique_frames']} drawn) | {r['backend']}, {r['codec']} "
              f"| {r['render_fps']:.0f} ({cpu['render']:.1f}) | {r['predrawn_fps']:.0f} "
              f"({cpu['predrawn']:.1f}) | {r['encoder_alone_fps']:.0f} "
              f"({cpu['encoder']:.1f}) | {r['baseline_fps']:.0f} ({cpu['baseline']:.1f}) "
              f"| {r['ratio_vs_encoder']:.2f} ({lo:.2f}-{hi:.2f}) | {r['predrawn_vs_encoder']:.2f} "
              f"| {r['speedup_vs_baseline']:.1f}x |")
    print("\nwhere the whole render's time goes (median s):")
    for name, r in result["presets"].items():
        print(f"  {name:9} " + "  ".join(f"{k} {v:.2f}" for k, v in r["render_stage_s"].items()))
    print(f"lip sync (not in the timed render): {result['lipsync_s_for_30s']:.2f} s for 30 s of audio")
    if "memory" in result:
        m = result["memory"]
        print(f"\npeak resident memory, {m['quality']}, median of {m['runs']} runs: 10 s render "
              f"{m['10s']['peak_rss_mb']:.0f} MB {[round(x) for x in m['10s']['peak_rss_mb_runs']]}, "
              f"10 min render {m['10min']['peak_rss_mb']:.0f} MB "
              f"{[round(x) for x in m['10min']['peak_rss_mb_runs']]}: ratio {m['ratio']:.3f}")
        print(f"during the 10 min render, from a quarter of the way to the end: "
              f"{m['growth_mb_last_three_quarters']:+.1f} MB (it took {m['10min']['seconds']:.0f} s)")


if __name__ == "__main__":
    sys.exit(main())
