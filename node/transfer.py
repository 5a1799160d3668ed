"""Moving a job's files through the scheduler, fenced, so a node can run anywhere."""

from __future__ import annotations

from pathlib import Path

import requests

from farm.errors import StaleLease
from farm.lease import Lease
from node.retry import SchedulerUnavailable, retry

CHUNK = 1024 * 1024


class Transfer:
    def __init__(self, scheduler_url: str, node_id: str) -> None:
        self.base = scheduler_url.rstrip("/")
        self.node_id = node_id
        self.http = requests.Session()

    def _headers(self, lease: Lease) -> dict[str, str]:
        return {"X-Toonz-Fence": str(lease.fence), "X-Toonz-Node": self.node_id}

    def fetch_input(self, lease: Lease, dest: Path) -> Path:
        """The job's audio."""
        return self._fetch(lease, "input", dest)

    def fetch_logo(self, lease: Lease, dest: Path) -> Path:
        """The job's logo (only for a job whose record says it has one)."""
        return self._fetch(lease, "logo", dest)

    def _fetch(self, lease: Lease, what: str, dest: Path) -> Path:
        url = f"{self.base}/v1/node/jobs/{lease.job_id}/{what}"

        def fetch() -> Path:
            with self.http.get(url, headers=self._headers(lease), stream=True, timeout=60) as resp:
                _raise_for(resp)
                with open(dest, "wb") as fh:
                    for chunk in resp.iter_content(CHUNK):
                        fh.write(chunk)
            return dest

        return retry(fetch, f"fetching the {what} of {lease.job_id}")

    def fetch_related(self, lease: Lease, other: str, name: str, dest: Path) -> Path:
        """Artifact `name` of `other`, a job of the same chunked render as the leased one
        (its parent, a chunk of it, or itself): scheduler/chunkapi.py."""
        return self._fetch(lease, f"related/{other}/{name}", dest)

    def split(self, lease: Lease, ranges: list[range]) -> list[str]:
        """Split the leased render into chunks of these frame ranges; their job ids (the
        same ids as before for a render split already)."""
        url = f"{self.base}/v1/node/jobs/{lease.job_id}/chunks"
        body = {"ranges": [[r.start, r.stop] for r in ranges]}

        def post() -> list[str]:
            resp = self.http.post(url, json=body, headers=self._headers(lease), timeout=60)
            _raise_for(resp)
            return list(resp.json()["chunks"])

        return retry(post, f"splitting {lease.job_id}")

    def delete_chunk_streams(self, lease: Lease) -> None:
        """Once the leased render succeeded (completed with this lease): its chunks' streams
        are not needed any more."""
        url = f"{self.base}/v1/node/jobs/{lease.job_id}/chunks"
        retry(lambda: _raise_for(self.http.delete(url, headers=self._headers(lease), timeout=60)),
              f"deleting the chunk streams of {lease.job_id}")

    def upload(self, lease: Lease, path: Path) -> None:
        url = f"{self.base}/v1/node/jobs/{lease.job_id}/artifacts/{path.name}"

        def put() -> None:
            with open(path, "rb") as fh:
                _raise_for(self.http.put(url, data=fh, headers=self._headers(lease), timeout=300))

        retry(put, f"uploading {path.name} of {lease.job_id}")

    def close(self) -> None:
        self.http.close()


def _raise_for(resp: requests.Response) -> None:
    if resp.status_code == 409:
        raise StaleLease(resp.text[:300])
    if resp.status_code >= 500:
        raise SchedulerUnavailable(f"HTTP {resp.status_code}")
    if resp.status_code >= 400:
        raise RuntimeError(f"scheduler answered HTTP {resp.status_code}: {resp.text[:300]}")
