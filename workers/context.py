"""What every job gets in ARQ's ctx, typed, and the lookups jobs share."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, TypedDict

from aiohttp import ClientSession
from arq.connections import ArqRedis

from dispatcher.carriers.registry import Carriers
from dispatcher.metrics import Metrics
from dispatcher.settings import Settings
from dispatcher.store.chats import Chats
from dispatcher.store.directory import DirectoryCache
from dispatcher.store.lifecycle import Calls
from dispatcher.store.scripts import Scripts

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
    job_try: int
    job_id: str
    enqueue_time: datetime  # when the job was first queued (ARQ keeps it across retries)
    # The webhook lane's own (workers/settings.py: webhook_startup).
    webhook_http: ClientSession
    webhook_lane: WebhookLane


def typed(ctx: dict[str, Any]) -> WorkerContext:
    return ctx  # type: ignore[return-value]


async def calls_of(ctx: WorkerContext, subdomain: str) -> Calls | None:
    tenant = await ctx["directory"].tenant(subdomain)
    return Calls(ctx["redis"], ctx["scripts"], tenant) if tenant else None


async def chats_of(ctx: WorkerContext, subdomain: str) -> Chats | None:
    tenant = await ctx["directory"].tenant(subdomain)
    return Chats(ctx["redis"], ctx["scripts"], tenant) if tenant else None
