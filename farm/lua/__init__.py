"""The farm's Lua scripts, one file each, loaded by name.

Each script is sent with `common.lua` in front of it: shared helpers and the key
prefixes, which are rendered from `farm.keys` so that no script spells one.
"""

from __future__ import annotations

import functools
import re
from importlib import resources

NAMES = ("submit", "lease", "heartbeat", "complete", "reap", "cancel", "reprioritize", "ratelimit", "retry",
         "webhook_claim", "split", "lease_chunk")


@functools.cache
def prelude() -> str:
    from farm import keys

    values = keys.lua_prelude_values()
    text = resources.files(__name__).joinpath("common.lua").read_text()
    rendered = re.sub(r"\{\{([A-Z_]+)\}\}", lambda m: values[m.group(1)], text)
    return rendered


def source(name: str) -> str:
    if name not in NAMES:
        raise KeyError(f"no Lua script named {name!r}")
    return prelude() + "\n" + resources.files(__name__).joinpath(f"{name}.lua").read_text()


def register(client) -> dict:
    """Register every script on a redis-py client (sync or asyncio); name -> Script."""
    return {name: client.register_script(source(name)) for name in NAMES}
