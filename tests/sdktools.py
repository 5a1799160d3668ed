"""Helpers for the SDK tests' fixtures (tests/conftest.py: served, sdk): the scheduler, the
audio file server and the small fakes at the edge are aiohttp apps served from one thread
with its own event loop, so that blocking SDK calls and the servers never share a loop;
AsyncToonzClient is driven to completion on a loop of its own by `Blocking`."""

from __future__ import annotations

import asyncio
import inspect
import threading

from aiohttp import web

from farm.aclient import AsyncToonzClient


class Served:
    """aiohttp apps on real 127.0.0.1 ports, run by a thread with its own event loop."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.runners: list[web.AppRunner] = []

    def start(self, app: web.Application) -> str:
        async def go() -> str:
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            self.runners.append(runner)
            return f"http://127.0.0.1:{runner.addresses[0][1]}"
        return asyncio.run_coroutine_threadsafe(go(), self.loop).result(30)

    def stop(self) -> None:
        for runner in reversed(self.runners):
            asyncio.run_coroutine_threadsafe(runner.cleanup(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


class Blocking:
    """AsyncToonzClient driven from plain test code: each call run to its end on a loop of
    this object's own (async iterators are collected)."""

    def __init__(self, client: AsyncToonzClient) -> None:
        self.client = client
        self.loop = asyncio.new_event_loop()

    def __getattr__(self, name: str):
        attr = getattr(self.client, name)
        if inspect.isasyncgenfunction(attr):
            async def collect(*a, **k):
                return [x async for x in attr(*a, **k)]
            return lambda *a, **k: iter(self.loop.run_until_complete(collect(*a, **k)))
        if inspect.iscoroutinefunction(attr):
            return lambda *a, **k: self.loop.run_until_complete(attr(*a, **k))
        return attr

    def close(self) -> None:
        self.loop.run_until_complete(self.client.aclose())
        self.loop.close()
