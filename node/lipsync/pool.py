"""Decoding chunks in parallel: worker processes, started once and reused.

PocketSphinx holds the GIL while it decodes, so threads would take turns; processes
run at once. Starting the workers and loading their models costs about 0.15 s (fork)
to 0.3 s (fork server), so the pool is created on first use and kept for the life of
the process, and audio with little speech is decoded in the calling process.
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing
import os
import threading
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from typing import Any, Callable

log = logging.getLogger(__name__)

# Never more worker processes than this, whatever the machine: each holds ~60 MB of models.
MAX_WORKERS = 8
# Below this much audio to decode (10 ms frames), the pool's start costs more than it saves.
PARALLEL_MIN_FRAMES = 1500

_lock = threading.Lock()
_pool: ProcessPoolExecutor | None = None
_pool_size = 0


class InlineExecutor(Executor):
    """Runs each call in the calling thread, at submit: the one-process path."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # delivered by result(), as a pool would
            future.set_exception(exc)
        return future


INLINE = InlineExecutor()


def default_workers() -> int:
    """The CPUs this process may use, at most MAX_WORKERS."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(MAX_WORKERS, cpus))


def executor(workers: int, frames: int) -> Executor:
    """The shared pool of `workers` processes, or INLINE for one worker or little audio."""
    global _pool, _pool_size
    if workers <= 1 or frames < PARALLEL_MIN_FRAMES:
        return INLINE
    with _lock:
        if _pool is None or _pool_size != workers:
            if _pool is not None:
                _pool.shutdown(wait=False)
            _pool = ProcessPoolExecutor(workers, mp_context=_context(), initializer=_warm)
            _pool_size = workers
        return _pool


def prestart(workers: int, frames: int) -> None:
    """Start the pool's processes (and their model loading) now, while the caller
    is still decoding the audio, if `frames` of audio will need them."""
    pool = executor(workers, frames)
    if pool is not INLINE:
        pool.submit(int)  # the first task launches the workers


def discard(pool: Executor) -> None:
    """Forget a broken pool (a worker died); the next call starts a fresh one."""
    global _pool
    with _lock:
        if pool is _pool:
            _pool = None
    pool.shutdown(wait=False)


def _context() -> multiprocessing.context.BaseContext:
    # fork is the cheapest start (workers inherit the loaded modules) but not safe
    # where other threads may hold locks, as in the node daemon: there, a fork server.
    if threading.active_count() == 1 and "fork" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("fork")
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["node.lipsync.align", "node.lipsync.phones"])
    return ctx


def _warm() -> None:
    """Load both decoders while the parent is still preparing the first tasks."""
    from node.lipsync import sphinx

    sphinx.align_decoder()
    sphinx.phone_decoder()


@atexit.register
def _shutdown() -> None:
    if _pool is not None:
        _pool.shutdown(wait=True, cancel_futures=True)
