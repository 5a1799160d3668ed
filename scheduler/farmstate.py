"""One read of the farm's state from Redis, shared by /metrics, scaling and the console."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field

from farm import keys
from farm.presets import TIER_ORDER

NODE_LIVE_S = 90.0  # a node unseen this long is not counted as live
DEFAULT_NODE_FPS = 100.0  # until a node has reported a render (bench/render.py, 720p llvmpipe)


# Node states in which a node takes no new work (an operator's drain, or SIGTERM).
NOT_LEASING = ("offline", "draining", "drained")
# Node hash fields NodeInfo carries as attributes; the rest (host, pid, ...) go in `facts`.
_NODE_FIELDS = {"state", "job", "fps", "cores", "memory_mb", keys.NODE_DRAIN_FIELD,
                keys.NODE_FRAMES_FIELD}


@dataclass
class NodeInfo:
    node: str
    state: str
    job: str | None
    last_seen_s_ago: float
    fps: float | None
    cores: int
    memory_mb: int
    drain_requested: bool = False  # an operator asked it to drain (it may still be finishing)
    frames_rendered: int = 0
    facts: dict[str, str] = field(default_factory=dict)  # whatever else the node reported


@dataclass
class TierInfo:
    tier: str
    depth: int
    oldest_wait_s: float
    backlog_frames: float
    paused: bool


@dataclass
class FarmState:
    time: float
    tiers: list[TierInfo]
    nodes: list[NodeInfo]
    leases: int
    stats: dict[str, float] = field(default_factory=dict)

    @property
    def live_nodes(self) -> list[NodeInfo]:
        """Nodes seen lately that take work: draining and drained ones add no capacity."""
        return [n for n in self.nodes if n.last_seen_s_ago <= NODE_LIVE_S and n.state not in NOT_LEASING]

    @property
    def node_fps(self) -> float:
        """Frames per second one node renders: the median of what live nodes last measured."""
        measured = [n.fps for n in self.live_nodes if n.fps]
        return statistics.median(measured) if measured else DEFAULT_NODE_FPS


async def read(r) -> FarmState:
    now = time.time()
    backlog = {k.decode(): float(v) for k, v in (await r.hgetall(keys.BACKLOG)).items()}
    paused = {t.decode() for t in await r.smembers(keys.PAUSED)}
    tiers = []
    for t in TIER_ORDER:
        q = keys.queue(t.value)
        oldest = await r.zrange(q, 0, 0, withscores=True)
        tiers.append(TierInfo(tier=t.value, depth=await r.zcard(q),
                              oldest_wait_s=round(now - oldest[0][1] / 1000, 1) if oldest else 0.0,
                              backlog_frames=max(backlog.get(f"frames:{t.value}", 0.0), 0.0),
                              paused=t.value in paused))
    nodes = []
    for node_id, seen_ms in await r.zrange(keys.NODES, 0, -1, withscores=True):
        info = {k.decode(): v.decode() for k, v in (await r.hgetall(keys.node(node_id.decode()))).items()}
        nodes.append(NodeInfo(
            node=node_id.decode(), state=info.get("state", ""),
            job=info.get("job") or None, last_seen_s_ago=round(now - seen_ms / 1000, 1),
            fps=float(info["fps"]) if info.get("fps") else None,
            cores=int(info.get("cores", 0)), memory_mb=int(info.get("memory_mb", 0)),
            drain_requested=keys.NODE_DRAIN_FIELD in info,
            frames_rendered=int(info.get(keys.NODE_FRAMES_FIELD, 0) or 0),
            facts={k: v for k, v in info.items() if k not in _NODE_FIELDS}))
    stats = {k.decode(): float(v) for k, v in (await r.hgetall(keys.STATS)).items()}
    return FarmState(time=now, tiers=tiers, nodes=nodes, leases=await r.zcard(keys.LEASES), stats=stats)
