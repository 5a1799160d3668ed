"""What nodes on other machines fetch and upload through the scheduler, fenced.

A node presents the fence token of its lease (header X-Toonz-Fence); a request
whose token is not the job's current one, or whose job is no longer leased, is
refused, so a node that was cut off cannot overwrite another node's result.
"""

from __future__ import annotations

from aiohttp import web

from farm import keys
from farm.errors import InvalidInput, PayloadTooLarge, StaleLease
from farm.jobs import looks_like_node_job_id, parse_chunk_id
from scheduler.context import REDIS, STORE
from scheduler.renders import INPUT_ARTIFACT, LOGO_ARTIFACT

LEASED_STATES = {b"leased", b"running", b"cancel_requested"}
MAX_ARTIFACT_BYTES = 8 * 1024 ** 3
CHUNK = 1024 * 1024
NODE_INPUTS = (INPUT_ARTIFACT, LOGO_ARTIFACT)  # what a node reads and may never replace


async def _check_fence(request: web.Request) -> str:
    job_id = request.match_info["job_id"]
    if not looks_like_node_job_id(job_id):
        raise InvalidInput(f"malformed job id {job_id!r}", code="invalid_job_id")
    fence = request.headers.get("X-Toonz-Fence", "")
    state, current = await request.app[REDIS].hmget(keys.job(job_id), "state", "fence")
    if not fence or current is None or current.decode() != fence or state not in LEASED_STATES:
        raise StaleLease(f"fence {fence or '(none)'} does not hold job {job_id}")
    return job_id


async def get_input(request: web.Request) -> web.StreamResponse:
    job_id = await _check_fence(request)
    return web.FileResponse(request.app[STORE].existing(job_id, INPUT_ARTIFACT))


async def get_logo(request: web.Request) -> web.StreamResponse:
    """The job's logo (404 artifact_not_found when the render has none); a chunk's lease
    reads its render's, which holds it."""
    job_id = await _check_fence(request)
    chunk = parse_chunk_id(job_id)
    return web.FileResponse(request.app[STORE].existing(chunk[0] if chunk else job_id, LOGO_ARTIFACT))


async def put_artifact(request: web.Request) -> web.Response:
    job_id = await _check_fence(request)
    name = request.match_info["name"]
    if name in NODE_INPUTS:
        raise InvalidInput(f"a node cannot replace the job's input {name!r}", code="invalid_artifact")
    store = request.app[STORE]
    written = 0
    with store.writer(*stored_as(job_id, name)) as fh:
        while chunk := await request.content.read(CHUNK):
            written += len(chunk)
            if written > MAX_ARTIFACT_BYTES:
                raise PayloadTooLarge(f"artifact larger than {MAX_ARTIFACT_BYTES} bytes")
            fh.write(chunk)
        # Checked again before the rename: the lease may have moved during the upload.
        await _check_fence(request)
    return web.json_response({"job_id": job_id, "artifact": name, "bytes": written}, status=201)


def stored_as(job_id: str, name: str) -> tuple[str, str]:
    """Where a job's artifact lives in the store: a chunk's (node/chunks.py) in its render's
    folder as "c{k}.{name}", so the render's files are all in one place."""
    chunk = parse_chunk_id(job_id)
    return (chunk[0], f"c{chunk[1]}.{name}") if chunk else (job_id, name)
