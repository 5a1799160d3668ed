"""A reference autoscaler: starts and drains local node processes from the scheduler's
scaling advice (`/v1/admin/scaling`). A cloud autoscaler or KEDA reads the same signal.

One step at a time, at most one change per cooldown: start a node when more are
wanted than are live; drain (SIGTERM, the node finishes its job) one of ours that the
scheduler lists as idle and surplus. Never fewer than `min_nodes` of ours, never more
than `max_nodes`.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import requests

log = logging.getLogger("toonz.autoscale")


@dataclass(frozen=True)
class ScalePolicy:
    min_nodes: int = 0
    max_nodes: int = 4
    cooldown_s: float = 30.0
    interval_s: float = 2.0


def decide(advice: dict, ours: list[str], policy: ScalePolicy) -> tuple[str, str | None]:
    """('start', None), ('drain', node id) or ('hold', None), from one piece of advice."""
    if len(ours) < policy.min_nodes:
        return "start", None
    if advice["nodes_wanted"] > advice["nodes_live"] and len(ours) < policy.max_nodes:
        return "start", None
    if len(ours) > policy.min_nodes:
        for node in advice["drainable"]:
            if node in ours:
                return "drain", node
    return "hold", None


class Autoscaler:
    def __init__(self, scheduler_url: str, admin_key: str, node_env: dict[str, str],
                 work_dir: Path, policy: ScalePolicy) -> None:
        self.url = scheduler_url.rstrip("/") + "/v1/admin/scaling"
        self.headers = {"Authorization": f"Bearer {admin_key}"}
        self.node_env, self.work_dir, self.policy = node_env, work_dir, policy
        self.procs: dict[str, subprocess.Popen] = {}
        self._count = 0
        self._last_change = -float("inf")
        self._stop = threading.Event()

    def ours(self) -> list[str]:
        for node_id in [n for n, p in self.procs.items() if p.poll() is not None]:
            del self.procs[node_id]  # drained (or died): no longer ours
        return sorted(self.procs)

    def step(self) -> tuple[str, str | None]:
        advice = requests.get(self.url, headers=self.headers, timeout=10).json()
        action, node = decide(advice, self.ours(), self.policy)
        if action != "hold" and time.monotonic() - self._last_change < self.policy.cooldown_s:
            return "cooldown", None
        if action == "start":
            node = self._start()
        elif action == "drain":
            self.procs[node].send_signal(signal.SIGTERM)
        if action != "hold":
            self._last_change = time.monotonic()
            log.info("%s %s (wanted %d, live %d)", action, node, advice["nodes_wanted"], advice["nodes_live"])
        return action, node

    def _start(self) -> str:
        self._count += 1
        node_id = f"auto-{os.getpid()}-{self._count}"
        log_path = self.work_dir / f"{node_id}.log"
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.procs[node_id] = subprocess.Popen(
            [sys.executable, "-m", "farm.cli.main", "node"], start_new_session=True,
            env={**os.environ, **self.node_env, "TOONZ_NODE_ID": node_id,
                 "TOONZ_WORK_DIR": str(self.work_dir / node_id)},
            stdout=open(log_path, "ab"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        return node_id

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                self.step()
            except requests.RequestException as exc:
                log.warning("scaling advice unavailable: %s", exc)
            self._stop.wait(self.policy.interval_s)

    def stop(self, timeout_s: float = 60.0) -> None:
        """Stop deciding, then drain every node we started."""
        self._stop.set()
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs.values():
            try:
                p.wait(timeout_s)
            except subprocess.TimeoutExpired:
                p.kill()
