"""Typed application keys shared by the scheduler's views."""

from __future__ import annotations

from aiohttp import web
import redis.asyncio as aioredis

from farm.config import SchedulerConfig
from farm.store import LocalStore

CONFIG = web.AppKey("config", SchedulerConfig)
REDIS = web.AppKey("redis", aioredis.Redis)
STORE = web.AppKey("store", LocalStore)
SCRIPTS = web.AppKey("scripts", dict)
