"""The node's side of the lease protocol: lease, heartbeat (with progress), complete.

Every state change runs as one Lua script inside Redis; this module only builds the
keys and arguments and turns error replies into typed exceptions.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import redis

from farm import keys, lua
from farm.config import LeaseSettings
from farm.errors import StaleLease
from farm.jobs import Job
from farm.presets import TIER_ORDER


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

    def lease(self) -> Lease | None:
        queues = [keys.queue(t.value) for t in TIER_ORDER]
        got = self._scripts["lease"](
            keys=[keys.LEASES, keys.FENCE, keys.NODES, *queues],
            args=[self.node_id, self.ttl_ms, keys.JOB_PREFIX, keys.BLOCKED_SUFFIX])
        if not got:
            return None
        return Lease(job_id=_s(got[0]), fence=int(got[1]))

    def job(self, job_id: str) -> Job:
        return Job.from_redis(self.redis.hgetall(keys.job(job_id)))

    def heartbeat(self, lease: Lease, progress: float | None = None) -> str:
        """Renew the lease; returns the job state. Raises StaleLease for an old token."""
        prog = "" if progress is None else f"{min(max(progress, 0.0), 1.0):.4f}"
        return _s(self._call("heartbeat", keys=[keys.job(lease.job_id), keys.LEASES, keys.NODES],
                             args=[lease.job_id, lease.fence, self.ttl_ms, prog, self.node_id]))

    def complete(self, lease: Lease, artifacts: list[str]) -> str:
        return self._finish(lease, "succeeded", "", artifacts)

    def fail(self, lease: Lease, error: str) -> str:
        return self._finish(lease, "failed", error[:2000], [])

    def _finish(self, lease: Lease, outcome: str, error: str, artifacts: list[str]) -> str:
        tenant, tier = self.redis.hmget(keys.job(lease.job_id), "tenant", "tier")
        tenant, tier = _s(tenant or b""), _s(tier or b"free")
        return _s(self._call(
            "complete",
            keys=[keys.job(lease.job_id), keys.LEASES, keys.tenant_active(tenant),
                  keys.usage(tenant, month_of()), keys.queue(tier), keys.blocked(lease.job_id)],
            args=[lease.job_id, lease.fence, outcome, error, self.settings.max_attempts,
                  ",".join(artifacts), self.node_id]))

    def _call(self, name: str, keys: list, args: list):
        try:
            return self._scripts[name](keys=keys, args=args)
        except redis.ResponseError as exc:
            if str(exc).startswith("STALE"):
                raise StaleLease(str(exc)) from None
            raise


def _s(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)
