"""The aiohttp application: routes, middleware and one cleanup context per external resource."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from dispatcher.http import agents, calls, carrier, health, manager, openapi, sms
from dispatcher.http.appkeys import DIRECTORY, REDIS, SCRIPTS, SETTINGS
from dispatcher.http.errors import error_middleware
from dispatcher.redis_connection import connect
from dispatcher.redis_connection import redis_client as redis_client  # imported from here too
from dispatcher.settings import Settings
from dispatcher.store.directory import DirectoryCache
from dispatcher.store.scripts import Scripts


async def redis_context(app: web.Application) -> AsyncIterator[None]:
    redis = connect(app[SETTINGS])
    app[REDIS] = redis
    app[SCRIPTS] = Scripts.register(redis)
    app[DIRECTORY] = DirectoryCache(redis, app[SETTINGS].directory_ttl_s)
    yield
    await redis.aclose()


def create_app(settings: Settings) -> web.Application:
    app = web.Application(middlewares=[error_middleware], client_max_size=settings.max_body_bytes)
    app[SETTINGS] = settings
    app.cleanup_ctx.append(redis_context)
    for module in (health, openapi, calls, sms, agents, manager, carrier):
        app.add_routes(module.routes)
    return app
