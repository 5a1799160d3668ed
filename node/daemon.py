"""The node daemon: lease a job, heartbeat it, render it, upload, complete.

Stop order (`stop()`): stop leasing; keep heartbeats going while the job in hand
finishes; upload and complete it; sign off; close connections. The first SIGTERM
drains that way; a second one forces: the job in hand is abandoned at its next
frame and released (re-queued without counting an attempt) for another node.
Redis and scheduler outages are ridden out with retries (node/retry.py).

An operator's drain (the drain flag in the node's hash, set by the admin API) stops
leasing the same way, noticed at the next heartbeat or lease loop; the node then
stays up, `drained`, until the flag is lifted. The node's state shows `draining`
while it finishes the job in hand, then `drained`.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import signal
import socket
import threading
import time
import traceback
from pathlib import Path

import psutil
import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from farm import keys
from farm.config import NodeConfig, default_slots
from farm.errors import StaleLease
from farm.jobs import Job
from farm.lease import Lease, LeaseClient
from farm.presets import WATERMARKED_TIERS
from node.heartbeat import Heartbeat, NodeFacts
from node.joblog import LOG_ARTIFACT, JobLog
from node.retry import retry
from node.transfer import Transfer

log = logging.getLogger("toonz.node")


def capabilities() -> dict[str, str]:
    """What this node offers, as the console and the scheduler see it."""
    return {"cores": str(os.cpu_count() or 1),
            "memory_mb": str(psutil.virtual_memory().total // 2**20),
            "host": socket.gethostname(), "pid": str(os.getpid())}


class JobStopped(Exception):
    """The job was canceled, its lease was lost, or the node was forced to stop."""


class NodeDaemon:
    def __init__(self, config: NodeConfig, *, handle_signals: bool = True) -> None:
        self.config = config
        self.redis = redis.Redis.from_url(
            config.redis_url, health_check_interval=10, retry=Retry(ExponentialBackoff(cap=1.0), 3),
            retry_on_error=[redis.ConnectionError, redis.TimeoutError])
        self.leases = LeaseClient(self.redis, config.node_id, config.lease)
        self.transfer = Transfer(config.scheduler_url, config.node_id)
        self._draining = threading.Event()
        self._forced = threading.Event()
        self._drain_seen = threading.Event()  # a drain (signal or operator) was noticed
        self._state = ""  # the state this node last wrote to its hash
        self.slots = config.slots or default_slots()
        from node.render.encode import software_encoders  # PyAV: only in the node process

        self.encoders = software_encoders()  # jobs in formats it cannot encode go elsewhere
        self._active: dict[str, str] = {}  # slot thread name -> the job it runs
        self._state_lock = threading.Lock()  # the slots write the node's hash in turn
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
            log.warning("second signal: forcing stop, releasing the job in hand")
            self._forced.set()
        else:
            log.info("signal %s: draining (finishing the job in hand; again to force)", signum)
        self._draining.set()
        self._drain_seen.set()  # no Redis here: the heartbeat or the loop shows the state

    def run(self) -> None:
        cfg = self.config
        cfg.work_dir.mkdir(parents=True, exist_ok=True)
        self._set_state("idle", started_at=f"{time.time():.3f}", encoders=",".join(sorted(self.encoders)),
                        **capabilities())
        facts = NodeFacts(self.redis, keys.node(cfg.node_id))  # CPU, memory, GPU for the console
        facts.start()
        log.info("node %s leasing from %s with %d slot(s)", cfg.node_id, cfg.redis_url, self.slots)
        try:
            workers = [threading.Thread(target=self._lease_loop, name=f"slot-{k + 1}", daemon=True)
                       for k in range(self.slots)]
            for w in workers:
                w.start()
            for w in workers:
                w.join()
        finally:
            facts.stop()  # before sign-off, so it writes nothing after
            try:
                self._set_state("offline")
                self.redis.zrem(keys.NODES, cfg.node_id)
            except redis.RedisError:
                log.warning("could not sign off: Redis unreachable")
            self.transfer.close()
            self.redis.close()
            log.info("node %s signed off", cfg.node_id)

    def _lease_loop(self) -> None:
        """One slot: lease a job, run it, again, until the node drains."""
        cfg = self.config
        delay = cfg.poll_interval_s
        while not self._draining.is_set():
            try:
                if self._hold_while_drained():
                    continue
                lease = self.leases.lease(free_mb=psutil.virtual_memory().available // 2**20,
                                          encoders=self.encoders)
                delay = cfg.poll_interval_s
            except redis.RedisError as exc:
                delay = min(delay * 2, 5.0)
                log.warning("lease failed (%s); retrying in %.1f s", exc, delay)
                self._draining.wait(delay)
                continue
            if lease is None:
                self._draining.wait(cfg.poll_interval_s)
                continue
            self.run_job(lease)

    def _set_state(self, state: str, **extra: str) -> None:
        """Write the node's state; with several slots, busy while any slot has a job."""
        with self._state_lock:
            if state in ("busy", "idle"):
                state = "busy" if self._active else "idle"
                extra = {**extra, "job": ",".join(sorted(self._active.values())),
                         "slots": f"{len(self._active)}/{self.slots}"}
            if self._drain_seen.is_set() and state in ("busy", "idle"):
                state = "draining" if state == "busy" else "drained"
            self.redis.hset(keys.node(self.config.node_id), mapping={"state": state, **extra})
            self._state = state

    # draining ----------------------------------------------------------------
    def _drain_flag(self) -> bool:
        return bool(self.redis.hexists(keys.node(self.config.node_id), keys.NODE_DRAIN_FIELD))

    def notice_drain(self) -> None:
        """Called at every heartbeat of the job in hand: once a drain is asked (SIGTERM or
        the operator's flag) the node shows `draining`; the lease loop then leases nothing."""
        if not self._drain_seen.is_set():
            if not self._drain_flag():
                return
            log.info("drain requested by an operator: finishing the job in hand, then leasing nothing")
            self._drain_seen.set()
        if self._state != "draining":
            self._set_state("busy")  # shown as draining

    def _hold_while_drained(self) -> bool:
        """Before each lease: while the operator's drain flag is set, lease nothing and stay
        visible (`drained`); True when the node waited, so the loop looks again."""
        if not self._drain_flag():
            if self._drain_seen.is_set() and not self._draining.is_set():
                self._drain_seen.clear()  # the operator lifted a drain that was in progress
                self._set_state("idle")
            return False
        if not self._drain_seen.is_set():
            log.info("drain requested by an operator: leasing nothing until it is lifted")
        self._drain_seen.set()
        self._set_state("idle")  # shown as drained (or draining while other slots finish)
        while not self._draining.is_set() and self._drain_flag():
            # The lease script refreshes the node's last-seen time; a drained node does it here.
            self.redis.zadd(keys.NODES, {self.config.node_id: int(time.time() * 1000)})
            self._draining.wait(self.config.poll_interval_s)
        if not self._draining.is_set():
            log.info("drain lifted: leasing again")
            self._drain_seen.clear()
            self._set_state("idle")
        return True

    # one job -----------------------------------------------------------------
    def run_job(self, lease: Lease) -> str:
        job = retry(lambda: self.leases.job(lease.job_id), "reading the job")
        log.info("leased %s (fence %d, attempt %d, %s %s)", job.id, lease.fence, job.attempts,
                 job.tier, job.quality)
        with self._state_lock:
            self._active[threading.current_thread().name] = job.id
        self._set_state("busy")
        hb = Heartbeat(self.leases, lease, on_beat=self.notice_drain)
        hb.start()
        work = self.config.work_dir / job.id
        work.mkdir(parents=True, exist_ok=True)
        try:
            return self._run_job(job, lease, hb, work)
        except StaleLease as exc:
            log.warning("%s: result refused, lease lost: %s", job.id, exc)
            return "stale"
        finally:
            hb.stop()
            shutil.rmtree(work, ignore_errors=True)
            self._idle()

    def _run_job(self, job: Job, lease: Lease, hb: Heartbeat, work: Path) -> str:
        if self._chunked(job):  # a long render split across nodes, or one of its chunks
            return self._chunk_jobs.run(job, lease, hb, work)
        from node.pipeline import render  # heavy imports (GL, PyAV) only where work happens

        def progress(frac: float) -> None:
            hb.progress = frac
            if hb.lost:
                raise JobStopped(hb.lost)
            if self._forced.is_set():
                raise JobStopped("node forced to stop")

        log_path = work / LOG_ARTIFACT
        with JobLog(log_path, job, self.config.node_id, lease.fence):
            try:
                audio = self.transfer.fetch_input(lease, work / "input.audio")
                result = render(audio, work / f"video.{job.format}", transcript=job.transcript or None,
                                template=job.template, character=job.character, quality=job.quality,
                                format=job.format, title=job.title or None, progress=progress,
                                watermark=job.tier in WATERMARKED_TIERS, expression=job.expression,
                                captions=job.captions, second_character=job.second_character or None,
                                logo=self._fetch_logo(job, lease, work))
                fps = result.frames / max(result.seconds, 1e-9)
                log.info("%s rendered in %.1f s (%d frames, %.1f frames/s; stages %s)", job.id,
                         result.seconds, result.frames, fps,
                         {k: round(v, 2) for k, v in result.stage_seconds.items()})
                self._set_state("busy", fps=f"{fps:.1f}")  # scaling advice reads node speed
                # The scheduler samples this counter for the console's throughput chart.
                self.redis.hincrby(keys.node(self.config.node_id), keys.NODE_FRAMES_FIELD, result.frames)
            except StaleLease:
                raise
            except Exception as exc:
                hb.stop()
                return self._give_up(job, lease, exc, log_path,
                                     forced=isinstance(exc, JobStopped) and not hb.lost)
        uploads = (result.video, result.timeline, result.poster,
                   *([result.captions] if result.captions else []), log_path)
        for path in uploads:
            self.transfer.upload(lease, path)
        hb.stop()
        outcome = retry(lambda: self.leases.complete(lease, [p.name for p in uploads]),
                        f"completing {job.id}")
        log.info("%s %s", job.id, outcome)
        return outcome

    def _fetch_logo(self, job: Job, lease: Lease, work: Path) -> Path | None:
        """The job's logo in its work folder, or None when the render has none."""
        return self.transfer.fetch_logo(lease, work / "input.logo") if job.logo else None

    def _chunked(self, job: Job) -> bool:
        from node.chunkjobs import wants_chunks

        return wants_chunks(job, self.config.chunks)

    @functools.cached_property
    def _chunk_jobs(self):
        """Chunk jobs and chunked renders (node/chunkjobs.py); made on first use."""
        from node.chunkjobs import ChunkJobs

        return ChunkJobs(self)

    def _give_up(self, job: Job, lease: Lease, exc: Exception, log_path: Path, forced: bool) -> str:
        """Record a failure, or release the job on a forced stop; its log goes up first."""
        err = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, JobStopped):
            log.warning("%s stopped: %s", job.id, exc)
        else:
            log.error("%s failed: %s\n%s", job.id, err, traceback.format_exc())
        try:
            self.transfer.upload(lease, log_path)
        except Exception as upload_exc:  # the failure itself matters more than its log
            log.warning("%s: could not upload the job log: %s", job.id, upload_exc)
        try:
            if forced:
                outcome = retry(lambda: self.leases.release(lease), f"releasing {job.id}")
            else:
                outcome = retry(lambda: self.leases.fail(lease, err), f"failing {job.id}")
        except StaleLease as stale:
            log.warning("%s: lease lost, nothing recorded: %s", job.id, stale)
            return "stale"
        log.info("%s is now %s", job.id, outcome)
        return outcome

    def _idle(self) -> None:
        """This slot's job is over: the node shows its other jobs, or idle."""
        with self._state_lock:
            self._active.pop(threading.current_thread().name, None)
        try:
            self._set_state("idle")
        except redis.RedisError:
            pass
