"""The aiohttp application: routes, middleware and one cleanup context per external resource."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from dispatcher.history.database import close_pool, connect_pool
from dispatcher.http import (
    agent_statuses,
    agents,
    batches,
    calls,
    campaigns,
    carrier,
    dashboard,
    dnc,
    docs,
    exports,
    health,
    manager,
    metrics,
    openapi,
    operators,
    opt_outs,
    pages,
    reports,
    sms,
    sse,
    subscriber,
    twilio,
    wait_times,
)
from dispatcher.http.appkeys import (
    DATABASE,
    DIRECTORY,
    EVENT_STREAMS,
    LIVE_GAUGES,
    METRICS,
    REDIS,
    SCRIPTS,
    SETTINGS,
)
from dispatcher.http.errors import error_middleware
from dispatcher.http.headers import answer_every_expect_header
from dispatcher.metrics import LiveGauges, Metrics
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


async def database_context(app: web.Application) -> AsyncIterator[None]:
    """The history's pool, when a database is configured. It connects on demand: the process
    starts, and serves everything but history, while PostgreSQL is down."""
    settings = app[SETTINGS]
    pool = await connect_pool(settings) if settings.database_url is not None else None
    app[DATABASE] = pool
    if pool is not None:
        app[METRICS].pools.append(pool)
    yield
    if pool is not None:
        app[METRICS].pools.remove(pool)
        await close_pool(pool)


def create_app(settings: Settings, process_metrics: Metrics | None = None) -> web.Application:
    """The API. `process_metrics` is shared with a worker in the same process (`dispatcher up`)."""
    answer_every_expect_header()
    app = web.Application(middlewares=[error_middleware], client_max_size=settings.max_body_bytes)
    app[SETTINGS] = settings
    app[METRICS] = process_metrics or Metrics()
    app[LIVE_GAUGES] = LiveGauges(hot_retention_s=settings.hot_retention_s)
    app[dashboard.WEEKS] = dashboard.SharedReads()
    app[dashboard.CAMPAIGN_REPORTS] = dashboard.SharedReads(
        dashboard.CAMPAIGN_REPORT_MAX_AGE_S, dashboard.CAMPAIGN_REPORT_PER_READ_TIME
    )
    app[EVENT_STREAMS] = sse.EventStreams()
    app.cleanup_ctx.append(redis_context)
    app.cleanup_ctx.append(database_context)
    app.cleanup_ctx.append(subscriber.subscriber_context)
    app.on_shutdown.append(sse.close_event_streams)
    for module in (
        health,
        metrics,
        openapi,
        docs,
        batches,
        exports,
        calls,
        campaigns,
        dnc,
        reports,
        wait_times,
        sms,
        opt_outs,
        agents,
        agent_statuses,
        manager,
        carrier,
        twilio,
    ):
        app.add_routes(module.routes)
    # The browser pages (not in openapi.yaml: their session-cookie routes are the pages' own).
    for module in (pages, operators, dashboard):
        app.add_routes(module.routes)
    return app


def create_worker_app(settings: Settings, process_metrics: Metrics) -> web.Application:
    """What a worker serves on its metrics port: its own metrics, liveness and readiness."""
    answer_every_expect_header()
    app = web.Application(middlewares=[error_middleware])
    app[SETTINGS] = settings
    app[METRICS] = process_metrics
    app[LIVE_GAUGES] = None
    app.cleanup_ctx.append(redis_context)
    app.cleanup_ctx.append(database_context)
    for module in (health, metrics):
        app.add_routes(module.routes)
    return app
