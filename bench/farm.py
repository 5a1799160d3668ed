"""The farm's own speed: leasing under a deep backlog, and whole renders through nodes.

Part 1 (Redis only): 10,000 jobs queued across four tiers and 200 tenants; the
lease script's throughput from several processes at once, and the latency of one
enterprise submit + lease while the backlog sits there, beside redis-benchmark's
plain SET/GET on the same server in the same run.
Part 2 (the real processes): frames/s of a LocalFarm with 1, 2 and 4 nodes on a
batch of renders, and one 60-second standard video from submit to download: on one
node in one piece, and split into chunks (node/chunks.py) on 1 and 2 nodes.

    .venv/bin/python bench/farm.py [--jobs 10000] [--skip-renders] [--video60-only]
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from farm.config import LeaseSettings  # noqa: E402
from farm.redisproc import RedisProcess  # noqa: E402

TIERS = ("free", "starter", "pro", "enterprise")
TENANTS = 200


def fill(url: str, n: int) -> None:
    import redis

    from farm import lua
    from farm.jobs import new_job_id
    from farm.lease import month_of
    from farm.scheduling import queue_score
    r = redis.Redis.from_url(url)
    submit = lua.register(r)["submit"]
    now = int(time.time() * 1000)
    pipe = r.pipeline(transaction=False)
    for i in range(n):
        job_id, tenant, tier = new_job_id(), f"t_{i % TENANTS}", TIERS[i % len(TIERS)]
        record = {"id": job_id, "tenant": tenant, "tier": tier, "quality": "preview", "format": "mp4",
                  "template": "explainer", "character": "toonz", "duration_s": 10, "price_cents": 10,
                  "created_at": now / 1000}
        submit(args=[job_id, tenant, tier, -1, month_of(), now + i, queue_score(50, now + i),
                     *[x for kv in record.items() for x in kv]], client=pipe)
        if i % 1000 == 999:
            pipe.execute()
    pipe.execute()


def leaser(url: str, count: int, name: str, out) -> None:
    import redis

    from farm.lease import LeaseClient
    client = LeaseClient(redis.Redis.from_url(url), name, LeaseSettings())
    got = 0
    t0 = time.perf_counter()
    while got < count and client.lease() is not None:
        got += 1
    out.put((got, time.perf_counter() - t0))


def lease_throughput(url: str, jobs: int, procs: int) -> float:
    fill(url, jobs)
    q: mp.Queue = mp.Queue()
    ps = [mp.Process(target=leaser, args=(url, jobs // procs, f"bench-{i}", q)) for i in range(procs)]
    t0 = time.perf_counter()
    for p in ps:
        p.start()
    results = [q.get() for _ in ps]
    wall = time.perf_counter() - t0
    for p in ps:
        p.join()
    return sum(g for g, _ in results) / wall


def latency(url: str, jobs: int, samples: int) -> list[float]:
    """One submit then one lease, with the backlog held at `jobs` (each lease takes one)."""
    import redis

    from farm import lua
    from farm.jobs import new_job_id
    from farm.lease import LeaseClient, month_of
    from farm.scheduling import queue_score
    r = redis.Redis.from_url(url)
    r.flushall()
    fill(url, jobs)
    submit = lua.register(r)["submit"]
    node = LeaseClient(r, "bench-latency", LeaseSettings())
    out = []
    for _ in range(samples):
        job_id, now = new_job_id(), int(time.time() * 1000)
        t0 = time.perf_counter()
        submit(args=[job_id, "t_new", "pro", -1, month_of(), now, queue_score(50, now),
                     "id", job_id, "tenant", "t_new", "tier", "pro", "created_at", now / 1000])
        lease = node.lease()
        out.append((time.perf_counter() - t0) * 1000)
        if lease is None:
            sys.exit("bench: the backlog ran dry")
    return out


def redis_benchmark(port: int) -> dict[str, float]:
    res = subprocess.run(["redis-benchmark", "-p", str(port), "-t", "set,get", "-n", "100000",
                          "-c", "4", "-q", "--csv"], capture_output=True, text=True, check=True)
    rows = {}
    for line in res.stdout.splitlines()[1:]:
        cells = [c.strip('"') for c in line.split(",")]
        rows[cells[0]] = float(cells[1])
    return rows


# The 60 s video's rows: one piece (chunking off), then chunks of the default 30 s.
VIDEO60_ROWS = (("one piece", 1, {"TOONZ_CHUNK_S": "0"}), ("chunks", 1, {}), ("chunks", 2, {}))


def render_batch(nodes: int, audio: Path, text: str, jobs: int, quality: str,
                 env: dict[str, str] | None = None) -> dict:
    from farm import presets
    from farm.client import ToonzClient
    from farm.localfarm import LocalFarm
    with tempfile.TemporaryDirectory() as tmp, LocalFarm(Path(tmp), nodes=nodes, env=env) as farm:
        client = ToonzClient(farm.scheduler_url, farm.api_key)
        t0 = time.perf_counter()
        ids = [client.create_animation(audio_path=audio, transcript=text, quality=quality).job_id
               for _ in range(jobs)]
        fps = presets.quality(quality).fps
        frames = 0
        for job_id in ids:
            done = client.wait_for_completion(job_id, timeout=900, poll_interval=0.1)
            client.download(job_id, Path(tmp) / f"{job_id}.mp4")
            frames += math.ceil(done.raw["duration_s"] * fps)
        wall = time.perf_counter() - t0
        return {"nodes": nodes, "jobs": jobs, "frames": frames, "seconds": wall, "fps": frames / wall}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--jobs", type=int, default=10_000)
    p.add_argument("--procs", type=int, default=4)
    p.add_argument("--skip-renders", action="store_true")
    p.add_argument("--video60-only", action="store_true", help="only the 60 s video's rows")
    p.add_argument("--video60-runs", type=int, default=3, help="runs of each 60 s video row")
    p.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "farm.json")
    args = p.parse_args()
    result: dict = {"bench": "farm", "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if args.video60_only:
        result["video60_rows"] = video60(args.video60_runs)
        print_video60(result["video60_rows"])
        return write(args.json.with_name("farm_video60.json"), result)
    with tempfile.TemporaryDirectory() as tmp, RedisProcess(Path(tmp)) as server:
        result["redis_benchmark"] = redis_benchmark(server.port)
        runs = []
        for _ in range(3):
            subprocess.run(["redis-cli", "-p", str(server.port), "flushall"], check=True, capture_output=True)
            runs.append(lease_throughput(server.url, args.jobs, args.procs))
        result["leases_per_s"] = statistics.median(runs)
        lat = sorted(latency(server.url, args.jobs, 500))
        result["submit_lease_ms"] = {"p50": lat[len(lat) // 2], "p99": lat[int(len(lat) * 0.99)]}
    print(f"\nleasing with {args.jobs:,} jobs queued over 4 tiers and {TENANTS} tenants "
          f"({args.procs} processes, median of 3):\n")
    print("| what | figure |\n| --- | --- |")
    print(f"| leases/s (lease.lua) | {result['leases_per_s']:,.0f} |")
    for k, v in result["redis_benchmark"].items():
        print(f"| redis-benchmark {k} ops/s, same server | {v:,.0f} |")
    print(f"| one submit + one lease round trip, p50 / p99 | {result['submit_lease_ms']['p50']:.2f} / "
          f"{result['submit_lease_ms']['p99']:.2f} ms |")
    if not args.skip_renders:
        from bench.render import make_clip
        with tempfile.TemporaryDirectory() as tmp:
            clip10, text = make_clip(Path(tmp), 10.0)
            result["farm_fps"] = [render_batch(n, clip10, text, 6, "standard") for n in (1, 2, 4)]
        result["video60_rows"] = video60(args.video60_runs)
        result["video60"] = result["video60_rows"][0]  # one node, one piece (earlier runs' row)
        print("\n| nodes | 6 standard renders of 10 s: frames/s |\n| --- | --- |")
        for row in result["farm_fps"]:
            print(f"| {row['nodes']} | {row['fps']:.1f} |")
        print_video60(result["video60_rows"])
    return write(args.json, result)


def video60(runs: int = 1) -> list[dict]:
    """The 60 s standard video from submit to download, in one piece and in chunks; with
    several runs the rows take turns (a noisy machine slows them alike) and each reports
    its median."""
    from bench.render import make_clip
    with tempfile.TemporaryDirectory() as tmp:
        clip10, text = make_clip(Path(tmp), 10.0)
        clip60 = Path(tmp) / "clip60.wav"
        subprocess.run(["sox", *[str(clip10)] * 6, str(clip60)], check=True)
        seconds: list[list[float]] = [[] for _ in VIDEO60_ROWS]
        for _ in range(runs):
            for i, (how, nodes, env) in enumerate(VIDEO60_ROWS):
                seconds[i].append(render_batch(nodes, clip60, text * 6, 1, "standard", env)["seconds"])
        return [{"how": how, "nodes": nodes, "seconds": statistics.median(s), "runs": s}
                for (how, nodes, _), s in zip(VIDEO60_ROWS, seconds)]


def print_video60(rows: list[dict]) -> None:
    print("\n| 60 s standard video, submit to download | nodes | seconds (median) | runs |\n"
          "| --- | --- | --- | --- |")
    for row in rows:
        runs = " / ".join(f"{s:.1f}" for s in row["runs"])
        print(f"| {row['how']} | {row['nodes']} | {row['seconds']:.1f} | {runs} |")


def write(path: Path, result: dict) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2))
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
