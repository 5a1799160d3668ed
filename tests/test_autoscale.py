"""The reference autoscaler against a real farm: up under a burst, down when idle."""

from __future__ import annotations

import threading
import time

import pytest
import requests

from farm.autoscale import Autoscaler, ScalePolicy, decide
from farm.client import ToonzClient
from farm.localfarm import LocalFarm


def advice(wanted: int, live: int, drainable: list[str]) -> dict:
    return {"nodes_wanted": wanted, "nodes_live": live, "drainable": drainable}


@pytest.mark.parametrize("adv,ours,min_nodes,expected", [
    (advice(2, 1, []), ["a"], 0, ("start", None)),
    (advice(5, 2, []), ["a", "b"], 0, ("hold", None)),        # at max
    (advice(0, 2, ["b", "x"]), ["a", "b"], 0, ("drain", "b")),
    (advice(0, 1, ["x"]), ["a"], 0, ("hold", None)),          # x is not ours
    (advice(0, 1, ["a"]), ["a"], 0, ("drain", "a")),
    (advice(0, 1, ["a"]), ["a"], 1, ("hold", None)),          # never below min
    (advice(0, 0, []), [], 1, ("start", None)),               # up to min
])
def test_decide(adv, ours, min_nodes, expected):
    assert decide(adv, ours, ScalePolicy(min_nodes=min_nodes, max_nodes=2)) == expected


def test_scales_up_under_a_burst_and_down_when_idle(tmp_path, goforward):
    farm = LocalFarm(tmp_path / "farm", nodes=0).start()
    scaler = Autoscaler(farm.scheduler_url, farm.admin_key,
                        {"TOONZ_REDIS_URL": farm.redis.url, "TOONZ_SCHEDULER_URL": farm.scheduler_url},
                        tmp_path / "auto", ScalePolicy(min_nodes=0, max_nodes=2, cooldown_s=1.0,
                                                       interval_s=0.2))
    loop = threading.Thread(target=scaler.run, daemon=True)
    try:
        loop.start()
        client = ToonzClient(farm.scheduler_url, farm.api_key)
        ids = [client.create_animation(audio_path=goforward[0], quality="preview").job_id for _ in range(4)]
        deadline = time.monotonic() + 60
        while not scaler.ours() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert scaler.ours(), "no node was started for the backlog"
        for job_id in ids:
            assert client.wait_for_completion(job_id, timeout=120).state == "succeeded"
        deadline = time.monotonic() + 60
        while scaler.ours() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert scaler.ours() == [], "idle nodes were not drained"
        admin = {"Authorization": f"Bearer {farm.admin_key}"}
        assert requests.get(farm.scheduler_url + "/v1/admin/scaling", headers=admin).json()["nodes_wanted"] == 0
    finally:
        scaler.stop()
        farm.stop()
