"""One exception tree for the whole farm; the scheduler turns it into HTTP errors.

Every error a user can cause carries a stable machine-readable `code`, the HTTP
`status` it maps to, and a human sentence.
"""

from __future__ import annotations

import math


class ToonzError(Exception):
    """Base of every farm error."""

    code = "internal"
    status = 500
    # The scheduler's id of the request that failed (the SDK fills it in from the answer):
    # quote it to support, it names the request in the scheduler's log.
    request_id = ""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


class InvalidInput(ToonzError):
    """The request or file is malformed or names something that does not exist."""

    code = "invalid_input"
    status = 400


class Unauthorized(ToonzError):
    code = "unauthorized"
    status = 401


class Forbidden(ToonzError):
    code = "forbidden"
    status = 403


class NotFound(ToonzError):
    code = "not_found"
    status = 404


class Conflict(ToonzError):
    code = "conflict"
    status = 409


class IdempotencyKeyReused(Conflict):
    """The Idempotency-Key was already used with a different request."""

    code = "idempotency_key_reused"


class IdempotencyInProgress(Conflict):
    """A request with this Idempotency-Key is still being processed: retry for its answer."""

    code = "idempotency_in_progress"


class PayloadTooLarge(ToonzError):
    code = "payload_too_large"
    status = 413


class QuotaExceeded(ToonzError):
    code = "quota_exceeded"
    status = 402


class StaleLease(ToonzError):
    """A node presented a fence token that is no longer the job's current one."""

    code = "stale_lease"
    status = 409


class ServiceUnavailable(ToonzError):
    code = "unavailable"
    status = 503


class RateLimited(ToonzError):
    """Too many requests: `retry_after_s` (whole seconds) says when one token is back."""

    code = "rate_limited"
    status = 429

    def __init__(self, message: str, code: str | None = None, retry_after_s: int = 1) -> None:
        super().__init__(message, code)
        self.retry_after_s = retry_after_s
        self.headers = {"Retry-After": str(retry_after_s)}

    @property
    def retry_after(self) -> float:
        """Seconds to wait before the next request (the answer's Retry-After)."""
        return float(self.retry_after_s)


# error_for: an answer's `code` picks its class when the class's status agrees (the same
# code may come with another status, e.g. `not_ready` is a 409 from a download and a 503
# from /ready); otherwise the HTTP status does, and the code is kept on the instance.
_BY_CODE: dict[str, type[ToonzError]] = {cls.code: cls for cls in (
    InvalidInput, Unauthorized, Forbidden, NotFound, Conflict, IdempotencyKeyReused,
    IdempotencyInProgress, PayloadTooLarge, QuotaExceeded, StaleLease, ServiceUnavailable,
    RateLimited)}
_BY_STATUS: dict[int, type[ToonzError]] = {
    400: InvalidInput, 401: Unauthorized, 402: QuotaExceeded, 403: Forbidden, 404: NotFound,
    409: Conflict, 413: PayloadTooLarge, 422: InvalidInput, 429: RateLimited,
    502: ServiceUnavailable, 503: ServiceUnavailable, 504: ServiceUnavailable}


def error_for(status: int, code: str, message: str, *, request_id: str = "",
              retry_after_s: float | None = None) -> ToonzError:
    """Rebuild a typed error from an HTTP error answer (the SDK's side of the boundary).

    The instance keeps the answer's status, code and request id; a RateLimited one the
    answer's Retry-After (whole seconds, at least 1).
    """
    cls = _BY_CODE.get(code)
    if cls is None or cls.status != status:
        cls = _BY_STATUS.get(status, ToonzError)
    if cls is RateLimited:
        wait = 1 if retry_after_s is None else max(1, math.ceil(retry_after_s))
        err: ToonzError = RateLimited(message, code=code, retry_after_s=wait)
    else:
        err = cls(message, code=code)
    err.status = status
    err.request_id = request_id
    return err
