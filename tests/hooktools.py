"""Helpers for the webhook tests (test_webhook_endpoints, test_webhook_delivery) and their
fixtures in tests/conftest.py (receiver, farm)."""

from __future__ import annotations

from farm.config import Limits, WebhookSettings
from farm.webhooks import verify_webhook
from tests.test_api import auth


ALLOW_LOCAL = Limits(url_allowlist=("127.0.0.1",))
FAST = WebhookSettings(timeout_s=5.0, backoff_base_s=0.05, poll_s=0.05)


async def register(ns, url: str, key: str | None = None, **fields) -> dict:
    resp = await ns.client.post("/v1/webhooks", json={"url": url, **fields}, headers=auth(key or ns.key))
    body = await resp.json()
    assert resp.status == 201, body
    return body


async def deliveries(ns, webhook_id: str) -> list[dict]:
    resp = await ns.client.get(f"/v1/webhooks/{webhook_id}/deliveries", headers=auth(ns.key))
    assert resp.status == 200
    return (await resp.json())["deliveries"]


def check_signed(req, secret: str) -> None:
    assert req.headers["Content-Type"] == "application/json"
    assert req.headers["Toonz-Event-Id"] == req.json["id"]
    assert verify_webhook(req.headers["Toonz-Signature"], req.body, secret)
