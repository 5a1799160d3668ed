"""GPU render throughput on a lent machine, from scenes prepared on this one.

The device machines have no package registry, no cairo and no PocketSphinx, so
`export` does the CPU-side work here (lip sync, SVG rasterizing, scene layout) and
writes each preset's scene; `run` replays it there through the same GLCompositor
and VideoEncoder the node uses, and checks its frames against llvmpipe's.

    python bench/device_render.py export --dir .gl/scenes            # here
    python bench/device_render.py run --dir .gl/scenes --out $OUT     # on the GPU
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from node.render.types import Placement, SceneArt, Sprite  # noqa: E402

QUALITIES = ("preview", "standard", "hd", "ultra")
REFERENCE_FRAMES = 3


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
            "width": q.width, "height": q.height, "fps": q.fps, "preset": q.x264_preset,
            "crf": q.crf, "placements": rows}))
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


def run(src: Path, out: Path, repeats: int, qualities: list[str]) -> None:

    from node.render.encode import VideoEncoder, pick_video_codec
    from node.render.gl import GLCompositor, create_context

    ctx = create_context()
    audio = np.load(src / "audio48k.npy")
    result = {"renderer": ctx.info["GL_RENDERER"], "vendor": ctx.info["GL_VENDOR"],
              "codec": pick_video_codec(), "presets": {}}
    print(f"GL: {result['vendor']} | {result['renderer']}; encoder: {result['codec']}")
    for name in qualities:
        meta, art, lists, index, refs = load(src, name)
        gl = GLCompositor(art, ctx=ctx)
        diff = 0
        for k in range(len(refs)):
            gl.render_yuv(lists[k])
            diff = max(diff, int(np.abs(gl.i420.astype(np.int16) - refs[k].astype(np.int16)).max()))
        n = len(index)
        frames = []  # every unique frame, for the encoder-alone run
        for dl in lists:
            frames.append(tuple(p.copy() for p in gl.render_yuv(dl)))
        render_fps = []
        for _ in range(repeats):  # every frame drawn and read back: the renderer's own speed
            t = time.perf_counter()
            for i in range(n):
                gl.render_yuv(lists[index[i]])
            render_fps.append(n / (time.perf_counter() - t))
        whole_fps, enc_fps = [], []
        for _ in range(repeats):  # what the node does: identical frames reused, encoded
            path = out / f"{name}.mp4"
            t = time.perf_counter()
            with VideoEncoder(path, meta["width"], meta["height"], meta["fps"], audio=audio,
                              preset=meta["preset"], crf=meta["crf"]) as enc:
                last = -1
                for i in range(n):
                    if index[i] != last:
                        planes = gl.render_yuv(lists[index[i]])
                        last = index[i]
                    enc.write_yuv(*planes)
            whole_fps.append(n / (time.perf_counter() - t))
            t = time.perf_counter()
            with VideoEncoder(out / f"{name}-enc.mp4", meta["width"], meta["height"], meta["fps"],
                              audio=audio, preset=meta["preset"], crf=meta["crf"]) as enc:
                for i in range(n):
                    enc.write_yuv(*frames[index[i]])
            enc_fps.append(n / (time.perf_counter() - t))
        gl.close()
        for f in out.glob(f"{name}*.mp4"):
            f.unlink()
        row = {"frames": n, "unique": len(lists), "max_diff_vs_llvmpipe": diff,
               "render_only_fps": statistics.median(render_fps),
               "render_encode_fps": statistics.median(whole_fps),
               "encoder_alone_fps": statistics.median(enc_fps)}
        result["presets"][name] = row
        print(f"{name:9} {meta['width']}x{meta['height']}: render+readback {row['render_only_fps']:8.0f} "
              f"fps | render+encode {row['render_encode_fps']:6.0f} fps | encoder alone "
              f"{row['encoder_alone_fps']:6.0f} fps | max diff vs llvmpipe {diff}")
    result["kernels"] = kernels_on_cuda()
    (out / "device_render.json").write_text(json.dumps(result, indent=2))


def kernels_on_cuda() -> dict:
    import torch

    from kernels import rgb_to_yuv420
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
        fps = 20 * 16 / (time.perf_counter() - t)
        out[f"rgb_to_yuv420_{h}p_fps"] = fps
        print(f"torch rgb_to_yuv420 on {out['device']}, {w}x{h}, batch 16: {fps:,.0f} frames/s")
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=["export", "run"])
    p.add_argument("--dir", type=Path, default=REPO / ".gl" / "scenes")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--qualities", default=",".join(QUALITIES))
    args = p.parse_args()
    if args.mode == "export":
        export(args.dir, args.seconds)
    else:
        args.out.mkdir(parents=True, exist_ok=True)
        run(args.dir, args.out, args.repeats, args.qualities.split(","))
    return 0


if __name__ == "__main__":
    sys.exit(main())
