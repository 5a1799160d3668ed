"""The heartbeat thread: renews one lease, carries progress, notices cancel and loss.
And the node-facts thread: the node's CPU, memory and GPU use, for the console.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import threading
import time
from typing import Callable

import psutil
import redis

from farm.errors import StaleLease
from farm.jobs import JobState
from farm.lease import Lease, LeaseClient

log = logging.getLogger("toonz.node")
PROGRESS_INTERVAL_S = 1.0  # how often fresh progress reaches Redis (and so the API)
FACTS_INTERVAL_S = 5.0  # how often the node's CPU/memory/GPU use reaches its hash (the console)
# nvidia-smi takes a good fraction of a second to start: its answer is reused this long.
GPU_QUERY_INTERVAL_S = 30.0
GPU_QUERY_TIMEOUT_S = 5.0
GPU_QUERY = ("nvidia-smi", "--query-gpu=name,memory.used,memory.total", "--format=csv,noheader,nounits")


class Heartbeat:
    """Renews one lease every third of its TTL; pushes new progress every second."""

    def __init__(self, client: LeaseClient, lease: Lease,
                 on_beat: Callable[[], None] | None = None) -> None:
        self.client, self.lease = client, lease
        self.on_beat = on_beat  # the daemon looks for an operator's drain flag here
        self.progress: float | None = None
        self.lost: str = ""  # why the job must stop ('' while it may go on)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{lease.job_id}", daemon=True)

    def start(self) -> None:
        self.beat()
        self._thread.start()

    def beat(self) -> None:
        try:
            state = self.client.heartbeat(self.lease, self.progress)
            if state == JobState.CANCEL_REQUESTED.value:
                self.lost = "canceled"
        except StaleLease as exc:
            self.lost = f"lease lost: {exc}"
        except redis.RedisError as exc:  # transient; the lease survives a few missed beats
            log.warning("heartbeat for %s failed: %s", self.lease.job_id, exc)
            return
        if self.on_beat is not None:
            try:
                self.on_beat()
            except redis.RedisError as exc:  # the drain flag is looked at again next beat
                log.warning("drain check for %s failed: %s", self.lease.job_id, exc)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        renew_s = self.client.settings.ttl_s / 3
        last_beat, last_progress = time.monotonic(), self.progress
        while not self._stop.wait(min(renew_s, PROGRESS_INTERVAL_S)):
            if self.progress != last_progress or time.monotonic() - last_beat >= renew_s:
                last_progress = self.progress
                self.beat()
                last_beat = time.monotonic()


class NodeFacts:
    """Writes cpu_pct, mem_used_mb, mem_total_mb and, where nvidia-smi answers, gpu
    ("NAME used/total MiB", one per card) into the node's hash every `interval_s`,
    from its own thread, whether or not a job is in hand. No GPU, no `gpu` field."""

    def __init__(self, client: redis.Redis, node_key: str, interval_s: float = FACTS_INTERVAL_S,
                 gpu_interval_s: float = GPU_QUERY_INTERVAL_S) -> None:
        self.client, self.node_key = client, node_key
        self.interval_s, self.gpu_interval_s = interval_s, gpu_interval_s
        self._smi = shutil.which(GPU_QUERY[0])
        self._gpu: str | None = None
        self._gpu_at = float("-inf")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="node-facts", daemon=True)
        psutil.cpu_percent(interval=None)  # the first reading is meaningless: it starts the clock

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=GPU_QUERY_TIMEOUT_S + 1)

    def sample(self) -> dict[str, str]:
        """CPU use since the last sample, memory now, the GPU (cached)."""
        mem = psutil.virtual_memory()
        facts = {"cpu_pct": f"{psutil.cpu_percent(interval=None):.1f}",
                 "mem_used_mb": str((mem.total - mem.available) // 2**20),
                 "mem_total_mb": str(mem.total // 2**20)}
        gpu = self.gpu()
        if gpu:
            facts["gpu"] = gpu
        return facts

    def gpu(self) -> str | None:
        if self._smi is None:
            return None
        now = time.monotonic()
        if now - self._gpu_at >= self.gpu_interval_s:
            self._gpu, self._gpu_at = _query_gpus(self._smi), now
        return self._gpu

    def write(self) -> None:
        facts = self.sample()
        pipe = self.client.pipeline(transaction=False)
        pipe.hset(self.node_key, mapping=facts)
        if "gpu" not in facts:
            pipe.hdel(self.node_key, "gpu")  # a card that stopped answering is not shown stale
        pipe.execute()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.write()
            except redis.RedisError as exc:  # the next interval tries again
                log.debug("node facts not written: %s", exc)


def _query_gpus(smi: str) -> str | None:
    """Each card as "NAME used/total MiB" ("; " between cards); None when nvidia-smi fails."""
    try:
        out = subprocess.run([smi, *GPU_QUERY[1:]], capture_output=True, text=True,
                             timeout=GPU_QUERY_TIMEOUT_S, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    cards = []
    for line in out.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
            cards.append(f"{parts[0]} {parts[1]}/{parts[2]} MiB")
    return "; ".join(cards) or None
