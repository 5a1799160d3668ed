"""Webhooks end to end: the real aiohttp app on a real Redis, delivering to a local
aiohttp receiver (127.0.0.1, allow-listed where a test needs it).

Where a test says "exactly once" or "nothing else", it proves it from the farm's own
state: no delivery is scheduled (keys.WEBHOOK_DUE empty) and every event was fanned
out and acknowledged (the consumer group has read the stream's last entry and holds
nothing pending) — so nothing more can be sent.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import replace
from types import SimpleNamespace

import pytest
from aiohttp import web

from farm.audio import silent_wav
from farm import keys
from farm.config import Limits, LeaseSettings, SchedulerConfig, WebhookSettings
from farm.errors import InvalidInput
from farm.lease import LeaseClient
from farm.tenants import create_key
from farm.webhooks import BACKOFF_FACTORS, MAX_ATTEMPTS, retry_delay, sign, verify_webhook
from scheduler import urlcheck
from scheduler.dispatch import GROUP
from scheduler.webhooks import MAX_WEBHOOKS_PER_TENANT
from tests.test_api import auth, expect_error, form, snapshot

ALLOW_LOCAL = Limits(url_allowlist=("127.0.0.1",))
FAST = WebhookSettings(timeout_s=5.0, backoff_base_s=0.05, poll_s=0.05)


def assert_unchanged(ns, before: tuple) -> None:
    after = snapshot(ns)
    changed = sorted(k for k in before[0].keys() | after[0].keys() if before[0].get(k) != after[0].get(k))
    assert changed == [] and after[1] == before[1]


@pytest.fixture
async def receiver(aiohttp_server):
    """A webhook receiver: records every request; answers rec.statuses in turn, then 200."""
    rec = SimpleNamespace(requests=[], statuses=[], hang=asyncio.Event())

    async def handle(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        rec.requests.append(SimpleNamespace(path=request.path, headers=request.headers, body=body,
                                            json=json.loads(body)))
        if request.path == "/redirect":
            raise web.HTTPFound("/moved")
        if request.path == "/hang":
            await rec.hang.wait()  # never set: the farm must time out
        return web.Response(status=rec.statuses.pop(0) if rec.statuses else 200)

    app = web.Application()
    app.router.add_post("/{name}", handle)
    server = await aiohttp_server(app)
    rec.url = lambda name="hook": str(server.make_url(f"/{name}"))
    rec.at = lambda name="hook": [q for q in rec.requests if q.path == f"/{name}"]
    yield rec
    rec.hang.set()  # let a hung handler end before the server shuts down


@pytest.fixture
async def farm(api):
    """`api` with loopback allowed for the receiver and a fast retry schedule."""
    api.cfg = replace(api.cfg, limits=ALLOW_LOCAL, webhooks=FAST)
    return api


async def eventually(check, timeout_s: float = 15.0):
    """Wait until `check()` (plain or async) is truthy: the farm works in the background."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        assert time.monotonic() < deadline, "the farm did not get there in time"
        await asyncio.sleep(0.02)


def settled(ns) -> bool:
    """Every event fanned out and acknowledged, and no delivery left to make."""
    if ns.r.zcard(keys.WEBHOOK_DUE):
        return False
    last = ns.r.xinfo_stream(keys.EVENTS)["last-generated-id"]
    group = next(g for g in ns.r.xinfo_groups(keys.EVENTS) if g["name"] == GROUP.encode())
    return group["pending"] == 0 and group["last-delivered-id"] == last


async def register(ns, url: str, key: str | None = None, **fields) -> dict:
    resp = await ns.client.post("/v1/webhooks", json={"url": url, **fields}, headers=auth(key or ns.key))
    body = await resp.json()
    assert resp.status == 201, body
    return body


async def deliveries(ns, webhook_id: str) -> list[dict]:
    resp = await ns.client.get(f"/v1/webhooks/{webhook_id}/deliveries", headers=auth(ns.key))
    assert resp.status == 200
    return (await resp.json())["deliveries"]


async def logged(ns, webhook_id: str, n: int) -> list[dict] | None:
    """The endpoint's delivery log once it holds `n` attempts."""
    log = await deliveries(ns, webhook_id)
    return log if len(log) >= n else None


async def submit(ns, **fields) -> str:
    resp = await ns.client.post("/v1/renders", data=form(silent_wav(1), **fields), headers=auth(ns.key))
    body = await resp.json()
    assert resp.status == 202, body
    return body["job_id"]


def finish(ns, job_id: str, ok: bool = True) -> None:
    """A node leases the job and completes (or fails) it: its last attempt."""
    node = LeaseClient(ns.r, "n1", LeaseSettings(max_attempts=1))
    lease = node.lease()
    assert lease.job_id == job_id
    assert (node.complete(lease, ["video.mp4"]) if ok else node.fail(lease, "boom")) == \
        ("succeeded" if ok else "failed")


def check_signed(req, secret: str) -> None:
    assert req.headers["Content-Type"] == "application/json"
    assert req.headers["Toonz-Event-Id"] == req.json["id"]
    assert verify_webhook(req.headers["Toonz-Signature"], req.body, secret)


# --- signatures (the SDK's half) -------------------------------------------------------

def test_verify_webhook_accepts_only_the_signed_body_in_time():
    body, secret = b'{"id":"evt_1","type":"ping"}', "whsec_test"
    header = sign(secret, body, timestamp=1_700_000_000)
    assert verify_webhook(header, body, secret, now=1_700_000_100)
    assert verify_webhook(header, body.decode(), secret, now=1_700_000_100)  # str body too
    assert not verify_webhook(header, body + b" ", secret, now=1_700_000_100)      # tampered body
    assert not verify_webhook(header, body, "whsec_other", now=1_700_000_100)      # other secret
    assert not verify_webhook(header, body, secret, now=1_700_000_301)             # too old
    assert not verify_webhook(header, body, secret, now=1_699_999_699)             # from the future
    assert verify_webhook(header, body, secret, tolerance_s=600, now=1_700_000_500)
    forged = header.replace("t=1700000000", "t=1700000100")                        # moved timestamp
    assert not verify_webhook(forged, body, secret, now=1_700_000_100)
    rotated = f"{header},v1={'0' * 64}"                                             # two v1 values
    assert verify_webhook(rotated, body, secret, now=1_700_000_100)
    for bad in ("", "t=abc,v1=00", f"v1={header.split('v1=')[1]}", "t=1700000000", "t=1,v1=é",
                "garbage"):
        assert not verify_webhook(bad, body, secret, now=1_700_000_100)
    assert not verify_webhook(header, body, "", now=1_700_000_100)


def test_retry_schedule():
    assert [retry_delay(n, 5.0) for n in range(1, MAX_ATTEMPTS + 1)] == [5, 30, 120, 600, 3600, None]
    assert MAX_ATTEMPTS == len(BACKOFF_FACTORS) + 1


def test_url_rules_and_allowlist():
    import ipaddress as ip
    for addr in ("127.0.0.1", "10.0.0.1", "169.254.169.254", "192.168.1.1", "100.64.0.1", "0.0.0.0",
                 "224.0.0.1", "240.0.0.1", "::1", "fe80::1", "fc00::1", "::ffff:127.0.0.1"):
        assert not urlcheck.is_public(ip.ip_address(addr)), addr
    for addr in ("93.184.216.34", "8.8.8.8", "2606:4700:4700::1111"):
        assert urlcheck.is_public(ip.ip_address(addr)), addr
    lim = Limits(url_allowlist=("10.0.0.0/8", "hooks.internal"))
    assert urlcheck.allowed("x", ip.ip_address("10.1.2.3"), lim)
    assert not urlcheck.allowed("x", ip.ip_address("127.0.0.1"), lim)
    assert urlcheck.allowed("HOOKS.internal.", ip.ip_address("127.0.0.1"), lim)
    with pytest.raises(InvalidInput) as err:
        urlcheck.allowed("x", ip.ip_address("127.0.0.1"), Limits(url_allowlist=("10.0.0.0/33",)))
    assert err.value.code == "invalid_config"


def test_config_from_env():
    cfg = SchedulerConfig.from_env({"TOONZ_URL_ALLOWLIST": " 127.0.0.1, hooks.internal ,",
                                    "TOONZ_WEBHOOK_BACKOFF_BASE_S": "0.5", "TOONZ_WEBHOOK_TIMEOUT_S": "3"})
    assert cfg.limits.url_allowlist == ("127.0.0.1", "hooks.internal")
    assert cfg.webhooks == WebhookSettings(timeout_s=3.0, backoff_base_s=0.5)
    assert SchedulerConfig.from_env({}).webhooks == WebhookSettings()
    for env in ({"TOONZ_WEBHOOK_BACKOFF_BASE_S": "0"}, {"TOONZ_WEBHOOK_TIMEOUT_S": "soon"}):
        with pytest.raises(InvalidInput) as err:
            SchedulerConfig.from_env(env)
        assert err.value.code == "invalid_config"


# --- endpoints --------------------------------------------------------------------------

async def test_register_list_delete_and_the_secret_is_shown_once(farm, receiver):
    ns = await farm.make()
    made = await register(ns, receiver.url(), description="production")
    assert made["id"].startswith("wh_") and made["secret"].startswith("whsec_")
    assert made["events"] == ["render.succeeded", "render.failed", "render.canceled"]
    assert made["url"] == receiver.url() and made["description"] == "production"
    only = await register(ns, receiver.url("b"), events=["render.failed", "render.failed"])
    assert only["events"] == ["render.failed"]
    listed = (await (await ns.client.get("/v1/webhooks", headers=auth(ns.key))).json())["webhooks"]
    assert [w["id"] for w in listed] == [made["id"], only["id"]]
    assert all("secret" not in w for w in listed) and made["secret"] not in json.dumps(listed)
    resp = await ns.client.delete(f"/v1/webhooks/{made['id']}", headers=auth(ns.key))
    assert resp.status == 204
    listed = (await (await ns.client.get("/v1/webhooks", headers=auth(ns.key))).json())["webhooks"]
    assert [w["id"] for w in listed] == [only["id"]]
    assert not ns.r.exists(keys.webhook(made["id"]), keys.deliveries(made["id"]))
    await expect_error(await ns.client.delete(f"/v1/webhooks/{made['id']}", headers=auth(ns.key)),
                       404, "webhook_not_found")
    await expect_error(await ns.client.get("/v1/webhooks"), 401, "missing_api_key")
    assert receiver.requests == []  # registering contacts nobody


@pytest.mark.parametrize("body,code", [
    ({}, "invalid_field"),
    ({"url": 42}, "invalid_field"),
    ({"url": ""}, "invalid_field"),
    ({"url": "ftp://example.com/hook"}, "invalid_url"),
    ({"url": "http:///nohost"}, "invalid_url"),
    ({"url": "http://example.com:99999/"}, "invalid_url"),
    ({"url": "https://example.com/" + "a" * urlcheck.MAX_URL_CHARS}, "url_too_long"),
    ({"url": "http://127.0.0.1/h", "events": ["render.exploded"]}, "invalid_events"),
    ({"url": "http://127.0.0.1/h", "events": []}, "invalid_events"),
    ({"url": "http://127.0.0.1/h", "events": "render.failed"}, "invalid_events"),
    ({"url": "http://127.0.0.1/h", "description": "d" * 201}, "description_too_long"),
    ({"url": "http://127.0.0.1/h", "description": 7}, "invalid_field"),
    ({"url": "http://no-such-host.invalid/h"}, "url_unresolvable"),
])
async def test_bad_registrations_change_nothing(farm, body, code):
    ns = await farm.make()
    before = snapshot(ns)
    await expect_error(await ns.client.post("/v1/webhooks", json=body, headers=auth(ns.key)), 400, code)
    assert_unchanged(ns, before)


async def test_private_urls_are_refused_and_never_contacted(farm, receiver):
    ns = await farm.make(replace(farm.cfg, limits=Limits()))  # no allow-list
    before = snapshot(ns)
    for url in (receiver.url(), "http://127.0.0.1/hook", "http://169.254.169.254/latest/meta-data/",
                "http://10.0.0.1/", "http://localhost/hook", "http://[::1]/hook", "http://0.0.0.0/",
                "http://[::ffff:127.0.0.1]/hook", "https://192.168.0.10:8443/hook"):
        resp = await ns.client.post("/v1/webhooks", json={"url": url}, headers=auth(ns.key))
        await expect_error(resp, 400, "url_not_allowed")
    # A render's own webhook_url follows the same rules.
    resp = await ns.client.post("/v1/renders", data=form(silent_wav(1), webhook_url=receiver.url()),
                                headers=auth(ns.key))
    await expect_error(resp, 400, "url_not_allowed")
    resp = await ns.client.post("/v1/renders", data=form(silent_wav(1), webhook_url="gopher://x/"),
                                headers=auth(ns.key))
    await expect_error(resp, 400, "invalid_url")
    assert_unchanged(ns, before)
    assert receiver.requests == []


async def test_another_tenants_webhook_is_404(farm, receiver):
    ns = await farm.make()
    made = await register(ns, receiver.url())
    other = auth(create_key(ns.r, "other", "pro"))
    before = snapshot(ns)
    await expect_error(await ns.client.delete(f"/v1/webhooks/{made['id']}", headers=other),
                       404, "webhook_not_found")
    await expect_error(await ns.client.post(f"/v1/webhooks/{made['id']}/test", headers=other),
                       404, "webhook_not_found")
    await expect_error(await ns.client.get(f"/v1/webhooks/{made['id']}/deliveries", headers=other),
                       404, "webhook_not_found")
    for bad in ("wh_0000000000000000", "nope", "wh_..%2Fsecret"):
        await expect_error(await ns.client.delete(f"/v1/webhooks/{bad}", headers=auth(ns.key)),
                           404, "webhook_not_found")
    assert (await (await ns.client.get("/v1/webhooks", headers=other)).json())["webhooks"] == []
    assert_unchanged(ns, before)
    assert receiver.requests == []


async def test_webhooks_per_tenant_limit(farm, receiver):
    ns = await farm.make()
    for i in range(MAX_WEBHOOKS_PER_TENANT):
        await register(ns, receiver.url(f"h{i}"))
    before = snapshot(ns)
    resp = await ns.client.post("/v1/webhooks", json={"url": receiver.url("one-more")}, headers=auth(ns.key))
    await expect_error(resp, 409, "webhook_limit_reached")
    assert_unchanged(ns, before)
    await register(ns, receiver.url(), key=create_key(ns.r, "other", "pro"))  # per tenant, not global


async def test_ping_is_delivered_signed_and_logged(farm, receiver):
    ns = await farm.make()
    made = await register(ns, receiver.url())
    resp = await ns.client.post(f"/v1/webhooks/{made['id']}/test", headers=auth(ns.key))
    result = await resp.json()
    assert resp.status == 200 and result["delivered"] is True and result["status"] == 200
    [req] = receiver.requests
    check_signed(req, made["secret"])
    assert req.json["type"] == "ping" and req.json["id"] == result["event_id"]
    assert req.json["data"]["webhook_id"] == made["id"]
    header = req.headers["Toonz-Signature"]
    t = int(header.split(",")[0][2:])
    assert not verify_webhook(header, req.body.replace(b"ping", b"pong"), made["secret"])
    assert not verify_webhook(header, req.body, made["secret"], now=t + 301)
    [entry] = await deliveries(ns, made["id"])
    assert entry["event_id"] == result["event_id"] and entry["type"] == "ping"
    assert entry["attempt"] == 1 and entry["status"] == 200 and entry["delivered"] is True
    assert entry["error"] is None and entry["next_retry_at"] is None and entry["at"] > 0


async def test_ping_failures_redirects_and_timeouts(farm, receiver):
    ns = await farm.make(replace(farm.cfg, webhooks=replace(FAST, timeout_s=0.5)))
    receiver.statuses = [503]
    for name, status, error in (("hook", 503, "HTTP 503"), ("redirect", 302, "HTTP 302"),
                                ("hang", None, "timeout")):
        made = await register(ns, receiver.url(name))
        result = await (await ns.client.post(f"/v1/webhooks/{made['id']}/test", headers=auth(ns.key))).json()
        assert (result["delivered"], result["status"], result["error"]) == (False, status, error)
        [entry] = await deliveries(ns, made["id"])
        assert (entry["delivered"], entry["status"], entry["error"]) == (False, status, error)
    assert receiver.at("moved") == []  # the redirect was not followed


# --- deliveries of render events --------------------------------------------------------

async def test_a_succeeded_render_is_delivered_exactly_once(farm, receiver):
    ns = await farm.make()
    made = await register(ns, receiver.url())
    job_id = await submit(ns)
    finish(ns, job_id)
    [req] = await eventually(lambda: receiver.requests)
    check_signed(req, made["secret"])
    event = req.json
    assert event["type"] == "render.succeeded" and event["id"].startswith("evt_")
    assert event["data"]["job_id"] == job_id and event["data"]["state"] == "succeeded"
    assert event["data"]["finished_at"] == pytest.approx(event["created_at"], abs=0.01)
    await eventually(lambda: settled(ns))
    assert len(receiver.requests) == 1 and ns.r.xlen(keys.EVENTS) == 1
    [entry] = await deliveries(ns, made["id"])
    assert entry["event_id"] == event["id"] and entry["delivered"] is True and entry["attempt"] == 1


async def test_a_failing_receiver_is_retried_with_backoff(farm, receiver):
    ns = await farm.make()
    made = await register(ns, receiver.url())
    receiver.statuses = [500, 500]
    finish(ns, await submit(ns))
    log = await eventually(lambda: logged(ns, made["id"], 3))
    assert [e["attempt"] for e in log] == [3, 2, 1]  # newest first
    assert [e["status"] for e in log] == [200, 500, 500]
    assert [e["delivered"] for e in log] == [True, False, False]
    assert len({e["event_id"] for e in log}) == 1 and log[0]["next_retry_at"] is None
    for entry, factor in ((log[2], BACKOFF_FACTORS[0]), (log[1], BACKOFF_FACTORS[1])):
        assert entry["next_retry_at"] - entry["at"] == pytest.approx(FAST.backoff_base_s * factor, abs=0.01)
    assert len(receiver.requests) == 3
    assert {r.headers["Toonz-Event-Id"] for r in receiver.requests} == {log[0]["event_id"]}
    for req in receiver.requests:
        check_signed(req, made["secret"])
    await eventually(lambda: settled(ns))


async def test_canceled_and_failed_renders_reach_their_subscribers(farm, receiver):
    ns = await farm.make()
    await register(ns, receiver.url("canceled"), events=["render.canceled"])
    await register(ns, receiver.url("failed"), events=["render.failed"])
    await register(ns, receiver.url("succeeded"), events=["render.succeeded"])
    canceled = await submit(ns)
    resp = await ns.client.post(f"/v1/renders/{canceled}/cancel", headers=auth(ns.key))
    assert (await resp.json())["state"] == "canceled"
    failed = await submit(ns)
    finish(ns, failed, ok=False)
    [c] = await eventually(lambda: receiver.at("canceled"))
    [f] = await eventually(lambda: receiver.at("failed"))
    assert c.json["type"] == "render.canceled" and c.json["data"]["job_id"] == canceled
    assert f.json["type"] == "render.failed" and f.json["data"]["job_id"] == failed
    assert f.json["data"]["error"] == "boom"
    await eventually(lambda: settled(ns))
    assert len(receiver.requests) == 2 and receiver.at("succeeded") == []


async def test_no_listener_no_event(farm):
    ns = await farm.make()
    finish(ns, await submit(ns))
    assert ns.r.xlen(keys.EVENTS) == 0 and ns.r.zcard(keys.WEBHOOK_DUE) == 0


async def test_a_renders_webhook_url_is_signed_with_the_tenant_secret(farm, receiver):
    ns = await farm.make()
    made = await register(ns, receiver.url("registered"), events=["render.succeeded"])
    job_id = await submit(ns, webhook_url=receiver.url("own"))
    same = await submit(ns, webhook_url=receiver.url("registered"))  # also registered: sent once
    finish(ns, job_id)
    finish(ns, same)
    [req] = await eventually(lambda: receiver.at("own"))
    await eventually(lambda: len(receiver.at("registered")) == 2)
    await eventually(lambda: settled(ns))
    assert len(receiver.requests) == 3
    secret = (await (await ns.client.get("/v1/webhooks/secret", headers=auth(ns.key))).json())["secret"]
    assert secret.startswith("whsec_") and secret != made["secret"]
    check_signed(req, secret)
    assert req.json["type"] == "render.succeeded" and req.json["data"]["job_id"] == job_id
    again = (await (await ns.client.get("/v1/webhooks/secret", headers=auth(ns.key))).json())["secret"]
    assert again == secret
    for r in receiver.at("registered"):
        check_signed(r, made["secret"])
    assert {r.json["data"]["job_id"] for r in receiver.at("registered")} == {job_id, same}


# --- restarts and a changed mind about an address ---------------------------------------

async def test_events_written_while_the_scheduler_is_down_are_delivered(farm, receiver):
    ns = await farm.make()
    made = await register(ns, receiver.url())
    job_id = await submit(ns)
    await ns.client.close()  # every scheduler down
    finish(ns, job_id)
    assert receiver.requests == [] and ns.r.xlen(keys.EVENTS) == 1
    await farm.make()
    [req] = await eventually(lambda: receiver.requests)
    check_signed(req, made["secret"])
    assert req.json["data"]["job_id"] == job_id
    await eventually(lambda: settled(ns))


async def test_a_pending_retry_survives_a_restart(farm, receiver):
    slow = replace(farm.cfg, webhooks=replace(FAST, backoff_base_s=3600.0))
    ns = await farm.make(slow)
    made = await register(ns, receiver.url())
    receiver.statuses = [500]
    finish(ns, await submit(ns))
    await eventually(lambda: logged(ns, made["id"], 1))  # logged with the retry, atomically
    [(member, due)] = ns.r.zrange(keys.WEBHOOK_DUE, 0, -1, withscores=True)
    assert json.loads(member)["attempt"] == 2 and due > time.time() + 3000
    await ns.client.close()
    ns.r.zadd(keys.WEBHOOK_DUE, {member: time.time()}, xx=True)  # the hour has passed
    await farm.make()
    await eventually(lambda: len(receiver.requests) == 2)
    await eventually(lambda: settled(ns))
    log = await deliveries(ns, made["id"])
    assert [(e["attempt"], e["status"]) for e in log] == [(2, 200), (1, 500)]


async def test_the_address_is_checked_again_at_delivery(farm, receiver):
    ns = await farm.make()
    made = await register(ns, receiver.url())
    await ns.client.close()
    ns = await farm.make(replace(farm.cfg, limits=Limits()))  # 127.0.0.1 no longer allowed
    result = await (await ns.client.post(f"/v1/webhooks/{made['id']}/test", headers=auth(ns.key))).json()
    assert (result["delivered"], result["status"], result["error"]) == (False, None, "url_not_allowed")
    finish(ns, await submit(ns))
    log = await eventually(lambda: logged(ns, made["id"], 2))
    assert log[0]["error"] == "url_not_allowed" and log[0]["next_retry_at"] is not None
    assert receiver.requests == []
