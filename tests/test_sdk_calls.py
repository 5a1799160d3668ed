"""The SDK's calls (create, get, list, cancel, batches, usage, webhooks) and typed errors,
each with ToonzClient and AsyncToonzClient, against the real scheduler on a real port."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import requests

from farm.audio import silent_wav
from farm.client import verify_webhook
from farm.errors import Conflict, IdempotencyKeyReused, InvalidInput, NotFound, QuotaExceeded, Unauthorized
from farm.tenants import create_key
from farm.webhooks import sign
from tests.conftest import REPO


def test_create_get_list_and_cancel(sdk, farm_api, audio_server, tmp_path):
    client = sdk(farm_api.start(), farm_api.key())
    upload = tmp_path / "speech.wav"
    upload.write_bytes(silent_wav(1.0))
    first = client.create_animation(audio_path=upload, transcript="hello", quality="preview",
                                    captions=False)
    assert first.state == "queued" and first.price == 0.1 and first.raw["duration_s"] == 1.0
    ids = [first.job_id] + [client.create_animation(audio_url=f"{audio_server.url}/a.wav",
                                                    title=f"n{i}").job_id for i in range(4)]
    got = client.get(ids[1])
    assert got.job_id == ids[1] and got.raw["quality"] == "standard" and got.raw["duration_s"] == 0.5

    page = client.list(limit=2)
    assert [j.job_id for j in page.items] == ids[::-1][:2] and page.next_cursor
    assert [j.job_id for j in client.iter_renders(page_size=2)] == ids[::-1]  # three pages

    assert client.cancel(ids[2]).state == "canceled"
    assert client.get(ids[2]).state == "canceled"
    assert [j.job_id for j in client.iter_renders(state="canceled")] == [ids[2]]
    assert client.list(state=["queued", "canceled"], limit=100).next_cursor is None
    with pytest.raises(Conflict) as exc:  # not rendered: nothing to download
        client.download(ids[0], tmp_path / "out.mp4")
    assert exc.value.code == "not_ready" and not (tmp_path / "out.mp4").exists()


def test_batch_usage_and_catalog(sdk, farm_api, audio_server):
    client = sdk(farm_api.start(), farm_api.key("starter"))
    items = [{"audio_url": f"{audio_server.url}/{n}", "quality": "preview", "title": n}
             for n in ("a.wav", "b.wav", "a.wav")]
    batch = client.create_batch(items, idempotency_key="batch-1")
    assert batch.batch_id.startswith("b_") and [j.state for j in batch.renders] == ["queued"] * 3
    again = client.create_batch(items, idempotency_key="batch-1")
    assert [j.job_id for j in again.renders] == [j.job_id for j in batch.renders]
    assert len(list(client.iter_renders())) == 3

    usage = client.get_usage()
    assert usage["tier"] == "starter" and usage["renders_in_progress"] == 3
    assert usage["renders_remaining"] == 97
    assert "explainer" in {t["name"] for t in client.list_templates()}
    assert "toonz" in {c["name"] for c in client.list_characters()}
    pricing = client.get_pricing()
    assert {q["name"]: q["price"] for q in pricing["qualities"]}["hd"] == 1.0


def test_webhook_endpoints(sdk, farm_api, audio_server):
    client = sdk(farm_api.start(), farm_api.key())
    hook = client.create_webhook(f"{audio_server.url}/hook", events=["render.failed"])
    assert hook["secret"].startswith("whsec_") and hook["events"] == ["render.failed"]
    assert [h["id"] for h in client.list_webhooks()] == [hook["id"]]
    assert "secret" not in client.list_webhooks()[0]
    client.delete_webhook(hook["id"])
    assert client.list_webhooks() == []
    with pytest.raises(NotFound) as exc:
        client.delete_webhook(hook["id"])
    assert exc.value.code == "webhook_not_found"


def test_quota_refusal_is_typed(sdk, farm_api, audio_server):
    client = sdk(farm_api.start(), farm_api.key("free"))
    for i in range(10):  # the free tier's 10 renders a month pass
        client.create_animation(audio_url=f"{audio_server.url}/a.wav", quality="preview")
    with pytest.raises(QuotaExceeded) as exc:
        client.create_animation(audio_url=f"{audio_server.url}/a.wav", quality="preview")
    assert exc.value.status == 402 and exc.value.code == "quota_exceeded" and exc.value.request_id
    assert len(list(client.iter_renders())) == 10
    assert client.get_usage()["renders_remaining"] == 0


def test_errors_are_typed(sdk, farm_api, tmp_path):
    url = farm_api.start()
    client = sdk(url, farm_api.key())
    with pytest.raises(NotFound) as exc:
        client.get("r_0123456789abcdef")
    assert exc.value.code == "job_not_found" and exc.value.request_id
    upload = tmp_path / "a.wav"
    upload.write_bytes(silent_wav(0.5))
    with pytest.raises(InvalidInput) as exc:
        client.create_animation(audio_path=upload, quality="8k")
    assert exc.value.code == "unknown_quality" and exc.value.status == 400
    with pytest.raises(Unauthorized) as exc:
        sdk(url, "tz_live_wrong").get_usage()
    assert exc.value.code == "invalid_api_key"

    # A key revoked through the admin API is refused from then on.
    admin = {"Authorization": f"Bearer {create_key(farm_api.r, 'ops', 'enterprise', 'admin')}"}
    made = requests.post(f"{url}/v1/admin/tenants", json={"name": "globex", "tier": "pro"},
                         headers=admin).json()["key"]
    other = sdk(url, made["api_key"])
    assert other.get_usage()["tier"] == "pro"
    assert requests.delete(f"{url}/v1/admin/keys/{made['key_id']}", headers=admin).status_code == 200
    with pytest.raises(Unauthorized) as exc:
        other.get_usage()
    assert exc.value.code == "invalid_api_key"


def test_idempotency_key(sdk, farm_api, audio_server):
    client = sdk(farm_api.start(), farm_api.key())
    a = client.create_animation(audio_url=f"{audio_server.url}/a.wav", idempotency_key="k-1")
    b = client.create_animation(audio_url=f"{audio_server.url}/a.wav", idempotency_key="k-1")
    assert a.job_id == b.job_id and audio_server.hits == 1  # the retry was answered unfetched
    with pytest.raises(IdempotencyKeyReused) as exc:
        client.create_animation(audio_url=f"{audio_server.url}/b.wav", idempotency_key="k-1")
    assert isinstance(exc.value, Conflict) and exc.value.status == 409
    assert [j.job_id for j in client.iter_renders()] == [a.job_id]


def test_verify_webhook():
    body = json.dumps({"id": "evt_1", "type": "render.succeeded"}).encode()
    header = sign("whsec_test", body)
    assert verify_webhook(header, body, "whsec_test")
    assert not verify_webhook(header, body + b" ", "whsec_test")
    assert not verify_webhook(header, body, "whsec_other")


def test_sync_client_imports_without_aiohttp():
    code = ("import sys; sys.modules['aiohttp'] = None\n"
            "import farm.client as c\n"
            "c.ToonzClient('http://127.0.0.1:1', 'k')\n"
            "try:\n    c.AsyncToonzClient('http://127.0.0.1:1', 'k')\n"
            "except ImportError as e:\n    print('async needs', e)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "toonz-farm[async]" in out.stdout
