"""The node's side of the lease protocol: lease, heartbeat (with progress), complete.

Every state change runs as one Lua script inside Redis; this module only builds the
keys and arguments and turns error replies into typed exceptions.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

import redis

from farm import keys, lua
from farm.config import LeaseSettings
from farm.errors import StaleLease
from farm.jobs import Job
from farm.scheduling import MIN_PRIORITY, lease_args, queue_score


@dataclass(frozen=True)
class Lease:
    job_id: str
    fence: int


def month_of(ts: float | None = None) -> str:
    return time.strftime("%Y-%m", time.gmtime(ts if ts is not None else time.time()))


class LeaseClient:
    """Synchronous lease operations for one node (redis-py, blocking)."""

    def __init__(self, client: redis.Redis, node_id: str, settings: LeaseSettings) -> None:
        self.redis = client
        self.node_id = node_id
        self.settings = settings
        self._scripts = lua.register(client)

    @property
    def ttl_ms(self) -> int:
        return int(self.settings.ttl_s * 1000)

    def lease(self, free_mb: int | None = None, encoders: Iterable[str] | None = None) -> Lease | None:
        """The next job this node may take: `free_mb` (its free memory) rules out big jobs,
        `encoders` (the software encoders it can open; None: any) jobs in other formats."""
        got = self._scripts["lease"](args=[self.node_id, self.ttl_ms, *lease_args(),
                                           "" if free_mb is None else int(free_mb),
                                           "" if encoders is None else ",".join(sorted(encoders))])
        if not got:
            return None
        return Lease(job_id=_s(got[0]), fence=int(got[1]))

    def job(self, job_id: str) -> Job:
        return Job.from_redis(self.redis.hgetall(keys.job(job_id)))

    def lease_chunk(self, parent: Lease, chunk_id: str) -> Lease | None:
        """Lease a queued chunk of the render this node holds (`parent`), by id; None when
        it is not queued (or this node failed it). Raises StaleLease once `parent` is lost."""
        got = self._call("lease_chunk", [chunk_id, parent.fence, self.node_id, self.ttl_ms])
        return Lease(job_id=_s(got[0]), fence=int(got[1])) if got else None

    def heartbeat(self, lease: Lease, progress: float | None = None) -> str:
        """Renew the lease; returns the job state. Raises StaleLease for an old token."""
        prog = "" if progress is None else f"{min(max(progress, 0.0), 1.0):.4f}"
        return _s(self._call("heartbeat", [lease.job_id, lease.fence, self.ttl_ms, prog, self.node_id]))

    def complete(self, lease: Lease, artifacts: list[str]) -> str:
        return self._finish(lease, "succeeded", "", artifacts)

    def fail(self, lease: Lease, error: str) -> str:
        return self._finish(lease, "failed", error[:2000], [])

    def release(self, lease: Lease) -> str:
        """Hand the job back untouched (a forced stop): re-queued, no attempt counted."""
        return self._finish(lease, "released", "", [])

    def _finish(self, lease: Lease, outcome: str, error: str, artifacts: list[str]) -> str:
        return _s(self._call("complete", [lease.job_id, lease.fence, outcome, error,
                                          self.settings.max_attempts, ",".join(artifacts),
                                          self.node_id, month_of()]))

    def _call(self, name: str, args: list):
        try:
            return self._scripts[name](args=args)
        except redis.ResponseError as exc:
            if str(exc).startswith("STALE"):
                raise StaleLease(str(exc)) from None
            raise


def split_args(job_id: str, fence: int | str, ranges: list[tuple[int, int]]) -> list:
    """ARGV of farm/lua/split.lua: a render's chunks as frame ranges (start, stop)."""
    return [job_id, fence, CHUNK_SCORE_OFFSET, ",".join(f"{a}:{b}" for a, b in ranges)]


# Subtracted from a render's queue score to give its chunks': the score of a job one
# priority below the lowest, enqueued at time 0, is more than any job's score, so chunks
# sort before every job of their tenant, in their renders' order.
CHUNK_SCORE_OFFSET = queue_score(MIN_PRIORITY - 1, 0)


def _s(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)
