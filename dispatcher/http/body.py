"""The one JSON body parser of every route: malformed, non-object and oversize bodies alike."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from dispatcher.domain.errors import InvalidRequest, PayloadTooLarge, RequestTimeout
from dispatcher.http.appkeys import SETTINGS

NOT_AN_OBJECT = "Request body must be a JSON object"


async def json_object(request: web.Request) -> dict[str, Any]:
    """The body as a JSON object; an empty body counts as `{}`."""
    raw = await raw_body(request)
    if not raw.strip():
        return {}
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest("Request body is not valid JSON") from exc
    if not isinstance(value, dict):
        raise InvalidRequest(NOT_AN_OBJECT)
    return value


async def raw_body(request: web.Request) -> bytes:
    """The whole body, refused when over the size limit (declared or counted, after any
    Content-Encoding is undone) or when it does not arrive in time: a client sending a byte now
    and then (slowloris) must not hold a handler forever."""
    settings = request.app[SETTINGS]
    limit = settings.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"Request body is too large (limit {limit} bytes)")
    try:
        if request.content.is_eof():  # all of it arrived with the headers: nothing to wait for
            return await request.read()
        async with asyncio.timeout(settings.body_timeout_s):
            return await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise PayloadTooLarge(f"Request body is too large (limit {limit} bytes)") from exc
    except TimeoutError as exc:
        raise RequestTimeout(
            f"Request body was not received in time (limit {settings.body_timeout_s:g} s)"
        ) from exc
    except (HttpProcessingError, web.RequestPayloadError, ConnectionResetError) as exc:
        # Broken chunked framing or Content-Encoding (bad gzip), or the client went away
        # mid-body: the client's fault, not a 500, and not the storage's (a 503).
        raise InvalidRequest("Request body could not be read") from exc
