"""`toonz autoscale`: the reference autoscaler for local node processes."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
from pathlib import Path


def add_parser(sub) -> None:
    a = sub.add_parser(
        "autoscale", help="start and drain local nodes from the scheduler's scaling advice",
        description="Poll /v1/admin/scaling; start a node process when more are wanted than are "
                    "live, drain (SIGTERM) one of ours when the scheduler lists it as idle and "
                    "surplus; one change per cooldown.",
        epilog="example: toonz up --nodes 0 & toonz autoscale --data-dir .toonz --max 4\n"
               "A cloud autoscaler or KEDA can read the same JSON (nodes_wanted, drainable) or "
               "the Prometheus gauges toonz_backlog_seconds{tier}.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    a.add_argument("--data-dir", type=Path, help="a `toonz up` data folder (farm.json, admin-key)")
    a.add_argument("--scheduler-url", help="scheduler URL (TOONZ_SCHEDULER_URL)")
    a.add_argument("--redis-url", help="Redis URL for the nodes (TOONZ_REDIS_URL)")
    a.add_argument("--admin-key", help="admin API key (TOONZ_ADMIN_KEY)")
    a.add_argument("--min", type=int, default=0, help="fewest nodes of ours (default 0)")
    a.add_argument("--max", type=int, default=4, help="most nodes of ours (default 4)")
    a.add_argument("--cooldown", type=float, default=30.0, help="seconds between changes (default 30)")
    a.add_argument("--interval", type=float, default=2.0, help="seconds between polls (default 2)")
    a.set_defaults(func=run_autoscale)


def run_autoscale(args: argparse.Namespace) -> int:
    from farm.autoscale import Autoscaler, ScalePolicy
    from farm.errors import InvalidInput

    if not 0 <= args.min <= args.max or args.cooldown < 0 or args.interval <= 0:
        raise InvalidInput("need 0 <= --min <= --max, --cooldown >= 0 and --interval > 0",
                           code="invalid_policy")
    url, redis_url, key = args.scheduler_url, args.redis_url, args.admin_key
    if args.data_dir is not None:
        info = json.loads((args.data_dir / "farm.json").read_text())
        url, redis_url = url or info["scheduler_url"], redis_url or info["redis_url"]
        key = key or (args.data_dir / "admin-key").read_text().strip()
    url = url or os.environ.get("TOONZ_SCHEDULER_URL", "http://127.0.0.1:8000")
    redis_url = redis_url or os.environ.get("TOONZ_REDIS_URL", "redis://127.0.0.1:6379/0")
    key = key or os.environ.get("TOONZ_ADMIN_KEY", "")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s autoscale %(message)s")
    work = (args.data_dir or Path(".toonz")) / "autoscale"
    scaler = Autoscaler(url, key, {"TOONZ_REDIS_URL": redis_url, "TOONZ_SCHEDULER_URL": url}, work,
                        ScalePolicy(args.min, args.max, args.cooldown, args.interval))
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: scaler._stop.set())
    try:
        scaler.run()
    finally:
        scaler.stop()
    return 0
