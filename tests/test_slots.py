"""Node slots: one node process runs several jobs at once."""

from __future__ import annotations

import time

import pytest
import redis
import requests

from farm import keys
from farm.client import ToonzClient
from farm.config import MAX_SLOTS, NodeConfig, default_slots
from farm.errors import InvalidInput
from farm.localfarm import LocalFarm


def test_default_slots_follow_cores_and_gpu():
    assert default_slots(cores=2, gpu=False) == 1
    assert default_slots(cores=16, gpu=False) == 4
    assert default_slots(cores=2, gpu=True) == 2
    assert NodeConfig.from_env({"TOONZ_SLOTS": "3"}).slots == 3
    assert NodeConfig.from_env({}).slots == 0  # automatic
    for bad in ("-1", str(MAX_SLOTS + 1), "two"):
        with pytest.raises(InvalidInput) as err:
            NodeConfig.from_env({"TOONZ_SLOTS": bad})
        assert err.value.code == "invalid_config"


def test_a_two_slot_node_runs_two_jobs_at_once(tmp_path, speech):
    audio, text = speech
    with LocalFarm(tmp_path / "farm", nodes=1, env={"TOONZ_SLOTS": "2"}) as farm:
        admin = {"Authorization": f"Bearer {farm.admin_key}"}
        client = ToonzClient(base_url=farm.scheduler_url, api_key=farm.api_key)
        tier = client.get_usage()["tier"]
        # Queue both while the tier is paused, so that both are waiting when it resumes.
        requests.post(f"{farm.scheduler_url}/v1/admin/tiers/{tier}/pause", headers=admin,
                      timeout=10).raise_for_status()
        jobs = [client.create_animation(audio_path=audio, transcript=text, quality="standard").job_id
                for _ in range(2)]
        requests.post(f"{farm.scheduler_url}/v1/admin/tiers/{tier}/resume", headers=admin,
                      timeout=10).raise_for_status()
        r = redis.Redis.from_url(farm.redis.url)
        seen_both, deadline = False, time.monotonic() + 120
        while time.monotonic() < deadline and not seen_both:
            node = r.hgetall(keys.node("local-node-1"))
            running = set(node.get(b"job", b"").decode().split(",")) - {""}
            seen_both = node.get(b"slots") == b"2/2" and running == set(jobs)
            time.sleep(0.05)
        assert seen_both, "the node never held both jobs at once"
        for job_id in jobs:
            done = client.wait_for_completion(job_id, timeout=180)
            assert done.state == "succeeded" and done.raw["node"] == "local-node-1"
        node = r.hgetall(keys.node("local-node-1"))
        assert node[b"slots"] == b"0/2" and node[b"state"] == b"idle"
        r.close()
