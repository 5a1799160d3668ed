"""Translate domain errors into JSON HTTP errors at the boundary."""

from __future__ import annotations

import logging
import secrets

import redis
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from farm.errors import ToonzError

log = logging.getLogger("toonz.scheduler")


def _unread_body_closes(request: web.Request, resp: web.Response) -> web.Response:
    """Refused before its upload was read: close the connection rather than keep it alive
    with a body still arriving (a client would stall sending it, a server draining it)."""
    if request.body_exists and not request.content.at_eof():
        resp.force_close()
    return resp


REQUEST_ID = web.RequestKey("request_id", str)  # kept on the request by the middleware


async def stamp_request_id(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: every response names its request, streams (SSE, CSV) too,
    whose headers leave before the middleware sees the response."""
    if REQUEST_ID in request:
        response.headers.setdefault("X-Request-Id", request[REQUEST_ID])


def error_response(status: int, code: str, message: str, request_id: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message, "request_id": request_id}},
                             status=status, headers={"X-Request-Id": request_id})


@web.middleware
async def error_middleware(request: web.Request, handler):
    request_id = request.headers.get("X-Request-Id", "")[:64] or secrets.token_hex(8)
    request[REQUEST_ID] = request_id
    try:
        resp = await handler(request)
    except ToonzError as exc:
        resp = error_response(exc.status, exc.code, exc.message, request_id)
        resp.headers.update(getattr(exc, "headers", None) or {})  # e.g. a 429's Retry-After
        return _unread_body_closes(request, resp)
    except (redis.ConnectionError, redis.TimeoutError):
        log.warning("Redis unreachable during %s %s (request %s)", request.method, request.path, request_id)
        return _unread_body_closes(request, error_response(
            503, "unavailable", "the farm's database is unreachable; retry shortly", request_id))
    except HttpProcessingError as exc:
        # A body the handler was reading turned out malformed (a multipart part's headers, a
        # chunked encoding): the client's request is at fault, never the scheduler.
        why = (exc.message or type(exc).__name__)[:200]
        return _unread_body_closes(request, error_response(
            400, "malformed_request", f"the request body is malformed: {why}", request_id))
    except web.HTTPException as exc:
        if exc.status >= 400:
            code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(
                exc.status, "http_error")
            return error_response(exc.status, code, exc.reason or "request refused", request_id)
        raise
    except Exception:
        log.exception("unhandled error in %s %s (request %s)", request.method, request.path, request_id)
        return error_response(500, "internal", "internal error; the request id names it in the "
                              "scheduler's log", request_id)
    resp.headers.setdefault("X-Request-Id", request_id)
    return resp
