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
