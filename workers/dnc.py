"""The company DNC list's sweep: expired entries removed from Redis, once a minute on one
worker of the fleet (an ARQ cron job, as the archiver's). It is housekeeping only: an entry is
off the list from its expiry on whether or not it was swept (store/dnc.py), so a tick that is
late, or bounded before it is done, changes no answer; it only keeps memory in check."""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from dispatcher.domain import clock
from dispatcher.store import keys
from dispatcher.store.dnc import PURGE_STEP, DncList

SECOND = 30  # of every minute
STEPS = 10  # per tenant and tick, of PURGE_STEP each: 100,000 entries a minute at most


async def sweep_dnc(ctx: dict[str, Any]) -> str:
    """The cron job: each tenant's entries expired by now, up to STEPS scripts a tenant."""
    redis: Redis = ctx["redis"]
    now_ms = clock.to_ms(clock.now())
    removed = 0
    for subdomain in await _subdomains(redis):
        dnc = DncList(redis, ctx["scripts"], subdomain)
        for _ in range(STEPS):
            swept = await dnc.sweep(now_ms)
            removed += swept
            if swept < PURGE_STEP:
                break
    return f"swept {removed} expired DNC entries"


async def _subdomains(redis: Redis) -> list[str]:
    names = await redis.hkeys(keys.TENANTS)  # type: ignore[misc]
    return sorted(raw.decode() for raw in names)
