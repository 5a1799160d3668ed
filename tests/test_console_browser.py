"""The operator console in a real headless Chromium against a real farm (`LocalFarm`:
redis-server, the scheduler and a node, each its own process).

The page loads live (Server-Sent Events), shows the node and the running job, the
failures panel opens a failed job's log, and the actions work when clicked: pause a
tier, drain the node, cancel and retry jobs; each reaches the API and the audit log.
Without EventSource the console polls. Screenshots land in out/console-screenshots/
(or $TOONZ_SCREENSHOT_DIR); the test prints the folder.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

import pytest
import redis
import requests

from farm import keys
from farm.client import ToonzClient
from farm.config import LeaseSettings
from farm.lease import LeaseClient
from farm.localfarm import LocalFarm
from tests.cdp import CHROMIUM, Browser, chromium_available
from tests.conftest import REPO, espeak

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not chromium_available(), reason=f"{CHROMIUM} is absent (scripts/setup.sh installs "
                                                        "Debian's chromium package)"),
]

SHOTS = Path(os.environ.get("TOONZ_SCREENSHOT_DIR", REPO / "out" / "console-screenshots"))
# Long enough (about 200 s of speech, rendered at 2160p60) to be running through the whole visit;
# the test cancels it at the end.
NARRATION = " ".join([
    "Welcome to the render farm. Every job waits in its tier, is leased to a node, and is",
    "watched by a heartbeat until the video is done. Operators see the nodes, the queues",
    "and the jobs on one page, and can pause a tier, drain a node, cancel or retry a job.",
] * 10)
FAST = {"TOONZ_LEASE_TTL_S": "6", "TOONZ_REAP_INTERVAL_S": "0.5"}


async def until(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        await asyncio.sleep(0.2)
    pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}")


def text_of(selector: str) -> str:
    return f"(document.querySelector({json.dumps(selector)}) || {{innerText: ''}}).innerText"


def row_of(table: str, needle: str) -> str:
    """JS: the text of the first row of `table` that contains `needle` ('' when none)."""
    return (f"([...document.querySelectorAll('{table} tbody tr')].map(r => r.innerText)"
            f".find(t => t.includes({json.dumps(needle)})) || '')")


@pytest.fixture
def farm(tmp_path):
    f = LocalFarm(tmp_path / "farm", nodes=1, env=FAST).start()
    yield f
    f.stop()
    for log in sorted(f.logs.glob("*.log")):  # shown by pytest when the test fails
        print(f"--- {log.name}\n{log.read_text()[-2500:]}")


def fail_a_job_on_a_ghost_node(farm: LocalFarm, r: redis.Redis, job_id: str) -> None:
    """Lease `job_id` as another node would, upload its log, and fail it for good."""
    ghost = LeaseClient(r, "ghost-node", LeaseSettings(ttl_s=30, max_attempts=1))
    lease = ghost.lease()
    assert lease is not None and lease.job_id == job_id
    log = f"# toonz job {job_id}, attempt 1, fence {lease.fence}\nRenderError: the ghost node ran out of ink\n"
    resp = requests.put(f"{farm.scheduler_url}/v1/node/jobs/{job_id}/artifacts/log.txt", data=log.encode(),
                        headers={"X-Toonz-Fence": str(lease.fence)}, timeout=10)
    assert resp.status_code == 201, resp.text
    assert ghost.fail(lease, "RenderError: the ghost node ran out of ink") == "failed"
    r.zrem(keys.NODES, "ghost-node")  # it was never a real node; the console need not list it


async def test_console_in_chromium(farm, tmp_path, goforward):
    print(f"\nconsole screenshots: {SHOTS}")
    admin = {"Authorization": f"Bearer {farm.admin_key}"}
    api = lambda path: requests.get(farm.scheduler_url + path, headers=admin, timeout=10).json()  # noqa: E731
    client = ToonzClient(farm.scheduler_url, farm.api_key)
    r = redis.Redis.from_url(farm.redis.url)
    narration = espeak(NARRATION, tmp_path / "narration.wav")

    # A short render first, so the throughput chart has frames to show.
    short = client.create_animation(audio_path=goforward[0], transcript=goforward[1], quality="preview")
    assert client.wait_for_completion(short.job_id, timeout=240).state == "succeeded"
    running = client.create_animation(audio_path=narration, transcript=NARRATION, quality="ultra").job_id
    await until(lambda: r.hget(keys.job(running), "state") == b"running", 120, "the long render to run")
    doomed = client.create_animation(audio_path=goforward[0], transcript=goforward[1], quality="preview").job_id
    fail_a_job_on_a_ghost_node(farm, r, doomed)

    async with Browser(tmp_path / "chromium") as b:
        await b.navigate(f"{farm.scheduler_url}/console#key={farm.admin_key}")
        await b.wait_for(f"{text_of('#conn')} === 'live'", 30, "the live stream")
        assert "key=" not in await b.evaluate("location.href")  # the key left the address bar
        node_row = await b.wait_for(row_of("#nodes", "local-node-1"), 30, "the node in the nodes table")
        assert "busy" in node_row and running in node_row
        job_row = await b.wait_for(row_of("#jobs", running), 30, "the running job")
        assert "running" in job_row and "dev" in job_row and "ultra" in job_row
        failure = await b.wait_for(row_of("#failures", doomed), 30, "the failed job")
        assert "ran out of ink" in failure and "ghost-node" in failure
        await b.wait_for("!!document.querySelector('#chart svg rect.bar')", 30, "a throughput bar")
        assert float(await b.evaluate(text_of("#tp-peak"))) > 0
        await b.screenshot(SHOTS / "01-overview.png")

        # Failures: the log button opens the node's log of the failed attempt.
        await b.click(f"#failures button[data-action='log'][data-job='{doomed}']")
        log_text = await b.wait_for(f"document.querySelector('#log-dialog').open && {text_of('#log-text')}"
                                    ".includes('ran out of ink') && " + text_of("#log-text"), 15, "the job log")
        assert log_text.startswith(f"# toonz job {doomed}")
        await b.screenshot(SHOTS / "02-job-log.png")
        await b.click("#log-close")
        await b.wait_for("!document.querySelector('#log-dialog').open", 5, "the log to close")

        # Pause a tier: the API says so, the button turns into Resume, the audit log shows it.
        await b.click("#tiers button[data-action='pause'][data-tier='pro']")
        await until(lambda: api("/v1/admin/overview")["tiers"][1]["paused"], 15, "tier pro to pause")
        await b.wait_for("!!document.querySelector(\"#tiers button[data-action='resume'][data-tier='pro']\")", 10,
                         "the Resume button")
        entry = api("/v1/admin/audit")["entries"][0]
        assert (entry["admin"], entry["action"], entry["target"], entry["outcome"]) == \
            ("operator", "pause", "tier pro", "paused")
        await b.wait_for(row_of("#audit", "tier pro"), 10, "the pause in the audit panel")

        # Drain the node: its heartbeat notices, it shows draining while the job runs on.
        await b.click("#nodes button[data-action='drain'][data-node='local-node-1']")
        node_row = await b.wait_for(f"{row_of('#nodes', 'local-node-1')}.includes('draining') && "
                                    + row_of("#nodes", "local-node-1"), 30, "the node to show draining")
        assert r.hget(keys.job(running), "state") == b"running"

        # Retry the failed job: queued again with fresh attempts (the paused tier holds it).
        await b.click(f"#failures button[data-action='retry'][data-job='{doomed}']")
        await until(lambda: r.hget(keys.job(doomed), "state") == b"queued", 15, "the retry")
        assert r.hget(keys.job(doomed), "attempts") == b"0"
        await b.wait_for(f"!{row_of('#failures', doomed)}", 10, "the job to leave the failures panel")
        await b.screenshot(SHOTS / "03-actions.png")

        # Cancel the running job: its node stops it, has nothing left, and is drained.
        await b.click(f"#jobs button[data-action='cancel'][data-job='{running}']")
        await until(lambda: r.hget(keys.job(running), "state") == b"canceled", 60, "the cancel")
        await b.wait_for(f"{row_of('#nodes', 'local-node-1')}.includes('drained')", 30, "the node drained")
        assert r.hget(keys.job(doomed), "state") == b"queued"  # a drained node leases nothing
        actions = [(e["action"], e["target"]) for e in api("/v1/admin/audit")["entries"]]
        assert actions[:4] == [("cancel", running), ("retry", doomed), ("drain", "node local-node-1"),
                               ("pause", "tier pro")]
        await b.wait_for(row_of("#audit", "cancel"), 10, "the cancel in the audit panel")
        await b.screenshot(SHOTS / "04-drained.png")
        await b.screenshot(SHOTS / "05-full-page.png", full_page=True)

        # Without EventSource the console falls back to polling the overview.
        await b.send("Page.addScriptToEvaluateOnNewDocument", source="delete window.EventSource;")
        await b.navigate(f"{farm.scheduler_url}/console")
        await b.wait_for(f"{text_of('#conn')} === 'polling'", 15, "the polling fallback")
        await b.wait_for(row_of("#nodes", "local-node-1"), 15, "the node while polling")
        await b.screenshot(SHOTS / "06-polling.png")
        await b.click("#signout")
        shown = "(s) => getComputedStyle(document.querySelector(s)).display !== 'none'"
        await b.wait_for(f"({shown})('#login') && !({shown})('#board')", 5, "the sign-in form, alone")
        assert await b.evaluate("sessionStorage.getItem('toonzAdminKey')") is None
        await b.screenshot(SHOTS / "07-signed-out.png")
        assert not [m for m in b.console if m.startswith("exception")], b.console
    r.close()
