"""Read a render request (multipart upload or JSON with audio_url) into a validated spec.

The audio is streamed to a temporary file under the data folder, never held whole
in memory; names (template, character, quality, format) are checked before any
byte of audio is stored.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from aiohttp import web

from farm import presets, scheduling
from farm.config import Limits
from farm.errors import InvalidInput, PayloadTooLarge
from scheduler import urlcheck

CHUNK = 256 * 1024
TEXT_FIELDS = ("transcript", "template", "character", "quality", "format", "title", "webhook_url",
               "priority")
MAX_TITLE_CHARS = 120


@dataclass(frozen=True)
class RenderSpec:
    template: str
    character: str
    quality: str
    format: str
    transcript: str
    title: str
    webhook_url: str
    priority: int


def validate_fields(fields: dict[str, str], limits: Limits) -> RenderSpec:
    from assets.loader import list_characters, list_templates  # light: TOML only

    template = fields.get("template") or "explainer"
    character = fields.get("character") or "toonz"
    if template not in list_templates():
        raise InvalidInput(f"unknown template {template!r}; choose one of "
                           f"{', '.join(list_templates())}", code="unknown_template")
    if character not in list_characters():
        raise InvalidInput(f"unknown character {character!r}; choose one of "
                           f"{', '.join(list_characters())}", code="unknown_character")
    quality = presets.quality(fields.get("quality") or "standard").name
    fmt = presets.output_format(fields.get("format") or "mp4")
    transcript = fields.get("transcript") or ""
    if len(transcript) > limits.max_transcript_chars:
        raise InvalidInput(f"transcript has {len(transcript)} characters; the limit is "
                           f"{limits.max_transcript_chars}", code="transcript_too_long")
    title = fields.get("title") or ""
    if len(title) > MAX_TITLE_CHARS:
        raise InvalidInput(f"title has {len(title)} characters; the limit is {MAX_TITLE_CHARS}",
                           code="title_too_long")
    prio = scheduling.priority(fields["priority"]) if fields.get("priority") not in (None, "") \
        else scheduling.DEFAULT_PRIORITY
    webhook_url = fields.get("webhook_url") or ""
    if webhook_url:  # syntax here; where it resolves: check_webhook_url (async)
        urlcheck.parse_url(webhook_url, "webhook_url")
    return RenderSpec(template=template, character=character, quality=quality, format=fmt,
                      transcript=transcript, title=title, webhook_url=webhook_url,
                      priority=prio)


async def read_request(request: web.Request, tmp_dir: Path, limits: Limits) -> tuple[RenderSpec, Path]:
    """Returns the spec and the path of the audio in a temporary file (caller removes it)."""
    ctype = request.content_type
    if ctype == "multipart/form-data":
        return await _read_multipart(request, tmp_dir, limits)
    if ctype == "application/json":
        body = await json_object(request)
        fields = {k: str(body[k]) if k == "priority" and isinstance(body[k], int) else _text(k, body[k])
                  for k in TEXT_FIELDS if body.get(k) is not None}
        spec = validate_fields(fields, limits)
        await check_webhook_url(spec, limits)
        url = body.get("audio_url")
        if not url:
            raise InvalidInput("no audio: send a multipart 'audio' file or JSON 'audio_url'",
                               code="missing_audio")
        return spec, await fetch_url(_text("audio_url", url), tmp_dir, limits)
    if ctype == "application/x-www-form-urlencoded":
        # A form with no file part: validate the fields, then say what is missing.
        form = await request.post()
        validate_fields({k: str(v) for k, v in form.items() if k in TEXT_FIELDS}, limits)
        raise InvalidInput("no audio: send a multipart 'audio' file or JSON 'audio_url'",
                           code="missing_audio")
    raise InvalidInput(f"unsupported content type {ctype!r}: use multipart/form-data or "
                       "application/json", code="unsupported_media_type")


async def json_object(request: web.Request) -> dict:
    """The request body as a JSON object, or a clear 400."""
    try:
        body = await request.json()
    except ValueError:
        raise InvalidInput("request body is not valid JSON", code="invalid_json") from None
    if not isinstance(body, dict):
        raise InvalidInput("request body must be a JSON object", code="invalid_json")
    return body


async def _read_multipart(request, tmp_dir, limits) -> tuple[RenderSpec, Path]:
    reader = await request.multipart()
    fields: dict[str, str] = {}
    audio: Path | None = None
    try:
        while (part := await reader.next()) is not None:
            if part.name == "audio":
                if audio is not None:
                    raise InvalidInput("send one 'audio' file per render", code="duplicate_audio")
                audio = _tmp_path(tmp_dir)
                await _stream_to(part.read_chunk, audio, limits.max_upload_bytes)
            elif part.name in TEXT_FIELDS:
                raw = await part.read(decode=True)
                if len(raw) > limits.max_transcript_chars * 4 + 1024:
                    raise InvalidInput(f"field {part.name!r} is too long", code="field_too_long")
                try:
                    fields[part.name] = raw.decode("utf-8")
                except UnicodeDecodeError:
                    raise InvalidInput(f"field {part.name!r} is not UTF-8 text", code="invalid_text") from None
            else:
                await part.release()
        spec = validate_fields(fields, limits)
        await check_webhook_url(spec, limits)
        if audio is None:
            raise InvalidInput("no audio: send a multipart 'audio' file or JSON 'audio_url'",
                               code="missing_audio")
        if audio.stat().st_size == 0:
            raise InvalidInput("the audio file is empty", code="unreadable_audio")
        return spec, audio
    except BaseException:
        if audio is not None:
            audio.unlink(missing_ok=True)
        raise


async def check_webhook_url(spec: RenderSpec, limits: Limits) -> None:
    """A render's own webhook_url gets its terminal event (scheduler/dispatch.py): the same
    rules as registered webhooks, checked here and again at each delivery."""
    if spec.webhook_url:
        await urlcheck.check_url(spec.webhook_url, limits, "webhook_url")


async def fetch_url(url: str, tmp_dir: Path, limits: Limits) -> Path:
    await urlcheck.check_url(url, limits, "audio_url", unresolvable_code="url_fetch_failed")
    path = _tmp_path(tmp_dir)
    timeout = aiohttp.ClientTimeout(total=limits.url_fetch_timeout_s)
    try:
        # The connector re-checks every address it connects to: DNS may change after the check.
        async with aiohttp.ClientSession(timeout=timeout, connector=urlcheck.connector(limits)) as session:
            async with session.get(url, allow_redirects=False) as resp:
                if resp.status != 200:
                    raise InvalidInput(f"audio_url answered HTTP {resp.status}", code="url_fetch_failed")
                await _stream_to(resp.content.read, path, limits.max_upload_bytes)
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        path.unlink(missing_ok=True)
        if urlcheck.refused(exc):
            raise InvalidInput("audio_url resolves to a private or reserved address; the farm "
                               "does not contact those", code="url_not_allowed") from None
        raise InvalidInput(f"could not fetch audio_url: {type(exc).__name__}",
                           code="url_fetch_failed") from None
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path


async def _stream_to(read_chunk, path: Path, max_bytes: int) -> None:
    written = 0
    with open(path, "wb") as fh:
        while chunk := await read_chunk(CHUNK):
            written += len(chunk)
            if written > max_bytes:
                raise PayloadTooLarge(f"audio is larger than the {max_bytes} byte limit",
                                      code="upload_too_large")
            fh.write(chunk)


def _tmp_path(tmp_dir: Path) -> Path:
    tmp_dir.mkdir(parents=True, exist_ok=True)
    return tmp_dir / f"upload-{os.getpid()}-{secrets.token_hex(8)}"


def _text(name: str, value) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"field {name!r} must be a string", code="invalid_field")
    return value
