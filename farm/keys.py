"""The Redis key schema. Every key prefix of the farm is spelled here and nowhere else.

Lua scripts that must build keys for ids they discover (a job found in a queue)
receive the prefixes below as arguments.  Times stored in Redis are Unix seconds
(floats) unless a name says `_ms`.
"""

from __future__ import annotations

PREFIX = "toonz:"

ALL_JOBS = PREFIX + "jobs"            # zset  job id -> created ms, every tenant (console)
JOB_PREFIX = PREFIX + "job:"          # hash  toonz:job:{id} -> the job record (farm.jobs)
# A chunk of a long render is a job too, toonz:job:{id}.c{k} (kind "chunk", farm/lua/split.lua);
# its render's record lists it in `chunks`. Chunks are queued like jobs but never in a
# tenant's jobs, active set, usage or ledger.
BLOCKED_SUFFIX = ":blocked"           # set   toonz:job:{id}:blocked -> node ids that failed it
QUEUE_PREFIX = PREFIX + "queue:"      # zset  toonz:queue:{tier} -> job id by enqueue ms (depth, oldest, aging)
TENANT_QUEUE_PREFIX = PREFIX + "tq:"  # zset  toonz:tq:{tier}:{tenant} -> job id by priority score (farm.scheduling)
RING_PREFIX = PREFIX + "ring:"        # list  toonz:ring:{tier} -> tenants with queued jobs, round-robin order
CREDIT_SUFFIX = ":credit"             # hash  toonz:ring:{tier}:credit -> tenant -> picks left this turn
PAUSED = PREFIX + "paused"            # set   tiers an operator paused
STATS = PREFIX + "stats"              # hash  counters: done:{tier}:{state}, leases, lease_wait_le:{s}, ...
BACKLOG = PREFIX + "backlog"          # hash  frames:{tier} -> frames of queued jobs (float)
LEASES = PREFIX + "leases"            # zset  job id -> lease deadline ms
FENCE = PREFIX + "fence"              # int   the fence token counter; only grows
NODES = PREFIX + "nodes"              # zset  node id -> last seen ms
NODE_PREFIX = PREFIX + "node:"        # hash  toonz:node:{id} -> node facts (host, pid, state)
TENANT_PREFIX = PREFIX + "tenant:"    # hash  toonz:tenant:{id} -> name, tier, created_at
TENANT_NAMES = PREFIX + "tenants"     # hash  tenant name -> tenant id
JOBS_SUFFIX = ":jobs"                 # zset  toonz:tenant:{id}:jobs -> job id by created ms
ACTIVE_SUFFIX = ":active"             # set   toonz:tenant:{id}:active -> non-terminal job ids
LAST_MS_SUFFIX = ":last_ms"           # int   toonz:tenant:{id}:last_ms -> the enqueue ms of its latest job (submit.lua)
API_KEY_PREFIX = PREFIX + "apikey:"   # hash  toonz:apikey:{sha256 hex} -> tenant, role, created_at
USAGE_PREFIX = PREFIX + "usage:"      # hash  toonz:usage:{tenant}:{YYYY-MM} -> renders, seconds, cost_cents
AUDIT = PREFIX + "audit"              # list  admin actions, newest first, JSON each (scheduler/audit.py); capped
SESSION_PREFIX = PREFIX + "session:"  # str   toonz:session:{sha256 hex} -> console session (JSON), expiring
THROUGHPUT = PREFIX + "throughput"    # list  [ts, frames/s, frames] JSON samples, oldest first; capped
THROUGHPUT_SEEN = PREFIX + "throughput:seen"  # hash node id -> its frames counter at the last sample
# Fields of a node's hash (toonz:node:{id}) that the scheduler and the node both use:
NODE_DRAIN_FIELD = "drain"            # set (to the request time) while an operator drains the node
NODE_FRAMES_FIELD = "frames_rendered" # frames the node rendered since it first started; only grows
# API key records (API_KEY_PREFIX) also hold their public `id` and a `hint` (last 4 chars).
KEY_IDS = PREFIX + "keyids"           # hash  public key id -> tenant id (revoke by id)
TENANT_KEYS_SUFFIX = ":keys"          # hash  toonz:tenant:{id}:keys -> public key id -> sha256 digest
RATE_PREFIX = PREFIX + "rate:"        # hash  toonz:rate:{key|tenant}:{id} -> tokens, ms (farm/lua/ratelimit.lua)
IDEMPOTENCY_PREFIX = PREFIX + "idem:"  # str  toonz:idem:{tenant}:{sha256 of key} -> JSON (scheduler/idempotency.py)
LEDGER_PREFIX = PREFIX + "ledger:"    # stream toonz:ledger:{tenant} -> one entry per charged render (append-only)

EVENTS = PREFIX + "events"            # stream job, tenant, state, at: terminal events for webhooks (common.lua emit)
WEBHOOK_PREFIX = PREFIX + "webhook:"  # hash  toonz:webhook:{id} -> tenant, url, events, description, secret, created_at
WEBHOOKS_SUFFIX = ":webhooks"         # zset  toonz:tenant:{id}:webhooks -> webhook id by created ms
DELIVERIES_SUFFIX = ":deliveries"     # list  toonz:webhook:{id}:deliveries -> attempt records (JSON), newest first
HOOK_SECRET_SUFFIX = ":hook_secret"   # str   toonz:tenant:{id}:hook_secret -> signs deliveries to a render's webhook_url
WEBHOOK_DUE = PREFIX + "webhook_due"  # zset  delivery (JSON: event, target, attempt) -> due time


def job(job_id: str) -> str:
    return JOB_PREFIX + job_id


def blocked(job_id: str) -> str:
    return JOB_PREFIX + job_id + BLOCKED_SUFFIX


def queue(tier: str) -> str:
    return QUEUE_PREFIX + tier


def tenant_queue(tier: str, tenant_id: str) -> str:
    return f"{TENANT_QUEUE_PREFIX}{tier}:{tenant_id}"


def ring(tier: str) -> str:
    return RING_PREFIX + tier


def node(node_id: str) -> str:
    return NODE_PREFIX + node_id


def tenant(tenant_id: str) -> str:
    return TENANT_PREFIX + tenant_id


def tenant_jobs(tenant_id: str) -> str:
    return TENANT_PREFIX + tenant_id + JOBS_SUFFIX


def tenant_active(tenant_id: str) -> str:
    return TENANT_PREFIX + tenant_id + ACTIVE_SUFFIX


def api_key(digest: str) -> str:
    return API_KEY_PREFIX + digest


def usage(tenant_id: str, month: str) -> str:
    return f"{USAGE_PREFIX}{tenant_id}:{month}"


def session(digest: str) -> str:
    return SESSION_PREFIX + digest


def tenant_keys(tenant_id: str) -> str:
    return TENANT_PREFIX + tenant_id + TENANT_KEYS_SUFFIX


def rate_bucket(scope: str, ident: str) -> str:
    return f"{RATE_PREFIX}{scope}:{ident}"


def idempotency(tenant_id: str, key_digest: str) -> str:
    return f"{IDEMPOTENCY_PREFIX}{tenant_id}:{key_digest}"


def ledger(tenant_id: str) -> str:
    return LEDGER_PREFIX + tenant_id


def webhook(webhook_id: str) -> str:
    return WEBHOOK_PREFIX + webhook_id


def tenant_webhooks(tenant_id: str) -> str:
    return TENANT_PREFIX + tenant_id + WEBHOOKS_SUFFIX


def deliveries(webhook_id: str) -> str:
    return WEBHOOK_PREFIX + webhook_id + DELIVERIES_SUFFIX


def hook_secret(tenant_id: str) -> str:
    return TENANT_PREFIX + tenant_id + HOOK_SECRET_SUFFIX


def lua_prelude_values() -> dict[str, str]:
    """The prefixes the Lua prelude (farm/lua/common.lua) is rendered with."""
    return {name: value for name, value in globals().items()
            if name.isupper() and isinstance(value, str) and name != "PREFIX"}
