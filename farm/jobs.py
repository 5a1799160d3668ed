"""The job model: its states and its record as stored in Redis and shown by the API."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from enum import Enum
from typing import Mapping


class JobState(str, Enum):
    QUEUED = "queued"
    LEASED = "leased"
    RUNNING = "running"
    CANCEL_REQUESTED = "cancel_requested"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def terminal(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELED)


def new_job_id() -> str:
    return "r_" + secrets.token_hex(8)


def looks_like_job_id(text: str) -> bool:
    return len(text) == 18 and text.startswith("r_") and all(c in "0123456789abcdef" for c in text[2:])


# A chunk of a long render (node/chunks.py) is a job of its own, "{parent}.c{k}": a farm-internal
# id that the public API never accepts (looks_like_job_id refuses it), only the node API.
CHUNK_KIND = "chunk"
_CHUNK_ID = re.compile(r"^(r_[0-9a-f]{16})\.c([0-9]{1,3})$")


def chunk_id(parent: str, index: int) -> str:
    return f"{parent}.c{index}"


def parse_chunk_id(text: str) -> tuple[str, int] | None:
    """(parent id, chunk index) of a chunk's id; None for anything else."""
    m = _CHUNK_ID.match(text)
    return (m.group(1), int(m.group(2))) if m else None


def looks_like_node_job_id(text: str) -> bool:
    """A render's id or one of its chunks' (what nodes lease)."""
    return looks_like_job_id(text) or parse_chunk_id(text) is not None


@dataclass(frozen=True)
class Job:
    """A render job as the farm records it (the Redis hash, decoded)."""

    id: str
    tenant: str
    tier: str
    state: JobState
    quality: str
    format: str
    template: str
    character: str
    transcript: str
    duration_s: float
    price_cents: int
    created_at: float
    started_at: float | None
    finished_at: float | None
    attempts: int
    node: str
    fence: int
    progress: float
    error: str
    title: str
    priority: int
    # Added after the first records were written: defaults let those load.
    expression: str = "neutral"
    captions: bool | None = None  # None: as the template says
    second_character: str = ""  # '': the template's default (two-person templates)
    logo: bool = False  # the scheduler holds a logo for it (input.logo)
    # Chunked renders (node/chunks.py): a chunk has kind "chunk", its parent's id and its
    # frames start..stop; a parent lists its chunks' ids once it was split.
    kind: str = ""
    parent: str = ""
    frame_start: int = 0
    frame_stop: int = 0
    chunks: tuple[str, ...] = ()
    frames: int = 0  # frames the render will have (at submission: duration x fps)

    @classmethod
    def from_redis(cls, raw: Mapping[bytes | str, bytes | str]) -> "Job":
        h = {_s(k): _s(v) for k, v in raw.items()}
        return cls(
            id=h["id"], tenant=h["tenant"], tier=h["tier"], state=JobState(h["state"]),
            quality=h["quality"], format=h["format"], template=h["template"],
            character=h["character"], transcript=h.get("transcript", ""),
            duration_s=float(h.get("duration_s", 0) or 0),
            price_cents=int(h.get("price_cents", 0) or 0),
            created_at=float(h["created_at"]),
            started_at=_opt_float(h.get("started_at")),
            finished_at=_opt_float(h.get("finished_at")),
            attempts=int(h.get("attempts", 0) or 0), node=h.get("node", ""),
            fence=int(h.get("fence", 0) or 0), progress=float(h.get("progress", 0) or 0),
            error=h.get("error", ""), title=h.get("title", ""),
            priority=int(h.get("priority", 50) or 50),
            expression=h.get("expression") or "neutral",
            captions=None if h.get("captions", "") == "" else h["captions"] == "1",
            second_character=h.get("second_character", ""), logo=bool(h.get("logo")),
            kind=h.get("kind", ""), parent=h.get("parent", ""),
            frame_start=int(h.get("frame_start", 0) or 0), frame_stop=int(h.get("frame_stop", 0) or 0),
            chunks=tuple(c for c in h.get("chunks", "").split(",") if c),
            frames=int(float(h.get("frames", 0) or 0)),
        )

    def public(self) -> dict:
        """The job as the REST API shows it to its tenant."""
        return {
            "job_id": self.id, "state": self.state.value, "progress": round(self.progress, 4),
            "quality": self.quality, "format": self.format, "template": self.template,
            "character": self.character, "duration_s": self.duration_s,
            "price": self.price_cents / 100, "price_cents": self.price_cents,
            "created_at": self.created_at, "started_at": self.started_at,
            "finished_at": self.finished_at, "attempts": self.attempts,
            "node": self.node or None, "error": self.error or None, "priority": self.priority,
            "expression": self.expression, "captions": self.captions,
            "second_character": self.second_character or None, "logo": self.logo,
        }


def _s(v: bytes | str) -> str:
    return v.decode() if isinstance(v, bytes) else v


def _opt_float(v: str | None) -> float | None:
    return float(v) if v not in (None, "") else None
