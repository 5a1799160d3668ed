"""Creating renders: POST /v1/renders (one) and POST /v1/renders/batch (up to MAX_BATCH).

One path for both: `prepare` checks a render's audio against its tier and stores it,
`submit` admits prepared renders (farm/lua/submit.lua: quota check, record, queues; a
batch's jobs in one MULTI under WATCH), `answer` says what the client gets back. A batch
is validated whole, every item's audio fetched and checked, before any job is created;
it fits the tenant's quota whole or is refused whole. Both honour Idempotency-Key
(scheduler/idempotency.py).
"""

from __future__ import annotations

import asyncio
import math
import secrets
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import redis
from aiohttp import web

from farm import keys, presets
from farm.audio import probe_duration
from farm.config import Limits
from farm.errors import InvalidInput, QuotaExceeded, ServiceUnavailable, ToonzError
from farm.jobs import JobState, new_job_id
from farm.lease import month_of
from farm.presets import TIER_LIMITS, TIER_ORDER
from farm.scheduling import memory_needed_mb, queue_score
from farm.tenants import Principal
from scheduler import idempotency, urlcheck
from scheduler.auth import principal
from scheduler.context import CONFIG, REDIS, SCRIPTS, STORE
from scheduler.intake import (Inputs, RenderSpec, check_urls, fetch_inputs, json_fields, json_object,
                             read_request, validate_fields)
from scheduler.renders import INPUT_ARTIFACT, LOGO_ARTIFACT

# A first, rough estimate of render time per second of audio on one node; bench/render
# measures the real figure (issue 7 replaces this with measured node throughput).
RENDER_S_PER_AUDIO_S = 1.0
MAX_BATCH = 50
BATCH_FETCH_CONCURRENCY = 4  # audio_url downloads of one batch at a time
BATCH_SUBMIT_TRIES = 5  # optimistic admissions of a batch before it is refused as busy


@dataclass(frozen=True)
class Prepared:
    """A render whose audio is checked and stored, ready to be admitted."""

    job_id: str
    duration: float
    record: dict
    created_ms: int
    priority: int


async def create_render(request: web.Request) -> web.Response:
    who = await principal(request)
    key = idempotency.key_of(request)
    app, cfg = request.app, request.app[CONFIG]
    tmp_dir = cfg.data_dir / "tmp"
    if request.content_type == "application/json":
        # The fingerprint is taken before audio_url is fetched: a retry is answered unfetched.
        body = await json_object(request)
        spec, url = await json_spec(body, cfg.limits)

        async def make() -> web.Response:
            return await _create_one(app, who, spec, await fetch_inputs(url, spec, tmp_dir, cfg.limits))

        fp = idempotency.fingerprint(request.path, body) if key else ""
        return await idempotency.once(app[REDIS], who.tenant_id, key, fp, make)
    spec, inputs = await read_request(request, tmp_dir, cfg.limits)
    try:
        fp = await asyncio.get_running_loop().run_in_executor(
            None, _upload_fingerprint, request.path, spec, inputs) if key else ""
        return await idempotency.once(app[REDIS], who.tenant_id, key, fp,
                                      lambda: _create_one(app, who, spec, inputs))
    finally:
        inputs.discard()


def _upload_fingerprint(path: str, spec: RenderSpec, inputs: Inputs) -> str:
    """An upload's identity: its fields, its audio's bytes and its logo's (blocking)."""
    fields = asdict(spec)
    if inputs.logo is not None:
        fields["logo_sha256"] = idempotency.file_fingerprint("logo", {}, inputs.logo)
    return idempotency.file_fingerprint(path, fields, inputs.audio)


async def create_batch(request: web.Request) -> web.Response:
    """{"renders": [JSON create bodies]}: 202 with a batch id and every render's answer."""
    who = await principal(request)
    key = idempotency.key_of(request)
    app, limits = request.app, request.app[CONFIG].limits
    body = await json_object(request)
    items = body.get("renders")
    if not isinstance(items, list) or not items:
        raise InvalidInput("send {\"renders\": [...]}: a list of 1 to "
                           f"{MAX_BATCH} render requests", code="invalid_batch")
    if len(items) > MAX_BATCH:
        raise InvalidInput(f"a batch holds at most {MAX_BATCH} renders, got {len(items)}",
                           code="batch_too_large")
    specs = []
    for i, item in enumerate(items):
        try:
            if not isinstance(item, dict):
                raise InvalidInput("each render must be a JSON object", code="invalid_json")
            specs.append(await json_spec(item, limits))
        except ToonzError as exc:
            raise _at(i, exc) from None
    fp = idempotency.fingerprint(request.path, body) if key else ""
    return await idempotency.once(app[REDIS], who.tenant_id, key, fp,
                                  lambda: _create_batch(app, who, specs))


async def json_spec(body: dict, limits: Limits) -> tuple[RenderSpec, str]:
    """A JSON create body's validated spec and its audio_url (neither it nor logo_url
    fetched yet); the same checks as intake.read_request's JSON branch, which fetches at once."""
    spec = validate_fields(json_fields(body), limits)
    await check_urls(spec, limits)  # logo_url too: a batch is refused before any fetch
    url = body.get("audio_url")
    if not url:
        raise InvalidInput("no audio: send a multipart 'audio' file or JSON 'audio_url'",
                           code="missing_audio")
    if not isinstance(url, str):
        raise InvalidInput("field 'audio_url' must be a string", code="invalid_field")
    # Checked now, so that a batch is refused before any of its audio is fetched.
    await urlcheck.check_url(url, limits, "audio_url", unresolvable_code="url_fetch_failed")
    return spec, url


async def _create_one(app: web.Application, who: Principal, spec: RenderSpec, inputs: Inputs) -> web.Response:
    p = await prepare(app, who, spec, inputs)
    await submit(app, who, [p])
    return web.json_response(answer(p, await _ahead(app, who)), status=202)


async def _create_batch(app: web.Application, who: Principal, specs: list[tuple[RenderSpec, str]]) -> web.Response:
    r, cfg = app[REDIS], app[CONFIG]
    quota = TIER_LIMITS[who.tier].renders_per_month
    if quota is not None:  # refuse before fetching anything; submit() checks again, atomically
        used = int(await r.hget(keys.usage(who.tenant_id, month_of()), "renders") or 0)
        active = await r.scard(keys.tenant_active(who.tenant_id))
        if used + active + len(specs) > quota:
            raise QuotaExceeded(_batch_quota_message(len(specs), quota, used, active, who))
    gate = asyncio.Semaphore(BATCH_FETCH_CONCURRENCY)
    batch_id = "b_" + secrets.token_hex(8)

    async def one(spec: RenderSpec, url: str) -> Prepared:
        async with gate:
            inputs = await fetch_inputs(url, spec, cfg.data_dir / "tmp", cfg.limits)
            return await prepare(app, who, spec, inputs, batch_id=batch_id)

    results = await asyncio.gather(*(one(s, u) for s, u in specs), return_exceptions=True)
    failed = [(i, x) for i, x in enumerate(results) if isinstance(x, BaseException)]
    if failed:
        for x in results:
            if isinstance(x, Prepared):
                app[STORE].delete_job(x.job_id)
        i, exc = failed[0]
        raise _at(i, exc) if isinstance(exc, ToonzError) else exc
    prepared = [p for p in results if isinstance(p, Prepared)]
    await submit(app, who, prepared)
    ahead = await _ahead(app, who)
    return web.json_response({"batch_id": batch_id, "renders": [answer(p, ahead) for p in prepared]},
                             status=202)


async def prepare(app: web.Application, who: Principal, spec: RenderSpec, inputs: Inputs | Path,
                  batch_id: str = "") -> Prepared:
    """Check the audio against the tier, store it (and the logo, already checked at intake)
    as the job's private inputs; the temporary files are removed. A Path is audio alone."""
    if isinstance(inputs, Path):
        inputs = Inputs(inputs)
    job_id = new_job_id()
    limit = TIER_LIMITS[who.tier]
    store = app[STORE]

    def check_and_store() -> float:
        duration = probe_duration(inputs.audio)
        if duration > limit.max_audio_s:
            raise InvalidInput(f"audio is {duration:.1f} s; the {who.tier.value} tier allows "
                               f"{limit.max_audio_s:.0f} s", code="audio_too_long")
        for name, src_path in ((INPUT_ARTIFACT, inputs.audio), (LOGO_ARTIFACT, inputs.logo)):
            if src_path is not None:
                with store.writer(job_id, name) as fh, open(src_path, "rb") as src:
                    shutil.copyfileobj(src, fh, 1024 * 1024)
        return duration

    try:
        duration = await asyncio.get_running_loop().run_in_executor(None, check_and_store)
    except BaseException:
        store.delete_job(job_id)
        raise
    finally:
        inputs.discard()
    q = presets.quality(spec.quality)
    now = time.time()
    record = {
        "id": job_id, "tenant": who.tenant_id, "tier": who.tier.value, "quality": spec.quality,
        "format": spec.format, "template": spec.template, "character": spec.character,
        "transcript": spec.transcript, "title": spec.title, "webhook_url": spec.webhook_url,
        "duration_s": f"{duration:.3f}", "price_cents": q.price_cents, "created_at": f"{now:.3f}",
        "audio": INPUT_ARTIFACT, "needs_mb": memory_needed_mb(spec.quality),
        # Only a node that can open this encoder leases the job (farm/lua/lease.lua).
        "needs_codec": presets.encoder_preset(spec.format, spec.quality).codec,
        "frames": math.ceil(duration * q.fps), "priority": spec.priority,
        # What the renderer is asked for beyond the basics (node/pipeline.py render()).
        "expression": spec.expression, "second_character": spec.second_character,
        "captions": "" if spec.captions is None else str(int(spec.captions)),
        "logo": LOGO_ARTIFACT if inputs.logo is not None else "",
    }
    if batch_id:
        record["batch"] = batch_id
    return Prepared(job_id, duration, record, int(now * 1000), spec.priority)


async def submit(app: web.Application, who: Principal, prepared: list[Prepared]) -> None:
    """Admit every prepared render or none; refused, their stored audio is deleted."""
    try:
        if len(prepared) == 1:
            results = await _submit_one(app, who, prepared[0])
        else:
            results = await _submit_many(app, who, prepared)
    except BaseException:
        for p in prepared:
            app[STORE].delete_job(p.job_id)
        raise
    failed = [(p, x) for p, x in zip(prepared, results) if isinstance(x, Exception)]
    for p, _ in failed:
        app[STORE].delete_job(p.job_id)
    if failed:
        exc = failed[0][1]
        if str(exc).startswith("QUOTA"):
            raise QuotaExceeded(f"monthly render quota reached: {str(exc)[6:]}") from None
        raise exc


async def _submit_one(app: web.Application, who: Principal, p: Prepared) -> list:
    # submit.lua checks the quota and enqueues in one step.
    quota = TIER_LIMITS[who.tier].renders_per_month
    pipe = app[REDIS].pipeline(transaction=False)
    await _queue_submit(app, pipe, who, p, -1 if quota is None else quota)
    return await pipe.execute(raise_on_error=False)


async def _submit_many(app: web.Application, who: Principal, prepared: list[Prepared]) -> list:
    """A batch: the quota is read under WATCH and the jobs go in one MULTI, which fails
    (and is tried again) if a render of the tenant was admitted or charged meanwhile."""
    n, r = len(prepared), app[REDIS]
    quota = TIER_LIMITS[who.tier].renders_per_month
    month = month_of(prepared[0].created_ms / 1000)
    usage_key, active_key = keys.usage(who.tenant_id, month), keys.tenant_active(who.tenant_id)
    for _ in range(BATCH_SUBMIT_TRIES):
        async with r.pipeline(transaction=True) as pipe:
            try:
                await pipe.watch(usage_key, active_key)
                used = int(await pipe.hget(usage_key, "renders") or 0)
                active = await pipe.scard(active_key)
                if quota is not None and used + active + n > quota:
                    raise QuotaExceeded(_batch_quota_message(n, quota, used, active, who))
                pipe.multi()
                for p in prepared:
                    await _queue_submit(app, pipe, who, p, -1 if quota is None else quota)
                return await pipe.execute(raise_on_error=False)
            except redis.WatchError:
                continue
    raise ServiceUnavailable("too many renders of this tenant are being admitted at once; "
                             "retry the batch", code="busy")


async def _queue_submit(app: web.Application, pipe, who: Principal, p: Prepared, quota: int) -> None:
    await app[SCRIPTS]["submit"](args=[
        p.job_id, who.tenant_id, who.tier.value, quota, month_of(p.created_ms / 1000), p.created_ms,
        queue_score(p.priority, p.created_ms), *[x for kv in p.record.items() for x in kv]],
        client=pipe)


def answer(p: Prepared, ahead: int) -> dict:
    """The 202 body of one created render."""
    price = p.record["price_cents"]
    return {"job_id": p.job_id, "state": JobState.QUEUED.value, "price": price / 100,
            "price_cents": price, "duration_s": round(p.duration, 3),
            "eta_s": round(ahead * p.duration * RENDER_S_PER_AUDIO_S + 5, 1),
            "status_url": f"/v1/renders/{p.job_id}"}


async def _ahead(app: web.Application, who: Principal) -> int:
    """Jobs queued in this tier and the stronger ones (a rough ETA's numerator)."""
    ahead = 0
    for t in TIER_ORDER:
        ahead += await app[REDIS].zcard(keys.queue(t.value))
        if t == who.tier:
            break
    return ahead


def _batch_quota_message(n: int, quota: int, used: int, active: int, who: Principal) -> str:
    return (f"monthly render quota: a batch of {n} renders does not fit; the {who.tier.value} tier "
            f"allows {quota} a month, {used} used and {active} in progress")


def _at(i: int, exc: ToonzError) -> ToonzError:
    """The same error, its message naming the batch item it is about."""
    return type(exc)(f"renders[{i}]: {exc.message}", code=exc.code)
