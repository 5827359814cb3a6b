"""The one JSON body parser of every route: malformed, non-object and oversize bodies alike."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from dispatcher.domain.errors import InvalidRequest, PayloadTooLarge
from dispatcher.http.appkeys import SETTINGS


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
        raise InvalidRequest("Request body must be a JSON object")
    return value


async def raw_body(request: web.Request) -> bytes:
    limit = request.app[SETTINGS].max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"Request body is too large (limit {limit} bytes)")
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge as exc:
        raise PayloadTooLarge(f"Request body is too large (limit {limit} bytes)") from exc
