"""The lease reaper: re-queues jobs whose node stopped heartbeating."""

from __future__ import annotations

import logging

from farm.config import LeaseSettings
from scheduler.periodic import Periodic

log = logging.getLogger("toonz.reaper")
BATCH = 500


class Reaper:
    def __init__(self, scripts: dict, settings: LeaseSettings) -> None:
        self._script = scripts["reap"]
        self.settings = settings
        self._loop = Periodic("reaper", self.reap_once, settings.reap_interval_s, log)

    async def reap_once(self) -> list[tuple[str, str]]:
        flat = await self._script(args=[self.settings.max_attempts, BATCH,
                                        int(self.settings.stall_s * 1000)])
        pairs = [(flat[i].decode(), flat[i + 1].decode()) for i in range(0, len(flat), 2)]
        for job_id, state in pairs:
            log.warning("lease of %s expired: now %s", job_id, state)
        return pairs

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()
