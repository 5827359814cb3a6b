"""Typed keys of the objects shared on the aiohttp application."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import asyncpg
from aiohttp import web
from redis.asyncio import Redis

from dispatcher.directory.tenant import Tenant
from dispatcher.history.archive import Archive
from dispatcher.metrics import LiveGauges, Metrics
from dispatcher.settings import Settings
from dispatcher.store.directory import DirectoryCache
from dispatcher.store.scripts import Scripts
from dispatcher.store.stores import Stores

if TYPE_CHECKING:  # sse.py and subscriber.py read these keys themselves
    from dispatcher.http.sse import EventStreams
    from dispatcher.http.subscriber import Subscriber

SETTINGS = web.AppKey("settings", Settings)
REDIS = web.AppKey("redis", Redis)
SCRIPTS = web.AppKey("scripts", Scripts)
# The pool to the history's PostgreSQL (dispatcher/history/database.py); None without one.
DATABASE: web.AppKey[asyncpg.Pool | None] = web.AppKey("database")
DIRECTORY = web.AppKey("directory", DirectoryCache)
METRICS = web.AppKey("metrics", Metrics)
# The live gauges /metrics reads from Redis: the API's has them, a worker's does not (None: one
# scrape target per picture, not one per process).
LIVE_GAUGES: web.AppKey[LiveGauges | None] = web.AppKey("live_gauges")
EVENT_STREAMS: web.AppKey[EventStreams] = web.AppKey("event_streams")
SUBSCRIBER: web.AppKey[Subscriber] = web.AppKey("subscriber")
# The request's deadline (settings.request_timeout_s), which an event stream lifts once open.
DEADLINE = web.RequestKey("deadline", asyncio.Timeout)
# The request's id (X-Request-Id), for an answer that sends its headers before its handler
# returns, where the error middleware would set them too late.
REQUEST_ID = web.RequestKey("request_id", str)


def stores_of(request: web.Request, tenant: Tenant) -> Stores:
    """The tenant's stores (store/stores.py): the one way a handler reaches a tenant's data;
    with a database, its archived calls and chats too."""
    pool = request.app[DATABASE]
    archive = Archive(pool) if pool is not None else None
    return Stores.of(request.app[REDIS], request.app[SCRIPTS], tenant, archive)
