"""`toonz up`: the whole farm on this machine, in the foreground."""

from __future__ import annotations

import argparse
import signal
import time
from pathlib import Path


def add_parser(sub) -> None:
    u = sub.add_parser(
        "up", help="run the whole farm on this machine",
        description="Start redis-server (data under DATA_DIR/redis), the scheduler and N node "
                    "processes; print the console URL and a development API key; stop all of them "
                    "on Ctrl-C.",
        epilog="The development key is written to DATA_DIR/api-key and an admin key to "
               "DATA_DIR/admin-key, so scripts can use them:\n"
               "  toonz submit speech.wav --data-dir .toonz -o out.mp4",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    u.add_argument("--port", type=int, default=8000, help="scheduler port (default 8000; 0 picks a free one)")
    u.add_argument("--data-dir", type=Path, default=Path(".toonz"), help="where the farm keeps its data")
    u.add_argument("--nodes", type=int, default=1, help="node processes to run (default 1)")
    u.set_defaults(func=run_up)


def run_up(args: argparse.Namespace) -> int:
    from farm.errors import InvalidInput
    from farm.localfarm import LocalFarm

    if args.nodes < 0 or args.nodes > 64:
        raise InvalidInput(f"--nodes must be between 0 and 64, got {args.nodes}", code="invalid_nodes")
    farm = LocalFarm(args.data_dir, port=args.port, nodes=args.nodes)
    stop = []
    # Handled explicitly: a shell that starts `up` in the background ignores SIGINT,
    # and Python would then never raise KeyboardInterrupt.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.append(1))
    try:
        farm.start()
        print(f"Console: {farm.scheduler_url}/console")
        print(f"API: {farm.scheduler_url}/v1  (Redis: {farm.redis.url})")
        print(f"API key: {farm.api_key}")
        print(f"Keys written to {farm.data_dir / 'api-key'} and {farm.data_dir / 'admin-key'}; "
              f"logs in {farm.logs}", flush=True)
        while not stop:
            dead = farm.dead_children()
            if dead:
                print(f"toonz up: stopping: {', '.join(dead)} died; see {farm.logs}", flush=True)
                return 1
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        print("toonz up: stopping the farm…", flush=True)
        farm.stop()
    return 0
