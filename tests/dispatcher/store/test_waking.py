"""Freed agents wake only the waiting calls that will ring for them, and the directory cache
re-reads a tenant no more often than its TTL."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from dispatcher.directory.tenant import Tenant
from dispatcher.domain import clock
from dispatcher.store import jobs
from dispatcher.store.agents import AgentStore
from dispatcher.store.directory import DirectoryCache
from dispatcher.store.keys import TenantKeys
from dispatcher.store.scripts import Scripts
from dispatcher.store.stores import Stores
from tests.conftest import basic, demo_document, load_directory

CALLS = "/apps/api/v1/calls"
KEYS = TenantKeys("demo")
LOCK_STAR = 9  # groups [[1, 2], [4]]; agent 1 speaks en, agent 2 en and ko


async def _queue_calls(client: TestClient[Any, Any], langs: list[str]) -> list[int]:
    ids = []
    for i, lang in enumerate(langs):
        body = {
            "call_type": "Voice Inbound (API)",
            "menu_id": LOCK_STAR,
            "end_user_number": f"+1 205-555-01{i:02d}",
            "lang": lang,
        }
        response = await client.post(CALLS, json=body, headers=basic())
        assert response.status == 201
        ids.append((await response.json())["id"])
    return ids


async def _calls(redis: Redis) -> AgentStore:
    tenant = await DirectoryCache(redis).tenant("demo")
    assert tenant is not None
    return Stores.of(redis, Scripts.register(redis), tenant).agents


async def _woken(redis: Redis) -> list[str]:
    queued = [m.decode() for m in await redis.zrange(jobs.QUEUE_NAME, 0, -1)]
    return sorted(m for m in queued if ":w" in m)


async def _all_offline(redis: Redis) -> None:
    for agent_id in (1, 2, 3, 4):
        await redis.hset(KEYS.agent(agent_id), "status", "offline")


async def test_a_freed_agent_wakes_the_oldest_call_it_can_take_and_no_other(
    client: TestClient[Any, Any], redis: Redis, demo: dict[str, Any]
) -> None:
    await _all_offline(redis)
    korean, first_en, second_en = await _queue_calls(client, ["ko", "en", "en"])
    calls = await _calls(redis)
    await redis.hset(KEYS.agent(1), "status", "available")

    # Agent 1 (en, one voice slot) skips the older Korean call and takes one call only.
    assert await calls.wake_waiting_calls([1]) == 1
    assert [w.rsplit(":", 2)[1] for w in await _woken(redis)] == [str(first_en)]

    # Agents 1 and 2 freed together: 2 takes the Korean call; 1 cannot, and takes the next
    # English one; a call both could take wakes once, for both (routing offers it to both).
    # Forget the first wake whole (queue entry and job): a wake of the same call in the same
    # millisecond is the same job, and would not be queued again.
    await redis.delete(jobs.QUEUE_NAME, *[f"arq:job:{w}" for w in await _woken(redis)])
    await redis.hset(KEYS.agent(2), "status", "available")
    assert await calls.wake_waiting_calls([1, 2]) == 2
    woken = sorted(int(w.rsplit(":", 2)[1]) for w in await _woken(redis))
    assert woken == [korean, first_en]
    assert second_en not in woken


async def test_an_agent_ringing_or_busy_or_offered_before_wakes_nothing(
    client: TestClient[Any, Any], redis: Redis, demo: dict[str, Any]
) -> None:
    await _all_offline(redis)
    (call_id,) = await _queue_calls(client, ["en"])
    calls = await _calls(redis)
    await redis.hset(KEYS.agent(1), "status", "available")
    now_ms = clock.to_ms(clock.now())

    # Ringing for another call: its one slot is taken.
    await redis.zadd(KEYS.agent_offers(1), {"99": now_ms + 10_000})
    assert await calls.wake_waiting_calls([1]) == 0
    # The offer rang out: free again.
    await redis.zadd(KEYS.agent_offers(1), {"99": now_ms - 1})
    # But it was offered this very call before (declined or rang out): not again.
    await redis.hset(KEYS.call_offers(call_id), "1", "7")
    assert await calls.wake_waiting_calls([1]) == 0
    await redis.delete(KEYS.call_offers(call_id))
    # Holding a call: busy.
    await redis.hset(KEYS.agent(1), "voice", "1")
    assert await calls.wake_waiting_calls([1]) == 0
    await redis.hset(KEYS.agent(1), "voice", "0")
    assert await calls.wake_waiting_calls([1]) == 1
    assert await _woken(redis) != []


async def _version(cache: DirectoryCache) -> str:
    tenant = await cache.tenant("demo")
    assert isinstance(tenant, Tenant)
    return tenant.version


async def test_the_directory_cache_rereads_a_tenant_only_after_its_ttl(
    redis: Redis, demo: dict[str, Any]
) -> None:
    patient, exact = DirectoryCache(redis, ttl_s=3600), DirectoryCache(redis, ttl_s=0)
    first = await _version(patient)
    assert await _version(exact) == first

    await load_directory(redis, demo_document())  # a new version of the same tenant
    assert await _version(exact) != first
    assert await _version(patient) == first  # within its TTL
    patient.forget()
    assert await _version(patient) == await _version(exact)

    await redis.hdel("dsp:tenants", "demo")  # the tenant is removed
    assert await exact.tenant("demo") is None
