"""Listing renders (GET /v1/renders: pages, filters, tenants), their download URLs, and
the template and character catalog with previews; real app, real Redis, the farm's Lua."""

from __future__ import annotations

import base64
import io
import time

import pytest
from PIL import Image

from farm import keys
from scheduler import listing
from scheduler.catalog import CHARACTER_PREVIEW_SIZE, TEMPLATE_PREVIEW_SIZE
from tests.readtools import finish, get_json, reading_api, snapshot, submit
from tests.test_api import auth, expect_error


@pytest.fixture
async def api(aiohttp_client, r, redis_url, tmp_path):
    """tests.readtools.reading_api: the app, tenants acme and other with their keys, a node."""
    return await reading_api(aiohttp_client, r, redis_url, tmp_path)


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
    # submit.lua now moves a tenant's later job in the same ms one ms on (so that a
    # batch keeps its order); lists written before it hold such ties: made here by hand.
    ns.r.zadd(keys.tenant_jobs(ns.tenant), {ids[15]: created[15], ids[16]: created[16]})
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


# --- the catalog ----------------------------------------------------------------------------


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
