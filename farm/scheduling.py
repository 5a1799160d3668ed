"""Scheduling policy: aging bounds per tier and job priority inside a tenant.

Strict tiers, with aging: a job that has waited `AGING_BOUND_S[tier]` counts as one
tier up, two bounds as two tiers up, and so on, so nothing starves. Inside a tier,
tenants share by weighted round robin (a tenant's `weight`, default 1, is how many
jobs it gets per turn); inside a tenant, jobs run by priority, then FIFO.
"""

from __future__ import annotations

from farm.errors import InvalidInput
from farm.presets import TIER_ORDER, Tier

AGING_BOUND_S: dict[Tier, float] = {
    Tier.ENTERPRISE: 0.0,  # nothing above it
    Tier.PRO: 60.0,
    Tier.STARTER: 120.0,
    Tier.FREE: 300.0,
}

MIN_PRIORITY, DEFAULT_PRIORITY, MAX_PRIORITY = 0, 50, 100
_PRIORITY_STEP = 10 ** 13  # > any enqueue time in ms, < 2**53 / MAX_PRIORITY


def priority(value: object) -> int:
    try:
        p = int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InvalidInput(f"priority must be an integer, got {value!r}", code="invalid_priority") from None
    if not MIN_PRIORITY <= p <= MAX_PRIORITY or str(p) != str(value).strip():
        raise InvalidInput(f"priority must be an integer from {MIN_PRIORITY} to {MAX_PRIORITY}, "
                           f"got {value!r}", code="invalid_priority")
    return p


def queue_score(prio: int, enqueued_ms: int) -> int:
    """Order inside a tenant's queue: higher priority first, then first come."""
    return (MAX_PRIORITY - prio) * _PRIORITY_STEP + enqueued_ms


def lease_args() -> tuple[str, str]:
    """Tiers strongest first and their aging bounds in ms, as the lease script takes them."""
    return (",".join(t.value for t in TIER_ORDER),
            ",".join(str(int(AGING_BOUND_S[t] * 1000)) for t in TIER_ORDER))


# What a render needs of a node, by quality. Peak RSS of `toonz render` measured on the
# 2-core VM (llvmpipe, 2026-11-26): 229, 312, 448 and 536 MB; with about 1.7x headroom.
# A node whose free memory is below it skips the job.
MEMORY_NEEDED_MB: dict[str, int] = {"preview": 400, "standard": 550, "hd": 750, "ultra": 950}


def memory_needed_mb(quality: str) -> int:
    return MEMORY_NEEDED_MB.get(quality, max(MEMORY_NEEDED_MB.values()))
