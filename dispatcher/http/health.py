"""Liveness (/healthz: the process serves) and readiness (/readyz: Redis answers, workers beat;
PostgreSQL, when there is one, answers too or the service runs degraded)."""

from __future__ import annotations

import asyncio

import asyncpg
from aiohttp import web
from redis.asyncio import Redis
from redis.exceptions import RedisError

from dispatcher.domain import clock
from dispatcher.domain.errors import InvalidRequest
from dispatcher.history.database import ping
from dispatcher.http.appkeys import DATABASE, REDIS
from dispatcher.http.responses import json_response
from dispatcher.store import heartbeats

routes = web.RouteTableDef()
# A probe must answer before the orchestrator's own timeout (Kubernetes: 1 s by default).
READY_TIMEOUT_S = 0.8
EXCLUDABLE = frozenset({"workers"})
REDIS_UNREACHABLE = "Redis is unreachable"
NO_WORKER = f"No worker is alive: no heartbeat in the last {heartbeats.FRESH_MS // 1000} s"


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    """`?exclude=workers` leaves out the workers (the ingress's own readiness needs only Redis:
    it takes requests while workers are away, and they run the queued jobs once back).

    PostgreSQL down leaves the process ready, `degraded`: only history (archiving, reads of
    archived records) waits for it, and taking the process out of service would stop the rest."""
    excluded = set(request.query.getall("exclude", []))
    if not excluded <= EXCLUDABLE:
        raise InvalidRequest("exclude can only name workers")
    redis_checks, postgres = await asyncio.gather(
        _redis_checks(request.app[REDIS], with_workers="workers" not in excluded),
        _postgres_check(request.app[DATABASE]),
    )
    checks = {**redis_checks, "postgres": postgres}
    if checks["redis"] != "ok":
        return json_response({"message": REDIS_UNREACHABLE, "checks": checks}, status=503)
    if checks.get("workers", "ok") != "ok":
        return json_response({"message": NO_WORKER, "checks": checks}, status=503)
    status = "ready" if postgres != "unreachable" else "degraded"
    return json_response({"status": status, "checks": checks})


async def _redis_checks(redis: Redis, *, with_workers: bool) -> dict[str, str]:
    """One round trip: PING and the count of fresh heartbeats."""
    try:
        async with asyncio.timeout(READY_TIMEOUT_S), redis.pipeline(transaction=False) as pipe:
            pipe.ping()
            heartbeats.count_alive(pipe, clock.to_ms(clock.now()))
            _, alive = await pipe.execute()
    except (RedisError, OSError, TimeoutError):
        return {"redis": "unreachable", **({"workers": "unknown"} if with_workers else {})}
    if not with_workers:
        return {"redis": "ok"}
    return {"redis": "ok", "workers": "ok" if alive else "no fresh heartbeat"}


async def _postgres_check(pool: asyncpg.Pool | None) -> str:
    if pool is None:
        return "not configured"
    return "ok" if await ping(pool, READY_TIMEOUT_S) else "unreachable"
