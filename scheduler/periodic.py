"""Background loops that stop when asked, even when a cancellation goes missing.

redis-py's asyncio client can swallow a task's cancellation that arrives in the
middle of a command (redis/redis-py#2028), so a loop that only waits to be
cancelled may never end and hangs the app's shutdown. These loops also watch a
stop event, and `stop` waits a bounded time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import redis

STOP_TIMEOUT_S = 5.0


class Periodic:
    """Run `tick()` every `interval_s` seconds in a task until `stop()`; the first tick
    at once, or one interval in with `wait_first`."""

    def __init__(self, name: str, tick: Callable[[], Awaitable[object]], interval_s: float,
                 log: logging.Logger, wait_first: bool = False) -> None:
        self.name, self._tick, self.interval_s, self._log = name, tick, interval_s, log
        self._wait_first = wait_first
        self._stop = asyncio.Event()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        self._stop.set()
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._task), STOP_TIMEOUT_S)

    async def _run(self) -> None:
        if self._wait_first:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.interval_s)
        while not self._stop.is_set():
            try:
                await self._tick()
            except (redis.ConnectionError, redis.TimeoutError) as exc:  # Redis restarting
                self._log.warning("%s: Redis unreachable (%s); next tick", self.name, exc)
            except Exception:  # keep the loop alive, try next tick
                self._log.exception("%s tick failed", self.name)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.interval_s)
