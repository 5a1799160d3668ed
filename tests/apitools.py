"""Helpers for the API rules tests (test_api_limits, test_api_batch)."""

from __future__ import annotations

from dataclasses import replace

from farm import keys
from farm.config import Limits, SchedulerConfig


def job_count(ns) -> int:
    return ns.r.zcard(keys.ALL_JOBS)


def open_urls(api) -> SchedulerConfig:
    return replace(api.cfg, limits=Limits(allow_private_urls=True))
