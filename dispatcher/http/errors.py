"""Turning domain errors and aiohttp's own into `{"message": ...}` answers; nothing leaks.
The same middleware gives each request its id, its log line and its two metric samples."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable

import orjson
import structlog
from aiohttp import web
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from dispatcher.domain.errors import DispatchError
from dispatcher.domain.phones import mask_number
from dispatcher.http.appkeys import DEADLINE, METRICS, REQUEST_ID, SETTINGS
from dispatcher.metrics import UNMATCHED

log = structlog.get_logger("dispatcher.http")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_HTTP_MESSAGES = {
    404: "Resource not found",
    405: "Method not allowed",
    413: "Request body is too large",
}


def message_response(
    status: int, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        status=status,
        body=orjson.dumps({"message": message}),
        content_type="application/json",
        headers=headers,
    )


def _request_id(request: web.Request) -> str:
    given = request.headers.get("X-Request-Id", "")
    # ASCII only: str.isalnum() takes "é" or "٣" too, which would be echoed in a header.
    if (
        0 < len(given) <= 64
        and given.isascii()
        and given.replace("-", "").replace("_", "").isalnum()
    ):
        return given
    return uuid.uuid4().hex


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    request_id = request[REQUEST_ID] = _request_id(request)
    started = time.perf_counter()
    with structlog.contextvars.bound_contextvars(request_id=request_id):
        response = await _answer(request, handler)
        response.headers["X-Request-Id"] = request_id
        elapsed = time.perf_counter() - started
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else UNMATCHED
        request.app[METRICS].observe_request(route, request.method, response.status, elapsed)
        log.info(
            "request",
            method=request.method,
            path=logged_path(request),
            status=response.status,
            ms=round(elapsed * 1000, 2),
        )
        return response


def logged_path(request: web.Request) -> str:
    """The path, its `{phone_number}` segment (the SMS opt-outs') masked: the logs' own mask
    spots only numbers written with '+' or as bare digits, not `(415) 111-3333`."""
    number = request.match_info.get("phone_number")
    return request.path if not number else request.path.replace(number, mask_number(number))


def lift_deadline(request: web.Request) -> None:
    """For an answer that lasts as long as its client (an event stream), once it has begun."""
    request[DEADLINE].reschedule(None)


async def _answer(request: web.Request, handler: Handler) -> web.StreamResponse:
    deadline = asyncio.timeout(request.app[SETTINGS].request_timeout_s)
    try:
        async with deadline:
            request[DEADLINE] = deadline
            return await handler(request)
    except DispatchError as exc:
        answer = message_response(exc.status, exc.message, exc.headers)
        if exc.closes_connection:
            answer.force_close()
        return answer
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        message = _HTTP_MESSAGES.get(exc.status, exc.reason)
        # RFC 9110: a 405 must say which methods the resource has.
        allow = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return message_response(exc.status, message, allow)
    except (RedisConnectionError, RedisTimeoutError, ConnectionError):
        log.warning("storage unavailable", exc_info=True)
        return message_response(503, "Service unavailable", {"Retry-After": "1"})
    except TimeoutError:
        if not deadline.expired():
            log.exception("unhandled error")
            return message_response(500, "Internal server error")
        log.warning("request deadline passed: storage unresponsive", path=logged_path(request))
        return message_response(503, "Service unavailable", {"Retry-After": "1"})
    except Exception:
        log.exception("unhandled error")
        return message_response(500, "Internal server error")
