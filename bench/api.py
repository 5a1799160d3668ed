"""The customer API under load: N concurrent render submits through the async SDK.

A real farm without nodes (redis-server and the scheduler as child processes, as
`toonz up` starts them) and an enterprise tenant with the rate limits on, as shipped (its key
bucket holds 400 requests, refilled at 100/s; the bench waits for the refill
between phases, so nothing is refused for rate). Each run sends, N at once:

  baseline  GET /health: the scheduler's HTTP path plus a Redis round trip, no auth
  json      POST /v1/renders, JSON with an audio_url the scheduler fetches from a
            local file server (a 1 s WAV)
  upload    POST /v1/renders, multipart with the same 1 s WAV

Every request goes through AsyncToonzClient with its defaults (each create carries
the SDK's own Idempotency-Key) and one connection per request in flight. Figures
are medians over --runs; errors are summed. Writes bench/results/api.json.

    .venv/bin/python bench/api.py [--concurrency 200] [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from farm.audio import silent_wav
from farm.aclient import AsyncToonzClient  # noqa: E402
from farm.errors import ToonzError  # noqa: E402
from farm.presets import RATE_LIMITS, Tier  # noqa: E402
from farm.redisproc import RedisProcess, free_port  # noqa: E402
from farm.sdk_common import NO_RETRIES  # noqa: E402

PHASES = ("baseline", "json", "upload")
CLIP_S = 1.0
FILE_SERVER_BACKLOG = 1024


def percentile(sorted_ms: list[float], p: float) -> float:
    """Nearest rank."""
    return sorted_ms[max(0, math.ceil(p / 100 * len(sorted_ms)) - 1)]


async def phase(client: AsyncToonzClient, name: str, n: int, clip: Path, audio_url: str) -> dict:
    async def one() -> float | str:
        t0 = time.perf_counter()
        try:
            if name == "baseline":
                await client.health()
            elif name == "json":
                await client.create_animation(audio_url=audio_url, quality="preview")
            else:
                await client.create_animation(audio_path=clip, quality="preview")
        except (ToonzError, OSError, asyncio.TimeoutError) as exc:
            return f"{type(exc).__name__}: {getattr(exc, 'code', '')} {exc}"[:200]
        return (time.perf_counter() - t0) * 1000

    t0 = time.perf_counter()
    results = await asyncio.gather(*(one() for _ in range(n)))
    wall = time.perf_counter() - t0
    ms = sorted(r for r in results if isinstance(r, float))
    errors = [r for r in results if isinstance(r, str)]
    return {"requests": n, "errors": len(errors), "first_errors": errors[:3],
            "p50_ms": percentile(ms, 50) if ms else None, "p95_ms": percentile(ms, 95) if ms else None,
            "p99_ms": percentile(ms, 99) if ms else None, "max_ms": ms[-1] if ms else None,
            "per_s": len(ms) / wall, "wall_s": wall}


async def run_once(url: str, key: str, n: int, clip: Path, audio_url: str) -> dict:
    refill_s = n / RATE_LIMITS[Tier.ENTERPRISE].per_second  # the tokens one phase takes
    # No retries: a refused or failed request counts as an error, not as a slow success.
    async with AsyncToonzClient(url, key, retry=NO_RETRIES, max_connections=n) as client:
        out = {}
        for name in PHASES:
            out[name] = await phase(client, name, n, clip, audio_url)
            await asyncio.sleep(refill_s)
        return out


async def warm_up(url: str, key: str, clip: Path, audio_url: str) -> None:
    async with AsyncToonzClient(url, key) as client:
        for _ in range(3):
            await client.health()
            await client.create_animation(audio_url=audio_url, quality="preview")
            await client.create_animation(audio_path=clip, quality="preview")


def serve_files(folder: Path, port: int) -> int:
    from aiohttp import web
    app = web.Application()
    app.router.add_static("/", folder)
    web.run_app(app, host="127.0.0.1", port=port, backlog=FILE_SERVER_BACKLOG, print=None,
                access_log=None)
    return 0


def start_scheduler(tmp: Path, redis_url: str, max_connections: int | None) -> tuple[str, subprocess.Popen]:
    """The scheduler as `toonz scheduler` runs it, a child process; its URL and process."""
    port = free_port()
    if max_connections:  # redis-py reads the pool's size from the URL
        redis_url += f"?max_connections={max_connections}"
    env = {**os.environ, "TOONZ_REDIS_URL": redis_url, "TOONZ_DATA_DIR": str(tmp / "farm"),
           "TOONZ_PORT": str(port), "TOONZ_URL_ALLOWLIST": "127.0.0.1"}  # audio_url on this machine
    log = open(tmp / "scheduler.log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "farm.cli.main", "scheduler"], env=env, cwd=REPO,
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    _wait_port(port)
    return f"http://127.0.0.1:{port}", proc


def _wait_port(port: int, timeout_s: float = 30.0) -> None:
    import socket
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"bench/api: nothing listened on port {port} within {timeout_s:.0f} s")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--concurrency", type=int, default=200, help="requests in flight at once, per phase")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "api.json")
    p.add_argument("--redis-max-connections", type=int, default=None,
                   help="the scheduler's Redis pool size (?max_connections= on its TOONZ_REDIS_URL); "
                        "default: as shipped")
    p.add_argument("--serve-files", type=Path, help=argparse.SUPPRESS)  # the bench's file server
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve_files:
        return serve_files(args.serve_files, args.port)
    if not 1 <= args.concurrency <= 400:
        sys.exit("bench/api: --concurrency must be 1-400 (the enterprise key's burst)")
    import redis

    from farm.tenants import create_key

    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "clip.wav"
        clip.write_bytes(silent_wav(CLIP_S))
        port = free_port()
        # The audio's server, a process of its own: aiohttp with a deep accept queue (Python's
        # http.server queues 5 connections, and its dropped SYNs would be timed as the API's).
        files = subprocess.Popen([sys.executable, __file__, "--serve-files", tmp, "--port", str(port)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_port(port)
        try:
            with RedisProcess(Path(tmp) / "redis") as server:
                r = redis.Redis.from_url(server.url)
                key = create_key(r, "bench", "enterprise")
                r.close()
                url, scheduler = start_scheduler(Path(tmp), server.url, args.redis_max_connections)
                try:
                    audio_url = f"http://127.0.0.1:{port}/clip.wav"
                    asyncio.run(warm_up(url, key, clip, audio_url))
                    for i in range(args.runs):
                        runs.append(asyncio.run(run_once(url, key, args.concurrency, clip, audio_url)))
                        print(f"run {i + 1}/{args.runs}: " + ", ".join(
                            f"{k} p50 {v['p50_ms']:.0f} ms, {v['errors']} errors"
                            for k, v in runs[-1].items()), file=sys.stderr)
                finally:
                    scheduler.send_signal(signal.SIGINT)
                    scheduler.wait(20)
        finally:
            files.terminate()
            files.wait()

    def med(name: str, field: str) -> float:
        vals = [run[name][field] for run in runs if run[name][field] is not None]
        return statistics.median(vals) if vals else float("nan")

    def vs_baseline(name: str) -> float:
        # Per run, then the median: the machine's load moves both figures of one run together.
        ratios = [run[name]["p50_ms"] / run["baseline"]["p50_ms"] for run in runs
                  if run[name]["p50_ms"] and run["baseline"]["p50_ms"]]
        return statistics.median(ratios) if ratios else float("nan")

    summary = {name: {f: med(name, f) for f in ("p50_ms", "p95_ms", "p99_ms", "max_ms", "per_s")}
               | {"errors": sum(run[name]["errors"] for run in runs),
                  "requests": sum(run[name]["requests"] for run in runs),
                  "p50_vs_baseline": vs_baseline(name)} for name in PHASES}
    result = {"bench": "api", "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "command": "bench/api.py " + " ".join(sys.argv[1:]), "cpus": os.cpu_count(),
              "concurrency": args.concurrency, "runs": args.runs, "tenant_tier": "enterprise",
              "rate_limits": "on (as shipped)", "redis_max_connections": args.redis_max_connections,
              "clip_s": CLIP_S, "quality": "preview",
              "summary": summary, "per_run": runs}
    labels = {"baseline": "GET /health (baseline)", "json": "submit, JSON audio_url",
              "upload": "submit, multipart upload"}
    print(f"\n{args.concurrency} concurrent requests per phase, median of {args.runs} runs "
          f"({os.cpu_count()} CPUs, scheduler and redis-server without nodes, enterprise tenant, "
          f"scheduler Redis pool: {args.redis_max_connections or 'as shipped'}):\n")
    print("| what | p50 ms | p95 ms | p99 ms | requests/s | p50 / baseline p50 | errors |\n"
          "| --- | --- | --- | --- | --- | --- | --- |")
    for name in PHASES:
        s = summary[name]
        print(f"| {labels[name]} | {s['p50_ms']:.1f} | {s['p95_ms']:.1f} | {s['p99_ms']:.1f} | "
              f"{s['per_s']:.0f} | {s['p50_vs_baseline']:.1f}x | {s['errors']} / {s['requests']} |")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    print(f"\nwrote {args.json}")
    return 1 if any(summary[n]["errors"] for n in PHASES) else 0


if __name__ == "__main__":
    sys.exit(main())
