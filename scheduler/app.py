"""The scheduler's app factory: `create_app(config)`, resources in cleanup_ctx."""

from __future__ import annotations

import logging

import redis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from aiohttp import web

from farm import lua
from farm.config import SchedulerConfig
from farm.store import LocalStore
from scheduler.context import CONFIG, REDIS, SCRIPTS, STORE
from scheduler.dispatch import dispatcher_ctx
from scheduler.errors import error_middleware, stamp_request_id
from scheduler.reaper import Reaper
from scheduler.routes import setup_routes
from scheduler.throughput import sampler_ctx

log = logging.getLogger("toonz.scheduler")

# Connections to Redis one scheduler process holds at most. A request past that
# waits for a free one (up to REDIS_POOL_WAIT_S) rather than failing: redis-py's
# default pool refuses at once past 100, which bench/api.py turned into 503s at 200
# concurrent requests.
REDIS_MAX_CONNECTIONS = 100
REDIS_POOL_WAIT_S = 10.0


async def _redis_ctx(app: web.Application):
    # A Redis restart leaves dead pooled connections: retry a command on a fresh one.
    pool = aioredis.BlockingConnectionPool.from_url(
        app[CONFIG].redis_url, max_connections=REDIS_MAX_CONNECTIONS, timeout=REDIS_POOL_WAIT_S,
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), 6),
        retry_on_error=[redis.ConnectionError, redis.TimeoutError], health_check_interval=10)
    client = aioredis.Redis(connection_pool=pool)
    app[REDIS] = client
    app[SCRIPTS] = lua.register(client)
    yield
    await client.aclose()


async def _reaper_ctx(app: web.Application):
    reaper = Reaper(app[SCRIPTS], app[CONFIG].lease)
    reaper.start()
    yield
    await reaper.stop()


def create_app(config: SchedulerConfig) -> web.Application:
    # Uploads are streamed by the views, so the whole-body limit only guards JSON bodies.
    app = web.Application(middlewares=[error_middleware], client_max_size=1024 * 1024)
    app[CONFIG] = config
    app[STORE] = LocalStore(config.data_dir / "artifacts")
    app.cleanup_ctx.append(_redis_ctx)
    app.cleanup_ctx.append(_reaper_ctx)
    app.cleanup_ctx.append(dispatcher_ctx)  # webhooks: after Redis, stopped before it
    app.cleanup_ctx.append(sampler_ctx)  # the console's throughput chart: after Redis
    app.on_response_prepare.append(stamp_request_id)
    setup_routes(app)
    return app


def run(config: SchedulerConfig) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s scheduler %(levelname)s %(message)s")
    web.run_app(create_app(config), host=config.host, port=config.port, print=None,
                access_log=None)
