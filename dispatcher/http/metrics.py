"""GET /metrics: Prometheus text format; open unless DISPATCHER_METRICS_TOKEN is set."""

from __future__ import annotations

import structlog
from aiohttp import web
from redis.exceptions import RedisError

from dispatcher.domain.errors import Unauthorized
from dispatcher.http import auth
from dispatcher.http.appkeys import DIRECTORY, LIVE_GAUGES, METRICS, REDIS, SETTINGS
from dispatcher.http.errors import message_response
from dispatcher.http.headers import credential, secret_matches
from dispatcher.metrics import CONTENT_TYPE

routes = web.RouteTableDef()
log = structlog.get_logger("dispatcher.metrics")


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    refused = await _authorize(request)
    if refused is not None:
        return refused
    families, gauges = [], request.app[LIVE_GAUGES]
    if gauges is not None:
        try:
            families = await gauges.families(request.app[REDIS], request.app[DIRECTORY])
        except (RedisError, OSError):
            # The process's own counters matter most while Redis is away (errors, latency).
            log.warning("live gauges left out of a scrape: redis unreachable")
    body = request.app[METRICS].render(families)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


async def _authorize(request: web.Request) -> web.Response | None:
    token = request.app[SETTINGS].metrics_token
    if token is None:
        return None
    if secret_matches(credential(request, "bearer"), token):
        return None
    await auth.refused(request)  # a wrong token is slowed down per client address
    return message_response(
        401, Unauthorized().message, {"WWW-Authenticate": 'Bearer realm="metrics"'}
    )
