"""A tenant's SMS opt-outs: the consumers who texted an opt-out word, each with the moment it
first did, read and removed by the API; create_record.lua refuses a session to any of them."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from dispatcher.domain import clock
from dispatcher.store.keys import TenantKeys


@dataclass(frozen=True)
class OptOut:
    """One number on the list (E.164) and when it opted out (ms)."""

    number: str
    at_ms: int

    def view(self) -> dict[str, str]:
        return {"phone_number": self.number, "opted_out_at": clock.iso(clock.from_ms(self.at_ms))}


class OptOuts:
    """The list is one sorted set, E.164 number -> ms of its first opt-out, so that it pages
    newest first and a repeated STOP keeps the first time."""

    def __init__(self, redis: Redis, subdomain: str) -> None:
        self._redis = redis
        self._key = TenantKeys(subdomain).do_not_contact

    async def add(self, number: str, at_ms: int) -> None:
        await self._redis.zadd(self._key, {number: at_ms}, nx=True)

    async def find(self, number: str) -> OptOut | None:
        score = await self._redis.zscore(self._key, number)
        return OptOut(number, int(score)) if score is not None else None

    async def page(self, page: int, per: int) -> tuple[int, list[OptOut]]:
        """(how many numbers, one page of them, newest first: the same millisecond by number,
        descending, as ZREVRANGE orders ties)."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zcard(self._key)
            pipe.zrevrange(self._key, (page - 1) * per, page * per - 1, withscores=True)
            total, entries = await pipe.execute()
        return int(total), [OptOut(raw.decode(), int(score)) for raw, score in entries]

    async def remove(self, number: str) -> OptOut | None:
        """Takes the number off the list (it may be texted again) and answers the entry it
        removed; read and removed in one MULTI, so two removals answer it once."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zscore(self._key, number)
            pipe.zrem(self._key, number)
            score, removed = await pipe.execute()
        return OptOut(number, int(score)) if removed else None
