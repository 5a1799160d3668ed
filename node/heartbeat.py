"""The heartbeat thread: renews one lease, carries progress, notices cancel and loss."""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

import redis

from farm.errors import StaleLease
from farm.jobs import JobState
from farm.lease import Lease, LeaseClient

log = logging.getLogger("toonz.node")
PROGRESS_INTERVAL_S = 1.0  # how often fresh progress reaches Redis (and so the API)


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
