"""`toonz admin`: operator chores against a farm's Redis."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from farm.presets import TIER_ORDER


def add_parser(sub) -> None:
    a = sub.add_parser("admin", help="operator commands (API keys)",
                       description="Operator commands that talk to the farm's Redis directly.")
    asub = a.add_subparsers(dest="admin_command", metavar="ACTION", required=True)
    ck = asub.add_parser("create-key", help="create a tenant's API key (printed as the last word)",
                         description="Create an API key for TENANT (created if new, its tier set). "
                         "The key is shown once; only its hash is stored.",
                         epilog="example: toonz admin create-key --tenant acme --tier pro --data-dir .toonz")
    ck.add_argument("--tenant", required=True, help="tenant name")
    ck.add_argument("--tier", required=True, choices=[t.value for t in TIER_ORDER])
    ck.add_argument("--role", default="api", choices=["api", "admin"])
    where = ck.add_mutually_exclusive_group()
    where.add_argument("--data-dir", type=Path, help="a `toonz up` data folder (reads farm.json)")
    where.add_argument("--redis-url", help="Redis URL (TOONZ_REDIS_URL)")
    ck.set_defaults(func=run_create_key)
    lk = asub.add_parser("list-keys", help="list a tenant's API keys (ids and hints, never keys)",
                         description="List TENANT's API keys: id, role, creation time and the "
                         "key's last 4 characters.",
                         epilog="example: toonz admin list-keys acme --data-dir .toonz")
    lk.add_argument("tenant", metavar="TENANT", help="tenant name or id")
    _where(lk)
    lk.set_defaults(func=run_list_keys)
    rk = asub.add_parser("revoke-key", help="revoke an API key by its id",
                         description="Revoke the key KEY_ID (from list-keys): it is refused "
                         "from the next request on.",
                         epilog="example: toonz admin revoke-key key_1a2b3c4d --data-dir .toonz")
    rk.add_argument("key_id", metavar="KEY_ID")
    _where(rk)
    rk.set_defaults(func=run_revoke_key)


def _where(parser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--data-dir", type=Path, help="a `toonz up` data folder (reads farm.json)")
    where.add_argument("--redis-url", help="Redis URL (TOONZ_REDIS_URL)")


def redis_url_for(data_dir: Path | None, redis_url: str | None) -> str:
    import os
    if data_dir is not None:
        return json.loads((data_dir / "farm.json").read_text())["redis_url"]
    return redis_url or os.environ.get("TOONZ_REDIS_URL") or "redis://127.0.0.1:6379/0"


def run_create_key(args: argparse.Namespace) -> int:
    import redis

    from farm.errors import ServiceUnavailable
    from farm.tenants import create_key

    url = redis_url_for(args.data_dir, args.redis_url)
    client = redis.Redis.from_url(url)
    try:
        key = create_key(client, args.tenant, args.tier, args.role)
    except redis.ConnectionError:
        raise ServiceUnavailable(f"cannot reach Redis at {url}", code="redis_unreachable") from None
    finally:
        client.close()
    print(f"{args.role} key for tenant {args.tenant} ({args.tier}): {key}")
    return 0


def _with_redis(args: argparse.Namespace, op):
    """Run `op(client)` (a coroutine function) against the farm's Redis (asyncio client)."""
    import asyncio

    import redis
    import redis.asyncio as aioredis

    from farm.errors import ServiceUnavailable

    url = redis_url_for(args.data_dir, args.redis_url)

    async def go():
        client = aioredis.from_url(url)
        try:
            return await op(client)
        finally:
            await client.aclose()

    try:
        return asyncio.run(go())
    except redis.ConnectionError:
        raise ServiceUnavailable(f"cannot reach Redis at {url}", code="redis_unreachable") from None


def run_list_keys(args: argparse.Namespace) -> int:
    import time

    from farm import tenants

    async def op(r):
        return await tenants.list_keys(r, await tenants.resolve_tenant(r, args.tenant))

    for info in _with_redis(args, op):
        made = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(info.created_at))
        print(f"{info.id}  {info.role:5}  {made} UTC  ...{info.hint}")
    return 0


def run_revoke_key(args: argparse.Namespace) -> int:
    from farm import tenants

    info = _with_redis(args, lambda r: tenants.revoke_key(r, args.key_id))
    print(f"revoked {info.id} ({info.role} key of tenant {info.tenant_id}, ...{info.hint})")
    return 0
