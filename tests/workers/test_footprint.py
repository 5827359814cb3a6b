"""CallStore.footprint names exactly what one call holds in Redis, as Redis holds it: checked
against a scan of the tenant's keys while the call rings and after its whole life."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient
from arq import Worker
from redis.asyncio import Redis

from dispatcher.store.archiving import Footprint
from dispatcher.store.calls import CallStore
from dispatcher.store.directory import DirectoryCache
from dispatcher.store.scripts import Scripts
from dispatcher.store.stores import Stores
from tests.conftest import basic
from tests.workers.conftest import (
    API,
    EXTRA_AGENTS,
    MULTICAST_MENU,
    TENANT,
    inbound_call,
    load_tenant,
    wait_for_offer,
    wait_for_status,
)


async def _held_by(redis: Redis, call_id: int) -> tuple[set[str], set[tuple[str, str]]]:
    """What a scan finds of the call: keys named after it or its offers, and its members (the
    call's id in call indexes, its offers' ids in agents' offer sets) in every sorted set."""
    offer_ids = {raw.decode() for raw in await redis.hvals(TENANT.call_offers(call_id))}
    own: set[str] = set()
    entries: set[tuple[str, str]] = set()
    async for raw in redis.scan_iter(match=TENANT.prefix + "*"):
        key = raw.decode()
        kind = (await redis.type(key)).decode()
        if key == TENANT.call(call_id) or key.startswith(TENANT.call(call_id) + ":"):
            own.add(key)
        if key.startswith(TENANT.prefix + "offer:") and key.rsplit(":", 1)[1] in offer_ids:
            own.add(key)
        if kind != "zset":
            continue
        is_offer_set = key.startswith(TENANT.prefix + "agent:") and key.endswith(":offers")
        members = offer_ids if is_offer_set else {f"{call_id:015d}", str(call_id)}
        for member in members:
            if await redis.zscore(key, member) is not None:
                entries.add((key, member))
    return own, entries


async def _calls(redis: Redis) -> CallStore:
    tenant = await DirectoryCache(redis).tenant("demo")
    assert tenant is not None
    return Stores.of(redis, Scripts.register(redis), tenant).calls


async def _footprint(redis: Redis, call_id: int) -> Footprint:
    footprint = await (await _calls(redis)).footprint(call_id)
    assert footprint is not None
    return footprint


async def test_the_footprint_is_what_redis_holds_of_the_call_ringing_and_ended(
    client: TestClient[Any, Any], redis: Redis, worker: Worker
) -> None:
    await load_tenant(redis, menus={MULTICAST_MENU: {"offer_timeout_s": 5, "max_wait_s": 10}})
    call_id = (await inbound_call(client, MULTICAST_MENU))["id"]
    offer = await wait_for_offer(client, EXTRA_AGENTS[0], call_id)
    await wait_for_offer(client, EXTRA_AGENTS[-1], call_id)

    ringing = await _footprint(redis, call_id)
    own, entries = await _held_by(redis, call_id)
    assert (set(ringing.keys), set(ringing.entries)) == (own, entries)
    assert (TENANT.waiting(MULTICAST_MENU), str(call_id)) in ringing.entries
    assert len(ringing.keys) == 3 + len(EXTRA_AGENTS)  # hash, history, offers; each offer

    response = await client.post(f"{API}/offers/{offer['id']}/accept", headers=basic())
    assert response.status == 200
    await wait_for_status(client, call_id, "finished")

    ended = await _footprint(redis, call_id)
    own, entries = await _held_by(redis, call_id)
    assert (set(ended.keys), set(ended.entries)) == (own, entries)
    assert set(ended.entries) == {
        (TENANT.calls, f"{call_id:015d}"),
        (TENANT.calls_by_status("finished"), f"{call_id:015d}"),
        (TENANT.prefix + "calls:type:inbound", f"{call_id:015d}"),
        (TENANT.ended("call"), f"{call_id:015d}"),  # it waits there to be archived
    }
    assert await (await _calls(redis)).footprint(call_id + 1) is None
