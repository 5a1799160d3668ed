"""GET /v1/renders/{id}/events: a render's progress as Server-Sent Events.

The view polls the job's hash every `poll_s`: nothing to subscribe to, so a
scheduler restart only drops the connection and the client reconnects. Events:

    event: progress   a change of state or progress; data {job_id, state, progress,
                      attempts, error}
    event: done       the terminal state (data as above, plus download_url when it
                      succeeded); then the stream ends
    : keepalive       a comment every `heartbeat_s`, so proxies keep the stream open

Every event's id is "<state>:<progress>". A client that reconnects with
`Last-Event-ID` is not sent that event again; one that has seen `done` gets 204,
which tells a browser's EventSource to stop reconnecting.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

import redis
from aiohttp import web

from farm import keys
from farm.jobs import JobState
from scheduler.auth import principal
from scheduler.context import REDIS
from scheduler.renders import _own_job


@dataclass(frozen=True)
class ProgressTiming:
    poll_s: float = 0.5  # how often the job's hash is read
    heartbeat_s: float = 15.0  # a comment this often when nothing changed (proxies idle out at 30-60 s)
    max_stream_s: float = 3600.0  # then the stream ends and the client reconnects: no connection lives forever
    retry_ms: int = 2000  # the reconnection delay the client is told


PROGRESS_TIMING = web.AppKey("progress_timing", ProgressTiming)  # optional; defaults above
_FIELDS = ("state", "progress", "attempts", "error")
_open = 0  # streams being served by this process


def open_streams() -> int:
    """How many progress streams this process is serving now."""
    return _open


async def render_events(request: web.Request) -> web.StreamResponse:
    who = await principal(request)
    job = await _own_job(request, who.tenant_id)  # another tenant's job: a JSON 404, not a stream
    r = request.app[REDIS]
    seen = request.headers.get("Last-Event-ID", "")[:64]
    first = await _snapshot(r, job.id)
    if first is not None and first[0] == seen and JobState(first[1]["state"]).terminal:
        return web.Response(status=204)
    resp = web.StreamResponse(headers={
        "Content-Type": "text/event-stream", "Cache-Control": "no-cache",
        "X-Accel-Buffering": "no"})  # nginx would otherwise buffer the stream
    await resp.prepare(request)
    global _open
    _open += 1
    try:
        await _stream(request, resp, r, job.id, first, seen,
                      request.app.get(PROGRESS_TIMING) or ProgressTiming())
    finally:
        _open -= 1
    return resp


async def _stream(request: web.Request, resp: web.StreamResponse, r, job_id: str,
                  first: tuple[str, dict] | None, seen: str, timing: ProgressTiming) -> None:
    """Write events until the job ends, the client leaves or the stream's time is up."""
    loop = asyncio.get_running_loop()
    started = last_write = loop.time()
    try:
        await resp.write(f"retry: {timing.retry_ms}\n\n".encode())
        snap = first
        while snap is not None and not _gone(request):
            event_id, data = snap
            if JobState(data["state"]).terminal:
                if data["state"] == JobState.SUCCEEDED.value:
                    data["download_url"] = f"/v1/renders/{job_id}/download"
                await resp.write(_event("done", event_id, data))
                break
            now = loop.time()
            if event_id != seen:
                await resp.write(_event("progress", event_id, data))
                seen, last_write = event_id, now
            elif now - last_write >= timing.heartbeat_s:
                await resp.write(b": keepalive\n\n")
                last_write = now
            if now - started >= timing.max_stream_s:
                break
            await asyncio.sleep(timing.poll_s)
            snap = await _snapshot(r, job_id)
    except ConnectionResetError:  # the client went away mid-write
        return
    except (redis.ConnectionError, redis.TimeoutError):
        # Headers are sent: the error middleware cannot answer JSON any more.
        await _try_write(resp, _event("error", "", {
            "code": "unavailable", "message": "the farm's database is unreachable; reconnect shortly"}))
    await _try_write_eof(resp)


async def _snapshot(r, job_id: str) -> tuple[str, dict] | None:
    """(event id, event data) of the job now; None if its record is gone."""
    state, progress, attempts, error = await r.hmget(keys.job(job_id), *_FIELDS)
    if state is None:
        return None
    prog = round(float(progress or 0), 4)
    data = {"job_id": job_id, "state": state.decode(), "progress": prog,
            "attempts": int(attempts or 0), "error": (error or b"").decode() or None}
    return f"{data['state']}:{prog:.4f}", data


def _event(name: str, event_id: str, data: dict) -> bytes:
    return f"event: {name}\nid: {event_id}\ndata: {json.dumps(data)}\n\n".encode()


def _gone(request: web.Request) -> bool:
    """The client disconnected (aiohttp does not cancel the handler for it)."""
    return request.transport is None or request.transport.is_closing()


async def _try_write(resp: web.StreamResponse, data: bytes) -> None:
    try:
        await resp.write(data)
    except ConnectionResetError:
        pass


async def _try_write_eof(resp: web.StreamResponse) -> None:
    try:
        await resp.write_eof()
    except ConnectionResetError:
        pass
