"""The artifact store: inputs and outputs of renders, by job id and artifact name.

A local directory for now; the interface (open for writing, path for reading)
leaves room for an S3 implementation. Writes land in a temporary file and are
renamed into place, so a reader never sees half an artifact.
"""

from __future__ import annotations

import os
import re
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Iterator

from farm.errors import InvalidInput, NotFound
from farm.jobs import looks_like_job_id

_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


class LocalStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, job_id: str, name: str) -> Path:
        if not looks_like_job_id(job_id):
            raise InvalidInput(f"malformed job id {job_id!r}", code="invalid_job_id")
        if not _NAME.match(name):
            raise InvalidInput(f"malformed artifact name {name!r}", code="invalid_artifact")
        return self.root / job_id / name

    def exists(self, job_id: str, name: str) -> bool:
        return self.path(job_id, name).is_file()

    def existing(self, job_id: str, name: str) -> Path:
        p = self.path(job_id, name)
        if not p.is_file():
            raise NotFound(f"job {job_id} has no artifact {name!r}", code="artifact_not_found")
        return p

    @contextmanager
    def writer(self, job_id: str, name: str) -> Iterator[BinaryIO]:
        """Open an artifact for writing; it appears only if the block succeeds."""
        final = self.path(job_id, name)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(f".{name}.{os.getpid()}.{id(final)}.part")
        try:
            with open(tmp, "wb") as fh:
                yield fh
            os.replace(tmp, final)
        finally:
            if tmp.exists():
                tmp.unlink()

    def delete_job(self, job_id: str) -> None:
        shutil.rmtree(self.root / job_id, ignore_errors=True)
