"""The farm's Lua scripts, one file each, loaded by name."""

from __future__ import annotations

from importlib import resources

NAMES = ("submit", "lease", "heartbeat", "complete", "reap")


def source(name: str) -> str:
    if name not in NAMES:
        raise KeyError(f"no Lua script named {name!r}")
    return resources.files(__name__).joinpath(f"{name}.lua").read_text()


def register(client) -> dict:
    """Register every script on a redis-py client (sync or asyncio); name -> Script."""
    return {name: client.register_script(source(name)) for name in NAMES}
