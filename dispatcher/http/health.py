"""Liveness: /healthz answers 200 once the process serves requests."""

from __future__ import annotations

from aiohttp import web

from dispatcher.http.responses import json_response

routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})
