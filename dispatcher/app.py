"""The aiohttp application: routes, middleware and one cleanup context per external resource."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web
from redis.asyncio import Redis

from dispatcher.http import (
    agents,
    batches,
    calls,
    campaigns,
    carrier,
    health,
    manager,
    openapi,
    sms,
)
from dispatcher.http.appkeys import DIRECTORY, REDIS, SCRIPTS, SETTINGS
from dispatcher.http.errors import error_middleware
from dispatcher.settings import Settings
from dispatcher.store.directory import DirectoryCache
from dispatcher.store.scripts import Scripts


def redis_client(url: str) -> Redis:
    # No PING before each command (health_check_interval): the pool already reconnects a
    # connection that went stale, and no command is retried (a create must never run twice).
    client: Redis = Redis.from_url(url, socket_connect_timeout=5, socket_timeout=10)
    return client


async def redis_context(app: web.Application) -> AsyncIterator[None]:
    url = app[SETTINGS].redis_url
    if url is None:
        raise RuntimeError("REDIS_URL is not set")
    redis = redis_client(url)
    app[REDIS] = redis
    app[SCRIPTS] = Scripts.register(redis)
    app[DIRECTORY] = DirectoryCache(redis, app[SETTINGS].directory_ttl_s)
    yield
    await redis.aclose()


def create_app(settings: Settings) -> web.Application:
    app = web.Application(middlewares=[error_middleware], client_max_size=settings.max_body_bytes)
    app[SETTINGS] = settings
    app.cleanup_ctx.append(redis_context)
    for module in (health, openapi, batches, calls, campaigns, sms, agents, manager, carrier):
        app.add_routes(module.routes)
    return app
