"""No drift between the API and its description, /openapi.json (scheduler/openapi.json):
every route described and served, the farm's own enums, the /docs page, past findings fixed."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
from aiohttp import web

from farm.audio import silent_wav
from farm.config import SchedulerConfig
from farm.jobs import JobState
from farm.presets import FORMATS, QUALITIES, Tier
from farm.tenants import create_key
from farm.webhooks import EVENT_TYPES
from scheduler import docs
from scheduler.app import create_app
from tests.cdp import CHROMIUM, Browser, chromium_available
from tests.conftest import REPO
from tests.openapitools import METHODS, bearer
from tests.test_api import snapshot


# Not described: the nodes' fenced upload API (internal) and the static files of two pages.
UNDESCRIBED = re.compile(r"^/v1/node/|^/console|^/docs/")


# --- no drift -----------------------------------------------------------------------------

def _sample(path: str) -> str:
    """A concrete URL path for a described path: each {parameter} filled in."""
    return re.sub(r"\{[^}]+\}", "x1", path)


def served_routes(app: web.Application) -> list[tuple[str, str, re.Pattern]]:
    """(method, path template, pattern) of every described-or-not route but HEAD."""
    out = []
    for route in app.router.routes():
        if route.method == "HEAD":
            continue
        info = route.resource.get_info()
        template = info.get("formatter") or info.get("path") or ""
        pattern = info.get("pattern") or re.compile(re.escape(info["path"]))
        out.append((route.method.lower(), template, pattern))
    return out


def test_every_route_is_described_and_every_description_is_served(tmp_path):
    spec = docs.spec()
    described = [(m, p) for p, item in spec["paths"].items() for m in item if m in METHODS]
    routes = served_routes(create_app(SchedulerConfig(data_dir=tmp_path)))

    undescribed = [f"{m.upper()} {t}" for m, t, pattern in routes if not UNDESCRIBED.match(t)
                   and not any(dm == m and pattern.fullmatch(_sample(dp)) for dm, dp in described)]
    assert not undescribed, f"routes missing from scheduler/openapi.json: {undescribed}"
    unserved = [f"{m.upper()} {p}" for m, p in described
                if not any(rm == m and pattern.fullmatch(_sample(p)) for rm, _, pattern in routes)]
    assert not unserved, f"described but not served: {unserved}"
    ids = [op["operationId"] for item in spec["paths"].values() for m, op in item.items() if m in METHODS]
    assert len(ids) == len(set(ids)) == len(described)
    for item in spec["paths"].values():
        for m, op in item.items():
            if m in METHODS:
                assert op.get("tags") and op.get("summary") and op.get("responses"), op["operationId"]


def test_enums_are_the_farms_own_lists():
    s = docs.spec()["components"]["schemas"]
    assert s["Quality"]["enum"] == list(QUALITIES)
    assert s["Format"]["enum"] == list(FORMATS)
    assert sorted(s["TierName"]["enum"]) == sorted(t.value for t in Tier)
    assert s["RenderState"]["enum"] == [st.value for st in JobState]
    assert s["EventType"]["enum"] == list(EVENT_TYPES)


async def test_the_description_and_the_page_are_served(aiohttp_client, redis_url, tmp_path):
    client = await aiohttp_client(create_app(SchedulerConfig(redis_url=redis_url, data_dir=tmp_path)))
    resp = await client.get("/openapi.json")
    assert resp.status == 200 and resp.content_type == "application/json"
    assert await resp.json() == docs.spec()
    page = await client.get("/docs")
    assert page.status == 200 and page.content_type == "text/html"
    html = await page.text()
    for name, ctype in (("docs.js", "application/javascript"), ("docs.css", "text/css")):
        assert f"/docs/{name}" in html
        asset = await client.get(f"/docs/{name}")
        assert asset.status == 200 and asset.content_type == ctype
    missing = await client.get("/docs/console.js")  # a static file, but not one of the page's
    assert missing.status == 404
    assert (await missing.json())["error"]["code"] == "not_found"


@pytest.mark.skipif(not chromium_available(), reason=f"{CHROMIUM} is absent (scripts/setup.sh installs it)")
async def test_the_reference_page_draws_every_operation(aiohttp_server, redis_url, tmp_path):
    """/docs in headless Chromium: a section per operation with its curl example, the error
    codes' index, a working filter, no script error. The screenshot lands in out/."""
    server = await aiohttp_server(create_app(SchedulerConfig(redis_url=redis_url, data_dir=tmp_path / "data")))
    spec = docs.spec()
    operations = sum(m in METHODS for item in spec["paths"].values() for m in item)
    async with Browser(tmp_path / "chromium") as b:
        await b.navigate(str(server.make_url("/docs")))
        await b.wait_for("document.querySelectorAll('#content section.op h3').length > 0", 30, "the reference")
        assert await b.evaluate("document.querySelectorAll('#content section.op h3').length") == operations
        assert await b.evaluate("document.querySelectorAll('#content section.op .curl pre').length") == operations
        assert await b.evaluate("document.querySelectorAll('#toc a.entry').length") == operations
        codes = await b.evaluate("[...document.querySelectorAll('#errors table.codes td:first-child')].map(td => td.innerText)")
        assert {"quota_exceeded", "rate_limited", "job_not_found", "invalid_api_key"} <= set(codes)
        curl = await b.evaluate("document.querySelector('#createRender .curl pre').innerText")
        assert "/v1/renders" in curl and "-F audio=@" in curl and "Idempotency-Key" in curl
        await b.evaluate("(() => { const f = document.getElementById('filter'); f.value = 'invoices';"
                         " f.dispatchEvent(new Event('input')); })()")
        shown = await b.evaluate("[...document.querySelectorAll('#toc a.entry')].filter(a => a.offsetParent)"
                                 ".map(a => a.innerText)")
        assert shown and all("invoices" in s for s in shown)
        await b.screenshot(REPO / "out" / "docs-screenshots" / "docs.png")
        assert b.console == []


async def test_what_schemathesis_found_stays_fixed(aiohttp_client, r, redis_url, tmp_path):
    """A multipart part whose headers cannot be parsed was a 500 (now 400 malformed_request);
    an admin's cancel of a render that does not exist said it had ended (now 404). Nothing
    is stored either way."""
    ns = SimpleNamespace(r=r, cfg=SchedulerConfig(redis_url=redis_url, data_dir=tmp_path / "data"))
    client = await aiohttp_client(create_app(ns.cfg))
    key, admin_key = create_key(r, "acme", "pro"), create_key(r, "ops", "enterprise", role="admin")
    before = snapshot(ns)
    body = (b"--b0\r\nContent-Disposition: form-data; name=\"\xf1\xa3\x1a\"\r\n\r\n{}\r\n"
            b"--b0\r\nContent-Disposition: form-data; name=\"audio\"; filename=\"a.wav\"\r\n\r\n"
            + silent_wav(0.5) + b"\r\n--b0--\r\n")
    resp = await client.post("/v1/renders", data=body, headers={
        **bearer(key), "Content-Type": "multipart/form-data; boundary=b0"})
    got = await resp.json()
    assert resp.status == 400 and got["error"]["code"] == "malformed_request", got
    resp = await client.post("/v1/admin/jobs/r_0000000000000000/cancel", headers=bearer(admin_key))
    got = await resp.json()
    assert resp.status == 404 and got["error"]["code"] == "job_not_found", got
    assert snapshot(ns) == before
