"""The Python SDK: submit renders, follow them, download the results.

    from farm.client import ToonzClient
    client = ToonzClient(base_url="http://127.0.0.1:8000", api_key="...")
    job = client.create_animation(audio_path="narration.wav", transcript="Hello world!",
                                  template="explainer", quality="hd")
    result = client.wait_for_completion(job.job_id, timeout=300)
    client.download(job.job_id, "output/animation.mp4")

Needs only `requests` and `tqdm`: it installs without the farm's heavy parts.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import requests

from farm.errors import ToonzError, error_for

TERMINAL = ("succeeded", "failed", "canceled")
RETRIES = 8  # GET attempts, about 20 s of backoff in all
RETRY_STATUSES = (502, 503, 504)


class RenderFailed(ToonzError):
    code = "render_failed"
    status = 500


class RenderTimeout(ToonzError, TimeoutError):
    code = "timeout"
    status = 504


@dataclass(frozen=True)
class RenderJob:
    """A render as the API last described it."""

    job_id: str
    state: str
    progress: float = 0.0
    price: float | None = None
    eta_s: float | None = None
    error: str | None = None
    raw: dict = field(default_factory=dict, repr=False)

    @classmethod
    def from_api(cls, body: dict) -> "RenderJob":
        return cls(job_id=body["job_id"], state=body["state"], progress=body.get("progress", 0.0),
                   price=body.get("price"), eta_s=body.get("eta_s"), error=body.get("error"),
                   raw=body)

    @property
    def done(self) -> bool:
        return self.state in TERMINAL


class ToonzClient:
    def __init__(self, base_url: str | None = None, api_key: str | None = None, *,
                 timeout_s: float = 60.0) -> None:
        self.base_url = (base_url or os.environ.get("TOONZ_SCHEDULER_URL")
                         or "http://127.0.0.1:8000").rstrip("/")
        self.api_key = api_key or os.environ.get("TOONZ_API_KEY", "")
        self.timeout_s = timeout_s
        self._http = requests.Session()
        self._http.headers["Authorization"] = f"Bearer {self.api_key}"

    # renders -----------------------------------------------------------------
    def create_animation(self, audio_path: str | os.PathLike | None = None, *,
                         audio_url: str | None = None, transcript: str | None = None,
                         template: str = "explainer", character: str | None = None,
                         quality: str = "standard", format: str = "mp4", title: str | None = None,
                         webhook_url: str | None = None) -> RenderJob:
        """Submit one render; the audio is a local file (uploaded) or a URL the farm fetches."""
        fields = {k: v for k, v in dict(transcript=transcript, template=template, character=character,
                                         quality=quality, format=format, title=title,
                                         webhook_url=webhook_url).items() if v is not None}
        if (audio_path is None) == (audio_url is None):
            raise ValueError("give exactly one of audio_path or audio_url")
        if audio_url is not None:
            body = self._request("POST", "/v1/renders", json={"audio_url": audio_url, **fields})
        else:
            path = Path(audio_path)
            with open(path, "rb") as fh:
                body = self._request("POST", "/v1/renders", data=fields,
                                     files={"audio": (path.name, fh, "application/octet-stream")})
        return RenderJob.from_api(body)

    def get(self, job_id: str) -> RenderJob:
        return RenderJob.from_api(self._request("GET", f"/v1/renders/{job_id}"))

    def wait_for_completion(self, job_id: str, timeout: float = 300.0, *, poll_interval: float = 0.5,
                            progress: bool | Callable[[RenderJob], None] = False) -> RenderJob:
        """Poll until the render ends. Raises RenderFailed or RenderTimeout.

        `progress=True` shows a progress bar; a callable gets each polled RenderJob.
        """
        deadline = time.monotonic() + timeout
        bar = None
        if progress is True:
            from tqdm import tqdm
            bar = tqdm(total=100, unit="%", desc=f"render {job_id}", bar_format=
                       "{desc}: {percentage:3.0f}%|{bar}| {elapsed} {postfix}")
        try:
            while True:
                job = self.get(job_id)
                if bar is not None:
                    bar.n = round(job.progress * 100)
                    bar.set_postfix_str(job.state)
                elif callable(progress):
                    progress(job)
                if job.done:
                    break
                if time.monotonic() > deadline:
                    raise RenderTimeout(f"render {job_id} still {job.state} after {timeout:.0f} s")
                time.sleep(poll_interval)
        finally:
            if bar is not None:
                bar.close()
        if job.state != "succeeded":
            raise RenderFailed(f"render {job_id} {job.state}: {job.error or 'no error recorded'}")
        return job

    def download(self, job_id: str, path: str | os.PathLike, artifact: str | None = None) -> Path:
        """Write the render's video (or another artifact, e.g. 'timeline.json') to `path`."""
        dest = Path(path)
        dest.parent.mkdir(parents=True, exist_ok=True)
        params = {"artifact": artifact} if artifact else None
        with self._http.get(self.base_url + f"/v1/renders/{job_id}/download", params=params,
                            stream=True, timeout=self.timeout_s) as resp:
            _check(resp)
            tmp = dest.with_name(dest.name + ".part")
            with open(tmp, "wb") as fh:
                for chunk in resp.iter_content(1024 * 1024):
                    fh.write(chunk)
            tmp.replace(dest)
        return dest

    def get_usage(self) -> dict[str, Any]:
        return self._request("GET", "/v1/usage")

    def health(self) -> dict[str, Any]:
        return self._request("GET", "/health")

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "ToonzClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _request(self, method: str, path: str, **kw) -> dict:
        # GETs are safe to repeat: ride out a scheduler or Redis restart for a while.
        attempts = RETRIES if method == "GET" else 1
        delay = 0.25
        for attempt in range(attempts):
            try:
                resp = self._http.request(method, self.base_url + path, timeout=self.timeout_s, **kw)
                if resp.status_code not in RETRY_STATUSES or attempt == attempts - 1:
                    break
            except requests.ConnectionError:
                if attempt == attempts - 1:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 4.0)
        _check(resp)
        return resp.json()


def _check(resp: requests.Response) -> None:
    if resp.status_code < 400:
        return
    try:
        err = resp.json()["error"]
        raise error_for(resp.status_code, err["code"], err["message"])
    except (ValueError, KeyError, TypeError):
        raise error_for(resp.status_code, "http_error",
                        f"HTTP {resp.status_code}: {resp.text[:200]}") from None
