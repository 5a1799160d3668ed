"""Reading renders and money: the list, the progress stream, downloads, usage, invoices,
pricing, and the template and character catalog with previews.

The real aiohttp app on a real Redis; jobs go through the farm's own Lua scripts
(tests.leasing.enqueue, farm.lease.LeaseClient) exactly as nodes drive them.
"""

from __future__ import annotations

import asyncio
import base64
import csv
import io
import json
import time
from types import SimpleNamespace

import pytest
from PIL import Image

from farm import keys
from farm.config import LeaseSettings, SchedulerConfig
from farm.lease import LeaseClient, month_of
from farm.presets import QUALITIES, TIER_LIMITS, TIER_ORDER, Tier
from farm.tenants import create_key
from scheduler import billing, listing, progress
from scheduler.app import create_app
from scheduler.catalog import CHARACTER_PREVIEW_SIZE, TEMPLATE_PREVIEW_SIZE
from scheduler.progress import PROGRESS_TIMING, ProgressTiming
from tests.leasing import enqueue
from tests.test_api import auth, expect_error, snapshot as _snapshot

ARTIFACTS = ["video.mp4", "timeline.json", "poster.png", "log.txt"]


def snapshot(ns) -> tuple:
    """What requests could change; the scheduler's own throughput sampling (a background
    loop, keys.THROUGHPUT*) writes on its clock, not on any request."""
    data, files = _snapshot(ns)
    prefix = getattr(keys, "THROUGHPUT", "\0").encode()
    return {k: v for k, v in data.items() if not k.startswith(prefix)}, files


@pytest.fixture
async def api(aiohttp_client, r, redis_url, tmp_path):
    """The app, tenant acme (pro) with its key, and tenant other with its key."""
    cfg = SchedulerConfig(redis_url=redis_url, data_dir=tmp_path / "data")
    ns = SimpleNamespace(r=r, cfg=cfg, key=create_key(r, "acme", "pro"),
                         other_key=create_key(r, "other", "pro"))
    ns.tenant = r.hget(keys.TENANT_NAMES, "acme").decode()
    ns.other = r.hget(keys.TENANT_NAMES, "other").decode()
    app = create_app(cfg)
    # The stream polls fast and beats often here, so the test waits on behaviour, not clocks.
    app[PROGRESS_TIMING] = ProgressTiming(poll_s=0.01, heartbeat_s=0.05)
    ns.client = await aiohttp_client(app)
    ns.node = LeaseClient(r, "n1", LeaseSettings(max_attempts=1))
    return ns


def submit(ns, tenant: str | None = None, **kw) -> str:
    return enqueue(ns.r, tier="pro", tenant=tenant or ns.tenant, **kw)


def finish(ns, outcome: str = "succeeded", artifacts: list[str] = ARTIFACTS) -> str:
    """A node leases the next job and ends it with `outcome`; its id."""
    lease = ns.node.lease()
    assert lease is not None
    if outcome == "succeeded":
        assert ns.node.complete(lease, artifacts) == "succeeded"
    else:
        ns.node.fail(lease, "boom")
    return lease.job_id


async def get_json(ns, path: str, key: str | None = None) -> dict:
    resp = await ns.client.get(path, headers=auth(key or ns.key))
    body = await resp.json()
    assert resp.status == 200, body
    return body


async def pages(ns, query: str = "", key: str | None = None, on_page=None) -> list[list[str]]:
    """Every page of GET /v1/renders?query, as lists of job ids."""
    out, cursor = [], None
    while True:
        sep = "&" if query else ""
        body = await get_json(ns, f"/v1/renders?{query}{sep}cursor={cursor}" if cursor
                              else f"/v1/renders?{query}", key)
        out.append([j["job_id"] for j in body["renders"]])
        if on_page:
            on_page(len(out))
        cursor = body["next_cursor"]
        if cursor is None:
            return out
        assert len(out) < 100, "pagination does not end"


# --- GET /v1/renders --------------------------------------------------------------------

async def test_pagination_is_stable_under_inserts(api):
    ns = api
    base = int(time.time() * 1000) - 100_000
    # Three renders share a created ms across the first page boundary: the id breaks the tie.
    created = [base + i * 10 for i in range(25)]
    created[14] = created[15] = created[16] = created[15]
    ids = [submit(ns, created_ms=ms) for ms in created]
    for i in range(5):
        submit(ns, tenant=ns.other, created_ms=base + i * 10 + 5)
    newest_first = [job_id for _, job_id in sorted(zip(created, ids), reverse=True)]
    inserted = []

    def insert_after_first_page(n: int) -> None:
        if n == 1:
            inserted.append(submit(ns))

    got = await pages(ns, "limit=10", on_page=insert_after_first_page)
    assert [len(p) for p in got] == [10, 10, 5]
    flat = [job_id for page in got for job_id in page]
    assert flat == newest_first  # no duplicate, no gap, the new render did not shift the pages
    first = await get_json(ns, "/v1/renders?limit=1")
    assert [j["job_id"] for j in first["renders"]] == inserted
    default = await get_json(ns, "/v1/renders")
    assert len(default["renders"]) == listing.LIST_DEFAULT_LIMIT
    job = default["renders"][0]
    assert job["state"] == "queued" and job["price_cents"] == 50 and "tenant" not in job


async def test_another_tenants_renders_are_never_listed(api):
    ns = api
    mine = {submit(ns) for _ in range(3)}
    theirs = {submit(ns, tenant=ns.other) for _ in range(4)}
    assert {j for p in await pages(ns) for j in p} == mine
    assert {j for p in await pages(ns, key=ns.other_key) for j in p} == theirs


async def test_state_filter(api):
    ns = api
    base = int(time.time() * 1000) - 100_000
    ids = [submit(ns, created_ms=base + i) for i in range(12)]  # leased oldest first
    done = [finish(ns) for _ in range(3)]
    failed = finish(ns, "failed")
    assert done == ids[:3] and failed == ids[3]
    canceled = ids[11]
    resp = await ns.client.post(f"/v1/renders/{canceled}/cancel", headers=auth(ns.key))
    assert (await resp.json())["state"] == "canceled"

    got = await pages(ns, "state=succeeded&limit=2")
    assert [len(p) for p in got] == [2, 1]
    assert [j for p in got for j in p] == done[::-1]
    body = await get_json(ns, "/v1/renders?state=succeeded")
    assert {j["state"] for j in body["renders"]} == {"succeeded"}
    assert [j for p in await pages(ns, "state=failed") for j in p] == [failed]
    assert [j for p in await pages(ns, "state=canceled,failed") for j in p] == [canceled, failed]
    queued = [j for p in await pages(ns, "state=queued&limit=3") for j in p]
    assert queued == ids[4:11][::-1]
    assert await pages(ns, "state=running") == [[]]


async def test_a_sparse_filter_scans_forward_and_never_stalls(api, monkeypatch):
    ns = api
    base = int(time.time() * 1000) - 100_000
    oldest = submit(ns, created_ms=base)
    for i in range(1, 13):
        submit(ns, created_ms=base + i)
    assert finish(ns) == oldest
    # One request scans past the 12 newer renders to fill the page.
    assert await pages(ns, "state=succeeded&limit=1") == [[oldest]]
    # With a scan cap below them, pages are short but the cursor moves on, to the match.
    monkeypatch.setattr(listing, "LIST_SCAN_CAP", 5)
    got = await pages(ns, "state=succeeded&limit=1")
    assert [j for p in got for j in p] == [oldest] and len(got) >= 3
    assert all(p == [] for p in got[:-1])


@pytest.mark.parametrize("query,code", [
    ("state=done", "invalid_state"), ("state=queued,nope", "invalid_state"),
    ("limit=0", "invalid_limit"), ("limit=101", "invalid_limit"), ("limit=-1", "invalid_limit"),
    ("limit=ten", "invalid_limit"), ("limit=1.5", "invalid_limit"),
    ("cursor=!!!", "invalid_cursor"), ("cursor=bm9wZQ", "invalid_cursor"),
    ("cursor=" + base64.urlsafe_b64encode(b"123:r_nothex").decode(), "invalid_cursor"),
    ("cursor=" + base64.urlsafe_b64encode(b"-5:r_0123456789abcdef").decode(), "invalid_cursor"),
])
async def test_bad_list_parameters(api, query, code):
    ns = api
    submit(ns)
    before = snapshot(ns)
    await expect_error(await ns.client.get(f"/v1/renders?{query}", headers=auth(ns.key)), 400, code)
    assert snapshot(ns) == before


async def test_listing_needs_a_key(api):
    await expect_error(await api.client.get("/v1/renders"), 401, "missing_api_key")


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


# --- downloads ------------------------------------------------------------------------

async def test_download_urls_name_the_artifacts_present(api):
    ns = api
    job_id = submit(ns)
    body = await get_json(ns, f"/v1/renders/{job_id}")
    assert "download_urls" not in body
    finish(ns)
    body = await get_json(ns, f"/v1/renders/{job_id}")
    base = f"/v1/renders/{job_id}/download"
    assert body["artifacts"] == ["video.mp4", "timeline.json", "poster.png"]
    assert body["download_urls"] == {"video": base, "poster": f"{base}?artifact=poster.png",
                                     "timeline": f"{base}?artifact=timeline.json"}
    store = ns.cfg.data_dir / "artifacts" / job_id
    store.mkdir(parents=True, exist_ok=True)
    (store / "poster.png").write_bytes(b"\x89PNG poster")
    resp = await ns.client.get(body["download_urls"]["poster"], headers=auth(ns.key))
    assert resp.status == 200 and resp.content_type == "image/png"
    assert await resp.read() == b"\x89PNG poster"
    for name in ("captions.vtt", "log.txt", "nothing.bin"):
        await expect_error(await ns.client.get(f"{base}?artifact={name}", headers=auth(ns.key)),
                           404, "artifact_not_found")

    with_captions = submit(ns)
    finish(ns, artifacts=["video.mp4", "poster.png", "captions.vtt"])
    body = await get_json(ns, f"/v1/renders/{with_captions}")
    assert set(body["download_urls"]) == {"video", "poster", "captions"}
    assert body["download_urls"]["captions"].endswith("?artifact=captions.vtt")


# --- usage, the ledger, invoices --------------------------------------------------------------

def ledger_of(ns) -> list:
    return ns.r.xrange(keys.ledger(ns.tenant))


async def test_usage_per_day_sums_to_the_totals(api):
    ns = api
    for price, seconds in ((10, 2.5), (50, 3.25), (100, 12.0)):
        submit(ns, price_cents=price, duration_s=seconds)
        job_id = finish(ns)
    usage = await get_json(ns, "/v1/usage")
    assert usage["renders_used"] == 3 and usage["cost_cents"] == 160 and usage["cost"] == 1.6
    assert usage["seconds_rendered"] == pytest.approx(17.75)
    assert usage["period"] == month_of() and usage["period_start"] == month_of() + "-01"
    assert usage["period_end"][:7] == month_of()
    days = usage["per_day"]
    assert [d["date"] for d in days] == sorted(d["date"] for d in days)
    assert days[0]["date"] == usage["period_start"]
    assert days[-1]["date"] == time.strftime("%Y-%m-%d", time.gmtime())
    assert sum(d["renders"] for d in days) == usage["renders_used"]
    assert sum(d["cost_cents"] for d in days) == usage["cost_cents"]
    assert sum(d["seconds"] for d in days) == pytest.approx(usage["seconds_rendered"])
    assert usage["renders_remaining"] == TIER_LIMITS[Tier.PRO].renders_per_month - 3
    entry = ledger_of(ns)[-1][1]
    assert entry[b"job"].decode() == job_id and entry[b"cost_cents"] == b"100"
    assert entry[b"quality"] == b"preview" and float(entry[b"seconds"]) == 12.0
    assert abs(int(entry[b"at"]) - time.time() * 1000) < 600_000  # whole ms, Redis's clock

    past = await get_json(ns, "/v1/usage?period=2020-02")
    assert past["renders_used"] == 0 and past["renders_in_progress"] == 0
    assert (past["period_start"], past["period_end"]) == ("2020-02-01", "2020-02-29")
    assert len(past["per_day"]) == 29 and not any(d["renders"] for d in past["per_day"])


@pytest.mark.parametrize("period", ["2024-13", "2024-00", "24-01", "2024-1", "2024/01",
                                    "abcd-ef", "2999-01", "1969-12"])
async def test_bad_period(api, period):
    ns = api
    before = snapshot(ns)
    await expect_error(await ns.client.get(f"/v1/usage?period={period}", headers=auth(ns.key)),
                       400, "invalid_period")
    if "/" not in period:  # (with one, the path names no invoice at all)
        await expect_error(await ns.client.get(f"/v1/invoices/{period}.csv", headers=auth(ns.key)),
                           400, "invalid_period")
    assert snapshot(ns) == before


async def test_canceled_and_failed_renders_are_not_charged(api):
    ns = api
    submit(ns, price_cents=50)
    finish(ns)  # one charge, so "unchanged" is not "empty"
    ledger_before = ledger_of(ns)
    usage_key = keys.usage(ns.tenant, month_of())
    usage_before = ns.r.hgetall(usage_key)

    queued = submit(ns)
    resp = await ns.client.post(f"/v1/renders/{queued}/cancel", headers=auth(ns.key))
    assert (await resp.json())["state"] == "canceled"
    submit(ns)
    failed = finish(ns, "failed")
    running = submit(ns)
    lease = ns.node.lease()
    ns.node.heartbeat(lease, 0.5)
    resp = await ns.client.post(f"/v1/renders/{running}/cancel", headers=auth(ns.key))
    assert (await resp.json())["state"] == "cancel_requested"
    assert ns.node.fail(lease, "stopped: canceled") == "canceled"  # the node stops as asked

    states = {j: (await get_json(ns, f"/v1/renders/{j}"))["state"] for j in (queued, failed, running)}
    assert states == {queued: "canceled", failed: "failed", running: "canceled"}
    assert ledger_of(ns) == ledger_before
    assert ns.r.hgetall(usage_key) == usage_before
    usage = await get_json(ns, "/v1/usage")
    assert usage["renders_used"] == 1 and sum(d["renders"] for d in usage["per_day"]) == 1


async def test_invoice_csv_matches_usage(api, monkeypatch):
    ns = api
    monkeypatch.setattr(billing, "LEDGER_PAGE", 2)  # five charges: three pages
    charged = []
    for price in (10, 50, 100, 500, 50):
        submit(ns, price_cents=price, duration_s=1.5)
        charged.append(finish(ns))
    submit(ns)
    finish(ns, "failed")
    usage = await get_json(ns, "/v1/usage")

    invoices = (await get_json(ns, "/v1/invoices"))["invoices"]
    assert invoices == [{"period": month_of(), "renders": 5, "seconds": 7.5, "cost": 7.1,
                         "cost_cents": 710, "currency": "USD",
                         "url": f"/v1/invoices/{month_of()}.csv"}]
    resp = await ns.client.get(invoices[0]["url"], headers=auth(ns.key))
    assert resp.status == 200 and resp.content_type == "text/csv"
    assert "attachment" in resp.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(await resp.text())))
    assert tuple(rows[0]) == billing.INVOICE_COLUMNS
    body, total = rows[1:-1], rows[-1]
    assert [row[1] for row in body] == charged
    assert {row[0] for row in body} == {time.strftime("%Y-%m-%d", time.gmtime())}
    assert [row[4] for row in body] == ["0.10", "0.50", "1.00", "5.00", "0.50"]
    assert total[0] == "total" and float(total[4]) == usage["cost"] == 7.1
    assert float(total[3]) == pytest.approx(usage["seconds_rendered"])

    empty = await ns.client.get("/v1/invoices/2020-01.csv", headers=auth(ns.key))
    rows = list(csv.reader(io.StringIO(await empty.text())))
    assert empty.status == 200 and rows == [list(billing.INVOICE_COLUMNS),
                                            ["total", "0 renders", "", "0.000", "0.00"]]
    theirs = (await get_json(ns, "/v1/invoices", key=ns.other_key))["invoices"]
    assert theirs == []
    resp = await ns.client.get(invoices[0]["url"], headers=auth(ns.other_key))
    assert len(list(csv.reader(io.StringIO(await resp.text())))) == 2  # header and a zero total
    await expect_error(await ns.client.get("/v1/invoices"), 401, "missing_api_key")


# --- pricing and the catalog --------------------------------------------------------------------

async def test_pricing_is_public_and_complete(api):
    resp = await api.client.get("/v1/pricing")
    body = await resp.json()
    assert resp.status == 200 and body["currency"] == "USD"
    assert {q["name"]: q["price_cents"] for q in body["qualities"]} == {
        name: q.price_cents for name, q in QUALITIES.items()}
    hd = next(q for q in body["qualities"] if q["name"] == "hd")
    assert (hd["width"], hd["height"], hd["fps"], hd["price"]) == (1920, 1080, 30, 1.0)
    assert [t["name"] for t in body["tiers"]] == [t.value for t in TIER_ORDER]
    assert [t["priority"] for t in body["tiers"]] == [1, 2, 3, 4]
    free = body["tiers"][-1]
    assert (free["renders_per_month"], free["max_audio_s"]) == (10, 60.0)
    assert body["tiers"][0]["renders_per_month"] is None


async def test_templates_and_characters_with_previews(api):
    ns = api
    templates = (await (await ns.client.get("/v1/templates")).json())["templates"]
    explainer = next(t for t in templates if t["name"] == "explainer")
    assert explainer["display_name"] == "Explainer" and explainer["aspect"] == "16:9"
    assert explainer["sizes"]["hd"] == "1920x1080"
    characters = (await (await ns.client.get("/v1/characters")).json())["characters"]
    toonz = next(c for c in characters if c["name"] == "toonz")
    assert toonz["display_name"] == "Toonz"

    for item, size in ((explainer, TEMPLATE_PREVIEW_SIZE), (toonz, CHARACTER_PREVIEW_SIZE)):
        first = await ns.client.get(item["preview_url"])
        png = await first.read()
        assert first.status == 200 and first.content_type == "image/png"
        image = Image.open(io.BytesIO(png))
        assert image.format == "PNG" and image.size == size
        colours = image.convert("RGB").getcolors(maxcolors=size[0] * size[1])
        assert len(colours) > 50  # drawn art, not a blank card
        again = await ns.client.get(item["preview_url"])
        assert await again.read() == png
    cached = sorted(p.name for p in (ns.cfg.data_dir / "previews").iterdir())
    assert len(cached) == 2 and cached[0].startswith("character-toonz-")


async def test_template_preview_shows_the_character_in_its_spot(api):
    """The character stands right of the panel: the right half differs from the backdrop."""
    ns = api
    png = await (await ns.client.get("/v1/templates/explainer/preview.png")).read()
    image = Image.open(io.BytesIO(png)).convert("RGB")
    w, h = image.size
    skin_or_suit = [image.getpixel((x, y)) for x in range(int(w * 0.7), int(w * 0.9), 4)
                    for y in range(int(h * 0.3), int(h * 0.9), 4)]
    # The background is pale blue-white; the figure brings dark and saturated colours.
    assert sum(1 for r, g, b in skin_or_suit if min(r, g, b) < 120) > 20


@pytest.mark.parametrize("path,code", [
    ("/v1/templates/nope/preview.png", "unknown_template"),
    ("/v1/templates/..%2Fexplainer/preview.png", "unknown_template"),
    ("/v1/templates/EXPLAINER/preview.png", "unknown_template"),
    ("/v1/characters/nobody/preview.png", "unknown_character"),
    ("/v1/characters/toonz%00/preview.png", "unknown_character"),
])
async def test_unknown_preview_is_404(api, path, code):
    ns = api
    before = snapshot(ns)
    await expect_error(await ns.client.get(path), 404, code)
    assert snapshot(ns) == before
