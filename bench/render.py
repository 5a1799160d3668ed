"""Whole-render throughput beside the encoder alone, in the same run.

Renders a ~30 s standard (1280x720@30) clip of synthetic narration through the
whole pipeline (decode, lip sync, scene, GL compositing + YUV on the GPU, libx264 +
AAC), then encodes the same frames, already in YUV, with the same encoder settings
and nothing else. Each measurement runs in its own process, several times; the
table shows medians and the ratio that later work drives up.

    .venv/bin/python bench/render.py [--runs 3] [--quality standard] [--seconds 30]
"""

from __future__ import annotations

import argparse
import json
import platform
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


def make_clip(dest: Path, seconds: float) -> tuple[Path, str]:
    wav = dest / "narration.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(wav), NARRATION], check=True)
    trimmed = dest / "clip.wav"
    subprocess.run(["sox", str(wav), str(trimmed), "trim", "0", str(seconds)], check=True)
    return trimmed, NARRATION


def child(mode: str, audio: str, transcript: str, quality: str, out: str) -> dict:
    """Runs in a fresh process: one measurement, printed as JSON."""
    from farm import presets
    t0 = time.perf_counter()
    if mode == "render":
        from node.pipeline import render
        res = render(Path(audio), Path(out), transcript=transcript, quality=quality)
        return {"seconds": time.perf_counter() - t0, "frames": res.frames,
                "unique_frames": res.unique_frames, "stages": res.stage_seconds}
    # encoder alone: decode the rendered video to YUV planes first (not timed), then encode
    import av
    from farm.audio import decode_audio
    from node.render.encode import VideoEncoder
    q = presets.quality(quality)
    frames = []
    with av.open(out) as c:
        for f in c.decode(video=0):
            frames.append(_planes(f.to_ndarray(format="yuv420p"), q.width, q.height))
    pcm = decode_audio(audio, 48000)
    enc_out = out + ".encoder-only.mp4"
    t0 = time.perf_counter()
    with VideoEncoder(Path(enc_out), q.width, q.height, q.fps, audio=pcm, audio_rate=48000,
                      preset=q.x264_preset, crf=q.crf) as enc:
        for y, u, v in frames:
            enc.write_yuv(y, u, v)
    return {"seconds": time.perf_counter() - t0, "frames": len(frames)}


def _planes(arr, w: int, h: int):
    """Split PyAV's stacked yuv420p array: Y rows, then U and V as (h/4)-row blocks."""
    import numpy as np
    u = arr[h:h + h // 4].reshape(h // 2, w // 2)
    v = arr[h + h // 4:].reshape(h // 2, w // 2)
    return np.ascontiguousarray(arr[:h]), np.ascontiguousarray(u), np.ascontiguousarray(v)


def run_child(mode: str, audio: Path, transcript: str, quality: str, out: Path) -> dict:
    res = subprocess.run([sys.executable, __file__, "--child", mode, str(audio), transcript,
                          quality, str(out)], capture_output=True, text=True, cwd=REPO)
    if res.returncode != 0:
        sys.exit(f"bench: {mode} run failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _, _, mode, audio, transcript, quality, out = sys.argv
        print(json.dumps(child(mode, audio, transcript, quality, out)))
        return 0
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--quality", default="standard")
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "render.json")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        audio, transcript = make_clip(tmp, args.seconds)
        renders, encodes = [], []
        for i in range(args.runs):  # interleaved, so drift on a noisy machine hits both
            out = tmp / f"render-{i}.mp4"
            renders.append(run_child("render", audio, transcript, args.quality, out))
            encodes.append(run_child("encode", audio, transcript, args.quality, out))
    frames = renders[0]["frames"]
    r_fps = statistics.median(frames / r["seconds"] for r in renders)
    e_fps = statistics.median(e["frames"] / e["seconds"] for e in encodes)
    stages = {k: statistics.median(r["stages"][k] for r in renders) for k in renders[0]["stages"]}
    result = {
        "bench": "render", "quality": args.quality, "runs": args.runs, "frames": frames,
        "unique_frames": renders[0]["unique_frames"], "render_fps": r_fps, "encoder_only_fps": e_fps,
        "ratio": r_fps / e_fps, "stage_seconds_median": stages,
        "render_seconds": [r["seconds"] for r in renders], "encode_seconds": [e["seconds"] for e in encodes],
        "machine": platform.machine(), "python": platform.python_version(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    print(f"\n{args.quality}: {frames} frames ({result['unique_frames']} unique), median of {args.runs} runs\n")
    print(f"| {'what':<34} | {'frames/s':>9} |")
    print(f"| {'-' * 34} | {'-' * 9} |")
    print(f"| {'whole render (audio to MP4)':<34} | {r_fps:9.1f} |")
    print(f"| {'libx264 alone, fed YUV (+AAC)':<34} | {e_fps:9.1f} |")
    print(f"| {'ratio whole / encoder alone':<34} | {r_fps / e_fps:9.2f} |")
    print("\nwhere the whole render's time goes (median s):")
    total = statistics.median(r["seconds"] for r in renders)
    for k, v in stages.items():
        print(f"  {k:<10} {v:7.2f} s  {100 * v / total:5.1f}%")
    print(f"  {'total':<10} {total:7.2f} s")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
