"""The asyncio SDK: ToonzClient's methods as coroutines, over aiohttp.

    from farm.aclient import AsyncToonzClient
    async with AsyncToonzClient(base_url="http://127.0.0.1:8000", api_key="...") as client:
        job = await client.create_animation(audio_url="https://example.com/a.wav")
        done = await client.wait_for_completion(job.job_id, progress=print)
        await client.download(job.job_id, "animation.mp4")

aiohttp comes with `pip install 'toonz-farm[async]'`; it is imported when a client is
made, so this module imports without it. wait_for_completion follows the render's
Server-Sent Events (GET /v1/renders/{id}/events), reconnecting where a stream breaks,
and polls instead when the scheduler has no stream.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Iterable

from farm.errors import ToonzError
from farm.sdk_common import (DEFAULT_POLL_INTERVAL_S, DEFAULT_TIMEOUT_S, DOWNLOAD_CHUNK,
                             IDEMPOTENCY_HEADER, REPLAYABLE_METHODS, USER_AGENT, Batch, Page,
                             ProgressReporter, RenderJob, RetryHook, RetryPolicy, SSEParser,
                             artifact_param, batch_of, error_code, error_from_answer, finished,
                             create_request, list_params, new_idempotency_key, page_of, unreachable,
                             parse_retry_after, render_fields, retryable_status, timed_out)

# A progress stream sends a keepalive comment every 15 s: a read silent for longer than
# this means the connection is dead, and the client reconnects.
SSE_READ_TIMEOUT_S = 45.0
DEFAULT_MAX_CONNECTIONS = 100  # open connections at once (aiohttp's default); 0: no limit
_STREAM_STATUSES_WITHOUT_STREAM = (404, 405, 501)  # a scheduler without /events: poll instead


def _aiohttp():
    try:
        import aiohttp
    except ImportError as exc:
        raise ImportError("AsyncToonzClient needs aiohttp: pip install 'toonz-farm[async]'") from exc
    return aiohttp


class _NoStream(Exception):
    """The scheduler does not stream this render's progress: poll instead."""


class AsyncToonzClient:
    def __init__(self, base_url: str | None = None, api_key: str | None = None, *,
                 timeout_s: float = DEFAULT_TIMEOUT_S, retry: RetryPolicy | None = None,
                 on_retry: RetryHook | None = None,
                 max_connections: int = DEFAULT_MAX_CONNECTIONS) -> None:
        self._aio = _aiohttp()
        self.max_connections = max_connections
        self.base_url = (base_url or os.environ.get("TOONZ_SCHEDULER_URL")
                         or "http://127.0.0.1:8000").rstrip("/")
        self.api_key = api_key or os.environ.get("TOONZ_API_KEY", "")
        self.timeout_s = timeout_s
        self.retry = retry or RetryPolicy()
        self.on_retry = on_retry
        self._session = None  # made on first use, inside the caller's event loop

    # renders -----------------------------------------------------------------
    async def create_animation(self, audio_path: str | os.PathLike | None = None, *,
                               audio_url: str | None = None, transcript: str | None = None,
                               template: str | None = None, character: str | None = None,
                               quality: str | None = None, format: str | None = None,
                               title: str | None = None, webhook_url: str | None = None,
                               priority: int | None = None, expression: str | None = None,
                               captions: bool | None = None, second_character: str | None = None,
                               logo_path: str | os.PathLike | None = None,
                               logo_url: str | None = None,
                               idempotency_key: str | None = None, **extra: Any) -> RenderJob:
        """Submit one render (see ToonzClient.create_animation)."""
        req = create_request(audio_path, audio_url, logo_path, idempotency_key, transcript=transcript,
                             template=template, character=character, quality=quality, format=format,
                             title=title, webhook_url=webhook_url, priority=priority,
                             expression=expression, captions=captions,
                             second_character=second_character, logo_url=logo_url, **extra)
        if req.json is not None:
            return RenderJob.from_api(await self._json("POST", "/v1/renders", json=req.json,
                                                       idempotency_key=req.idempotency_key))

        def attempt_kwargs() -> dict:
            # Files are opened afresh for each attempt: a retry sends them from the start.
            form = self._aio.FormData()
            for k, v in req.text.items():
                form.add_field(k, v)
            opened = []
            for part, p in req.uploads.items():
                opened.append(open(p, "rb"))
                form.add_field(part, opened[-1], filename=p.name,
                               content_type="application/octet-stream")
            return {"data": form, "_close": opened}

        return RenderJob.from_api(await self._json("POST", "/v1/renders", make=attempt_kwargs,
                                                   idempotency_key=req.idempotency_key))

    async def create_batch(self, renders: Iterable[dict], *,
                           idempotency_key: str | None = None) -> Batch:
        """Submit JSON renders ({"audio_url": ..., fields}) at once: all are created, or none."""
        items = [render_fields(**r) for r in renders]
        body = await self._json("POST", "/v1/renders/batch", json={"renders": items},
                                idempotency_key=idempotency_key or new_idempotency_key())
        return batch_of(body)

    async def get(self, job_id: str) -> RenderJob:
        return RenderJob.from_api(await self._json("GET", f"/v1/renders/{job_id}"))

    async def list(self, state: str | Iterable[str] | None = None, limit: int | None = None,
                   cursor: str | None = None) -> Page:
        """One page of your renders, newest first; pass `next_cursor` for the next."""
        return page_of(await self._json("GET", "/v1/renders",
                                        params=list_params(state, limit, cursor)))

    async def iter_renders(self, state: str | Iterable[str] | None = None,
                           page_size: int | None = None) -> AsyncIterator[RenderJob]:
        """Every render (of `state`), newest first, following cursors page by page."""
        cursor = None
        while True:
            page = await self.list(state=state, limit=page_size, cursor=cursor)
            for job in page.items:
                yield job
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def cancel(self, job_id: str) -> RenderJob:
        return RenderJob.from_api(await self._json("POST", f"/v1/renders/{job_id}/cancel",
                                                   replayable=True))

    async def wait_for_completion(self, job_id: str, timeout: float = 300.0, *,
                                  poll_interval: float = DEFAULT_POLL_INTERVAL_S,
                                  progress: bool | Callable[[RenderJob], Any] = False,
                                  stream: bool = True) -> RenderJob:
        """Follow the render until it ends. Raises RenderFailed (failed or canceled) or
        RenderTimeout. `progress=True` shows a progress bar; a callable (or coroutine
        function) gets each RenderJob seen. `stream=False` polls every `poll_interval`."""
        reporter = ProgressReporter(job_id, progress)
        seen: list[RenderJob] = []

        async def report(job: RenderJob) -> None:
            seen[:] = [job]
            result = reporter.update(job)
            if inspect.isawaitable(result):
                await result

        try:
            job = await asyncio.wait_for(self._follow(job_id, report, poll_interval, stream), timeout)
        except asyncio.TimeoutError:
            raise timed_out(job_id, seen[0].state if seen else "unseen", timeout) from None
        finally:
            reporter.close()
        return finished(job)

    async def download(self, job_id: str, path: str | os.PathLike,
                       artifact: str | None = None) -> Path:
        """Write the render's video, or another artifact ("poster", "timeline", "captions",
        or a file name), to `path`."""
        dest = Path(path)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".part")
        loop = asyncio.get_running_loop()
        resp = await self._send("GET", f"/v1/renders/{job_id}/download",
                                lambda: {"params": artifact_param(artifact)}, stream=True)
        try:
            with open(tmp, "wb") as fh:
                async for chunk in resp.content.iter_chunked(DOWNLOAD_CHUNK):
                    await loop.run_in_executor(None, fh.write, chunk)  # the loop never waits on disk
        finally:
            resp.release()
        tmp.replace(dest)  # a reader never sees half a file
        return dest

    # account and catalog -------------------------------------------------------
    async def get_usage(self, period: str | None = None) -> dict[str, Any]:
        return await self._json("GET", "/v1/usage", params={"period": period} if period else None)

    async def list_templates(self) -> list[dict]:
        return (await self._json("GET", "/v1/templates"))["templates"]

    async def list_characters(self) -> list[dict]:
        return (await self._json("GET", "/v1/characters"))["characters"]

    async def get_pricing(self) -> dict[str, Any]:
        return await self._json("GET", "/v1/pricing")

    async def health(self) -> dict[str, Any]:
        return await self._json("GET", "/health")

    # webhooks ----------------------------------------------------------------
    async def create_webhook(self, url: str, events: Iterable[str] | None = None,
                             description: str | None = None) -> dict[str, Any]:
        body = render_fields(url=url, events=None if events is None else [*events],
                             description=description)
        return await self._json("POST", "/v1/webhooks", json=body)

    async def list_webhooks(self) -> list[dict]:
        return (await self._json("GET", "/v1/webhooks"))["webhooks"]

    async def delete_webhook(self, webhook_id: str) -> None:
        await self._json("DELETE", f"/v1/webhooks/{webhook_id}")

    # plumbing ------------------------------------------------------------------
    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    close = aclose

    async def __aenter__(self) -> "AsyncToonzClient":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()

    def _http(self):
        if self._session is None or self._session.closed:
            aio = self._aio
            self._session = aio.ClientSession(
                connector=aio.TCPConnector(limit=self.max_connections),
                headers={"Authorization": f"Bearer {self.api_key}", "User-Agent": USER_AGENT},
                timeout=aio.ClientTimeout(total=None, sock_connect=self.timeout_s,
                                          sock_read=self.timeout_s))
        return self._session

    async def _json(self, method: str, path: str, *, json: Any = None, params: dict | None = None,
                    make: Callable[[], dict] | None = None, idempotency_key: str | None = None,
                    replayable: bool = False) -> Any:
        if make is None:
            def make() -> dict:
                return {"json": json, "params": params}
        resp = await self._send(method, path, make, idempotency_key=idempotency_key,
                                replayable=replayable)
        return await resp.json() if resp.content_length != 0 and resp.status != 204 else {}

    async def _send(self, method: str, path: str, make: Callable[[], dict], *,
                    idempotency_key: str | None = None, replayable: bool = False,
                    stream: bool = False, headers: dict | None = None,
                    read_timeout_s: float | None = None):
        """Send with retries (RetryPolicy): a successful response, its body read unless
        `stream` (then the caller releases it), or the typed error."""
        aio = self._aio
        headers = dict(headers or {})
        if idempotency_key:
            headers[IDEMPOTENCY_HEADER] = idempotency_key
        replayable = replayable or bool(idempotency_key) or method in REPLAYABLE_METHODS
        timeout = None if read_timeout_s is None else aio.ClientTimeout(
            total=None, sock_connect=self.timeout_s, sock_read=read_timeout_s)
        attempt, waited = 0, 0.0
        while True:
            attempt += 1
            kwargs = make()
            opened = kwargs.pop("_close", [])
            if timeout is not None:
                kwargs["timeout"] = timeout
            try:
                resp = await self._http().request(method, self.base_url + path, headers=headers,
                                                  **kwargs)
                if resp.status < 400:
                    if not stream:
                        await resp.read()  # inside the try: a body cut short is retried too
                    return resp
                content = await resp.read()
            except (aio.ClientConnectionError, aio.ClientPayloadError, asyncio.TimeoutError) as exc:
                wait = self.retry.delay(attempt, waited, None) if replayable else None
                if wait is None:
                    raise unreachable(self.base_url, exc, attempt) from exc
                reason = type(exc).__name__
            else:
                code = error_code(content)
                wait = None
                if retryable_status(resp.status, code, replayable):
                    wait = self.retry.delay(attempt, waited,
                                            parse_retry_after(resp.headers.get("Retry-After")))
                if wait is None:
                    raise error_from_answer(resp.status, content, resp.headers)
                reason = f"{resp.status} {code or ''}".strip()
            finally:
                for fh in opened:
                    fh.close()
            if self.on_retry is not None:
                self.on_retry(attempt, wait, reason)
            await asyncio.sleep(wait)
            waited += wait

    async def _follow(self, job_id: str, report, poll_interval: float, stream: bool) -> RenderJob:
        """The render's final RenderJob: from its event stream while there is one, else polled."""
        failures = 0
        parser = SSEParser()  # kept across reconnections: its last event id and retry delay
        while stream:
            try:
                job = await self._stream_once(job_id, report, parser)
            except _NoStream:
                break
            except (self._aio.ClientConnectionError, self._aio.ClientPayloadError,
                    asyncio.TimeoutError) as exc:
                # The stream broke (a scheduler restart): reconnect, then give up on streams.
                failures += 1
                wait = self.retry.delay(failures, 0.0, None)
                if wait is None:
                    break
                if self.on_retry is not None:
                    self.on_retry(failures, wait, f"stream: {type(exc).__name__}")
                await asyncio.sleep(wait)
                continue
            if job is not None:
                return job
            failures = 0
            # The stream ended early (its time was up, or the scheduler lost Redis): reconnect
            # after the delay the stream named, as a browser's EventSource would.
            await asyncio.sleep(parser.retry_s)
        while True:
            job = await self.get(job_id)
            await report(job)
            if job.done:
                return job
            await asyncio.sleep(poll_interval)

    async def _stream_once(self, job_id: str, report, parser: SSEParser) -> RenderJob | None:
        """Read one event stream to its end: the final job, or None if it ended first."""
        headers = {"Accept": "text/event-stream"}
        if parser.last_id:
            headers["Last-Event-ID"] = parser.last_id
        try:
            resp = await self._send("GET", f"/v1/renders/{job_id}/events", dict, stream=True,
                                    headers=headers,
                                    read_timeout_s=max(self.timeout_s, SSE_READ_TIMEOUT_S))
        except ToonzError as exc:
            if exc.status in _STREAM_STATUSES_WITHOUT_STREAM and exc.code != "job_not_found":
                raise _NoStream() from exc
            raise
        try:
            if resp.status == 204:  # it had ended and we saw its last event: read the record
                return await self._final(job_id, report)
            if resp.content_type != "text/event-stream":
                raise _NoStream()
            parser.reconnected()
            async for raw in resp.content:
                ev = parser.feed(raw.decode("utf-8", "replace"))
                if ev is None:
                    continue
                if ev.event == "progress":
                    await report(RenderJob.from_api(json.loads(ev.data)))
                elif ev.event == "done":
                    return await self._final(job_id, report)
                elif ev.event == "error":
                    break  # the scheduler lost Redis: reconnect
            return None
        finally:
            resp.release()

    async def _final(self, job_id: str, report) -> RenderJob:
        # The full record (artifacts, download_urls), which the events do not carry.
        job = await self.get(job_id)
        await report(job)
        return job
