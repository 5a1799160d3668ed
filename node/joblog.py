"""A log per job: a header naming the node, versions and settings, then every line the
node logged while the job ran. It is uploaded with the job's artifacts (operators read
it through the admin API), whether the job succeeded or failed."""

from __future__ import annotations

import logging
import platform
import socket
import sys
import time
from importlib import metadata
from pathlib import Path

from farm.jobs import Job

LOG_ARTIFACT = "log.txt"
PACKAGES = ("toonz-farm", "av", "moderngl", "pocketsphinx", "numpy", "redis")
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def header(job: Job, node_id: str, attempt_fence: int) -> str:
    lines = [
        f"# toonz job {job.id}, attempt {job.attempts}, fence {attempt_fence}",
        f"# node {node_id} on {socket.gethostname()} ({platform.platform()})",
        f"# python {sys.version.split()[0]}; " + ", ".join(f"{p} {_version(p)}" for p in PACKAGES),
        f"# job: tenant {job.tenant} ({job.tier}), quality {job.quality}, format {job.format}, "
        f"template {job.template}, character {job.character}, audio {job.duration_s:.2f} s, "
        f"transcript {len(job.transcript)} chars",
        f"# started {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}",
    ]
    return "\n".join(lines) + "\n"


class JobLog:
    """Captures the `toonz` loggers (and PyAV's warnings) into one file while open."""

    def __init__(self, path: Path, job: Job, node_id: str, fence: int) -> None:
        self.path = path
        path.write_text(header(job, node_id, fence))
        self._handler = logging.FileHandler(path, mode="a", encoding="utf-8")
        self._handler.setFormatter(logging.Formatter(FORMAT))
        self._loggers = [logging.getLogger(n) for n in ("toonz", "node", "farm", "libav")]

    def __enter__(self) -> "JobLog":
        for lg in self._loggers:
            lg.addHandler(self._handler)
        return self

    def __exit__(self, *exc) -> None:
        for lg in self._loggers:
            lg.removeHandler(self._handler)
        self._handler.close()
