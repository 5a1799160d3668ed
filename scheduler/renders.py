"""Public render API views: get, download, cancel (create: scheduler/creation.py). Thin:
parse, call, answer."""

from __future__ import annotations

from aiohttp import web

from farm import keys
from farm.errors import Conflict, NotFound
from farm.jobs import Job, JobState, looks_like_job_id
from scheduler import jobctl
from scheduler.auth import principal
from scheduler.context import REDIS, STORE

INPUT_ARTIFACT = "input.audio"
LOGO_ARTIFACT = "input.logo"  # a customer's logo, checked at intake (scheduler/intake.py)
CONTENT_TYPES = {"mp4": "video/mp4", "webm": "video/webm", "gif": "image/gif", "png": "image/png",
                 "json": "application/json", "vtt": "text/vtt"}
LOG_ARTIFACT = "log.txt"  # node/joblog.py writes it; operators read it (admin API)
PRIVATE_ARTIFACTS = (INPUT_ARTIFACT, LOGO_ARTIFACT, LOG_ARTIFACT)
# What a customer downloads, by the name download_urls gives it (the video is video.<format>).
# captions.vtt is listed only when a node wrote one.
PUBLIC_ARTIFACTS = {"poster": "poster.png", "timeline": "timeline.json", "captions": "captions.vtt"}


async def get_render(request: web.Request) -> web.Response:
    who = await principal(request)
    job = await _own_job(request, who.tenant_id)
    body = job.public()
    raw = await request.app[REDIS].hget(keys.job(job.id), "artifacts")
    body["artifacts"] = [a for a in (raw or b"").decode().split(",") if a and a not in PRIVATE_ARTIFACTS]
    if job.state == JobState.SUCCEEDED:
        url = f"/v1/renders/{job.id}/download"
        body["download_url"] = url
        names = {"video": f"video.{job.format}", **PUBLIC_ARTIFACTS}
        body["download_urls"] = {kind: url if kind == "video" else f"{url}?artifact={name}"
                                 for kind, name in names.items() if name in body["artifacts"]}
    return web.json_response(body)


async def download_render(request: web.Request) -> web.StreamResponse:
    who = await principal(request)
    job = await _own_job(request, who.tenant_id)
    if job.state != JobState.SUCCEEDED:
        raise Conflict(f"job {job.id} is {job.state.value}; download once it has succeeded",
                       code="not_ready")
    name = request.query.get("artifact", f"video.{job.format}")
    if name in PRIVATE_ARTIFACTS:
        raise NotFound(f"job {job.id} has no artifact {name!r}", code="artifact_not_found")
    path = request.app[STORE].existing(job.id, name)
    ctype = CONTENT_TYPES.get(name.rsplit(".", 1)[-1], "application/octet-stream")
    return web.FileResponse(path, headers={
        "Content-Type": ctype, "Content-Disposition": f'attachment; filename="{job.id}-{name}"'})


async def cancel_render(request: web.Request) -> web.Response:
    who = await principal(request)
    job = await _own_job(request, who.tenant_id)
    state = await jobctl.cancel(request.app, job.id)
    return web.json_response({"job_id": job.id, "state": state}, status=202)


async def _own_job(request: web.Request, tenant_id: str) -> Job:
    job_id = request.match_info["job_id"]
    raw = await request.app[REDIS].hgetall(keys.job(job_id)) if looks_like_job_id(job_id) else None
    # Another tenant's job is indistinguishable from a missing one.
    if not raw or raw.get(b"tenant", b"").decode() != tenant_id:
        raise NotFound(f"no render {job_id!r}", code="job_not_found")
    return Job.from_redis(raw)
