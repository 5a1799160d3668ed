"""The whole farm on one machine: redis-server, the scheduler and N node processes.

`toonz up` runs it in the foreground; the tests and the demo start and stop it.
Every part is a real child process, so killing one is a real failure.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from farm.errors import ServiceUnavailable
from farm.redisproc import RedisProcess, free_port

DEV_TENANT, DEV_TIER = "dev", "pro"


class LocalFarm:
    def __init__(self, data_dir: Path, *, port: int = 0, nodes: int = 1,
                 env: dict[str, str] | None = None) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.port = port or free_port()
        self.n_nodes = nodes
        self.env = {**os.environ, **(env or {})}
        self.redis = RedisProcess(self.data_dir / "redis")
        self.scheduler: subprocess.Popen | None = None
        self.nodes: list[subprocess.Popen] = []
        self.api_key = self.admin_key = ""

    @property
    def scheduler_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def logs(self) -> Path:
        return self.data_dir / "logs"

    def start(self, timeout_s: float = 30.0) -> "LocalFarm":
        self.logs.mkdir(parents=True, exist_ok=True)
        self.redis.start()
        self._ensure_keys()
        (self.data_dir / "farm.json").write_text(json.dumps(
            {"redis_url": self.redis.url, "scheduler_url": self.scheduler_url}, indent=2))
        env = {**self.env, "TOONZ_REDIS_URL": self.redis.url, "TOONZ_DATA_DIR": str(self.data_dir),
               "TOONZ_SCHEDULER_URL": self.scheduler_url, "TOONZ_PORT": str(self.port)}
        self.scheduler = self._spawn("scheduler", ["scheduler"], env)
        self._wait_healthy(timeout_s)
        self._env = env
        for i in range(self.n_nodes):
            self.add_node(env, i + 1)
        return self

    def add_node(self, env: dict[str, str] | None = None, index: int | None = None) -> subprocess.Popen:
        index = index or len(self.nodes) + 1
        env = {**(env or self._child_env()), "TOONZ_NODE_ID": f"local-node-{index}",
               "TOONZ_WORK_DIR": str(self.data_dir / f"node-{index}")}
        proc = self._spawn(f"node-{index}", ["node"], env)
        self.nodes.append(proc)
        return proc

    def _child_env(self) -> dict[str, str]:
        return {**self.env, "TOONZ_REDIS_URL": self.redis.url, "TOONZ_DATA_DIR": str(self.data_dir),
                "TOONZ_SCHEDULER_URL": self.scheduler_url, "TOONZ_PORT": str(self.port)}

    def _spawn(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen:
        log = open(self.logs / f"{name}.log", "ab")
        return subprocess.Popen([sys.executable, "-m", "farm.cli.main", *args], env=env,
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)  # Ctrl-C reaches `up` alone; it stops us in order

    def _ensure_keys(self) -> None:
        import redis

        from farm import keys
        from farm.tenants import create_key, digest

        client = redis.Redis.from_url(self.redis.url)
        try:
            for name, role, tenant, tier in (("api-key", "api", DEV_TENANT, DEV_TIER),
                                             ("admin-key", "admin", "operator", "enterprise")):
                path = self.data_dir / name
                key = path.read_text().strip() if path.exists() else ""
                if not key or not client.exists(keys.api_key(digest(key))):
                    key = create_key(client, tenant, tier, role)
                    path.write_text(key + "\n")
                    path.chmod(0o600)
                setattr(self, "api_key" if role == "api" else "admin_key", key)
        finally:
            client.close()

    def _wait_healthy(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.scheduler.poll() is not None:
                raise ServiceUnavailable(f"the scheduler exited with {self.scheduler.returncode}; "
                                         f"see {self.logs / 'scheduler.log'}", code="scheduler_failed")
            try:
                if requests.get(self.scheduler_url + "/health", timeout=1).ok:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise ServiceUnavailable(f"the scheduler did not become healthy within {timeout_s:.0f} s",
                                 code="scheduler_failed")

    def node_process(self, node_id: str) -> subprocess.Popen:
        """The process of node `local-node-N`."""
        return self.nodes[int(node_id.rsplit("-", 1)[1]) - 1]

    def restart_scheduler(self, timeout_s: float = 30.0) -> None:
        """Kill the scheduler outright and start a new one on the same port."""
        self.scheduler.kill()
        self.scheduler.wait()
        self.scheduler = self._spawn("scheduler", ["scheduler"], self._env)
        self._wait_healthy(timeout_s)

    def restart_redis(self) -> None:
        """Stop redis-server (it writes its append-only file) and start it again."""
        self.redis.stop()
        self.redis.start()

    def dead_children(self) -> list[str]:
        procs = [("scheduler", self.scheduler), *((f"node-{i + 1}", p) for i, p in enumerate(self.nodes))]
        dead = [f"{n} (exit {p.returncode})" for n, p in procs if p is not None and p.poll() is not None]
        if self.redis.proc is not None and self.redis.proc.poll() is not None:
            dead.append(f"redis-server (exit {self.redis.proc.returncode})")
        return dead

    def stop(self, timeout_s: float = 20.0) -> None:
        # Nodes first (they drain), then the scheduler they upload to, then Redis.
        for p in self.nodes:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        _wait_all(self.nodes, timeout_s)
        if self.scheduler is not None and self.scheduler.poll() is None:
            self.scheduler.send_signal(signal.SIGINT)
            _wait_all([self.scheduler], 10)
        self.redis.stop()

    def __enter__(self) -> "LocalFarm":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _wait_all(procs: list[subprocess.Popen], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    for p in procs:
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
