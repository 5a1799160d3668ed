"""API keys (list, revoke, the CLI's too), the admin tenant endpoints, and what a tenant's
key may not reach (admin endpoints, another tenant's render); real app, real Redis."""

from __future__ import annotations

import subprocess
import sys

import pytest

from farm import keys
from farm.tenants import digest
from tests.test_api import auth, expect_error, form, snapshot


# --- API keys and the admin tenant endpoints ---------------------------------------------


async def test_tenant_keys_are_listed_without_the_key_and_revoked(api, admin):
    ns = await api.make()
    resp = await ns.client.post("/v1/admin/tenants", json={"name": "globex", "tier": "starter"},
                                headers=admin)
    body = await resp.json()
    assert resp.status == 201, body
    tenant_id, first = body["tenant"]["tenant_id"], body["key"]
    assert body["tenant"]["tier"] == "starter" and first["api_key"].startswith("tz_live_")
    assert (await ns.client.get("/v1/usage", headers=auth(first["api_key"]))).status == 200

    resp = await ns.client.post(f"/v1/admin/tenants/{tenant_id}/keys", headers=admin)
    second = await resp.json()
    assert resp.status == 201 and second["key_id"] != first["key_id"]
    listing = await ns.client.get(f"/v1/admin/tenants/{tenant_id}/keys", headers=admin)
    text = await listing.text()
    assert first["api_key"] not in text and second["api_key"] not in text
    assert first["api_key"][-4:] in text  # the hint, and only the hint
    rows = (await listing.json())["keys"]
    assert [k["key_id"] for k in rows] == [first["key_id"], second["key_id"]]
    assert all(k["hint"] == "..." + s["api_key"][-4:] and k["role"] == "api"
               for k, s in zip(rows, (first, second)))
    for stored in ns.r.keys("*"):  # nothing in Redis holds a key in clear
        value = ns.r.dump(stored)
        assert first["api_key"].encode() not in stored + value

    resp = await ns.client.delete(f"/v1/admin/keys/{first['key_id']}", headers=admin)
    assert resp.status == 200 and (await resp.json())["revoked"] is True
    await expect_error(await ns.client.get("/v1/usage", headers=auth(first["api_key"])),
                       401, "invalid_api_key")
    assert (await ns.client.get("/v1/usage", headers=auth(second["api_key"]))).status == 200
    rows = (await (await ns.client.get(f"/v1/admin/tenants/{tenant_id}/keys", headers=admin)).json())["keys"]
    assert [k["key_id"] for k in rows] == [second["key_id"]]
    before = snapshot(ns)
    for gone in (first["key_id"], "key_00000000", "nonsense"):
        await expect_error(await ns.client.delete(f"/v1/admin/keys/{gone}", headers=admin),
                           404, "key_not_found")
    assert snapshot(ns) == before


async def test_cli_key_created_by_create_key_is_listed_and_revoked(api, admin):
    ns = await api.make()
    tenant_id = ns.r.hget(keys.TENANT_NAMES, "acme").decode()
    rows = (await (await ns.client.get(f"/v1/admin/tenants/{tenant_id}/keys", headers=admin)).json())["keys"]
    assert len(rows) == 1 and rows[0]["hint"] == "..." + ns.key[-4:]
    await ns.client.delete(f"/v1/admin/keys/{rows[0]['key_id']}", headers=admin)
    await expect_error(await ns.client.get("/v1/usage", headers=auth(ns.key)), 401, "invalid_api_key")


def test_cli_list_and_revoke_keys(api):
    def toonz(*args):
        return subprocess.run([sys.executable, "-m", "farm.cli.main", "admin", *args,
                               "--redis-url", api.cfg.redis_url], capture_output=True, text=True)

    res = toonz("list-keys", "acme")
    assert res.returncode == 0, res.stderr
    key_id = res.stdout.split()[0]
    assert key_id.startswith("key_") and res.stdout.rstrip().endswith(api.key[-4:])
    assert api.key not in res.stdout
    assert toonz("revoke-key", key_id).returncode == 0
    assert not api.r.exists(keys.api_key(digest(api.key)))
    assert toonz("list-keys", "acme").stdout == ""
    bad = toonz("revoke-key", key_id)
    assert bad.returncode == 2 and "key_not_found" in bad.stderr
    assert toonz("list-keys", "nobody").returncode == 2


async def test_admin_tenants_tiers_and_stats(api, admin, goforward):
    ns = await api.make()
    await ns.client.post("/v1/renders", data=form(goforward[0].read_bytes()), headers=auth(ns.key))
    before = snapshot(ns)
    await expect_error(await ns.client.post("/v1/admin/tenants", json={"name": "acme", "tier": "pro"},
                                            headers=admin), 409, "tenant_exists")
    await expect_error(await ns.client.post("/v1/admin/tenants", json={"name": "new", "tier": "gold"},
                                            headers=admin), 400, "unknown_tier")
    await expect_error(await ns.client.post("/v1/admin/tenants", json={"name": "no spaces"},
                                            headers=admin), 400, "invalid_tenant")
    assert snapshot(ns) == before

    tenants = (await (await ns.client.get("/v1/admin/tenants", headers=admin)).json())["tenants"]
    acme = next(t for t in tenants if t["name"] == "acme")
    assert acme["tier"] == "pro" and acme["renders_this_month"] == 0 and acme["created_at"] > 0
    url = f"/v1/admin/tenants/{acme['tenant_id']}/tier"
    resp = await ns.client.patch(url, json={"tier": "free"}, headers=admin)
    assert resp.status == 200 and (await resp.json())["tier"] == "free"
    usage = await (await ns.client.get("/v1/usage", headers=auth(ns.key))).json()
    assert usage["tier"] == "free"
    await expect_error(await ns.client.post(url, json={"tier": "gold"}, headers=admin), 400, "unknown_tier")
    await expect_error(await ns.client.post("/v1/admin/tenants/t_000000000000/tier", json={"tier": "pro"},
                                            headers=admin), 404, "tenant_not_found")

    tiers = (await (await ns.client.get("/v1/admin/tiers", headers=admin)).json())["tiers"]
    assert [t["tier"] for t in tiers] == ["enterprise", "pro", "starter", "free"]
    free = tiers[-1]
    assert free["renders_per_month"] == 10 and free["max_audio_s"] == 60
    assert free["rate_limit"]["tenant_burst"] > free["rate_limit"]["burst"] > 10  # above the quota

    stats = await (await ns.client.get("/v1/admin/stats", headers=admin)).json()
    assert stats["tenants"] == 2 and stats["jobs"]["submitted"] == 1 and stats["jobs"]["queued"] == 1
    assert stats["jobs_by_tier"]["pro"]["queued"] == 1 and stats["leases"]["active"] == 0


@pytest.mark.parametrize("method,path", [
    ("POST", "/v1/admin/tenants"), ("GET", "/v1/admin/tenants"),
    ("PATCH", "/v1/admin/tenants/t_000000000000/tier"), ("POST", "/v1/admin/tenants/t_000000000000/keys"),
    ("GET", "/v1/admin/tenants/t_000000000000/keys"), ("DELETE", "/v1/admin/keys/key_00000000"),
    ("GET", "/v1/admin/tiers"), ("GET", "/v1/admin/stats"),
])
async def test_admin_endpoints_refuse_tenant_keys(api, method, path):
    ns = await api.make()
    before = snapshot(ns)
    resp = await ns.client.request(method, path, json={"name": "x", "tier": "pro"}, headers=auth(ns.key))
    await expect_error(resp, 403, "admin_only")
    await expect_error(await ns.client.request(method, path), 401, "missing_api_key")
    assert snapshot(ns) == before


async def test_another_tenants_render_is_404(api, admin, goforward):
    ns = await api.make()
    job_id = (await (await ns.client.post("/v1/renders", data=form(goforward[0].read_bytes()),
                                          headers=auth(ns.key))).json())["job_id"]
    body = await (await ns.client.post("/v1/admin/tenants", json={"name": "rival", "tier": "pro"},
                                       headers=admin)).json()
    rival = auth(body["key"]["api_key"])
    await expect_error(await ns.client.get(f"/v1/renders/{job_id}", headers=rival), 404, "job_not_found")
    await expect_error(await ns.client.post(f"/v1/renders/{job_id}/cancel", headers=rival),
                       404, "job_not_found")
