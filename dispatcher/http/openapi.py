"""GET /openapi.json: the OpenAPI 3.1 document of the whole API, shipped beside this module."""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import orjson
import yaml
from aiohttp import web

from dispatcher.http.responses import json_response

routes = web.RouteTableDef()


@cache
def document() -> dict[str, Any]:
    """The document as written in openapi.yaml, parsed once per process."""
    text = resources.files("dispatcher.http").joinpath("openapi.yaml").read_text("utf-8")
    loaded = yaml.safe_load(text)
    if not isinstance(loaded, dict):
        raise RuntimeError("dispatcher/http/openapi.yaml is not a mapping")
    return loaded


@cache
def _document_json() -> bytes:
    return orjson.dumps(document())


@routes.get("/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    return json_response(_document_json())
