"""Simulated agents (`--simulate-agents`) accept offers, but not those of an agent someone is
watching live in the console (an open event stream): that agent is a person."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient
from arq import Worker
from redis.asyncio import Redis

from dispatcher.store.directory import DirectoryCache
from dispatcher.store.scripts import Scripts
from tests.workers.conftest import (
    SOLO_MENU,
    TENANT,
    get_call,
    inbound_call,
    load_tenant,
    offers_of,
    wait_for_offer,
)
from workers.simulated_agents import accept_due_offers


async def test_a_watched_agent_is_left_alone_and_an_unwatched_one_accepts(
    client: TestClient[Any, Any], redis: Redis, worker: Worker
) -> None:
    await load_tenant(redis, menus={SOLO_MENU: {"offer_timeout_s": 5, "max_wait_s": 10}})
    scripts, directory = Scripts.register(redis), DirectoryCache(redis)
    async with redis.pubsub() as console:
        await console.subscribe(TENANT.agent_events(1))
        call_id = (await inbound_call(client, SOLO_MENU))["id"]
        offer = await wait_for_offer(client, 1, call_id)
        assert await accept_due_offers(redis, scripts, directory, accept_after_s=0) == 0
        assert await offers_of(client, 1) == [offer]
        assert (await get_call(client, call_id))["status"] == "queued"
    assert await accept_due_offers(redis, scripts, directory, accept_after_s=0) == 1
    call = await get_call(client, call_id)
    assert call["status"] != "queued"  # assigned, or already on its way to the end user
    assert call["agent_info"]["id"] == 1
