"""What every job gets in ARQ's ctx, typed, and the lookups jobs share."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, TypedDict

import asyncpg
from aiohttp import ClientSession
from arq.connections import ArqRedis

from dispatcher.carriers.registry import Carriers
from dispatcher.metrics import Metrics
from dispatcher.settings import Settings
from dispatcher.store.directory import DirectoryCache
from dispatcher.store.scripts import Scripts
from dispatcher.store.stores import Stores

if TYPE_CHECKING:
    from workers.webhooks import WebhookLane


class WorkerContext(TypedDict):
    redis: ArqRedis
    scripts: Scripts
    directory: DirectoryCache
    carriers: Carriers
    http: ClientSession
    settings: Settings
    metrics: Metrics
    # The history's pool (dispatcher/history/database.py); None without a database.
    database: asyncpg.Pool | None
    job_try: int
    job_id: str
    enqueue_time: datetime  # when the job was first queued (ARQ keeps it across retries)
    # The webhook lane's own (workers/settings.py: webhook_startup).
    webhook_http: ClientSession
    webhook_lane: WebhookLane


def typed(ctx: dict[str, Any]) -> WorkerContext:
    return ctx  # type: ignore[return-value]


async def stores_of(ctx: WorkerContext, subdomain: str) -> Stores | None:
    """The tenant's stores (store/stores.py), None when the tenant is gone."""
    tenant = await ctx["directory"].tenant(subdomain)
    return Stores.of(ctx["redis"], ctx["scripts"], tenant) if tenant else None
