"""Prometheus metrics, read from Redis at scrape time (every scheduler tells the truth)."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from farm.presets import TIER_ORDER
from scheduler.context import REDIS
from scheduler.farmstate import NODE_LIVE_S, FarmState, read

WAIT_BUCKETS = ("0.1", "0.5", "1", "5", "15", "60", "300", "1800")  # as in farm/lua/common.lua
STATES = ("succeeded", "failed", "canceled")
# A node's states (node/daemon.py _set_state); each gets a label even at zero, so a
# dashboard sees 0 rather than a missing series. `offline` nodes have signed off.
NODE_STATES = ("idle", "busy", "draining", "drained")


class _Snapshot:
    def __init__(self, state: FarmState) -> None:
        self.state = state

    def collect(self):
        s = self.state
        depth = GaugeMetricFamily("toonz_queue_depth", "Jobs queued", labels=["tier"])
        wait = GaugeMetricFamily("toonz_queue_oldest_wait_seconds", "Wait of the oldest queued job",
                                 labels=["tier"])
        frames = GaugeMetricFamily("toonz_backlog_frames", "Frames of queued jobs", labels=["tier"])
        secs = GaugeMetricFamily("toonz_backlog_seconds", "Queued frames over one node's measured "
                                 "frames/s", labels=["tier"])
        paused = GaugeMetricFamily("toonz_tier_paused", "1 while an operator paused the tier",
                                   labels=["tier"])
        for t in s.tiers:
            depth.add_metric([t.tier], t.depth)
            wait.add_metric([t.tier], t.oldest_wait_s)
            frames.add_metric([t.tier], t.backlog_frames)
            secs.add_metric([t.tier], t.backlog_frames / s.node_fps)
            paused.add_metric([t.tier], int(t.paused))
        yield from (depth, wait, frames, secs, paused)

        submitted = CounterMetricFamily("toonz_jobs_submitted", "Jobs admitted", labels=["tier"])
        done = CounterMetricFamily("toonz_jobs_finished", "Jobs that ended", labels=["tier", "state"])
        for t in TIER_ORDER:
            submitted.add_metric([t.value], s.stats.get(f"submitted:{t.value}", 0))
            for state in STATES:
                done.add_metric([t.value, state], s.stats.get(f"done:{t.value}:{state}", 0))
        yield from (submitted, done)

        yield GaugeMetricFamily("toonz_leases_active", "Jobs leased to nodes now", value=s.leases)
        yield CounterMetricFamily("toonz_leases", "Leases granted", value=s.stats.get("leases", 0))
        cumulative, buckets = 0.0, []
        for b in (*WAIT_BUCKETS, "+Inf"):
            cumulative += s.stats.get(f"lease_wait_le:{b}", 0)
            buckets.append((b, cumulative))
        yield HistogramMetricFamily("toonz_lease_wait_seconds", "Queue wait of leased jobs",
                                    buckets=buckets, sum_value=s.stats.get("lease_wait_sum", 0.0))
        # Seen lately, whatever their state: draining and drained nodes count here, though
        # they take no work (s.live_nodes leaves them out).
        seen = [n for n in s.nodes if n.last_seen_s_ago <= NODE_LIVE_S]
        nodes = GaugeMetricFamily("toonz_nodes", "Nodes seen lately, by state", labels=["state"])
        for state in NODE_STATES:
            nodes.add_metric([state], sum(1 for n in seen if n.state == state))
        yield nodes
        yield GaugeMetricFamily("toonz_node_render_fps", "Median frames/s of live nodes' last renders",
                                value=s.node_fps)


async def metrics(request: web.Request) -> web.Response:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Snapshot(await read(request.app[REDIS])))
    return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})
