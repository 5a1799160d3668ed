"""Tenants and API keys. Keys are random, shown once, and stored only as SHA-256 digests.

A key record (`keys.api_key(digest)`) holds its tenant, role, creation time, a public
id (`key_` + 8 hex) and a hint (its last 4 characters), so that operators can list
and revoke keys without anyone storing the key itself. `create_key` is synchronous
(the CLI, `toonz up`, tests); the admin API uses the async functions below.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from dataclasses import dataclass

from farm import keys
from farm.errors import Conflict, InvalidInput, NotFound
from farm.presets import Tier, tier as parse_tier

ROLES = ("api", "admin")
HINT_CHARS = 4
_TENANT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_TENANT_ID = re.compile(r"^t_[0-9a-f]{12}$")
_KEY_ID = re.compile(r"^key_[0-9a-f]{8}$")


@dataclass(frozen=True)
class Principal:
    """Who a request is from: a tenant's API key, or an admin key."""

    tenant_id: str
    tenant_name: str
    tier: Tier
    role: str
    key_id: str = ""  # the public key id; keys made before ids existed get "d_" + digest prefix


@dataclass(frozen=True)
class KeyInfo:
    """What may be shown of a key: never the key, only its id and last characters."""

    id: str
    tenant_id: str
    role: str
    created_at: float
    hint: str

    def public(self) -> dict:
        return {"key_id": self.id, "tenant_id": self.tenant_id, "role": self.role,
                "created_at": self.created_at, "hint": "..." + self.hint}


def digest(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


def new_key(role: str) -> str:
    return ("tz_admin_" if role == "admin" else "tz_live_") + secrets.token_urlsafe(24)


def new_key_id() -> str:
    return "key_" + secrets.token_hex(4)


def _check_name(tenant_name: str) -> None:
    if not isinstance(tenant_name, str) or not _TENANT_NAME.match(tenant_name):
        raise InvalidInput(f"tenant name {str(tenant_name)[:80]!r} must be 1-64 letters, digits, "
                           "'_', '.' or '-'", code="invalid_tenant")


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}, got {str(role)[:40]!r}",
                           code="invalid_role")


def _queue_key(pipe, tenant_id: str, key_id: str, role: str, now: str) -> str:
    """Queue the writes of a new key (id already claimed) on a pipeline; returns the key."""
    key = new_key(role)
    d = digest(key)
    pipe.hset(keys.api_key(d), mapping={"tenant": tenant_id, "role": role, "created_at": now,
                                        "id": key_id, "hint": key[-HINT_CHARS:]})
    pipe.hset(keys.tenant_keys(tenant_id), key_id, d)
    return key


def create_key(r, tenant_name: str, tier_name: str, role: str = "api") -> str:
    """Create (or update the tier of) a tenant and a new key for it; returns the key.

    `r` is a synchronous redis-py client; the CLI and the tests call this.
    """
    _check_name(tenant_name)
    _check_role(role)
    tier = parse_tier(tier_name)
    tenant_id = r.hget(keys.TENANT_NAMES, tenant_name)
    tenant_id = tenant_id.decode() if tenant_id else "t_" + secrets.token_hex(6)
    now = f"{time.time():.3f}"
    key_id = new_key_id()
    while not r.hsetnx(keys.KEY_IDS, key_id, tenant_id):  # ids are short: claim one that is free
        key_id = new_key_id()
    pipe = r.pipeline(transaction=True)
    pipe.hsetnx(keys.TENANT_NAMES, tenant_name, tenant_id)
    pipe.hset(keys.tenant(tenant_id), mapping={"name": tenant_name, "tier": tier.value})
    pipe.hsetnx(keys.tenant(tenant_id), "created_at", now)
    key = _queue_key(pipe, tenant_id, key_id, role, now)
    pipe.execute()
    return key


async def authenticate(r, api_key: str) -> Principal | None:
    """Look a key up (async redis client); None when it is unknown or revoked."""
    if not api_key or len(api_key) > 200:
        return None
    d = digest(api_key)
    rec = await r.hgetall(keys.api_key(d))
    if not rec:
        return None
    tenant_id = rec[b"tenant"].decode()
    t = await r.hgetall(keys.tenant(tenant_id))
    if not t:
        return None
    key_id = rec[b"id"].decode() if b"id" in rec else "d_" + d[:16]
    return Principal(tenant_id=tenant_id, tenant_name=t[b"name"].decode(),
                     tier=Tier(t[b"tier"].decode()), role=rec[b"role"].decode(), key_id=key_id)


# --- the admin API's operations (async redis client) ---------------------------------


async def create_tenant(r, name: str, tier_name: str) -> tuple[dict, str, KeyInfo]:
    """A new tenant and its first API key: (tenant, the key, its info). 409 if the name exists."""
    _check_name(name)
    tier = parse_tier(tier_name)
    tenant_id = "t_" + secrets.token_hex(6)
    # The name is the tenant's claim: whoever sets it first creates the tenant.
    if not await r.hsetnx(keys.TENANT_NAMES, name, tenant_id):
        raise Conflict(f"a tenant named {name!r} exists", code="tenant_exists")
    now = f"{time.time():.3f}"
    await r.hset(keys.tenant(tenant_id), mapping={"name": name, "tier": tier.value, "created_at": now})
    key, info = await add_key(r, tenant_id)
    return await get_tenant(r, tenant_id), key, info


async def get_tenant(r, tenant_id: str) -> dict:
    if not isinstance(tenant_id, str) or not _TENANT_ID.match(tenant_id):
        raise NotFound(f"no tenant {str(tenant_id)[:40]!r}", code="tenant_not_found")
    t = await r.hgetall(keys.tenant(tenant_id))
    if not t:
        raise NotFound(f"no tenant {tenant_id!r}", code="tenant_not_found")
    return {"tenant_id": tenant_id, "name": t[b"name"].decode(), "tier": t[b"tier"].decode(),
            "created_at": float(t.get(b"created_at", b"0"))}


async def resolve_tenant(r, name_or_id: str) -> str:
    """A tenant id from its id or its name (the CLI takes either)."""
    if _TENANT_ID.match(name_or_id) and await r.exists(keys.tenant(name_or_id)):
        return name_or_id
    tenant_id = await r.hget(keys.TENANT_NAMES, name_or_id)
    if tenant_id is None:
        raise NotFound(f"no tenant {name_or_id[:80]!r}", code="tenant_not_found")
    return tenant_id.decode()


async def list_tenants(r, month: str) -> list[dict]:
    """Every tenant, by name, with its renders charged in `month` (YYYY-MM)."""
    names = await r.hgetall(keys.TENANT_NAMES)
    out = []
    for _, tenant_id in sorted(names.items()):
        try:
            t = await get_tenant(r, tenant_id.decode())
        except NotFound:
            continue  # a name claimed by a creation that has not finished writing
        used = await r.hget(keys.usage(t["tenant_id"], month), "renders")
        out.append({**t, "renders_this_month": int(used or 0)})
    return out


async def set_tier(r, tenant_id: str, tier_name: str) -> dict:
    """Change a tenant's tier; its queued jobs keep the tier they were admitted with."""
    tier = parse_tier(tier_name)
    await get_tenant(r, tenant_id)
    await r.hset(keys.tenant(tenant_id), "tier", tier.value)
    return await get_tenant(r, tenant_id)


async def add_key(r, tenant_id: str, role: str = "api") -> tuple[str, KeyInfo]:
    """A new key for an existing tenant: (the key, shown once; its info)."""
    _check_role(role)
    await get_tenant(r, tenant_id)
    key_id = new_key_id()
    while not await r.hsetnx(keys.KEY_IDS, key_id, tenant_id):
        key_id = new_key_id()
    now = f"{time.time():.3f}"
    pipe = r.pipeline(transaction=True)
    key = _queue_key(pipe, tenant_id, key_id, role, now)
    await pipe.execute()
    return key, KeyInfo(key_id, tenant_id, role, float(now), key[-HINT_CHARS:])


async def list_keys(r, tenant_id: str) -> list[KeyInfo]:
    """A tenant's keys, oldest first (ids and hints only)."""
    await get_tenant(r, tenant_id)
    out = []
    for key_id, d in (await r.hgetall(keys.tenant_keys(tenant_id))).items():
        rec = await r.hgetall(keys.api_key(d.decode()))
        if rec:
            out.append(KeyInfo(key_id.decode(), tenant_id, rec[b"role"].decode(),
                               float(rec[b"created_at"]), rec.get(b"hint", b"").decode()))
    return sorted(out, key=lambda k: (k.created_at, k.id))


async def revoke_key(r, key_id: str) -> KeyInfo:
    """Delete a key's record: the key is refused from the next request on. 404 if unknown."""
    unknown = NotFound(f"no API key {str(key_id)[:40]!r}", code="key_not_found")
    if not isinstance(key_id, str) or not _KEY_ID.match(key_id):
        raise unknown
    tenant_id = await r.hget(keys.KEY_IDS, key_id)
    if tenant_id is None:
        raise unknown
    tenant_id = tenant_id.decode()
    d = await r.hget(keys.tenant_keys(tenant_id), key_id)
    rec = await r.hgetall(keys.api_key(d.decode())) if d else {}
    pipe = r.pipeline(transaction=True)
    if d:
        pipe.delete(keys.api_key(d.decode()))
    pipe.hdel(keys.tenant_keys(tenant_id), key_id)
    pipe.hdel(keys.KEY_IDS, key_id)
    pipe.delete(keys.rate_bucket("key", key_id))
    await pipe.execute()
    if not rec:
        raise unknown  # an id whose key was never written (a failed creation): now forgotten
    return KeyInfo(key_id, tenant_id, rec[b"role"].decode(), float(rec[b"created_at"]),
                   rec.get(b"hint", b"").decode())
