"""One exception tree for the whole farm; the scheduler turns it into HTTP errors.

Every error a user can cause carries a stable machine-readable `code`, the HTTP
`status` it maps to, and a human sentence.
"""

from __future__ import annotations


class ToonzError(Exception):
    """Base of every farm error."""

    code = "internal"
    status = 500

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




def error_for(status: int, code: str, message: str) -> ToonzError:
    """Rebuild a typed error from an HTTP error body (used by the SDK)."""
    for cls in (InvalidInput, Unauthorized, Forbidden, NotFound, Conflict,
                PayloadTooLarge, QuotaExceeded, StaleLease, ServiceUnavailable, RateLimited):
        if cls.code == code:
            return cls(message)
    for cls in (InvalidInput, Unauthorized, Forbidden, NotFound, Conflict,
                PayloadTooLarge, QuotaExceeded, ServiceUnavailable, RateLimited):
        if cls.status == status:
            return cls(message, code=code)
    err = ToonzError(message, code=code)
    err.status = status
    return err
