"""The progress stream, GET /v1/renders/{id}/events (SSE): a render followed to its end,
a canceled one, a client that leaves, another tenant's; real app, real Redis, the farm's Lua."""

from __future__ import annotations

import asyncio
import json

import pytest

from scheduler import progress
from tests.readtools import ARTIFACTS, reading_api, submit
from tests.test_api import auth, expect_error


@pytest.fixture
async def api(aiohttp_client, r, redis_url, tmp_path):
    """tests.readtools.reading_api: the app, tenants acme and other with their keys, a node."""
    return await reading_api(aiohttp_client, r, redis_url, tmp_path)


# --- GET /v1/renders/{id}/events ----------------------------------------------------------

class EventReader:
    """Reads a text/event-stream response one event (or comment) at a time."""

    def __init__(self, resp) -> None:
        self.resp = resp
        self.ids: list[str] = []

    async def next(self) -> dict:
        fields: dict = {}
        while True:
            line = (await self.resp.content.readline()).decode()
            if line == "":
                return {"eof": True}
            line = line.rstrip("\n")
            if line == "":
                if fields:
                    return fields
                continue
            if line.startswith(":"):
                return {"comment": line[1:].strip()}
            name, _, value = line.partition(": ")
            fields[name] = json.loads(value) if name == "data" else value

    async def until(self, predicate) -> dict:
        while True:
            ev = await self.next()
            assert not ev.get("eof"), "the stream ended early"
            if "event" in ev:
                self.ids.append(ev["id"])
            if predicate(ev):
                return ev


def is_state(state: str, progress: float | None = None):
    def match(ev: dict) -> bool:
        data = ev.get("data") or {}
        return data.get("state") == state and (progress is None or data["progress"] == progress)
    return match


async def test_progress_stream_follows_a_render_to_the_end(api):
    ns = api
    job_id = submit(ns)
    resp = await ns.client.get(f"/v1/renders/{job_id}/events", headers=auth(ns.key))
    assert resp.status == 200 and resp.content_type == "text/event-stream"
    events = EventReader(resp)
    first = await events.until(lambda ev: "event" in ev)
    assert first["event"] == "progress" and first["data"]["state"] == "queued"
    assert first["data"]["progress"] == 0 and first["data"]["job_id"] == job_id
    # Nothing changes: the stream keeps itself open with comments.
    assert (await events.until(lambda ev: "comment" in ev))["comment"] == "keepalive"

    lease = ns.node.lease()
    await events.until(is_state("leased"))
    ns.node.heartbeat(lease, 0.25)
    running = await events.until(is_state("running", 0.25))
    assert running["event"] == "progress"
    ns.node.heartbeat(lease, 0.5)
    await events.until(is_state("running", 0.5))
    ns.node.complete(lease, ARTIFACTS)
    done = await events.until(lambda ev: ev.get("event") == "done")
    assert done["data"]["state"] == "succeeded" and done["data"]["progress"] == 1
    assert done["data"]["download_url"] == f"/v1/renders/{job_id}/download"
    assert (await events.next()) == {"eof": True}
    assert len(events.ids) == len(set(events.ids))  # one event per change

    # Reconnecting after the end: 204, which stops a browser's EventSource.
    again = await ns.client.get(f"/v1/renders/{job_id}/events",
                                headers={**auth(ns.key), "Last-Event-ID": done["id"]})
    assert again.status == 204
    # Without it, a finished render's stream is its final event.
    late = EventReader(await ns.client.get(f"/v1/renders/{job_id}/events", headers=auth(ns.key)))
    assert (await late.until(lambda ev: "event" in ev))["event"] == "done"
    assert (await late.next()) == {"eof": True}


async def test_progress_stream_of_a_canceled_render_ends(api):
    ns = api
    job_id = submit(ns)
    events = EventReader(await ns.client.get(f"/v1/renders/{job_id}/events", headers=auth(ns.key)))
    await events.until(is_state("queued"))
    await ns.client.post(f"/v1/renders/{job_id}/cancel", headers=auth(ns.key))
    done = await events.until(lambda ev: ev.get("event") == "done")
    assert done["data"]["state"] == "canceled" and "download_url" not in done["data"]
    assert (await events.next()) == {"eof": True}


async def test_progress_stream_stops_when_the_client_leaves(api):
    ns = api
    job_id = submit(ns)

    resp = await ns.client.get(f"/v1/renders/{job_id}/events", headers=auth(ns.key))
    await EventReader(resp).until(is_state("queued"))
    assert progress.open_streams() == 1
    resp.close()
    while progress.open_streams():  # the view notices at its next poll and returns
        await asyncio.sleep(0.01)


async def test_progress_stream_of_another_tenants_render_is_404(api):
    ns = api
    job_id = submit(ns)
    for key in (ns.other_key, ns.key):
        path = f"/v1/renders/{job_id if key == ns.other_key else 'r_0000000000000000'}/events"
        resp = await ns.client.get(path, headers=auth(key))
        assert resp.content_type == "application/json"
        await expect_error(resp, 404, "job_not_found")
    await expect_error(await ns.client.get(f"/v1/renders/{job_id}/events"), 401, "missing_api_key")
