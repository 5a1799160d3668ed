"""The Python SDK: submit renders, follow them, download the results.

    from farm.client import ToonzClient, QuotaExceeded
    client = ToonzClient(base_url="http://127.0.0.1:8000", api_key="...")
    job = client.create_animation(audio_path="narration.wav", transcript="Hello world!",
                                  template="explainer", quality="hd")
    result = client.wait_for_completion(job.job_id, timeout=300, progress=True)
    client.download(job.job_id, "output/animation.mp4")

Needs only `requests` and `tqdm`: it installs without the farm's heavy parts. The
asyncio twin, `AsyncToonzClient` (farm/aclient.py, `pip install 'toonz-farm[async]'`),
has the same methods; `from farm.client import AsyncToonzClient` imports it on first use.

Errors are typed (farm.errors): InvalidInput, Unauthorized, NotFound, Conflict
(IdempotencyKeyReused, IdempotencyInProgress), QuotaExceeded, RateLimited (with
`retry_after`), ServiceUnavailable..., each with the answer's `code`, `status` and
`request_id`. Requests are retried by `retry` (farm.sdk_common.RetryPolicy).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import requests

from farm.errors import (Conflict, Forbidden, IdempotencyInProgress, IdempotencyKeyReused,
                         InvalidInput, NotFound, PayloadTooLarge, QuotaExceeded, RateLimited,
                         ServiceUnavailable, ToonzError, Unauthorized)
from farm.sdk_common import (DEFAULT_POLL_INTERVAL_S, DEFAULT_TIMEOUT_S, DOWNLOAD_CHUNK,
                             IDEMPOTENCY_HEADER, REPLAYABLE_METHODS, TERMINAL, USER_AGENT, Batch,
                             Page, ProgressReporter, RenderFailed, RenderJob, RenderTimeout,
                             RetryHook, RetryPolicy, artifact_param, batch_of, error_code,
                             error_from_answer, finished, create_request, list_params, unreachable,
                             new_idempotency_key, page_of, parse_retry_after, render_fields,
                             retryable_status, timed_out)
from farm.webhooks import verify_webhook

# AsyncToonzClient is importable from here too (module __getattr__ below), but is not in
# __all__: a star import would pull in aiohttp.
__all__ = [
    "ToonzClient", "RenderJob", "Page", "Batch", "RetryPolicy",
    "RenderFailed", "RenderTimeout", "verify_webhook", "TERMINAL", "ToonzError", "InvalidInput",
    "Unauthorized", "Forbidden", "NotFound", "Conflict", "IdempotencyKeyReused",
    "IdempotencyInProgress", "PayloadTooLarge", "QuotaExceeded", "RateLimited",
    "ServiceUnavailable",
]


def __getattr__(name: str) -> Any:
    # The async client needs aiohttp (the [async] extra): imported only when asked for.
    if name == "AsyncToonzClient":
        from farm.aclient import AsyncToonzClient
        return AsyncToonzClient
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class ToonzClient:
    def __init__(self, base_url: str | None = None, api_key: str | None = None, *,
                 timeout_s: float = DEFAULT_TIMEOUT_S, retry: RetryPolicy | None = None,
                 on_retry: RetryHook | None = None) -> None:
        self.base_url = (base_url or os.environ.get("TOONZ_SCHEDULER_URL")
                         or "http://127.0.0.1:8000").rstrip("/")
        self.api_key = api_key or os.environ.get("TOONZ_API_KEY", "")
        self.timeout_s = timeout_s
        self.retry = retry or RetryPolicy()
        self.on_retry = on_retry
        self._http = requests.Session()
        self._http.headers.update({"Authorization": f"Bearer {self.api_key}",
                                   "User-Agent": USER_AGENT})

    # renders -----------------------------------------------------------------
    def create_animation(self, audio_path: str | os.PathLike | None = None, *,
                         audio_url: str | None = None, transcript: str | None = None,
                         template: str | None = None, character: str | None = None,
                         quality: str | None = None, format: str | None = None,
                         title: str | None = None, webhook_url: str | None = None,
                         priority: int | None = None, expression: str | None = None,
                         captions: bool | None = None, second_character: str | None = None,
                         logo_path: str | os.PathLike | None = None,
                         logo_url: str | None = None,
                         idempotency_key: str | None = None, **extra: Any) -> RenderJob:
        """Submit one render; the audio is a local file (uploaded) or a URL the farm fetches.

        Unset fields take the scheduler's defaults (explainer, toonz, standard, mp4).
        `logo_path` uploads a logo beside the audio (multipart: it needs `audio_path`);
        `logo_url` is a logo the farm fetches, like `audio_url`.
        `extra` passes further fields through as they are.
        """
        req = create_request(audio_path, audio_url, logo_path, idempotency_key, transcript=transcript,
                             template=template, character=character, quality=quality, format=format,
                             title=title, webhook_url=webhook_url, priority=priority,
                             expression=expression, captions=captions,
                             second_character=second_character, logo_url=logo_url, **extra)
        if req.json is not None:
            return RenderJob.from_api(self._json("POST", "/v1/renders", json=req.json,
                                                 idempotency_key=req.idempotency_key))

        def attempt_kwargs() -> dict:
            # Files are opened afresh for each attempt: a retry sends them from the start.
            return {"data": req.text, "files": {part: (p.name, open(p, "rb"), "application/octet-stream")
                                                for part, p in req.uploads.items()}}

        return RenderJob.from_api(self._json("POST", "/v1/renders", make=attempt_kwargs,
                                             idempotency_key=req.idempotency_key))

    def create_batch(self, renders: Iterable[dict], *, idempotency_key: str | None = None) -> Batch:
        """Submit up to the scheduler's batch limit (50) of JSON renders ({"audio_url": ..., fields})
        at once: all are created, or none."""
        items = [render_fields(**r) for r in renders]
        body = self._json("POST", "/v1/renders/batch", json={"renders": items},
                          idempotency_key=idempotency_key or new_idempotency_key())
        return batch_of(body)

    def get(self, job_id: str) -> RenderJob:
        return RenderJob.from_api(self._json("GET", f"/v1/renders/{job_id}"))

    def list(self, state: str | Iterable[str] | None = None, limit: int | None = None,
             cursor: str | None = None) -> Page:
        """One page of your renders, newest first; pass `next_cursor` for the next."""
        return page_of(self._json("GET", "/v1/renders", params=list_params(state, limit, cursor)))

    def iter_renders(self, state: str | Iterable[str] | None = None,
                     page_size: int | None = None) -> Iterator[RenderJob]:
        """Every render (of `state`), newest first, following cursors page by page."""
        cursor = None
        while True:
            page = self.list(state=state, limit=page_size, cursor=cursor)
            yield from page.items
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def cancel(self, job_id: str) -> RenderJob:
        return RenderJob.from_api(self._json("POST", f"/v1/renders/{job_id}/cancel", replayable=True))

    def wait_for_completion(self, job_id: str, timeout: float = 300.0, *,
                            poll_interval: float = DEFAULT_POLL_INTERVAL_S,
                            progress: bool | Callable[[RenderJob], Any] = False) -> RenderJob:
        """Poll until the render ends. Raises RenderFailed (failed or canceled) or RenderTimeout.

        `progress=True` shows a progress bar; a callable gets each polled RenderJob.
        """
        deadline = time.monotonic() + timeout
        reporter = ProgressReporter(job_id, progress)
        try:
            while True:
                job = self.get(job_id)
                reporter.update(job)
                if job.done:
                    return finished(job)
                if time.monotonic() > deadline:
                    raise timed_out(job_id, job.state, timeout)
                time.sleep(poll_interval)
        finally:
            reporter.close()

    def download(self, job_id: str, path: str | os.PathLike, artifact: str | None = None) -> Path:
        """Write the render's video, or another artifact ("poster", "timeline", "captions",
        or a file name such as "timeline.json"), to `path`."""
        dest = Path(path)
        dest.parent.mkdir(parents=True, exist_ok=True)
        resp = self._send("GET", f"/v1/renders/{job_id}/download",
                          lambda: {"params": artifact_param(artifact), "stream": True})
        tmp = dest.with_name(dest.name + ".part")
        with resp:
            with open(tmp, "wb") as fh:
                for chunk in resp.iter_content(DOWNLOAD_CHUNK):
                    fh.write(chunk)
        tmp.replace(dest)  # a reader never sees half a file
        return dest

    # account and catalog -------------------------------------------------------
    def get_usage(self, period: str | None = None) -> dict[str, Any]:
        """This month's usage (or `period`, YYYY-MM): renders used and remaining, cost, per day."""
        return self._json("GET", "/v1/usage", params={"period": period} if period else None)

    def list_templates(self) -> list[dict]:
        return self._json("GET", "/v1/templates")["templates"]

    def list_characters(self) -> list[dict]:
        return self._json("GET", "/v1/characters")["characters"]

    def get_pricing(self) -> dict[str, Any]:
        return self._json("GET", "/v1/pricing")

    def health(self) -> dict[str, Any]:
        return self._json("GET", "/health")

    # webhooks ----------------------------------------------------------------
    def create_webhook(self, url: str, events: Iterable[str] | None = None,
                       description: str | None = None) -> dict[str, Any]:
        """Register an endpoint; the answer's `secret` (for verify_webhook) is shown this once."""
        body = render_fields(url=url, events=None if events is None else [*events],
                             description=description)
        return self._json("POST", "/v1/webhooks", json=body)

    def list_webhooks(self) -> list[dict]:
        return self._json("GET", "/v1/webhooks")["webhooks"]

    def delete_webhook(self, webhook_id: str) -> None:
        self._send("DELETE", f"/v1/webhooks/{webhook_id}", dict).close()

    # plumbing ------------------------------------------------------------------
    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "ToonzClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _json(self, method: str, path: str, *, json: Any = None, params: dict | None = None,
              make: Callable[[], dict] | None = None, idempotency_key: str | None = None,
              replayable: bool = False) -> Any:
        if make is None:
            def make() -> dict:
                return {"json": json, "params": params}
        with self._send(method, path, make, idempotency_key=idempotency_key,
                        replayable=replayable) as resp:
            return resp.json() if resp.content else {}

    def _send(self, method: str, path: str, make: Callable[[], dict], *,
              idempotency_key: str | None = None, replayable: bool = False) -> requests.Response:
        """Send with retries (RetryPolicy); a successful response, or the typed error."""
        headers = {IDEMPOTENCY_HEADER: idempotency_key} if idempotency_key else {}
        replayable = replayable or bool(idempotency_key) or method in REPLAYABLE_METHODS
        attempt, waited = 0, 0.0
        while True:
            attempt += 1
            kwargs = make()
            try:
                resp = self._http.request(method, self.base_url + path, headers=headers,
                                          timeout=self.timeout_s, **kwargs)
            except (requests.ConnectionError, requests.Timeout) as exc:
                wait = self.retry.delay(attempt, waited, None) if replayable else None
                if wait is None:
                    raise unreachable(self.base_url, exc, attempt) from exc
                reason = type(exc).__name__
            else:
                if resp.status_code < 400:
                    return resp
                content = resp.content
                code = error_code(content)
                wait = None
                if retryable_status(resp.status_code, code, replayable):
                    wait = self.retry.delay(attempt, waited,
                                            parse_retry_after(resp.headers.get("Retry-After")))
                if wait is None:
                    raise error_from_answer(resp.status_code, content, resp.headers)
                reason = f"{resp.status_code} {code or ''}".strip()
            finally:
                for f in kwargs.get("files", {}).values():
                    f[1].close()
            if self.on_retry is not None:
                self.on_retry(attempt, wait, reason)
            time.sleep(wait)
            waited += wait
