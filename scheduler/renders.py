"""Public render API views: create, get, download, usage. Thin: parse, call, answer."""

from __future__ import annotations

import asyncio
import math
import shutil
import time

import redis
from aiohttp import web

from farm import keys, presets
from farm.audio import probe_duration
from farm.errors import Conflict, InvalidInput, NotFound, QuotaExceeded
from farm.jobs import Job, JobState, looks_like_job_id, new_job_id
from farm.lease import month_of
from farm.presets import TIER_LIMITS, TIER_ORDER
from farm.scheduling import memory_needed_mb, queue_score
from scheduler import jobctl
from scheduler.auth import principal
from scheduler.context import CONFIG, REDIS, SCRIPTS, STORE
from scheduler.intake import read_request

# A first, rough estimate of render time per second of audio on one node; bench/render
# measures the real figure (issue 7 replaces this with measured node throughput).
RENDER_S_PER_AUDIO_S = 1.0
INPUT_ARTIFACT = "input.audio"
CONTENT_TYPES = {"mp4": "video/mp4", "webm": "video/webm", "gif": "image/gif", "png": "image/png",
                 "json": "application/json"}
LOG_ARTIFACT = "log.txt"  # node/joblog.py writes it; operators read it (admin API)
PRIVATE_ARTIFACTS = (INPUT_ARTIFACT, LOG_ARTIFACT)


async def create_render(request: web.Request) -> web.Response:
    who = await principal(request)
    cfg = request.app[CONFIG]
    spec, tmp = await read_request(request, cfg.data_dir / "tmp", cfg.limits)
    store = request.app[STORE]
    job_id = new_job_id()
    try:
        limit = TIER_LIMITS[who.tier]
        duration = await asyncio.get_running_loop().run_in_executor(
            None, lambda: probe_duration(tmp))
        if duration > limit.max_audio_s:
            raise InvalidInput(f"audio is {duration:.1f} s; the {who.tier.value} tier allows "
                               f"{limit.max_audio_s:.0f} s", code="audio_too_long")
        with store.writer(job_id, INPUT_ARTIFACT) as fh, open(tmp, "rb") as src:
            shutil.copyfileobj(src, fh, 1024 * 1024)
    finally:
        tmp.unlink(missing_ok=True)
    price = presets.quality(spec.quality).price_cents
    now = time.time()
    record = {
        "id": job_id, "tenant": who.tenant_id, "tier": who.tier.value, "quality": spec.quality,
        "format": spec.format, "template": spec.template, "character": spec.character,
        "transcript": spec.transcript, "title": spec.title, "webhook_url": spec.webhook_url,
        "duration_s": f"{duration:.3f}", "price_cents": price, "created_at": f"{now:.3f}",
        "audio": INPUT_ARTIFACT, "needs_mb": memory_needed_mb(spec.quality),
        "frames": math.ceil(duration * presets.quality(spec.quality).fps),
    }
    quota = limit.renders_per_month if limit.renders_per_month is not None else -1
    created_ms = int(now * 1000)
    record["priority"] = spec.priority
    r = request.app[REDIS]
    try:
        await request.app[SCRIPTS]["submit"](args=[
            job_id, who.tenant_id, who.tier.value, quota, month_of(now), created_ms,
            queue_score(spec.priority, created_ms), *[x for kv in record.items() for x in kv]])
    except redis.ResponseError as exc:
        store.delete_job(job_id)
        if str(exc).startswith("QUOTA"):
            raise QuotaExceeded(f"monthly render quota reached: {str(exc)[6:]}") from None
        raise
    ahead = 0
    for t in TIER_ORDER:
        ahead += await r.zcard(keys.queue(t.value))
        if t == who.tier:
            break
    eta = round(ahead * duration * RENDER_S_PER_AUDIO_S + 5, 1)
    return web.json_response(
        {"job_id": job_id, "state": JobState.QUEUED.value, "price": price / 100,
         "price_cents": price, "duration_s": round(duration, 3), "eta_s": eta,
         "status_url": f"/v1/renders/{job_id}"}, status=202)


async def get_render(request: web.Request) -> web.Response:
    who = await principal(request)
    job = await _own_job(request, who.tenant_id)
    body = job.public()
    raw = await request.app[REDIS].hget(keys.job(job.id), "artifacts")
    body["artifacts"] = [a for a in (raw or b"").decode().split(",") if a and a not in PRIVATE_ARTIFACTS]
    if job.state == JobState.SUCCEEDED:
        body["download_url"] = f"/v1/renders/{job.id}/download"
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


async def usage(request: web.Request) -> web.Response:
    who = await principal(request)
    r = request.app[REDIS]
    month = month_of()
    u = await r.hgetall(keys.usage(who.tenant_id, month))
    used = int(u.get(b"renders", 0))
    active = await r.scard(keys.tenant_active(who.tenant_id))
    limit = TIER_LIMITS[who.tier].renders_per_month
    return web.json_response({
        "tenant": who.tenant_name, "tier": who.tier.value, "period": month,
        "renders_used": used, "renders_in_progress": active, "renders_limit": limit,
        "renders_remaining": None if limit is None else max(limit - used - active, 0),
        "seconds_rendered": round(float(u.get(b"seconds", 0)), 3),
        "cost": int(u.get(b"cost_cents", 0)) / 100,
        "max_audio_s": TIER_LIMITS[who.tier].max_audio_s,
    })


async def _own_job(request: web.Request, tenant_id: str) -> Job:
    job_id = request.match_info["job_id"]
    raw = await request.app[REDIS].hgetall(keys.job(job_id)) if looks_like_job_id(job_id) else None
    # Another tenant's job is indistinguishable from a missing one.
    if not raw or raw.get(b"tenant", b"").decode() != tenant_id:
        raise NotFound(f"no render {job_id!r}", code="job_not_found")
    return Job.from_redis(raw)
