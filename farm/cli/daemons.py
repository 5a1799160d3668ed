"""`toonz scheduler` and `toonz node`: the two daemons, for one machine or many."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from farm.config import NodeConfig, SchedulerConfig

ENV_NOTE = "Flags override the TOONZ_* environment variables named in each flag's help."


def add_parsers(sub) -> None:
    s = sub.add_parser("scheduler", help="run the scheduler (HTTP API, reaper)",
                       description="Run the scheduler: the REST API, node endpoints and the lease "
                       "reaper. " + ENV_NOTE)
    s.add_argument("--host", help="interface to listen on (TOONZ_HOST, default 127.0.0.1)")
    s.add_argument("--port", type=int, help="port (TOONZ_PORT, default 8000)")
    s.add_argument("--redis-url", help="Redis URL (TOONZ_REDIS_URL)")
    s.add_argument("--data-dir", type=Path, help="artifact store and temp files (TOONZ_DATA_DIR)")
    s.set_defaults(func=run_scheduler)

    n = sub.add_parser("node", help="run a render node",
                       description="Run a render node: lease jobs from Redis, render them on the GPU "
                       "(or llvmpipe), upload results through the scheduler. " + ENV_NOTE)
    n.add_argument("--redis-url", help="Redis URL (TOONZ_REDIS_URL)")
    n.add_argument("--scheduler-url", help="scheduler base URL (TOONZ_SCHEDULER_URL)")
    n.add_argument("--node-id", help="this node's name (TOONZ_NODE_ID, default host-pid)")
    n.add_argument("--work-dir", type=Path, help="scratch folder (TOONZ_WORK_DIR)")
    n.set_defaults(func=run_node)


def run_scheduler(args: argparse.Namespace) -> int:
    from scheduler.app import run

    cfg = SchedulerConfig.from_env(os.environ, host=args.host, port=args.port,
                                   redis_url=args.redis_url, data_dir=args.data_dir)
    run(cfg)
    return 0


def run_node(args: argparse.Namespace) -> int:
    from node.daemon import NodeDaemon

    logging.basicConfig(level=logging.INFO, format="%(asctime)s node %(levelname)s %(message)s")
    cfg = NodeConfig.from_env(os.environ, redis_url=args.redis_url,
                              scheduler_url=args.scheduler_url, node_id=args.node_id,
                              work_dir=args.work_dir)
    NodeDaemon(cfg).run()
    return 0
