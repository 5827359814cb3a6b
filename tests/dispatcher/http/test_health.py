"""Readiness: Redis answers and a worker's heartbeat is fresh; `?exclude=workers` for the
ingress's own probe; PostgreSQL down leaves the process in service, degraded. Liveness is
/healthz (test_openapi.py)."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from dispatcher.app import create_app
from dispatcher.domain import clock
from dispatcher.settings import Settings
from dispatcher.store import heartbeats, keys
from tests.dispatcher.http.test_openapi import conforming
from tests.ports import free_port

NO_DATABASE = "not configured"
READY = {"status": "ready", "checks": {"redis": "ok", "workers": "ok", "postgres": NO_DATABASE}}
NO_WORKER = {
    "message": "No worker is alive: no heartbeat in the last 15 s",
    "checks": {"redis": "ok", "workers": "no fresh heartbeat", "postgres": NO_DATABASE},
}


async def _ready(client: TestClient[Any, Any], query: str = "") -> tuple[int, Any]:
    response = await client.get("/readyz" + query)
    return response.status, await conforming(response, "/readyz")


async def test_ready_with_a_fresh_heartbeat(client: TestClient[Any, Any], redis: Redis) -> None:
    await heartbeats.beat(redis, "host:1:a", clock.to_ms(clock.now()))
    assert await _ready(client) == (200, READY)


async def test_not_ready_without_a_heartbeat_or_with_a_stale_one(
    client: TestClient[Any, Any], redis: Redis
) -> None:
    assert await _ready(client) == (503, NO_WORKER)
    stale_ms = clock.to_ms(clock.now()) - heartbeats.FRESH_MS - 1000
    await redis.zadd(keys.WORKERS, {"host:1:a": stale_ms})
    assert await _ready(client) == (503, NO_WORKER)


async def test_excluding_workers_checks_redis_alone(client: TestClient[Any, Any]) -> None:
    assert await _ready(client, "?exclude=workers") == (
        200,
        {"status": "ready", "checks": {"redis": "ok", "postgres": NO_DATABASE}},
    )


async def test_only_workers_can_be_excluded(client: TestClient[Any, Any]) -> None:
    for query in ("?exclude=redis", "?exclude=workers&exclude=db", "?exclude="):
        assert await _ready(client, query) == (400, {"message": "exclude can only name workers"})


async def test_not_ready_when_redis_is_unreachable(unreachable: TestClient[Any, Any]) -> None:
    assert await _ready(unreachable) == (
        503,
        {
            "message": "Redis is unreachable",
            "checks": {"redis": "unreachable", "workers": "unknown", "postgres": NO_DATABASE},
        },
    )
    assert await _ready(unreachable, "?exclude=workers") == (
        503,
        {
            "message": "Redis is unreachable",
            "checks": {"redis": "unreachable", "postgres": NO_DATABASE},
        },
    )
    healthz = await unreachable.get("/healthz")  # alive all the same: no restart would help
    assert (healthz.status, await healthz.json()) == (200, {"status": "ok"})


@pytest.fixture
async def with_history(
    settings: Settings, database_url: str
) -> AsyncIterator[TestClient[Any, Any]]:
    """The API with the history's PostgreSQL."""
    app = create_app(settings.model_copy(update={"database_url": database_url}))
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


async def _with_database(settings: Settings, url: str) -> TestClient[Any, Any]:
    app = create_app(settings.model_copy(update={"database_url": url}))
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that takes connections and never answers (a PostgreSQL that hangs)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield int(listener.getsockname()[1])


async def test_ready_names_postgres_when_it_answers(
    with_history: TestClient[Any, Any], redis: Redis
) -> None:
    await heartbeats.beat(redis, "host:1:a", clock.to_ms(clock.now()))
    assert await _ready(with_history) == (
        200,
        {"status": "ready", "checks": {"redis": "ok", "workers": "ok", "postgres": "ok"}},
    )


@pytest.mark.parametrize("hangs", [False, True], ids=["refused", "silent"])
async def test_postgres_down_leaves_the_process_in_service_degraded(
    settings: Settings, redis: Redis, silent_server: int, hangs: bool
) -> None:
    """Only history waits for PostgreSQL: the probe answers 200, within its budget."""
    port = silent_server if hangs else free_port()
    client = await _with_database(settings, f"postgresql://dispatcher@127.0.0.1:{port}/x")
    try:
        await heartbeats.beat(redis, "host:1:a", clock.to_ms(clock.now()))
        started = time.monotonic()
        assert await _ready(client) == (
            200,
            {
                "status": "degraded",
                "checks": {"redis": "ok", "workers": "ok", "postgres": "unreachable"},
            },
        )
        assert time.monotonic() - started < 1.5  # one 0.8 s budget for both checks
        assert await _ready(client, "?exclude=workers") == (
            200,
            {"status": "degraded", "checks": {"redis": "ok", "postgres": "unreachable"}},
        )
    finally:
        await asyncio.wait_for(client.close(), 10)


async def test_redis_down_is_not_ready_whatever_postgres_says(database_url: str) -> None:
    settings = Settings(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    client = await _with_database(settings, database_url)
    try:
        assert await _ready(client) == (
            503,
            {
                "message": "Redis is unreachable",
                "checks": {"redis": "unreachable", "workers": "unknown", "postgres": "ok"},
            },
        )
    finally:
        await client.close()


async def test_a_beat_forgets_stale_workers_and_leave_forgets_its_own(redis: Redis) -> None:
    now_ms = clock.to_ms(clock.now())
    await redis.zadd(keys.WORKERS, {"gone:1:a": now_ms - heartbeats.FRESH_MS - 1})
    await redis.zadd(keys.WORKERS, {"edge:2:b": now_ms - heartbeats.FRESH_MS})
    await heartbeats.beat(redis, "here:3:c", now_ms)
    assert await redis.zrange(keys.WORKERS, 0, -1, withscores=True) == [
        (b"edge:2:b", float(now_ms - heartbeats.FRESH_MS)),
        (b"here:3:c", float(now_ms)),
    ]
    async with redis.pipeline(transaction=False) as pipe:
        heartbeats.count_alive(pipe, now_ms)
        assert await pipe.execute() == [2]
    await heartbeats.leave(redis, "here:3:c")
    assert await redis.zrange(keys.WORKERS, 0, -1) == [b"edge:2:b"]
