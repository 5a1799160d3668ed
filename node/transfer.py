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
        url = f"{self.base}/v1/node/jobs/{lease.job_id}/input"

        def fetch() -> Path:
            with self.http.get(url, headers=self._headers(lease), stream=True, timeout=60) as resp:
                _raise_for(resp)
                with open(dest, "wb") as fh:
                    for chunk in resp.iter_content(CHUNK):
                        fh.write(chunk)
            return dest

        return retry(fetch, f"fetching the input of {lease.job_id}")

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
