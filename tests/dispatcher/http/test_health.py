"""Readiness: Redis answers and a worker's heartbeat is fresh; `?exclude=workers` for the
ingress's own probe. Liveness is /healthz (test_openapi.py)."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from dispatcher.domain import clock
from dispatcher.store import heartbeats, keys
from tests.dispatcher.http.test_openapi import conforming

READY = {"status": "ready", "checks": {"redis": "ok", "workers": "ok"}}
NO_WORKER = {
    "message": "No worker is alive: no heartbeat in the last 15 s",
    "checks": {"redis": "ok", "workers": "no fresh heartbeat"},
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
        {"status": "ready", "checks": {"redis": "ok"}},
    )


async def test_only_workers_can_be_excluded(client: TestClient[Any, Any]) -> None:
    for query in ("?exclude=redis", "?exclude=workers&exclude=db", "?exclude="):
        assert await _ready(client, query) == (400, {"message": "exclude can only name workers"})


async def test_not_ready_when_redis_is_unreachable(unreachable: TestClient[Any, Any]) -> None:
    assert await _ready(unreachable) == (
        503,
        {
            "message": "Redis is unreachable",
            "checks": {"redis": "unreachable", "workers": "unknown"},
        },
    )
    assert await _ready(unreachable, "?exclude=workers") == (
        503,
        {"message": "Redis is unreachable", "checks": {"redis": "unreachable"}},
    )
    healthz = await unreachable.get("/healthz")  # alive all the same: no restart would help
    assert (healthz.status, await healthz.json()) == (200, {"status": "ok"})


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
