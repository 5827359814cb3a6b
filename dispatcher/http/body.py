"""The one JSON body parser of every route: malformed, non-object, oversize and non-JSON bodies
alike."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from dispatcher.domain.errors import (
    InvalidRequest,
    PayloadTooLarge,
    RequestTimeout,
    UnsupportedMediaType,
)
from dispatcher.http.appkeys import SETTINGS

NOT_AN_OBJECT = "Request body must be a JSON object"
NOT_JSON = "Content-Type must be application/json"


async def json_object(request: web.Request) -> dict[str, Any]:
    """The body as a JSON object; an empty body counts as `{}`, whatever it is labelled."""
    raw = await raw_body(request)
    if not raw.strip():
        return {}
    if not is_json(request):
        raise UnsupportedMediaType(NOT_JSON)
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest("Request body is not valid JSON") from exc
    if not isinstance(value, dict):
        raise InvalidRequest(NOT_AN_OBJECT)
    return value


def is_json(request: web.Request) -> bool:
    """Labelled application/json or application/<something>+json (parameters such as a charset
    aside). A body labelled otherwise, or not at all, is refused: a cross-site form can send
    text/plain or form data, and a no-CORS fetch() a body without a type, never JSON."""
    if "Content-Type" not in request.headers:
        return False
    media_type = request.content_type  # lower case, without parameters
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


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
