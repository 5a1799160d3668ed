"""`Idempotency-Key` on create requests: a retry gets the first answer, never a second job.

A key is remembered per tenant for IDEMPOTENCY_TTL_S. The request it came with is
remembered by a fingerprint (its path, its fields, its audio's SHA-256 or URL), so the
same key with a different request is refused (409 `idempotency_key_reused`). While
the first request runs, a duplicate is refused at once (409 `idempotency_in_progress`,
retry later) rather than held open. Only successful (2xx) answers are remembered: a
refused request leaves nothing behind, and may be retried, corrected, with its key.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from pathlib import Path
from typing import Awaitable, Callable

from aiohttp import web

from farm import keys
from farm.errors import Conflict, InvalidInput

HEADER = "Idempotency-Key"
IDEMPOTENCY_TTL_S = 24 * 3600
# A first request that never finishes (its scheduler died) frees its key after this long;
# longer than the slowest create (an audio_url fetch, a 50 MB upload, a batch of 50).
IN_PROGRESS_TTL_S = 15 * 60
MAX_IDEMPOTENCY_KEY_CHARS = 255
REPLAYED_HEADER = "Idempotent-Replayed"
_HASH_CHUNK = 1024 * 1024


def key_of(request: web.Request) -> str | None:
    """The request's idempotency key, None without one; 400 when it is malformed."""
    key = request.headers.get(HEADER)
    if key is None:
        return None
    if not key.strip() or len(key) > MAX_IDEMPOTENCY_KEY_CHARS:
        raise InvalidInput(f"{HEADER} must be 1-{MAX_IDEMPOTENCY_KEY_CHARS} characters, got "
                           f"{len(key)}", code="invalid_idempotency_key")
    return key


def fingerprint(path: str, body: object) -> str:
    """The identity of a JSON request: its path and its body, key order aside."""
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{path}\n{text}".encode()).hexdigest()


def file_fingerprint(path: str, fields: dict, audio: Path) -> str:
    """The identity of an upload: path, fields and the audio's bytes, read in chunks
    (blocking: run it in an executor)."""
    h = hashlib.sha256()
    with open(audio, "rb") as fh:
        while chunk := fh.read(_HASH_CHUNK):
            h.update(chunk)
    return fingerprint(path, {"fields": fields, "audio_sha256": h.hexdigest()})


async def once(r, tenant_id: str, key: str | None, fp: str,
               make: Callable[[], Awaitable[web.Response]]) -> web.Response:
    """Run `make` for the first request with this key; answer a retry with its answer."""
    if key is None:
        return await make()
    rkey = keys.idempotency(tenant_id, hashlib.sha256(key.encode()).hexdigest())
    token = secrets.token_hex(8)
    pending = json.dumps({"state": "pending", "fingerprint": fp, "token": token})
    while not await r.set(rkey, pending, nx=True, ex=IN_PROGRESS_TTL_S):
        raw = await r.get(rkey)
        if raw is None:
            continue  # expired between the two reads: claim it again
        rec = json.loads(raw)
        if rec["fingerprint"] != fp:
            raise Conflict(f"this {HEADER} was used with a different request; use a new key "
                           "for a new request", code="idempotency_key_reused")
        if rec["state"] == "pending":
            raise Conflict(f"a request with this {HEADER} is still being processed; retry "
                           "shortly for its answer", code="idempotency_in_progress")
        return web.Response(text=rec["body"], status=rec["status"], content_type="application/json",
                            headers={REPLAYED_HEADER: "true"})
    try:
        resp = await make()
    except BaseException:
        await _release(r, rkey, pending)
        raise
    if 200 <= resp.status < 300:
        await r.set(rkey, json.dumps({"state": "done", "fingerprint": fp, "status": resp.status,
                                      "body": resp.text}), ex=IDEMPOTENCY_TTL_S)
    else:
        await _release(r, rkey, pending)
    return resp


async def _release(r, rkey: str, pending: str) -> None:
    # Forget the claim (ours alone: a claim that expired and was retaken is someone else's).
    if await r.get(rkey) == pending.encode():
        await r.delete(rkey)
