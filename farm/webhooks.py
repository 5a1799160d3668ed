"""Webhook signatures and the retry schedule, shared by the scheduler and the SDK.

Standard library only, so `verify_webhook` imports without aiohttp or Redis.
A delivery carries `Toonz-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>` where the
HMAC key is the endpoint's secret and the message is `f"{t}.".encode() + body`
(the raw request body, byte for byte).
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "Toonz-Signature"
EVENT_ID_HEADER = "Toonz-Event-Id"
SCHEME = "v1"
DEFAULT_TOLERANCE_S = 300.0  # a signature older (or newer) than this is refused: replay guard

EVENT_TYPES = ("render.succeeded", "render.failed", "render.canceled")
PING = "ping"  # sent by POST /v1/webhooks/{id}/test, to every endpoint whatever it subscribed to

# Retry n (after failed attempt n) waits BACKOFF_FACTORS[n-1] x the configured base:
# with the default 5 s base that is 5 s, 30 s, 2 min, 10 min, 1 h, then the delivery gives up.
BACKOFF_FACTORS = (1, 6, 24, 120, 720)
MAX_ATTEMPTS = len(BACKOFF_FACTORS) + 1


def event_type(state: str) -> str:
    """The event a job's terminal state raises ('succeeded' -> 'render.succeeded')."""
    return "render." + state


def retry_delay(attempt: int, base_s: float) -> float | None:
    """Seconds to wait after failed attempt `attempt` (1-based); None once attempts are spent."""
    if attempt < 1 or attempt >= MAX_ATTEMPTS:
        return None
    return BACKOFF_FACTORS[attempt - 1] * base_s


def _digest(secret: str, timestamp: int, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The Toonz-Signature header value for `body`, signed now (or at `timestamp`)."""
    t = int(time.time()) if timestamp is None else int(timestamp)
    return f"t={t},{SCHEME}={_digest(secret, t, body)}"


def verify_webhook(signature: str, body: bytes | str, secret: str,
                   tolerance_s: float = DEFAULT_TOLERANCE_S, now: float | None = None) -> bool:
    """True when `signature` (the Toonz-Signature header) signs `body` with `secret`
    and its timestamp is within `tolerance_s` of now. Pass the raw body, not re-encoded JSON.
    """
    if isinstance(body, str):
        body = body.encode()
    if not signature or not secret:
        return False
    timestamp: int | None = None
    candidates: list[str] = []
    for item in signature.split(","):
        name, _, value = item.strip().partition("=")
        if name == "t":
            try:
                timestamp = int(value)
            except ValueError:
                return False
        elif name == SCHEME:
            candidates.append(value)  # several v1 values: a secret being rotated
    if timestamp is None or not candidates:
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance_s:
        return False
    expected = _digest(secret, timestamp, body)
    # compare_digest against every candidate: constant time, and no early exit on a match.
    return sum(hmac.compare_digest(expected.encode(), c.encode()) for c in candidates) > 0
