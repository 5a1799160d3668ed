"""Configuration: frozen dataclasses built once at the edge, then passed down.

Every setting has a default, a flag in the CLI and a TOONZ_* environment variable.
Nothing here reads the environment at import time.  All durations are in seconds.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Mapping

from farm.errors import InvalidInput
from farm.presets import RateLimit


@dataclass(frozen=True)
class Limits:
    """Named limits on what a request may ask for."""

    max_upload_bytes: int = 50 * 1024 * 1024
    max_transcript_chars: int = 20_000
    url_fetch_timeout_s: float = 20.0
    allow_private_urls: bool = False  # audio_url to loopback/private hosts (tests, dev)
    # Hosts (exact names) and IPs/CIDRs that outbound URLs (audio_url, webhooks) may reach
    # even though they are private: scheduler/urlcheck.py.
    url_allowlist: tuple[str, ...] = ()
    # Rate limits (farm.presets.RATE_LIMITS) are multiplied by this; 0 turns them off (dev).
    rate_limit_scale: float = 1.0
    # One bucket size for every tier instead of the table (tests, local experiments).
    rate_limit: RateLimit | None = None


@dataclass(frozen=True)
class WebhookSettings:
    """Webhook delivery (scheduler/dispatch.py); retries wait farm.webhooks.BACKOFF_FACTORS x base."""

    timeout_s: float = 10.0       # one delivery attempt, connect to last byte
    backoff_base_s: float = 5.0   # the first retry's wait
    poll_s: float = 1.0           # how often due retries are looked for


@dataclass(frozen=True)
class LeaseSettings:
    ttl_s: float = 30.0
    max_attempts: int = 3
    reap_interval_s: float = 2.0
    stall_s: float = 300.0  # progress unmoved this long, heartbeats or not: a failed attempt


@dataclass(frozen=True)
class ChunkSettings:
    """Chunked renders (node/chunks.py, node/chunkjobs.py): an MP4 of at least `min_chunks`
    chunks of `chunk_s` seconds is split, its chunks rendered on several nodes at once."""

    chunk_s: float = 30.0      # seconds of frames per chunk; 0 turns chunking off
    min_chunk_s: float = 10.0  # the shortest chunk allowed (start-up costs more below it)
    min_chunks: int = 2        # a render shorter than this many chunks is rendered in one piece

    @property
    def enabled(self) -> bool:
        return self.chunk_s > 0


@dataclass(frozen=True)
class SchedulerConfig:
    redis_url: str = "redis://127.0.0.1:6379/0"
    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path(".toonz")
    limits: Limits = field(default_factory=Limits)
    lease: LeaseSettings = field(default_factory=LeaseSettings)
    webhooks: WebhookSettings = field(default_factory=WebhookSettings)

    @classmethod
    def from_env(cls, environ: Mapping[str, str], **overrides: Any) -> "SchedulerConfig":
        base = cls(
            redis_url=environ.get("TOONZ_REDIS_URL", cls.redis_url),
            host=environ.get("TOONZ_HOST", cls.host),
            port=_int(environ, "TOONZ_PORT", cls.port),
            data_dir=Path(environ.get("TOONZ_DATA_DIR", str(cls.data_dir))),
            limits=Limits(
                max_upload_bytes=_int(environ, "TOONZ_MAX_UPLOAD_BYTES", Limits.max_upload_bytes),
                max_transcript_chars=_int(environ, "TOONZ_MAX_TRANSCRIPT_CHARS",
                                          Limits.max_transcript_chars),
                url_fetch_timeout_s=_float(environ, "TOONZ_URL_FETCH_TIMEOUT_S",
                                           Limits.url_fetch_timeout_s),
                allow_private_urls=_bool(environ, "TOONZ_ALLOW_PRIVATE_URLS", False),
                url_allowlist=tuple(h.strip() for h in environ.get("TOONZ_URL_ALLOWLIST", "").split(",")
                                    if h.strip()),
                rate_limit_scale=_float(environ, "TOONZ_RATE_LIMIT_SCALE", Limits.rate_limit_scale),
            ),
            lease=_lease(environ),
            webhooks=_webhooks(environ),
        )
        return _override(base, overrides)


@dataclass(frozen=True)
class NodeConfig:
    redis_url: str = "redis://127.0.0.1:6379/0"
    scheduler_url: str = "http://127.0.0.1:8000"
    node_id: str = ""
    work_dir: Path = Path(".toonz/node")
    lease: LeaseSettings = field(default_factory=LeaseSettings)
    poll_interval_s: float = 0.5
    chunks: ChunkSettings = field(default_factory=ChunkSettings)
    slots: int = 0  # jobs this node runs at once; 0: default_slots() for its cores and GPU

    @classmethod
    def from_env(cls, environ: Mapping[str, str], **overrides: Any) -> "NodeConfig":
        data_dir = Path(environ.get("TOONZ_DATA_DIR", ".toonz"))
        base = cls(
            redis_url=environ.get("TOONZ_REDIS_URL", cls.redis_url),
            scheduler_url=environ.get("TOONZ_SCHEDULER_URL", cls.scheduler_url),
            node_id=environ.get("TOONZ_NODE_ID", "") or default_node_id(),
            work_dir=Path(environ.get("TOONZ_WORK_DIR", str(data_dir / "node"))),
            lease=_lease(environ),
            chunks=_chunks(environ),
            slots=_slots(environ),
        )
        return _override(base, overrides)


MAX_SLOTS = 16
# libx264 keeps about this many cores busy per render at the farm's presets (its frame
# threads): more jobs than cores // this on a CPU node only slow each other down.
CORES_PER_CPU_SLOT = 4
GPU_SLOTS = 2  # a GPU composites far faster than one encoder takes frames


def default_slots(cores: int | None = None, gpu: bool | None = None) -> int:
    """Jobs a node runs at once: two on a GPU node (one encodes while the other renders),
    else one per CORES_PER_CPU_SLOT cores, at least one."""
    cores = (os.cpu_count() or 1) if cores is None else cores
    gpu = os.path.exists("/dev/nvidia0") if gpu is None else gpu
    return GPU_SLOTS if gpu else max(1, cores // CORES_PER_CPU_SLOT)


def _slots(environ: Mapping[str, str]) -> int:
    slots = _int(environ, "TOONZ_SLOTS", 0)
    if not 0 <= slots <= MAX_SLOTS:
        raise InvalidInput(f"TOONZ_SLOTS must be 0 (automatic) to {MAX_SLOTS}, got {slots}",
                           code="invalid_config")
    return slots


def default_node_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def _lease(environ: Mapping[str, str]) -> LeaseSettings:
    ls = LeaseSettings(
        ttl_s=_float(environ, "TOONZ_LEASE_TTL_S", LeaseSettings.ttl_s),
        max_attempts=_int(environ, "TOONZ_MAX_ATTEMPTS", LeaseSettings.max_attempts),
        reap_interval_s=_float(environ, "TOONZ_REAP_INTERVAL_S", LeaseSettings.reap_interval_s),
        stall_s=_float(environ, "TOONZ_STALL_S", LeaseSettings.stall_s),
    )
    if ls.ttl_s <= 0 or ls.max_attempts < 1 or ls.reap_interval_s <= 0:
        raise InvalidInput("lease TTL, max attempts and reap interval must be positive",
                           code="invalid_config")
    return ls


def _chunks(environ: Mapping[str, str]) -> ChunkSettings:
    cs = ChunkSettings(
        chunk_s=_float(environ, "TOONZ_CHUNK_S", ChunkSettings.chunk_s),
        min_chunk_s=_float(environ, "TOONZ_MIN_CHUNK_S", ChunkSettings.min_chunk_s),
        min_chunks=_int(environ, "TOONZ_MIN_CHUNKS", ChunkSettings.min_chunks),
    )
    if cs.min_chunk_s <= 0 or cs.min_chunks < 2 or (cs.enabled and cs.chunk_s < cs.min_chunk_s) \
            or cs.chunk_s < 0:
        raise InvalidInput(f"chunks must last at least TOONZ_MIN_CHUNK_S ({cs.min_chunk_s:g} s, > 0) "
                           f"or be 0 (off), and TOONZ_MIN_CHUNKS must be at least 2; got "
                           f"{cs.chunk_s:g} s and {cs.min_chunks}", code="invalid_config")
    return cs


def _webhooks(environ: Mapping[str, str]) -> WebhookSettings:
    ws = WebhookSettings(
        timeout_s=_float(environ, "TOONZ_WEBHOOK_TIMEOUT_S", WebhookSettings.timeout_s),
        backoff_base_s=_float(environ, "TOONZ_WEBHOOK_BACKOFF_BASE_S", WebhookSettings.backoff_base_s),
        poll_s=_float(environ, "TOONZ_WEBHOOK_POLL_S", WebhookSettings.poll_s),
    )
    if ws.timeout_s <= 0 or ws.backoff_base_s <= 0 or ws.poll_s <= 0:
        raise InvalidInput("webhook timeout, backoff base and poll interval must be positive",
                           code="invalid_config")
    return ws


def _override(base: Any, overrides: Mapping[str, Any]) -> Any:
    known = {f.name for f in fields(base)}
    given = {k: v for k, v in overrides.items() if v is not None}
    unknown = set(given) - known
    if unknown:
        raise InvalidInput(f"unknown settings: {', '.join(sorted(unknown))}", code="invalid_config")
    return replace(base, **given)


def _int(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise InvalidInput(f"{name} must be an integer, got {raw!r}", code="invalid_config") from None


def _float(environ: Mapping[str, str], name: str, default: float) -> float:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise InvalidInput(f"{name} must be a number, got {raw!r}", code="invalid_config") from None


def _bool(environ: Mapping[str, str], name: str, default: bool) -> bool:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise InvalidInput(f"{name} must be true or false, got {raw!r}", code="invalid_config")
