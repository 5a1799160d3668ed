"""What the sync SDK (farm/client.py) and the async one (farm/aclient.py) share: the
result types, how a create request's fields are built, how an error answer becomes a
typed exception, the retry policy, a Server-Sent Events parser and the progress display.

Standard library only (tqdm is imported when a progress bar is asked for), so that
neither client pulls in the other's HTTP library.
"""

from __future__ import annotations

import email.utils
import json
import os
import random
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from farm.errors import ToonzError, error_for

TERMINAL = ("succeeded", "failed", "canceled")
IDEMPOTENCY_HEADER = "Idempotency-Key"
USER_AGENT = "toonz-farm-sdk/0.1"
DEFAULT_TIMEOUT_S = 60.0  # one HTTP request, connect to last byte (downloads: between chunks)
DEFAULT_POLL_INTERVAL_S = 0.5  # wait_for_completion's polling when it cannot stream
DOWNLOAD_CHUNK = 1024 * 1024
# download(artifact=...) takes these kinds or a file name; "video" is the default.
ARTIFACT_NAMES = {"poster": "poster.png", "timeline": "timeline.json", "captions": "captions.vtt"}
# Whatever the server sent, an error body is read this far for its message.
MAX_ERROR_TEXT = 300


class RenderFailed(ToonzError):
    code = "render_failed"
    status = 500


class RenderTimeout(ToonzError, TimeoutError):
    code = "timeout"
    status = 504


@dataclass(frozen=True)
class RenderJob:
    """A render as the API last described it (`raw` holds every field it sent)."""

    job_id: str
    state: str
    progress: float = 0.0
    price: float | None = None
    eta_s: float | None = None
    error: str | None = None
    raw: dict = field(default_factory=dict, repr=False)

    @classmethod
    def from_api(cls, body: Mapping[str, Any]) -> "RenderJob":
        return cls(job_id=body["job_id"], state=body["state"], progress=body.get("progress", 0.0),
                   price=body.get("price"), eta_s=body.get("eta_s"), error=body.get("error"),
                   raw=dict(body))

    @property
    def done(self) -> bool:
        return self.state in TERMINAL

    @property
    def download_urls(self) -> dict[str, str]:
        """Artifact kind ("video", "poster", ...) to its path, once the render succeeded."""
        return dict(self.raw.get("download_urls") or {})


@dataclass(frozen=True)
class Page:
    """One page of GET /v1/renders; `next_cursor` is None on the last page."""

    items: list[RenderJob]
    next_cursor: str | None


@dataclass(frozen=True)
class Batch:
    batch_id: str
    renders: list[RenderJob]


# --- request building ----------------------------------------------------------------

def render_fields(**fields: Any) -> dict[str, Any]:
    """A create request's fields as JSON values, the unset (None) ones left out."""
    return {k: v for k, v in fields.items() if v is not None}


def form_fields(fields: Mapping[str, Any]) -> dict[str, str]:
    """The same fields as multipart text parts: booleans as "true"/"false", numbers as text."""
    return {k: ("true" if v else "false") if isinstance(v, bool) else str(v) for k, v in fields.items()}


@dataclass(frozen=True)
class CreateRequest:
    """One create call, checked and built once for either client: the JSON body when
    the audio is a URL, else the files to upload and the text parts beside them."""

    idempotency_key: str
    json: dict[str, Any] | None
    uploads: dict[str, Path]
    text: dict[str, str]


def create_request(audio_path: str | os.PathLike | None, audio_url: str | None,
                   logo_path: str | os.PathLike | None, idempotency_key: str | None,
                   **fields: Any) -> CreateRequest:
    """Check a create call's arguments and build its request (see create_animation)."""
    if (audio_path is None) == (audio_url is None):
        raise ValueError("give exactly one of audio_path or audio_url")
    if logo_path is not None and audio_path is None:
        raise ValueError("logo_path is uploaded beside the audio: give audio_path, not audio_url")
    values = render_fields(**fields)
    key = idempotency_key or new_idempotency_key()
    if audio_url is not None:
        return CreateRequest(key, {"audio_url": audio_url, **values}, {}, {})
    uploads = {"audio": Path(audio_path)}
    if logo_path is not None:
        uploads["logo"] = Path(logo_path)
    return CreateRequest(key, None, uploads, form_fields(values))


def unreachable(base_url: str, exc: BaseException, attempts: int) -> ToonzError:
    """A request that never got an answer, as a typed error: ServiceUnavailable with
    code "unreachable" (the transport's own exception is its __cause__)."""
    from farm.errors import ServiceUnavailable

    tries = "once" if attempts == 1 else f"{attempts} times"
    return ServiceUnavailable(f"the farm at {base_url} did not answer ({type(exc).__name__}; "
                              f"tried {tries})", code="unreachable")


def new_idempotency_key() -> str:
    # Made once per create call, before its first attempt: every retry of that call
    # carries it, so the scheduler answers a retry with the first job, never a second.
    return "sdk_" + secrets.token_hex(16)


def artifact_param(artifact: str | None) -> dict[str, str] | None:
    """download()'s query: None for the video, else ?artifact=<file name>."""
    if artifact in (None, "", "video"):
        return None
    return {"artifact": ARTIFACT_NAMES.get(artifact, artifact)}


def states_param(state: str | Iterable[str] | None) -> str | None:
    if state is None or isinstance(state, str):
        return state or None
    return ",".join(state) or None


def list_params(state: str | Iterable[str] | None, limit: int | None,
                cursor: str | None) -> dict[str, str]:
    params = {"state": states_param(state), "limit": None if limit is None else str(limit),
              "cursor": cursor}
    return {k: v for k, v in params.items() if v is not None}


def page_of(body: Mapping[str, Any]) -> Page:
    return Page([RenderJob.from_api(r) for r in body.get("renders", [])], body.get("next_cursor"))


def batch_of(body: Mapping[str, Any]) -> Batch:
    return Batch(body["batch_id"], [RenderJob.from_api(r) for r in body.get("renders", [])])


# --- error answers -------------------------------------------------------------------

def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds from now: a number of seconds or an HTTP date; None if absent."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def error_from_answer(status: int, body: bytes, headers: Mapping[str, str]) -> ToonzError:
    """The typed exception for an error answer: the API's JSON error, or, from something
    in front of the scheduler (a proxy's 502 page), one made from the status."""
    retry_after = parse_retry_after(headers.get("Retry-After"))
    request_id = headers.get("X-Request-Id", "")
    try:
        err = json.loads(body)["error"]
        code, message = str(err["code"]), str(err["message"])
        request_id = str(err.get("request_id") or request_id)
    except (ValueError, KeyError, TypeError):
        text = body[:MAX_ERROR_TEXT].decode("utf-8", "replace").strip()
        code, message = "http_error", f"HTTP {status}: {text or 'no body'}"
    return error_for(status, code, message, request_id=request_id, retry_after_s=retry_after)


# --- retries -------------------------------------------------------------------------

RETRY_STATUSES = frozenset({429, 502, 503, 504})
# Safe to send again whatever happened to the first attempt. A POST is replayable only
# with an Idempotency-Key (every create gets one); cancel is idempotent in effect.
REPLAYABLE_METHODS = frozenset({"GET", "HEAD", "DELETE"})


@dataclass(frozen=True)
class RetryPolicy:
    """When and how long a client waits before sending a request again.

    Retried: 429 (always: the scheduler refuses a rate-limited request before doing
    anything), 502/503/504, a 409 `idempotency_in_progress` (the first attempt is still
    running) and connection errors or timeouts (these three only when the request is
    replayable: a GET, a DELETE, or a POST with an Idempotency-Key). The wait is the
    answer's Retry-After when it names one, else exponential backoff with jitter.
    """

    max_attempts: int = 8  # tries of one request in all, the first included
    backoff_base_s: float = 0.25  # the first backoff; doubled each attempt
    backoff_max_s: float = 8.0  # one backoff at most
    max_total_wait_s: float = 60.0  # all the waits of one request together, Retry-After included
    jitter: float = 0.5  # each backoff is drawn from [(1 - jitter) x, x]

    def backoff(self, attempt: int) -> float:
        """The wait after failed attempt `attempt` (1-based) when the answer named none."""
        ceiling = min(self.backoff_max_s, self.backoff_base_s * 2 ** (attempt - 1))
        # Jitter spreads clients that failed together (a scheduler restart) apart.
        return ceiling * (1 - self.jitter * random.random())

    def delay(self, attempt: int, waited_s: float, retry_after_s: float | None) -> float | None:
        """Seconds to wait before attempt `attempt + 1`, or None: give up and raise."""
        if attempt >= self.max_attempts:
            return None
        wait = self.backoff(attempt) if retry_after_s is None else retry_after_s
        if waited_s + wait > self.max_total_wait_s:
            return None
        return wait


NO_RETRIES = RetryPolicy(max_attempts=1)


def retryable_status(status: int, code: str | None, replayable: bool) -> bool:
    """Whether an error answer may be retried (see RetryPolicy)."""
    if status == 429:
        return True
    if status == 409 and code == "idempotency_in_progress":
        return True
    return replayable and status in RETRY_STATUSES


def error_code(body: bytes) -> str | None:
    try:
        return str(json.loads(body)["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return None


RetryHook = Callable[[int, float, str], None]
"""on_retry(attempt that failed, seconds about to be waited, why: "429 rate_limited", ...)."""


# --- Server-Sent Events ----------------------------------------------------------------

@dataclass
class SSEEvent:
    event: str = "message"
    data: str = ""
    id: str | None = None


SSE_DEFAULT_RETRY_S = 2.0  # reconnection delay until a stream names one (`retry:`)


class SSEParser:
    """Turns an event stream's lines into events (the WHATWG rules this API needs:
    event, data, id, retry; comments ignored). `last_id` and `retry_s` outlive a
    connection: a client reconnects with them."""

    def __init__(self) -> None:
        self._event, self._data, self._id = "", [], None
        self.last_id = ""
        self.retry_s = SSE_DEFAULT_RETRY_S

    def reconnected(self) -> None:
        """A new connection: an event the last one cut short is dropped."""
        self._event, self._data, self._id = "", [], None

    def feed(self, line: str) -> SSEEvent | None:
        """One line (its line ending stripped or not); an event when a blank line ends one."""
        line = line.rstrip("\r\n")
        if not line:
            if not self._data and not self._event:
                return None
            ev = SSEEvent(self._event or "message", "\n".join(self._data), self._id)
            self._event, self._data = "", []
            self.last_id = self._id or self.last_id
            return ev
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id":
            self._id = value
        elif name == "retry" and value.isdigit():
            self.retry_s = int(value) / 1000
        return None


# --- progress --------------------------------------------------------------------------

Progress = bool | Callable[[RenderJob], Any]


class ProgressReporter:
    """wait_for_completion's `progress`: True draws a tqdm bar, a callable gets each
    RenderJob seen (the async client awaits what it returns, if anything)."""

    def __init__(self, job_id: str, progress: Progress) -> None:
        self.callback = progress if callable(progress) else None
        self.bar = None
        if progress is True:
            from tqdm import tqdm
            self.bar = tqdm(total=100, unit="%", desc=f"render {job_id}",
                            bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed} {postfix}")

    def update(self, job: RenderJob) -> Any:
        if self.bar is not None:
            self.bar.n = round(job.progress * 100)
            self.bar.set_postfix_str(job.state)
        if self.callback is not None:
            return self.callback(job)
        return None

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def finished(job: RenderJob) -> RenderJob:
    """The job if it succeeded; RenderFailed if it failed or was canceled."""
    if job.state != "succeeded":
        raise RenderFailed(f"render {job.job_id} {job.state}: {job.error or 'no error recorded'}")
    return job


def timed_out(job_id: str, state: str, timeout_s: float) -> RenderTimeout:
    return RenderTimeout(f"render {job_id} still {state} after {timeout_s:.0f} s")
