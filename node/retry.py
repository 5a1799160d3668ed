"""Retry with capped exponential backoff, for calls that cross to Redis or the scheduler.

A node keeps working through a Redis restart or a scheduler restart: a call that
fails for a transient reason is tried again until a deadline, then the error stands.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable, TypeVar

import redis
import requests

log = logging.getLogger("toonz.node")
T = TypeVar("T")

RETRY_FOR_S = 120.0  # how long a node keeps trying to reach Redis or the scheduler
FIRST_DELAY_S, MAX_DELAY_S = 0.2, 5.0


class SchedulerUnavailable(Exception):
    """The scheduler answered 5xx or could not be reached."""


TRANSIENT = (redis.ConnectionError, redis.TimeoutError, requests.ConnectionError,
             requests.Timeout, SchedulerUnavailable)


def retry(call: Callable[[], T], what: str, *, retry_for_s: float = RETRY_FOR_S,
          stop: threading.Event | None = None) -> T:
    deadline = time.monotonic() + retry_for_s
    delay = FIRST_DELAY_S
    while True:
        try:
            return call()
        except TRANSIENT as exc:
            if time.monotonic() + delay > deadline or (stop is not None and stop.is_set()):
                raise
            log.warning("%s failed (%s: %s); retrying in %.1f s", what, type(exc).__name__, exc, delay)
            time.sleep(delay)
            delay = min(delay * 2, MAX_DELAY_S)
