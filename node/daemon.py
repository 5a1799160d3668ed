"""The node daemon: lease a job, heartbeat it, render it, upload, complete.

Stop order (`stop()`): stop leasing; keep heartbeats going while the job in hand
finishes; upload and complete it; sign off; close connections. The first SIGTERM
drains that way; a second one forces: the job in hand is abandoned at the next
frame and handed back as failed so another node can take it.
"""

from __future__ import annotations

import logging
import shutil
import signal
import threading
import time
import traceback
from pathlib import Path

import redis
import requests

from farm import keys
from farm.config import NodeConfig
from farm.errors import StaleLease
from farm.jobs import JobState
from farm.lease import Lease, LeaseClient

log = logging.getLogger("toonz.node")


class JobStopped(Exception):
    """The job was canceled, its lease was lost, or the node was forced to stop."""


PROGRESS_INTERVAL_S = 1.0  # how often fresh progress reaches Redis (and so the API)


class Heartbeat:
    """Renews one lease every third of its TTL; pushes new progress every second."""

    def __init__(self, client: LeaseClient, lease: Lease) -> None:
        self.client, self.lease = client, lease
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

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        renew_s = self.client.settings.ttl_s / 3
        last_beat, last_progress = time.monotonic(), self.progress
        while not self._stop.wait(min(renew_s, PROGRESS_INTERVAL_S)):
            if self.progress != last_progress or time.monotonic() - last_beat >= renew_s:
                last_progress = self.progress
                self.beat()
                last_beat = time.monotonic()


class NodeDaemon:
    def __init__(self, config: NodeConfig, *, handle_signals: bool = True) -> None:
        self.config = config
        self.redis = redis.Redis.from_url(config.redis_url)
        self.leases = LeaseClient(self.redis, config.node_id, config.lease)
        self.http = requests.Session()
        self._draining = threading.Event()
        self._forced = threading.Event()
        self._thread: threading.Thread | None = None
        if handle_signals:
            signal.signal(signal.SIGTERM, self._on_signal)
            signal.signal(signal.SIGINT, self._on_signal)

    # lifecycle ---------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="node", daemon=True)
        self._thread.start()

    def stop(self, force: bool = False) -> None:
        self._draining.set()
        if force:
            self._forced.set()

    def join(self, timeout: float | None = None) -> None:
        if self._thread:
            self._thread.join(timeout)

    def _on_signal(self, signum, frame) -> None:
        if self._draining.is_set():
            log.warning("second signal: forcing stop")
            self._forced.set()
        else:
            log.info("signal %s: draining (finishing the job in hand; again to force)", signum)
        self._draining.set()

    def run(self) -> None:
        cfg = self.config
        cfg.work_dir.mkdir(parents=True, exist_ok=True)
        self.redis.hset(keys.node(cfg.node_id), mapping={"state": "idle", "started_at": f"{time.time():.3f}"})
        log.info("node %s leasing from %s", cfg.node_id, cfg.redis_url)
        try:
            while not self._draining.is_set():
                try:
                    lease = self.leases.lease()
                except redis.RedisError as exc:
                    log.warning("lease failed (%s); retrying", exc)
                    self._draining.wait(min(5.0, cfg.poll_interval_s * 4))
                    continue
                if lease is None:
                    self._draining.wait(cfg.poll_interval_s)
                    continue
                self.run_job(lease)
        finally:
            self.redis.hset(keys.node(cfg.node_id), "state", "offline")
            self.redis.zrem(keys.NODES, cfg.node_id)
            self.http.close()
            self.redis.close()
            log.info("node %s signed off", cfg.node_id)

    # one job -----------------------------------------------------------------
    def run_job(self, lease: Lease) -> str:
        from node.pipeline import render  # heavy imports (GL, PyAV) only where work happens

        job = self.leases.job(lease.job_id)
        log.info("leased %s (fence %d, attempt %d, %s %s)", job.id, lease.fence, job.attempts,
                 job.tier, job.quality)
        self.redis.hset(keys.node(self.config.node_id), mapping={"state": "busy", "job": job.id})
        hb = Heartbeat(self.leases, lease)
        hb.start()
        work = self.config.work_dir / job.id
        work.mkdir(parents=True, exist_ok=True)

        def progress(frac: float) -> None:
            hb.progress = frac
            if hb.lost:
                raise JobStopped(hb.lost)
            if self._forced.is_set():
                raise JobStopped("node forced to stop")

        try:
            audio = self._fetch_input(lease, work / "input.audio")
            result = render(audio, work / "video.mp4", transcript=job.transcript or None,
                            template=job.template, character=job.character, quality=job.quality,
                            title=job.title or None, progress=progress)
            names = []
            for path in (result.video, result.timeline):
                self._upload(lease, path)
                names.append(path.name)
            hb.stop()
            outcome = self.leases.complete(lease, names)
            log.info("%s %s in %.1f s (%d frames, %.1f frames/s)", job.id, outcome,
                     result.seconds, result.frames, result.frames / max(result.seconds, 1e-9))
            return outcome
        except StaleLease as exc:
            log.warning("%s: result refused, lease lost: %s", job.id, exc)
            return "stale"
        except Exception as exc:
            hb.stop()
            err = f"{type(exc).__name__}: {exc}"
            log.error("%s failed: %s\n%s", job.id, err, traceback.format_exc())
            try:
                return self.leases.fail(lease, err)
            except StaleLease:
                return "stale"
        finally:
            hb.stop()
            shutil.rmtree(work, ignore_errors=True)
            self.redis.hset(keys.node(self.config.node_id), mapping={"state": "idle", "job": ""})

    def _headers(self, lease: Lease) -> dict[str, str]:
        return {"X-Toonz-Fence": str(lease.fence), "X-Toonz-Node": self.config.node_id}

    def _fetch_input(self, lease: Lease, dest: Path) -> Path:
        url = f"{self.config.scheduler_url}/v1/node/jobs/{lease.job_id}/input"
        with self.http.get(url, headers=self._headers(lease), stream=True, timeout=60) as resp:
            _raise_for(resp)
            with open(dest, "wb") as fh:
                for chunk in resp.iter_content(1024 * 1024):
                    fh.write(chunk)
        return dest

    def _upload(self, lease: Lease, path: Path) -> None:
        url = f"{self.config.scheduler_url}/v1/node/jobs/{lease.job_id}/artifacts/{path.name}"
        with open(path, "rb") as fh:
            resp = self.http.put(url, data=fh, headers=self._headers(lease), timeout=300)
        _raise_for(resp)


def _raise_for(resp: requests.Response) -> None:
    if resp.status_code == 409:
        raise StaleLease(resp.text[:300])
    if resp.status_code >= 400:
        raise RuntimeError(f"scheduler answered HTTP {resp.status_code}: {resp.text[:300]}")
