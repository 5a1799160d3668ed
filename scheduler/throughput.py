"""Farm throughput over the last hour: a sampler task and the series it keeps in Redis.

Each node counts the frames it rendered in its hash (`frames_rendered`, only grows).
Every THROUGHPUT_SAMPLE_S the sampler sums how far those counters moved since the
last look and appends (time, frames/s, frames) to a capped list.
"""

from __future__ import annotations

import json
import logging
import time

import redis
from aiohttp import web

from farm import keys
from scheduler.auth import principal
from scheduler.context import REDIS
from scheduler.periodic import Periodic

log = logging.getLogger("toonz.throughput")

THROUGHPUT_SAMPLE_S = 10.0  # seconds between samples
THROUGHPUT_WINDOW_S = 3600.0  # what the console charts
THROUGHPUT_POINTS = int(THROUGHPUT_WINDOW_S / THROUGHPUT_SAMPLE_S) + 30  # list cap, with slack
_AT = "@at"  # field of the seen hash: when it was last written (node ids never start with @)


class Sampler:
    """Appends a point when frames were rendered since the last look; writes nothing while
    the farm is idle (the console draws missing samples as zero).

    The counters last accounted for live in Redis (THROUGHPUT_SEEN), updated under WATCH:
    of several schedulers looking at once, one records the frames and the others, finding
    the hash changed, record nothing.
    """

    def __init__(self, interval_s: float = THROUGHPUT_SAMPLE_S) -> None:
        self.interval_s = interval_s
        self.last_look: float | None = None  # this process's previous look

    async def sample(self, r, now: float | None = None) -> list | None:
        """Look once; the point appended ([time, frames/s, frames]), or None."""
        now = time.time() if now is None else now
        previous, self.last_look = self.last_look, now
        async with r.pipeline(transaction=True) as pipe:
            await pipe.watch(keys.THROUGHPUT_SEEN)
            seen = {k.decode(): float(v) for k, v in (await pipe.hgetall(keys.THROUGHPUT_SEEN)).items()}
            at = seen.pop(_AT, None)
            # Nodes that signed off since the last look still count the frames they finished.
            nodes = sorted({n.decode() for n in await pipe.zrange(keys.NODES, 0, -1)} | set(seen))
            counters = [int(await pipe.hget(keys.node(n), keys.NODE_FRAMES_FIELD) or 0) for n in nodes]
            # Every node ever counted stays in the seen hash (as node hashes stay), so a node id
            # that comes back is not mistaken for a new node and credited its whole lifetime.
            changed = {n: c for n, c in zip(nodes, counters) if seen.get(n, 0.0) != c}
            if not changed:
                return None
            # A node first seen rendered all of its count since; a counter that went back
            # (its hash was lost) restarted at 0.
            frames = sum(int(c - seen.get(n, 0.0)) if c >= seen.get(n, 0.0) else c for n, c in changed.items())
            # The frames are those since the later of this process's last look and the last
            # write; with neither (a new farm), since the earliest of those nodes started.
            known = [t for t in (at, previous) if t is not None]
            since = max(known) if known else await _started(pipe, list(changed), now - self.interval_s)
            point = None
            pipe.multi()
            pipe.hset(keys.THROUGHPUT_SEEN, mapping={_AT: now, **changed})
            if frames > 0:
                point = [round(now, 3), round(frames / max(now - since, 1e-3), 2), frames]
                pipe.rpush(keys.THROUGHPUT, json.dumps(point))
                pipe.ltrim(keys.THROUGHPUT, -THROUGHPUT_POINTS, -1)
            try:
                await pipe.execute()
            except redis.WatchError:  # another scheduler recorded these frames
                return None
        return point


async def _started(r, nodes: list[str], default: float) -> float:
    times = [float(t) for t in [await r.hget(keys.node(n), "started_at") for n in nodes] if t]
    return min(times, default=default)


async def series(r, window_s: float = THROUGHPUT_WINDOW_S) -> list[list]:
    """The samples of the last `window_s`, oldest first: [time, frames/s, frames]."""
    since = time.time() - window_s
    points = [json.loads(raw) for raw in await r.lrange(keys.THROUGHPUT, 0, -1)]
    return [p for p in points if p[0] >= since]


async def tail(r) -> bytes | None:
    """The newest sample as stored: a cheap way to tell whether the series moved."""
    return await r.lindex(keys.THROUGHPUT, -1)


async def throughput(request: web.Request) -> web.Response:
    """GET /v1/admin/throughput: frames/s over the last hour."""
    await principal(request, role="admin")
    return web.json_response({"interval_s": THROUGHPUT_SAMPLE_S, "window_s": THROUGHPUT_WINDOW_S,
                              "points": await series(request.app[REDIS])})


async def sampler_ctx(app: web.Application):
    """cleanup_ctx: the sampler runs while the app does."""
    sampler = Sampler()
    # The first look one interval in, as the sampler's own bookkeeping expects.
    loop = Periodic("throughput-sampler", lambda: sampler.sample(app[REDIS]), sampler.interval_s, log,
                    wait_first=True)
    loop.start()
    yield
    await loop.stop()
