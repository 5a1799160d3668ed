"""Test helpers for real farms: LocalFarm processes made on demand, job records, waiting."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from farm import keys
from farm.client import ToonzClient
from farm.jobs import Job
from farm.localfarm import LocalFarm

Maker = Callable[..., tuple[LocalFarm, ToonzClient, redis.Redis]]


def farm_maker(tmp_path: Path, base_env: dict[str, str]) -> Iterator[Maker]:
    """For a fixture: `make(nodes, env=None)` starts a LocalFarm (the test's env over
    `base_env`) and returns it with an SDK client and a Redis client; every farm is
    stopped at the end and its logs printed (pytest shows them when a test fails)."""
    farms: list[LocalFarm] = []

    def make(nodes: int, env: dict[str, str] | None = None):
        farm = LocalFarm(tmp_path / f"farm{len(farms)}", nodes=nodes,
                         env={**base_env, **(env or {})}).start()
        farms.append(farm)
        return farm, ToonzClient(farm.scheduler_url, farm.api_key), redis.Redis.from_url(farm.redis.url)

    yield make
    for farm in farms:
        farm.stop()
        for log in sorted(farm.logs.glob("*.log")):
            print(f"--- {log.name}\n{log.read_text()[-3000:]}")


def one_node_farm(tmp_path_factory) -> Iterator[LocalFarm]:
    """For a module-scoped fixture: one LocalFarm with one node, its logs printed at the end."""
    data = tmp_path_factory.mktemp("farm")
    farm = LocalFarm(data, nodes=1)
    try:
        yield farm.start()
    finally:
        farm.stop()
        for log in sorted((data / "logs").glob("*.log")):  # shown by pytest on failure
            print(f"--- {log.name}\n{log.read_text()[-3000:]}")


def job(r: redis.Redis, job_id: str) -> Job:
    return Job.from_redis(r.hgetall(keys.job(job_id)))


def wait_for(predicate, timeout_s: float, what: str, poll_s: float = 0.02):
    """`predicate()`'s first truthy value; fails the test after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll_s)
    pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}")
