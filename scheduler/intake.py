"""Read a render request (multipart upload or JSON with audio_url) into a validated spec.

The audio (and an optional logo) is streamed to a temporary file under the data folder,
never held whole in memory; names (template, character, expression, quality, format)
and the transcript's speaker labels are checked before any byte is stored.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import aiohttp
from aiohttp import web

from assets.overlay import MAX_LOGO_BYTES, MAX_LOGO_PIXELS  # the node refuses the same
from farm import presets, scheduling
from farm.config import Limits
from farm.errors import InvalidInput, PayloadTooLarge, ToonzError
from scheduler import urlcheck

CHUNK = 256 * 1024
TEXT_FIELDS = ("transcript", "template", "character", "quality", "format", "title", "webhook_url",
               "priority", "expression", "captions", "second_character", "logo_url")
MAX_TITLE_CHARS = 120
LOGO_FORMATS = ("PNG", "JPEG", "WEBP")  # what assets/overlay.py draws
DEFAULT_EXPRESSION = "neutral"
_TRUE, _FALSE = ("true", "1"), ("false", "0")


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
    expression: str = DEFAULT_EXPRESSION
    captions: bool | None = None  # None: as the template says
    second_character: str = ""  # '' : the template's default (two-person templates only)
    logo_url: str = ""  # JSON requests: fetched like audio_url


@dataclass(frozen=True)
class Inputs:
    """A render's files, in temporary files the caller removes (`discard`)."""

    audio: Path
    logo: Path | None = None

    def discard(self) -> None:
        self.audio.unlink(missing_ok=True)
        if self.logo is not None:
            self.logo.unlink(missing_ok=True)


def validate_fields(fields: dict[str, str], limits: Limits) -> RenderSpec:
    from assets.loader import list_characters, list_templates, load_character, load_template

    template = fields.get("template") or "explainer"
    character = fields.get("character") or "toonz"
    if template not in list_templates():
        raise InvalidInput(f"unknown template {template!r}; choose one of "
                           f"{', '.join(list_templates())}", code="unknown_template")
    if character not in list_characters():
        raise InvalidInput(f"unknown character {character!r}; choose one of "
                           f"{', '.join(list_characters())}", code="unknown_character")
    expression = fields.get("expression") or DEFAULT_EXPRESSION
    load_character(character).expression(expression)  # 400 unknown_expression, naming the choices
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
    second = _second_character(fields.get("second_character") or "", template,
                               load_template(template).second_character is not None,
                               list_characters())
    if second is not None and transcript:
        from farm.speakers import parse_turns
        parse_turns(transcript)  # 400 too_many_speakers / unlabelled_text, as the node would fail
    webhook_url = fields.get("webhook_url") or ""
    if webhook_url:  # syntax here; where it resolves: check_urls (async)
        urlcheck.parse_url(webhook_url, "webhook_url")
    logo_url = fields.get("logo_url") or ""
    if logo_url:
        urlcheck.parse_url(logo_url, "logo_url")
    return RenderSpec(template=template, character=character, quality=quality, format=fmt,
                      transcript=transcript, title=title, webhook_url=webhook_url,
                      priority=prio, expression=expression,
                      captions=parse_bool(fields.get("captions"), "captions"),
                      second_character=second or "", logo_url=logo_url)


def _second_character(name: str, template: str, has_seat: bool, shipped: list[str]) -> str | None:
    """'' or a shipped name where the template seats two; None where it seats one."""
    if not has_seat:
        if name:
            raise InvalidInput(f"template {template!r} has one seat; second_character needs a "
                               "two-person template (such as podcast)", code="no_second_seat")
        return None
    if name and name not in shipped:
        raise InvalidInput(f"unknown second_character {name!r}; choose one of {', '.join(shipped)}",
                           code="unknown_character")
    return name


def parse_bool(raw: str | None, name: str) -> bool | None:
    """A form's boolean: true/false/1/0; None when absent or empty."""
    if raw is None or raw == "":
        return None
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise InvalidInput(f"field {name!r} must be true, false, 1 or 0, got {raw[:40]!r}",
                       code="invalid_field")


def json_fields(body: dict) -> dict[str, str]:
    """A JSON create body's fields as form text: strings, priority as an integer,
    captions as a boolean; anything else is a 400."""
    fields = {}
    for k in TEXT_FIELDS:
        v = body.get(k)
        if v is None:
            continue
        if k == "priority" and isinstance(v, int) and not isinstance(v, bool):
            v = str(v)
        elif k == "captions" and isinstance(v, bool):
            v = "true" if v else "false"
        if not isinstance(v, str):
            raise InvalidInput(f"field {k!r} must be a string", code="invalid_field")
        fields[k] = v
    return fields


async def read_request(request: web.Request, tmp_dir: Path, limits: Limits) -> tuple[RenderSpec, Inputs]:
    """Returns the spec and its files in temporary files (the caller discards them)."""
    ctype = request.content_type
    if ctype == "multipart/form-data":
        return await _read_multipart(request, tmp_dir, limits)
    if ctype == "application/json":
        body = await json_object(request)
        spec = validate_fields(json_fields(body), limits)
        await check_urls(spec, limits)
        url = body.get("audio_url")
        if not url:
            raise InvalidInput("no audio: send a multipart 'audio' file or JSON 'audio_url'",
                               code="missing_audio")
        return spec, await fetch_inputs(_text("audio_url", url), spec, tmp_dir, limits)
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


async def _read_multipart(request, tmp_dir, limits) -> tuple[RenderSpec, Inputs]:
    reader = await request.multipart()
    fields: dict[str, str] = {}
    audio: Path | None = None
    logo: Path | None = None
    try:
        while (part := await reader.next()) is not None:
            if part.name == "audio":
                if audio is not None:
                    raise InvalidInput("send one 'audio' file per render", code="duplicate_audio")
                audio = _tmp_path(tmp_dir)
                await _stream_to(part.read_chunk, audio, limits.max_upload_bytes, _audio_too_large)
            elif part.name == "logo":
                if logo is not None:
                    raise InvalidInput("send one 'logo' file per render", code="duplicate_logo")
                logo = _tmp_path(tmp_dir)
                await _stream_to(part.read_chunk, logo, MAX_LOGO_BYTES, _logo_too_large)
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
        if logo is not None and spec.logo_url:
            raise InvalidInput("send a 'logo' file or a 'logo_url', not both", code="duplicate_logo")
        await check_urls(spec, limits)
        if audio is None:
            raise InvalidInput("no audio: send a multipart 'audio' file or JSON 'audio_url'",
                               code="missing_audio")
        if audio.stat().st_size == 0:
            raise InvalidInput("the audio file is empty", code="unreadable_audio")
        if logo is not None:
            await _in_thread(check_logo, logo)
        elif spec.logo_url:
            logo = await fetch_logo(spec.logo_url, tmp_dir, limits)
        return spec, Inputs(audio, logo)
    except BaseException:
        for path in (audio, logo):
            if path is not None:
                path.unlink(missing_ok=True)
        raise


async def check_urls(spec: RenderSpec, limits: Limits) -> None:
    """Where the spec's URLs resolve. A render's own webhook_url gets its terminal event
    (scheduler/dispatch.py): the same rules as registered webhooks, checked here and again
    at each delivery; logo_url: the rules of audio_url, checked again when fetched."""
    if spec.webhook_url:
        await urlcheck.check_url(spec.webhook_url, limits, "webhook_url")
    if spec.logo_url:
        await urlcheck.check_url(spec.logo_url, limits, "logo_url", unresolvable_code="url_fetch_failed")


def check_logo(path: Path) -> None:
    """Refuse what the node's overlay would refuse: not PNG/JPEG/WebP, too many pixels, or a
    file that does not decode whole (blocking: run it in a thread)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            if im.format not in LOGO_FORMATS:
                raise InvalidInput(f"the logo must be PNG, JPEG or WebP, not {im.format}",
                                   code="invalid_logo")
            if im.width * im.height > MAX_LOGO_PIXELS:  # checked before decoding a single pixel
                raise InvalidInput(f"the logo is {im.width}x{im.height}; at most {MAX_LOGO_PIXELS:,} "
                                   "pixels", code="logo_too_large")
            im.load()
    except ToonzError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise InvalidInput(f"the logo is not a readable image: {exc}", code="invalid_logo") from None


async def fetch_inputs(audio_url: str, spec: RenderSpec, tmp_dir: Path, limits: Limits) -> Inputs:
    """Fetch a JSON request's audio and, when it names one, its logo (checked)."""
    audio = await fetch_url(audio_url, tmp_dir, limits)
    try:
        return Inputs(audio, await fetch_logo(spec.logo_url, tmp_dir, limits) if spec.logo_url else None)
    except BaseException:
        audio.unlink(missing_ok=True)
        raise


async def fetch_logo(url: str, tmp_dir: Path, limits: Limits) -> Path:
    path = await fetch_url(url, tmp_dir, limits, field="logo_url", max_bytes=MAX_LOGO_BYTES,
                           too_large=_logo_too_large)
    try:
        await _in_thread(check_logo, path)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path


async def fetch_url(url: str, tmp_dir: Path, limits: Limits, *, field: str = "audio_url",
                    max_bytes: int | None = None,
                    too_large: Callable[[int], Exception] | None = None) -> Path:
    """GET `url` (the outbound URL rules of urlcheck) into a temporary file, at most
    `max_bytes` (default: the upload limit)."""
    await urlcheck.check_url(url, limits, field, unresolvable_code="url_fetch_failed")
    path = _tmp_path(tmp_dir)
    timeout = aiohttp.ClientTimeout(total=limits.url_fetch_timeout_s)
    try:
        # The connector re-checks every address it connects to: DNS may change after the check.
        async with aiohttp.ClientSession(timeout=timeout, connector=urlcheck.connector(limits)) as session:
            async with session.get(url, allow_redirects=False) as resp:
                if resp.status != 200:
                    raise InvalidInput(f"{field} answered HTTP {resp.status}", code="url_fetch_failed")
                await _stream_to(resp.content.read, path, max_bytes or limits.max_upload_bytes,
                                 too_large or _audio_too_large)
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        path.unlink(missing_ok=True)
        if urlcheck.refused(exc):
            raise InvalidInput(f"{field} resolves to a private or reserved address; the farm "
                               "does not contact those", code="url_not_allowed") from None
        raise InvalidInput(f"could not fetch {field}: {type(exc).__name__}",
                           code="url_fetch_failed") from None
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return path


def _audio_too_large(max_bytes: int) -> Exception:
    return PayloadTooLarge(f"audio is larger than the {max_bytes} byte limit", code="upload_too_large")


def _logo_too_large(max_bytes: int) -> Exception:
    # 400 with the node's own code (assets/overlay.py): a logo's limit is the product's, not HTTP's.
    return InvalidInput(f"the logo is larger than the {max_bytes:,} byte limit", code="logo_too_large")


async def _stream_to(read_chunk, path: Path, max_bytes: int,
                     too_large: Callable[[int], Exception]) -> None:
    written = 0
    with open(path, "wb") as fh:
        while chunk := await read_chunk(CHUNK):
            written += len(chunk)
            if written > max_bytes:
                raise too_large(max_bytes)
            fh.write(chunk)


async def _in_thread(fn, *args):
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


def _tmp_path(tmp_dir: Path) -> Path:
    tmp_dir.mkdir(parents=True, exist_ok=True)
    return tmp_dir / f"upload-{os.getpid()}-{secrets.token_hex(8)}"


def _text(name: str, value) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"field {name!r} must be a string", code="invalid_field")
    return value
