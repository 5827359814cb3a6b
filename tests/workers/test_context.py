"""What the worker's startup puts in a job's ctx for history: the pool on DATABASE_URL, or None
without a database (every other job runs the same)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from redis.asyncio import Redis

from dispatcher.settings import Settings
from workers.settings import shutdown, startup


async def test_a_job_gets_the_pool_when_a_database_is_configured(
    redis: Redis, settings: Settings, database_url: str
) -> None:
    configured = settings.model_copy(update={"database_url": database_url})
    ctx: dict[str, Any] = {"redis": redis, "settings": configured}
    await startup(ctx)
    try:
        name = await ctx["database"].fetchval("SELECT current_database()")
        assert name == urlsplit(database_url).path.strip("/")
    finally:
        await shutdown(ctx)
    assert ctx["database"].is_closing()


async def test_without_a_database_the_ctx_says_none(redis: Redis, settings: Settings) -> None:
    ctx: dict[str, Any] = {"redis": redis, "settings": settings}
    await startup(ctx)
    try:
        assert ctx["database"] is None
    finally:
        await shutdown(ctx)
