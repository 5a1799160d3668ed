"""The farm under failure, with real processes: killed, frozen and drained nodes, a
Redis restart, a scheduler restart. Every job completes once and is charged once."""

from __future__ import annotations

import os
import signal
import time

import pytest
import redis

from farm import keys
from farm.jobs import Job, JobState
from farm.lease import month_of
from tests.conftest import espeak
from tests.farms import farm_maker, job, wait_for

TTL_S = 3.0
FAST_LEASES = {"TOONZ_LEASE_TTL_S": str(TTL_S), "TOONZ_REAP_INTERVAL_S": "0.3"}
NARRATION = ("The render farm keeps working when a machine fails. Each job is leased, "
             "watched and handed to another node when its node goes quiet. Nothing is lost, "
             "and nothing is charged twice.")


@pytest.fixture(scope="module")
def narration(tmp_path_factory):
    return espeak(NARRATION, tmp_path_factory.mktemp("narration") / "n.wav"), NARRATION


@pytest.fixture
def make_farm(tmp_path):
    yield from farm_maker(tmp_path, FAST_LEASES)


def rendering(r, job_id: str) -> Job | None:
    """The job once its node is drawing frames (progress moved)."""
    j = job(r, job_id)
    return j if j.state == JobState.RUNNING and j.progress > 0 else None


def charged(r, tenant: str) -> int:
    return int(r.hget(keys.usage(tenant, month_of()), "renders") or 0)


def submit(client, narration, quality="hd") -> str:
    return client.create_animation(audio_path=narration[0], transcript=narration[1],
                                   quality=quality).job_id


def test_sigkill_a_node_mid_render(make_farm, narration):
    farm, client, r = make_farm(nodes=2)
    job_id = submit(client, narration)
    first = wait_for(lambda: rendering(r, job_id), 60, "the render to start")
    farm.node_process(first.node).send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    again = wait_for(lambda: (j := job(r, job_id)).node not in ("", first.node) and j, 30,
                     "the job to be leased again")
    # Expiry comes at most one TTL after the last heartbeat; the reaper ticks every 0.3 s.
    assert time.monotonic() - killed_at < TTL_S + 2.0
    done = client.wait_for_completion(job_id, timeout=120)
    assert done.state == "succeeded" and again.attempts == 2
    assert charged(r, job(r, job_id).tenant) == 1


def test_a_frozen_node_cannot_overwrite_the_result(make_farm, narration):
    farm, client, r = make_farm(nodes=2)
    job_id = submit(client, narration)
    first = wait_for(lambda: rendering(r, job_id), 60, "the render to start")
    frozen = farm.node_process(first.node)
    os.kill(frozen.pid, signal.SIGSTOP)
    try:
        client.wait_for_completion(job_id, timeout=120)
    finally:
        os.kill(frozen.pid, signal.SIGCONT)
    winner = job(r, job_id)
    assert winner.node != first.node and winner.state == JobState.SUCCEEDED
    log = farm.logs / f"node-{first.node.rsplit('-', 1)[1]}.log"
    wait_for(lambda: "lease lost" in log.read_text() or "stale" in log.read_text(), 60,
             "the thawed node to find its lease gone")
    time.sleep(1.0)
    after = job(r, job_id)
    assert (after.state, after.node, after.fence) == (winner.state, winner.node, winner.fence)
    assert charged(r, winner.tenant) == 1


def test_redis_restart_loses_nothing(make_farm, narration):
    farm, client, r = make_farm(nodes=1)
    ids = [submit(client, narration) for _ in range(3)]
    wait_for(lambda: rendering(r, ids[0]), 60, "the first render to start")
    farm.restart_redis()
    r = redis.Redis.from_url(farm.redis.url)
    for job_id in ids:
        assert client.wait_for_completion(job_id, timeout=180).state == "succeeded"
    assert charged(r, job(r, ids[0]).tenant) == 3


def test_scheduler_restart_mid_render(make_farm, narration):
    farm, client, r = make_farm(nodes=1)
    job_id = submit(client, narration)
    wait_for(lambda: rendering(r, job_id), 60, "the render to start")
    farm.restart_scheduler()
    done = client.wait_for_completion(job_id, timeout=120)
    assert done.state == "succeeded" and done.raw["attempts"] == 1
    assert charged(r, job(r, job_id).tenant) == 1


def test_first_sigterm_drains_the_job_in_hand(make_farm, narration):
    farm, client, r = make_farm(nodes=1)
    first, second = submit(client, narration), submit(client, narration)
    node = farm.node_process(wait_for(lambda: rendering(r, first), 60, "the render").node)
    node.send_signal(signal.SIGTERM)
    assert node.wait(120) == 0
    assert job(r, first).state == JobState.SUCCEEDED
    assert job(r, second).state == JobState.QUEUED  # a draining node leases nothing new


def test_second_sigterm_releases_the_job_at_once(make_farm, narration):
    farm, client, r = make_farm(nodes=1)
    job_id = submit(client, narration)
    node = farm.node_process(wait_for(lambda: rendering(r, job_id), 60, "the render").node)
    node.send_signal(signal.SIGTERM)
    time.sleep(0.2)
    node.send_signal(signal.SIGTERM)
    assert node.wait(30) == 0
    j = job(r, job_id)
    assert j.state == JobState.QUEUED and j.attempts == 0 and j.node == ""
    assert r.scard(keys.blocked(job_id)) == 0  # released, not failed: any node may take it
