"""Webhooks: signatures, the retry schedule and URL rules, then the endpoints (register,
list, delete, ping) on the real app and a real Redis, delivering to a local receiver."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from farm.audio import silent_wav
from farm import keys
from farm.config import Limits, SchedulerConfig, WebhookSettings
from farm.errors import InvalidInput
from farm.tenants import create_key
from farm.webhooks import BACKOFF_FACTORS, MAX_ATTEMPTS, retry_delay, sign, verify_webhook
from scheduler import urlcheck
from scheduler.webhooks import MAX_WEBHOOKS_PER_TENANT
from tests.hooktools import FAST, check_signed, deliveries, register
from tests.test_api import auth, expect_error, form, snapshot


def assert_unchanged(ns, before: tuple) -> None:
    after = snapshot(ns)
    changed = sorted(k for k in before[0].keys() | after[0].keys() if before[0].get(k) != after[0].get(k))
    assert changed == [] and after[1] == before[1]


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
