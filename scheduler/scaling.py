"""Scaling advice: how many nodes the backlog wants now, and which nodes may go.

Each tier has a target wait: the time in which its queued frames should be rendered.
The farm wants enough nodes that every tier's backlog, together with the backlog of
the tiers above it (they go first), clears within that tier's target at the nodes'
measured speed. Idle live nodes beyond what is wanted are safe to drain.
"""

from __future__ import annotations

import math

from aiohttp import web

from farm.presets import Tier
from scheduler.auth import principal
from scheduler.context import REDIS
from scheduler.farmstate import FarmState, read

TARGET_WAIT_S: dict[str, float] = {Tier.ENTERPRISE.value: 30.0, Tier.PRO.value: 60.0,
                                   Tier.STARTER.value: 300.0, Tier.FREE.value: 900.0}
MIN_NODES, MAX_NODES = 0, 256


def advice(state: FarmState, min_nodes: int = MIN_NODES, max_nodes: int = MAX_NODES) -> dict:
    fps = state.node_fps
    wanted, above, per_tier = 0, 0.0, {}
    for t in state.tiers:  # strongest first
        if t.paused:
            per_tier[t.tier] = 0
            continue
        above += t.backlog_frames
        need = math.ceil(above / (fps * TARGET_WAIT_S[t.tier])) if above > 0 else 0
        per_tier[t.tier] = need
        wanted = max(wanted, need)
    busy = [n for n in state.live_nodes if n.state == "busy"]
    wanted = min(max(wanted, len(busy), min_nodes), max_nodes)
    idle = sorted((n for n in state.live_nodes if n.state == "idle"), key=lambda n: n.node)
    surplus = max(len(state.live_nodes) - wanted, 0)
    return {
        "nodes_wanted": wanted, "nodes_live": len(state.live_nodes), "nodes_busy": len(busy),
        "node_fps": round(fps, 1), "wanted_by_tier": per_tier,
        "backlog_seconds": {t.tier: round(t.backlog_frames / fps, 1) for t in state.tiers},
        "drainable": [n.node for n in idle[:surplus]],
    }


async def scaling(request: web.Request) -> web.Response:
    await principal(request, role="admin")
    return web.json_response(advice(await read(request.app[REDIS])))
