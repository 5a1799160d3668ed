"""Tenants and API keys. Keys are random, shown once, and stored only as SHA-256 digests."""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from dataclasses import dataclass

from farm import keys
from farm.errors import InvalidInput
from farm.presets import Tier, tier as parse_tier

ROLES = ("api", "admin")
_TENANT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class Principal:
    """Who a request is from: a tenant's API key, or an admin key."""

    tenant_id: str
    tenant_name: str
    tier: Tier
    role: str


def digest(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


def new_key(role: str) -> str:
    return ("tz_admin_" if role == "admin" else "tz_live_") + secrets.token_urlsafe(24)


def create_key(r, tenant_name: str, tier_name: str, role: str = "api") -> str:
    """Create (or update the tier of) a tenant and a new key for it; returns the key.

    `r` is a synchronous redis-py client; the CLI and the tests call this.
    """
    if not _TENANT_NAME.match(tenant_name):
        raise InvalidInput(f"tenant name {tenant_name!r} must be 1-64 letters, digits, '_', '.' "
                           "or '-'", code="invalid_tenant")
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}, got {role!r}", code="invalid_role")
    tier = parse_tier(tier_name)
    tenant_id = r.hget(keys.TENANT_NAMES, tenant_name)
    tenant_id = tenant_id.decode() if tenant_id else "t_" + secrets.token_hex(6)
    now = f"{time.time():.3f}"
    key = new_key(role)
    pipe = r.pipeline(transaction=True)
    pipe.hsetnx(keys.TENANT_NAMES, tenant_name, tenant_id)
    pipe.hset(keys.tenant(tenant_id), mapping={"name": tenant_name, "tier": tier.value})
    pipe.hsetnx(keys.tenant(tenant_id), "created_at", now)
    pipe.hset(keys.api_key(digest(key)), mapping={"tenant": tenant_id, "role": role, "created_at": now})
    pipe.execute()
    return key


async def authenticate(r, api_key: str) -> Principal | None:
    """Look a key up (async redis client); None when it is unknown."""
    if not api_key or len(api_key) > 200:
        return None
    rec = await r.hgetall(keys.api_key(digest(api_key)))
    if not rec:
        return None
    tenant_id = rec[b"tenant"].decode()
    t = await r.hgetall(keys.tenant(tenant_id))
    if not t:
        return None
    return Principal(tenant_id=tenant_id, tenant_name=t[b"name"].decode(),
                     tier=Tier(t[b"tier"].decode()), role=rec[b"role"].decode())
