"""Test helpers: put jobs in the queue the way the scheduler does (its Lua script)."""

from __future__ import annotations

import time

from farm import lua
from farm.jobs import new_job_id
from farm.lease import month_of
from farm.scheduling import DEFAULT_PRIORITY, queue_score


def enqueue(r, tier: str = "free", tenant: str = "t_test", job_id: str | None = None,
            quota: int = -1, price_cents: int = 50, duration_s: float = 3.0,
            created_ms: int | None = None, priority: int = DEFAULT_PRIORITY,
            frames: int = 90) -> str:
    job_id = job_id or new_job_id()
    now = created_ms or int(time.time() * 1000)
    record = {"id": job_id, "tenant": tenant, "tier": tier, "quality": "preview", "format": "mp4",
              "template": "explainer", "character": "toonz", "transcript": "", "priority": priority,
              "frames": frames,
              "duration_s": duration_s, "price_cents": price_cents, "created_at": now / 1000}
    lua.register(r)["submit"](args=[job_id, tenant, tier, quota, month_of(), now,
                                    queue_score(priority, now),
                                    *[x for kv in record.items() for x in kv]])
    return job_id
