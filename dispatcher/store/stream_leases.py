"""Leases of open event streams in Redis, counted per scope (tenant, dashboard session, agent)
across every process. A lease lapses unless renewed, so a process that dies with its streams
open frees its share of the caps within LEASE_S, without anyone cleaning up after it."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from dispatcher.domain import clock
from dispatcher.domain.errors import TooManyRequests
from dispatcher.store.keys import Key
from dispatcher.store.scripts import ClaimStream, Full, Scripts

log = structlog.get_logger("dispatcher.store.stream_leases")

LEASE_S = 60.0  # a lease not renewed in this long lapses (a dead process's streams)
RENEW_S = 20.0  # how often an open stream renews its leases
RETRY_AFTER_S = 5  # streams end within a second or two of their clients leaving


@dataclass(frozen=True)
class StreamCap:
    """At most `limit` streams open at once under the sorted set `key`; `refusal` is the
    429's message."""

    key: Key
    limit: int
    refusal: str


@contextlib.asynccontextmanager
async def leased(redis: Redis, scripts: Scripts, caps: Sequence[StreamCap]) -> AsyncIterator[None]:
    """Holds one lease in each cap's scope while the block runs, or raises TooManyRequests
    (the first full scope's refusal) without taking any."""
    stream_id = secrets.token_hex(8)
    keys = [cap.key for cap in caps]
    claim = ClaimStream(
        scopes=keys,
        caps=[cap.limit for cap in caps],
        now=_now_ms(),
        expiry=_expiry_ms(),
        stream=stream_id,
    )
    try:
        await scripts.run(claim)
    except Full as full:
        raise TooManyRequests(caps[full.scope - 1].refusal, RETRY_AFTER_S) from None
    renewing = asyncio.create_task(_renew(redis, keys, stream_id))
    try:
        yield
    finally:
        renewing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renewing
        await _release(redis, keys, stream_id)


async def _renew(redis: Redis, keys: list[Key], stream_id: str) -> None:
    while True:
        await asyncio.sleep(RENEW_S)
        try:
            async with redis.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.zadd(key, {stream_id: _expiry_ms()})
                    pipe.pexpireat(key, _expiry_ms())
                await pipe.execute()
        except (RedisError, ConnectionError, OSError):  # tried again next time
            log.warning("event stream lease not renewed: Redis is unavailable", exc_info=True)


async def _release(redis: Redis, keys: list[Key], stream_id: str) -> None:
    try:
        async with redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.zrem(key, stream_id)
            await pipe.execute()
    except (RedisError, ConnectionError, OSError):  # the lease lapses by itself
        log.warning("event stream lease not released: Redis is unavailable", exc_info=True)


def _now_ms() -> int:
    return clock.to_ms(clock.now())


def _expiry_ms() -> int:
    return _now_ms() + int(LEASE_S * 1000)
