"""The directory cache against the real Redis: lookups that come together share one read (and
one parse), a cancelled lookup leaves the others theirs, and with no ttl each reads for itself."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from dispatcher.store.directory import DirectoryCache
from tests.workers.conftest import TENANT as KEYS
from tests.workers.conftest import load_tenant

TENANT = KEYS.subdomain


async def _reads(redis: Redis) -> tuple[int, int]:
    """Redis's counts of HGET and GET so far."""
    stats = await redis.info("commandstats")
    return (
        int(stats.get("cmdstat_hget", {}).get("calls", 0)),
        int(stats.get("cmdstat_get", {}).get("calls", 0)),
    )


async def test_lookups_on_a_cold_cache_share_one_read_and_one_parse(redis: Redis) -> None:
    await load_tenant(redis)
    cache = DirectoryCache(redis, ttl_s=60)
    hget, get = await _reads(redis)
    tenants = await asyncio.gather(*(cache.tenant(TENANT) for _ in range(200)))
    # One version check and one directory read (the INFO above is not counted in either).
    assert await _reads(redis) == (hget + 1, get + 1)
    assert {id(tenant) for tenant in tenants} == {id(tenants[0])}
    assert tenants[0] is not None and tenants[0].subdomain == TENANT
    assert await cache.tenant(TENANT) is tenants[0]  # fresh: no read at all
    assert await _reads(redis) == (hget + 1, get + 1)


async def test_a_cancelled_lookup_leaves_the_shared_read_to_the_others(redis: Redis) -> None:
    await load_tenant(redis)
    cache = DirectoryCache(redis, ttl_s=60)
    first = asyncio.ensure_future(cache.tenant(TENANT))
    others = [asyncio.ensure_future(cache.tenant(TENANT)) for _ in range(5)]
    await asyncio.sleep(0)  # every lookup is waiting on the read
    first.cancel()
    found = await asyncio.gather(*others)
    assert first.cancelled()
    assert [tenant.subdomain if tenant else None for tenant in found] == [TENANT] * 5


async def test_with_no_ttl_each_lookup_checks_the_version_itself(redis: Redis) -> None:
    await load_tenant(redis)
    cache = DirectoryCache(redis, ttl_s=0)
    hget, get = await _reads(redis)
    await asyncio.gather(*(cache.tenant(TENANT) for _ in range(10)))
    # Ten checks; the directory is read by each lookup that found nothing parsed yet.
    hget_after, get_after = await _reads(redis)
    assert hget_after == hget + 10
    assert get + 1 <= get_after <= get + 10
    await cache.tenant(TENANT)
    assert await _reads(redis) == (hget_after + 1, get_after)  # parsed and current: no GET
