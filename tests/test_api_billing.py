"""Money: usage per day, the ledger, invoices (CSV), nothing charged for canceled or failed
renders, and public pricing; real app, real Redis, the farm's Lua."""

from __future__ import annotations

import csv
import io
import time

import pytest

from farm import keys
from farm.lease import month_of
from farm.presets import QUALITIES, TIER_LIMITS, TIER_ORDER, Tier
from scheduler import billing
from tests.readtools import finish, get_json, reading_api, snapshot, submit
from tests.test_api import auth, expect_error


@pytest.fixture
async def api(aiohttp_client, r, redis_url, tmp_path):
    """tests.readtools.reading_api: the app, tenants acme and other with their keys, a node."""
    return await reading_api(aiohttp_client, r, redis_url, tmp_path)


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


# --- pricing ------------------------------------------------------------------------------------


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
