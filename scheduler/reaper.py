"""The lease reaper: re-queues jobs whose node stopped heartbeating."""

from __future__ import annotations

import asyncio
import logging

from farm.config import LeaseSettings

log = logging.getLogger("toonz.reaper")
BATCH = 500


class Reaper:
    def __init__(self, scripts: dict, settings: LeaseSettings) -> None:
        self._script = scripts["reap"]
        self.settings = settings
        self._task: asyncio.Task | None = None

    async def reap_once(self) -> list[tuple[str, str]]:
        flat = await self._script(args=[self.settings.max_attempts, BATCH,
                                        int(self.settings.stall_s * 1000)])
        pairs = [(flat[i].decode(), flat[i + 1].decode()) for i in range(0, len(flat), 2)]
        for job_id, state in pairs:
            log.warning("lease of %s expired: now %s", job_id, state)
        return pairs

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="reaper")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def _run(self) -> None:
        while True:
            try:
                await self.reap_once()
            except Exception:  # Redis restarting: keep the loop alive, try next tick
                log.exception("reaper tick failed")
            await asyncio.sleep(self.settings.reap_interval_s)
