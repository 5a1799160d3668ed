"""GPU render throughput on a lent machine, from scenes prepared on this one.

The device machines have no package registry, no cairo and no PocketSphinx, so
`export` does the CPU-side work here (lip sync, SVG rasterizing, scene layout) and
writes each preset's scene; `run` replays it there through the node's own
compositors and encoder, and checks its frames against llvmpipe's. Per preset:

- render only, every frame drawn and read back whole: synchronously (`render_yuv`)
  and through the pixel-buffer ring (`submit` / `complete`, one frame in flight);
- render only, as the node renders: only the damage rectangle drawn, converted
  and read back, and nothing drawn for a frame equal to the one before; also with two frames in
  flight and with glFlush after each submit (what might keep the GPU busier);
- the node's loop (GL drawing, encoding in a second thread) beside the encoder
  alone fed the same frames as ready YUV, the CPU compositor's loop and (standard
  and hd) bench/render.py's Pillow baseline: what "3x the baseline" is on a GPU node;
- the NVENC encoders the device can open, and the torch kernels on CUDA.

Results are written after every preset, so a run cut short still reports.

    python bench/device_render.py export --dir .gl/scenes --seconds 10   # here
    python bench/device_render.py run --dir .gl/scenes --out $OUT         # on the GPU

scripts/device-prep.sh (here: the scenes, and the packages the device lacks) and
scripts/device-check.sh (there: EGL probe, GL tests, this bench) wrap both.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections import deque
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from node.render.types import Placement, SceneArt, Sprite  # noqa: E402

QUALITIES = ("preview", "standard", "hd", "ultra")
REFERENCE_FRAMES = 3
NVENC = ("h264_nvenc", "hevc_nvenc", "av1_nvenc")


def export(dest: Path, seconds: float) -> None:
    from assets.loader import load_character, load_template
    from bench.render import make_clip
    from farm import presets
    from farm.audio import decode_audio
    from node.lipsync import lipsync
    from node.render.gl import GLCompositor
    from node.render.scene import build_scene

    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        audio, text = make_clip(Path(tmp), seconds)
        timeline = lipsync(decode_audio(audio, 16000), text)
        np.save(dest / "audio48k.npy", decode_audio(audio, 48000))
    for name in QUALITIES:
        q = presets.quality(name)
        scene = build_scene(load_template("explainer"), load_character("toonz"), timeline,
                            q.width, q.height, q.fps)
        lists, index = {}, []
        for i in range(scene.n_frames):
            index.append(lists.setdefault(scene.frame_key(i), len(lists)))
        unique = list(lists)
        rows = [(k, p.sprite, p.x, p.y, p.opacity, p.scale) for k, dl in enumerate(unique) for p in dl]
        arrays = {f"sprite:{n}": s.rgba for n, s in scene.art.sprites.items()}
        refs = []
        with GLCompositor(scene.art) as gl:
            for k in range(min(REFERENCE_FRAMES, len(unique))):
                gl.render_yuv(unique[k])
                refs.append(gl.i420.copy())
        np.savez_compressed(dest / f"{name}.npz", background=scene.art.background,
                 frame_index=np.array(index, np.int32), refs=np.stack(refs), **arrays)
        (dest / f"{name}.json").write_text(json.dumps({
            "width": q.width, "height": q.height, "fps": q.fps,
            "options": dict(presets.encoder_preset("mp4", name).options), "placements": rows}))
        print(f"exported {name}: {scene.n_frames} frames, {len(unique)} unique")


def load(src: Path, name: str):
    meta = json.loads((src / f"{name}.json").read_text())
    data = np.load(src / f"{name}.npz")
    sprites = {k.split(":", 1)[1]: Sprite(k.split(":", 1)[1], data[k]) for k in data.files
               if k.startswith("sprite:")}
    art = SceneArt(meta["width"], meta["height"], data["background"], sprites)
    n_unique = max(r[0] for r in meta["placements"]) + 1
    lists = [[] for _ in range(n_unique)]
    for k, sprite, x, y, op, sc in meta["placements"]:
        lists[k].append(Placement(sprite, x, y, op, sc))
    return meta, art, [tuple(dl) for dl in lists], data["frame_index"], data["refs"]


class Replay:
    """A Scene look-alike for the node's frame loops: the exported frames, in order."""

    def __init__(self, art: SceneArt, lists, index, fps: int) -> None:
        self.art, self.fps, self.n_frames = art, float(fps), len(index)
        self._lists, self._index = lists, index

    def frame(self, i: int):
        return self._lists[self._index[i]]


def timed(fn, frames: int, repeats: int) -> float:
    """Median frames/s of `repeats` calls of fn()."""
    rates = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        rates.append(frames / (time.perf_counter() - t))
    return statistics.median(rates)


def render_only(gl, replay: Replay, repeats: int) -> dict:
    n, w, h = replay.n_frames, replay.art.width, replay.art.height
    planes = (np.zeros((h, w), np.uint8), np.zeros((h // 2, w // 2), np.uint8),
              np.zeros((h // 2, w // 2), np.uint8))

    def sync_full() -> None:
        for i in range(n):
            gl.render_yuv(replay.frame(i))

    def ring(whole: bool, in_flight: int = 1, flush: bool = False):
        """Submit frame i, then complete the frame `in_flight` submits back;
        `flush` hands each frame's commands to the GPU as soon as it is submitted."""
        def run() -> None:
            target, pending = gl.yuv_target(planes), deque()
            for i in range(n):
                if whole:
                    target.shows = None  # unknown pixels: the whole frame is read
                ticket = gl.submit(replay.frame(i), target)
                if flush:
                    gl.flush()
                if ticket is not None:
                    pending.append(ticket)
                if len(pending) > in_flight:
                    gl.complete(pending.popleft(), target)
            while pending:
                gl.complete(pending.popleft(), target)
            gl.ctx.finish()
        return run

    sync_full()  # warm-up: shader compilation, first uploads
    # The damage path a few ways: how far read-backs trail the drawing, and glFlush,
    # to find what keeps the GPU busy (one frame in flight without a flush is the node's).
    return {"sync_whole_fps": timed(sync_full, n, repeats),
            "pbo_whole_fps": timed(ring(True), n, repeats),
            "pbo_damage_fps": timed(ring(False), n, repeats),
            "pbo_damage_flush_fps": timed(ring(False, 1, True), n, repeats),
            "pbo_damage_2_in_flight_fps": timed(ring(False, 2), n, repeats),
            "pbo_damage_2_in_flight_flush_fps": timed(ring(False, 2, True), n, repeats)}


def node_loops(gl, replay: Replay, meta: dict, audio, out: Path, repeats: int,
               baseline: bool = False) -> dict:
    from bench.render import pillow_encode
    from node.render.cpu import CpuCompositor
    from node.render.encode import VideoEncoder
    from node.render.frames import encode_cpu, encode_gl

    n, w, h, fps = replay.n_frames, meta["width"], meta["height"], meta["fps"]
    options = meta["options"]
    cpu = CpuCompositor(replay.art)
    distinct: dict[int, tuple] = {}  # equal frames share one copy: memory per distinct frame
    ready = [distinct.setdefault(id(replay.frame(i)), tuple(
        p.copy() for p in cpu.render_yuv(replay.frame(i)))) for i in range(n)]

    def encoder(name: str) -> VideoEncoder:
        return VideoEncoder(out / name, w, h, fps, audio=audio[: n * 48000 // fps],
                            codec="libx264", options=options)

    def alone() -> None:
        with encoder("alone.mp4") as enc:
            for planes in ready:
                enc.write_yuv(*planes)

    def node(loop, compositor):
        def run() -> None:
            with encoder("node.mp4") as enc:
                loop(replay, enc, compositor)
        return run

    def pillow() -> None:  # bench/render.py's baseline: Pillow, RGB to PyAV
        with encoder("baseline.mp4") as enc:
            pillow_encode(replay.art, (replay.frame(i) for i in range(n)), enc)

    loops = [("encoder_alone_fps", alone), ("gl_node_fps", node(encode_gl, gl)),
             ("cpu_node_fps", node(encode_cpu, CpuCompositor(replay.art)))]
    if baseline:
        loops.append(("baseline_fps", pillow))
    row = {}
    for _ in range(repeats):  # interleaved: drift hits every loop alike
        for key, fn in loops:
            row.setdefault(key, []).append(timed(fn, n, 1))
    for f in out.glob("*.mp4"):
        f.unlink()
    return {k: statistics.median(v) for k, v in row.items()}


def run(src: Path, out: Path, repeats: int, qualities: list[str], loops: list[str],
        baselines: list[str] = ()) -> None:
    from node.render.cpu import CpuCompositor
    from node.render.encode import codec_available
    from node.render.gl import GLCompositor, create_context

    ctx = create_context()
    audio = np.load(src / "audio48k.npy")
    result = {"renderer": ctx.info["GL_RENDERER"], "vendor": ctx.info["GL_VENDOR"],
              "encoders": {c: codec_available(c) for c in NVENC}, "presets": {}}
    print(f"GL: {result['vendor']} | {result['renderer']}; NVENC: {result['encoders']}")
    save = lambda: (out / "device_render.json").write_text(json.dumps(result, indent=2))  # noqa: E731
    for name in qualities:
        meta, art, lists, index, refs = load(src, name)
        replay = Replay(art, lists, index, meta["fps"])
        gl = GLCompositor(art, ctx=ctx)
        cpu = CpuCompositor(art)
        diff_ref = diff_cpu = 0
        for k in range(len(refs)):
            gl.render_yuv(lists[k])
            got = gl.i420.astype(np.int16)
            diff_ref = max(diff_ref, int(np.abs(got - refs[k]).max()))
            cpu.render_yuv(lists[k])
            diff_cpu = max(diff_cpu, int(np.abs(got - cpu.i420).max()))
        row = {"size": f"{art.width}x{art.height}", "frames": replay.n_frames, "unique": len(lists),
               "max_diff_vs_llvmpipe": diff_ref, "max_diff_vs_cpu": diff_cpu,
               **render_only(gl, replay, repeats)}
        if name in loops:
            row.update(node_loops(gl, replay, meta, audio, out, repeats, name in baselines))
        gl.close()
        result["presets"][name] = row
        print(name, json.dumps({k: round(v) if isinstance(v, float) else v for k, v in row.items()}),
              flush=True)
        save()
    result["kernels"] = kernels_on_cuda()
    save()


def kernels_on_cuda() -> dict:
    try:
        import torch
    except ImportError:
        return {"cuda": False, "torch": False}

    from kernels import composite, rgb_to_yuv420
    if not torch.cuda.is_available():
        return {"cuda": False}
    dev = torch.device("cuda")
    out = {"cuda": True, "device": torch.cuda.get_device_name(0)}
    for h, w in ((1080, 1920), (2160, 3840)):
        x = torch.rand(16, 3, h, w, device=dev)
        for _ in range(3):
            rgb_to_yuv420(x)
        torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(20):
            rgb_to_yuv420(x)
        torch.cuda.synchronize()
        out[f"rgb_to_yuv420_{h}p_fps"] = 20 * 16 / (time.perf_counter() - t)
        art = SceneArt(w, h, np.full((h, w, 4), 200, np.uint8),
                       {"s": Sprite("s", np.full((h // 3, w // 5, 4), 128, np.uint8))})
        draw = [Placement("s", 40.5, 30.0), Placement("s", 400, 300, 0.5)]
        composite(art, draw, dev)
        torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(20):
            composite(art, draw, dev)
        torch.cuda.synchronize()
        out[f"composite_{h}p_fps"] = 20 / (time.perf_counter() - t)
    print(json.dumps(out))
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=["export", "run"])
    p.add_argument("--dir", type=Path, default=REPO / ".gl" / "scenes")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--qualities", default=",".join(QUALITIES))
    p.add_argument("--loops", default="standard,hd,ultra",
                   help="presets whose node loop and encoder alone are timed too")
    p.add_argument("--baselines", default="standard,hd",
                   help="of those, the presets whose Pillow baseline (bench/render.py's) is timed too")
    args = p.parse_args()
    if args.mode == "export":
        export(args.dir, args.seconds)
    else:
        args.out.mkdir(parents=True, exist_ok=True)
        run(args.dir, args.out, args.repeats, args.qualities.split(","), args.loops.split(","),
            args.baselines.split(","))
    return 0


if __name__ == "__main__":
    sys.exit(main())
