"""The API's answers are the ones its description (/openapi.json) allows.

- schemathesis generates requests for every operation against the real app on a real port
  (real Redis): no answer is a 5xx, and every answer (status, content type, headers, body)
  is one the description allows.
- A tour of the API's successful answers (a render that succeeds, is downloaded, billed;
  webhooks; the admin API) checked the same way, since fuzzed ids and names rarely exist.

No drift between routes and description: test_openapi_drift.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
from contextlib import closing
from types import SimpleNamespace
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests
import schemathesis
from schemathesis import GenerationMode
from aiohttp import web
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core import NotSet
from schemathesis.specs.openapi.checks import (content_type_conformance, response_headers_conformance,
                                               response_schema_conformance, status_code_conformance)

from farm.audio import silent_wav
from farm import keys
from farm.config import LeaseSettings, Limits, SchedulerConfig
from farm.lease import LeaseClient, month_of
from farm.presets import RateLimit
from farm.store import LocalStore
from farm.tenants import create_key
from scheduler import docs
from scheduler.app import create_app
from tests.openapitools import METHODS, bearer


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance]
EXAMPLES_PER_OPERATION = 30  # generated requests per operation (half valid, half not): about 20 s in all
# Every URL a generated request carries is pointed here: a reserved address (TEST-NET-1) the
# scheduler refuses without contacting it, so fuzzing sends nothing off this machine.
UNREACHABLE_HOST = "192.0.2.10"


class ServedApp:
    """The real app on a real port, its event loop in a thread (schemathesis calls are blocking)."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="scheduler", daemon=True)
        self.runner = web.AppRunner(app, access_log=None)
        self.url = ""

    def __enter__(self) -> "ServedApp":
        self.thread.start()
        try:
            self._run(self.runner.setup())
            self._run(web.TCPSite(self.runner, "127.0.0.1", 0).start())
        except BaseException:
            self.__exit__()
            raise
        host, port = self.runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        return self

    def __exit__(self, *exc) -> None:
        self._run(self.runner.cleanup())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    def _run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)


@pytest.fixture
def served(r, redis_url, tmp_path):
    """The app (rate limits off, private URLs refused but 127.0.0.1 allow-listed for the
    tour's webhook) with a pro tenant's key and an admin key."""
    limits = Limits(rate_limit_scale=0, allow_private_urls=False, url_allowlist=("127.0.0.1",))
    cfg = SchedulerConfig(redis_url=redis_url, data_dir=tmp_path / "data", limits=limits)
    ns = SimpleNamespace(r=r, cfg=cfg, key=create_key(r, "acme", "pro"),
                         admin_key=create_key(r, "ops", "enterprise", role="admin"))
    ns.tenant = r.hget(keys.TENANT_NAMES, "acme").decode()
    with ServedApp(create_app(cfg)) as server:
        ns.url = server.url
        ns.schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
        yield ns


def credentials(ns, path: str, operation: dict) -> dict[str, str]:
    if operation.get("security") == [] or path == "/v1/admin/stream":
        return {}  # public; the stream with a key would never end: its token is fuzzed instead
    return bearer(ns.admin_key if path.startswith("/v1/admin/") else ns.key)


# --- schemathesis: generated requests ----------------------------------------------------

def _unreachable(value):
    """Every http(s) URL inside `value` (a generated body), its host made UNREACHABLE_HOST."""
    if isinstance(value, dict):
        return {k: _unreachable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unreachable(v) for v in value]
    if isinstance(value, str):
        try:  # parsed as the scheduler parses it (urlsplit strips, lowercases the scheme)
            parts = urlsplit(value)
            port = parts.port
        except ValueError:
            return value
        if parts.scheme in ("http", "https") and parts.hostname:
            netloc = UNREACHABLE_HOST + (f":{port}" if port else "")
            return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return value


def test_generated_requests_get_described_answers_and_no_5xx(served):
    failures: list[str] = []
    operations = [result.ok() for result in served.schema.get_all_operations()]
    # schemathesis leaves out the operation that serves the schema itself
    assert len(operations) == sum(m in METHODS for item in docs.spec()["paths"].values() for m in item) - 1
    for op in operations:
        headers = credentials(served, op.path, op.definition.raw)

        @settings(max_examples=EXAMPLES_PER_OPERATION, derandomize=True, deadline=None, database=None,
                  phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
        @given(case=op.as_strategy(GenerationMode.POSITIVE) | op.as_strategy(GenerationMode.NEGATIVE))
        def run(case):
            if not isinstance(case.body, NotSet):
                case.body = _unreachable(case.body)
            resp = case.call(base_url=served.url, headers=headers, timeout=30)
            case.validate_response(resp, checks=CHECKS, headers=headers)

        try:
            run()
        except Exception as exc:  # every operation is tried; all failures are reported together
            failures.append(f"{op.method.upper()} {op.path}: {exc}")
    assert not failures, "\n\n".join(failures)


# --- the successful answers, checked the same way -----------------------------------------

class Tour:
    """Calls described operations with chosen data; each answer must have the expected
    status and pass every check schemathesis runs on generated requests."""

    def __init__(self, ns, url: str | None = None) -> None:
        self.ns, self.url = ns, url or ns.url

    def __call__(self, method: str, path: str, expect: int, *, key: str | None = "tenant",
                 headers: dict | None = None, **case):
        auth = {} if key is None else bearer({"tenant": self.ns.key, "admin": self.ns.admin_key}.get(key, key))
        c = self.ns.schema[path][method].Case(headers=headers, **case)
        resp = c.call(base_url=self.url, headers=auth, timeout=60)
        assert resp.status_code == expect, f"{method} {path}: {resp.status_code} {resp.text[:500]}"
        c.validate_response(resp, checks=CHECKS, headers=auth)
        return resp


def closed_port() -> int:
    with closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def succeed(ns, job_id: str) -> None:
    """A node leases `job_id`, writes its artifacts and completes it (farm/lua scripts)."""
    node = LeaseClient(ns.r, "n1", LeaseSettings(max_attempts=1))
    lease = node.lease()
    assert lease is not None and lease.job_id == job_id
    store = LocalStore(ns.cfg.data_dir / "artifacts")
    files = {"video.mp4": b"\x00\x00\x00\x18ftypmp42", "poster.png": b"\x89PNG\r\n\x1a\n",
             "timeline.json": json.dumps({"fps": 24, "cues": []}).encode(),
             "captions.vtt": b"WEBVTT\n", "log.txt": b"# toonz job log\nrendered\n"}
    for name, data in files.items():
        with store.writer(job_id, name) as fh:
            fh.write(data)
    assert node.complete(lease, list(files)) == "succeeded"


def test_documented_answers_match_the_description(served):
    ns, call = served, Tour(served)
    audio = {"audio": silent_wav(1.0), "transcript": "Hello there.", "quality": "preview"}
    multipart = {"body": audio, "media_type": "multipart/form-data"}

    # renders: create, replay, list, get, succeed, download, follow, cancel
    first = call("POST", "/v1/renders", 202, **multipart).json()["job_id"]
    keyed = {"Idempotency-Key": "tour-1"}
    second = call("POST", "/v1/renders", 202, headers=keyed, **multipart)
    replay = call("POST", "/v1/renders", 202, headers=keyed, **multipart)
    assert replay.json() == second.json() and replay.headers["idempotent-replayed"] == ["true"]
    call("POST", "/v1/renders", 409, headers=keyed, body={**audio, "quality": "hd"},
         media_type="multipart/form-data")
    second = second.json()["job_id"]
    third = call("POST", "/v1/renders", 202, **multipart).json()["job_id"]
    unreachable = {"audio_url": f"http://{UNREACHABLE_HOST}/narration.wav"}
    call("POST", "/v1/renders", 400, body=unreachable, media_type="application/json")
    call("POST", "/v1/renders/batch", 400, body={"renders": [unreachable]})
    call("POST", "/v1/renders", 400, body={**audio, "quality": "8k"}, media_type="multipart/form-data")
    page = call("GET", "/v1/renders", 200, query={"state": "queued", "limit": 2}).json()
    assert len(page["renders"]) == 2 and page["next_cursor"]
    call("GET", "/v1/renders", 200, query={"cursor": page["next_cursor"]})
    call("GET", "/v1/renders/{job_id}", 200, path_parameters={"job_id": first})
    call("GET", "/v1/renders/{job_id}/download", 409, path_parameters={"job_id": first})
    succeed(ns, first)
    done = call("GET", "/v1/renders/{job_id}", 200, path_parameters={"job_id": first}).json()
    assert set(done["download_urls"]) == {"video", "poster", "timeline", "captions"}
    for artifact in (None, "poster.png", "timeline.json", "captions.vtt"):
        call("GET", "/v1/renders/{job_id}/download", 200, path_parameters={"job_id": first},
             query={"artifact": artifact} if artifact else None)
    call("GET", "/v1/renders/{job_id}/download", 404, path_parameters={"job_id": first},
         query={"artifact": "log.txt"})
    call("GET", "/v1/renders/{job_id}/download", 400, path_parameters={"job_id": first},
         query={"artifact": "../input.audio"})
    stream = call("GET", "/v1/renders/{job_id}/events", 200, path_parameters={"job_id": first})
    last_id = re.findall(r"^id: (.+)$", stream.content.decode(), re.M)[-1]
    assert "event: done" in stream.content.decode()
    call("GET", "/v1/renders/{job_id}/events", 204, path_parameters={"job_id": first},
         headers={"Last-Event-ID": last_id})
    call("POST", "/v1/renders/{job_id}/cancel", 202, path_parameters={"job_id": second})
    call("POST", "/v1/renders/{job_id}/cancel", 409, path_parameters={"job_id": second})
    call("GET", "/v1/renders/{job_id}", 404, path_parameters={"job_id": "r_0000000000000000"})

    # money and the catalog
    assert call("GET", "/v1/usage", 200).json()["renders_used"] == 1
    call("GET", "/v1/usage", 200, query={"period": "2001-01"})
    call("GET", "/v1/usage", 400, query={"period": "2001-13"})
    invoices = call("GET", "/v1/invoices", 200).json()["invoices"]
    assert len(invoices) == 1
    csv = call("GET", "/v1/invoices/{period}.csv", 200, path_parameters={"period": invoices[0]["period"]})
    assert first in csv.content.decode()
    call("GET", "/v1/pricing", 200, key=None)
    template = call("GET", "/v1/templates", 200, key=None).json()["templates"][0]["name"]
    character = call("GET", "/v1/characters", 200, key=None).json()["characters"][0]["name"]
    call("GET", "/v1/templates/{name}/preview.png", 200, key=None, path_parameters={"name": template})
    call("GET", "/v1/characters/{name}/preview.png", 200, key=None, path_parameters={"name": character})

    # webhooks: 127.0.0.1 is allow-listed here; nothing listens on the port, so the ping fails
    hook = call("POST", "/v1/webhooks", 201, body={
        "url": f"http://127.0.0.1:{closed_port()}/hook", "events": ["render.succeeded"]}).json()
    call("POST", "/v1/webhooks", 400, body={"url": f"http://{UNREACHABLE_HOST}/hook"})
    call("POST", "/v1/webhooks", 413, body={"url": "http://127.0.0.1/", "description": "x" * 1_100_000})
    call("GET", "/v1/webhooks", 200)
    call("GET", "/v1/webhooks/secret", 200)
    hook_id = {"webhook_id": hook["id"]}
    assert call("POST", "/v1/webhooks/{webhook_id}/test", 200, path_parameters=hook_id).json()["delivered"] is False
    assert len(call("GET", "/v1/webhooks/{webhook_id}/deliveries", 200, path_parameters=hook_id).json()["deliveries"]) == 1
    call("DELETE", "/v1/webhooks/{webhook_id}", 204, path_parameters=hook_id)
    call("DELETE", "/v1/webhooks/{webhook_id}", 404, path_parameters=hook_id)

    # who may call what
    call("GET", "/v1/usage", 401, key=None)
    call("GET", "/v1/usage", 401, key="tz_live_not-a-key")
    call("GET", "/v1/admin/stats", 403)

    # admin: tenants and keys
    made = call("POST", "/v1/admin/tenants", 201, key="admin", body={"name": "globex", "tier": "starter"}).json()
    call("POST", "/v1/admin/tenants", 409, key="admin", body={"name": "globex"})
    call("GET", "/v1/admin/tenants", 200, key="admin")
    tenant = {"tenant_id": made["tenant"]["tenant_id"]}
    call("PATCH", "/v1/admin/tenants/{tenant_id}/tier", 200, key="admin", path_parameters=tenant, body={"tier": "pro"})
    call("POST", "/v1/admin/tenants/{tenant_id}/tier", 400, key="admin", path_parameters=tenant, body={"tier": "gold"})
    call("POST", "/v1/admin/tenants/{tenant_id}/keys", 201, key="admin", path_parameters=tenant)
    new = call("POST", "/v1/admin/tenants/{tenant_id}/keys", 201, key="admin", path_parameters=tenant,
               body={"role": "admin"}).json()
    call("GET", "/v1/admin/tenants/{tenant_id}/keys", 200, key="admin", path_parameters=tenant)
    call("DELETE", "/v1/admin/keys/{key_id}", 200, key="admin", path_parameters={"key_id": new["key_id"]})
    call("DELETE", "/v1/admin/keys/{key_id}", 404, key="admin", path_parameters={"key_id": new["key_id"]})
    for path in ("/v1/admin/tiers", "/v1/admin/stats", "/v1/admin/throughput", "/v1/admin/audit"):
        call("GET", path, 200, key="admin")

    # admin: jobs, tiers, nodes (the node's record as node/daemon.py writes it)
    job = {"job_id": third}
    call("POST", "/v1/admin/jobs/{job_id}/priority", 200, key="admin", path_parameters=job, body={"priority": 80})
    call("POST", "/v1/admin/jobs/{job_id}/priority", 400, key="admin", path_parameters=job, body={"priority": 101})
    call("POST", "/v1/admin/jobs/{job_id}/cancel", 200, key="admin", path_parameters=job)
    call("POST", "/v1/admin/jobs/{job_id}/cancel", 409, key="admin", path_parameters=job)
    call("POST", "/v1/admin/jobs/{job_id}/retry", 200, key="admin", path_parameters=job)
    call("POST", "/v1/admin/jobs/{job_id}/retry", 409, key="admin", path_parameters=job)
    call("POST", "/v1/admin/jobs/{job_id}/cancel", 404, key="admin", path_parameters={"job_id": "r_0000000000000000"})
    call("GET", "/v1/admin/jobs/{job_id}/log", 200, key="admin", path_parameters={"job_id": first})
    call("POST", "/v1/admin/tiers/{tier}/pause", 200, key="admin", path_parameters={"tier": "free"})
    call("POST", "/v1/admin/tiers/{tier}/resume", 200, key="admin", path_parameters={"tier": "free"})
    ns.r.hset(keys.node("n1"), mapping={"state": "idle", "cores": 2, "memory_mb": 2048, "fps": "120.5",
                                        "host": "tour"})
    call("POST", "/v1/admin/nodes/{node_id}/drain", 200, key="admin", path_parameters={"node_id": "n1"})
    call("POST", "/v1/admin/nodes/{node_id}/undrain", 200, key="admin", path_parameters={"node_id": "n1"})
    call("POST", "/v1/admin/nodes/{node_id}/drain", 404, key="admin", path_parameters={"node_id": "ghost"})
    overview = call("GET", "/v1/admin/overview", 200, key="admin").json()
    assert overview["nodes"] and overview["jobs"]
    call("GET", "/v1/admin/scaling", 200, key="admin")
    assert len(call("GET", "/v1/admin/audit", 200, key="admin").json()["entries"]) >= 6
    token = call("POST", "/v1/admin/session", 201, key="admin").json()["token"]
    call("GET", "/v1/admin/stream", 401, key=None, query={"token": "tzs_expired"})
    # The live stream never ends by itself: its head is checked, then it is closed.
    with requests.get(f"{ns.url}/v1/admin/stream", params={"token": token}, stream=True, timeout=30) as live:
        assert live.status_code == 200 and live.headers["Content-Type"] == "text/event-stream"
        assert next(live.iter_content(None))

    # the service's own endpoints
    for path in ("/health", "/ready", "/metrics", "/docs"):
        call("GET", path, 200, key=None)
    assert requests.get(f"{ns.url}/openapi.json", timeout=30).json() == docs.spec()


def test_refusals_for_quota_and_rate_match_the_description(served, tmp_path):
    """402 (a free tenant's 11th render of the month) and 429 with its headers."""
    ns = served
    free_key = create_key(ns.r, "freebie", "free")
    tenant = ns.r.hget(keys.TENANT_NAMES, "freebie").decode()
    ns.r.hset(keys.usage(tenant, month_of()), "renders", 10)  # ten renders charged already
    call = Tour(ns)
    call("POST", "/v1/renders", 402, key=free_key, body={"audio": silent_wav(0.5)}, media_type="multipart/form-data")

    limits = Limits(rate_limit=RateLimit(0.01, 1), allow_private_urls=False)
    cfg = SchedulerConfig(redis_url=ns.cfg.redis_url, data_dir=tmp_path / "limited", limits=limits)
    with ServedApp(create_app(cfg)) as limited:
        call = Tour(ns, limited.url)
        ok = call("GET", "/v1/usage", 200)
        assert ok.headers["x-ratelimit-limit"] == ["1"]
        refused = call("GET", "/v1/usage", 429)
        assert int(refused.headers["retry-after"][0]) >= 1
