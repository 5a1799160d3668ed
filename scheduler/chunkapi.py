"""Chunked renders, the scheduler's side (node/chunks.py, node/chunkjobs.py).

The node holding a render splits it (POST /v1/node/jobs/{id}/chunks, farm/lua/split.lua);
then the nodes rendering its chunks read what they share with it (its timeline, its
logo), and the node holding the render reads each chunk's stream, all through
GET /v1/node/jobs/{id}/related/{other}/{name}: fenced by the caller's own lease, for a
job of the same render only (the render itself, its parent, or one of its chunks).
"""

from __future__ import annotations

import json

import redis
from aiohttp import web

from farm import keys
from farm.errors import Conflict, InvalidInput, NotFound, StaleLease
from farm.jobs import looks_like_job_id
from farm.lease import split_args
from node.chunks import MAX_CHUNKS
from scheduler.context import REDIS, SCRIPTS, STORE
from scheduler.nodeapi import _check_fence, stored_as

CHUNK_STREAM = "video.h264"  # what a chunk's node uploads (node/chunkjobs.py CHUNK_VIDEO)


async def split_render(request: web.Request) -> web.Response:
    """Body {"ranges": [[start, stop], ...]}: contiguous frame ranges from 0. Answers the
    chunks' ids; the same ids again for a render split before (idempotent)."""
    job_id = await _check_fence(request)
    if not looks_like_job_id(job_id):
        raise InvalidInput(f"{job_id} is a chunk; only a render is split", code="invalid_job_id")
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InvalidInput("the body must be JSON: {\"ranges\": [[start, stop], ...]}",
                           code="invalid_json") from None
    ranges = parse_ranges(body.get("ranges") if isinstance(body, dict) else None)
    fence = request.headers["X-Toonz-Fence"]
    try:
        ids = await request.app[SCRIPTS]["split"](args=split_args(job_id, fence, ranges))
    except redis.ResponseError as exc:
        text = str(exc)
        if text.startswith("STALE"):
            raise StaleLease(text) from None
        if text.startswith("CANCELED"):
            raise Conflict(f"render {job_id} is being canceled", code="canceled") from None
        if text.startswith("INVALID"):
            raise InvalidInput(text[8:], code="invalid_chunks") from None
        raise
    return web.json_response({"job_id": job_id, "chunks": [i.decode() for i in ids]}, status=201)


def parse_ranges(raw: object) -> list[tuple[int, int]]:
    """[[start, stop], ...]: 1 to MAX_CHUNKS non-empty ranges, each starting where the last
    stopped, the first at 0; InvalidInput "invalid_chunks" otherwise."""
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_CHUNKS:
        raise InvalidInput(f"ranges must be a list of 1 to {MAX_CHUNKS} [start, stop] pairs",
                           code="invalid_chunks")
    out, expect = [], 0
    for r in raw:
        ok = (isinstance(r, list) and len(r) == 2
              and all(isinstance(x, int) and not isinstance(x, bool) for x in r))
        if not ok or r[0] != expect or r[1] <= r[0]:
            raise InvalidInput(f"ranges must be contiguous [start, stop] pairs from frame 0, "
                               f"stop > start; got {str(r)[:40]} where frame {expect} starts",
                               code="invalid_chunks")
        out.append((r[0], r[1]))
        expect = r[1]
    return out


async def delete_streams(request: web.Request) -> web.Response:
    """The render's chunk streams, deleted once it succeeded: by the node that completed
    it (its fence is still the render's), as its last step. Nothing else needs them then
    (only failed and canceled renders are retried); their logs stay for operators."""
    job_id = request.match_info["job_id"]
    if not looks_like_job_id(job_id):
        raise InvalidInput(f"malformed job id {job_id!r}", code="invalid_job_id")
    fence = request.headers.get("X-Toonz-Fence", "")
    state, current, chunks = await request.app[REDIS].hmget(keys.job(job_id), "state", "fence", "chunks")
    if not fence or current is None or current.decode() != fence or state != b"succeeded":
        raise StaleLease(f"fence {fence or '(none)'} did not complete job {job_id}")
    store, deleted = request.app[STORE], 0
    for cid in (chunks or b"").decode().split(","):
        if cid:
            path = store.path(*stored_as(cid, CHUNK_STREAM))
            if path.is_file():
                path.unlink()
                deleted += 1
    return web.json_response({"job_id": job_id, "deleted": deleted})


async def get_related(request: web.Request) -> web.StreamResponse:
    """Artifact `name` of `other`, a job of the caller's render family."""
    job_id = await _check_fence(request)
    other, name = request.match_info["other_id"], request.match_info["name"]
    parent, chunks = await request.app[REDIS].hmget(keys.job(job_id), "parent", "chunks")
    family = {job_id, (parent or b"").decode(), *(chunks or b"").decode().split(",")} - {""}
    if other not in family:
        raise NotFound(f"{other!r} is not a job of {job_id}'s render", code="job_not_found")
    return web.FileResponse(request.app[STORE].existing(*stored_as(other, name)))
