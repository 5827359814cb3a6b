"""The live picture of a tenant, read in one pipeline, counts exactly what the API created."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from dispatcher.domain import clock
from dispatcher.store.directory import DirectoryCache
from dispatcher.store.keys import TenantKeys
from dispatcher.store.scripts import Scripts
from dispatcher.store.stats import MenuQueue, tenant_stats
from dispatcher.store.stores import Stores
from tests.conftest import basic
from workers.scheduling import fire_scheduled_call
from workers.settings import shutdown, startup

API = "/apps/api/v1"
KEYS = TenantKeys("demo")
HOUR_MS = 3_600_000


async def _post(client: TestClient[Any, Any], path: str, body: dict[str, Any], status: int) -> Any:
    response = await client.post(f"{API}{path}", json=body, headers=basic())
    assert response.status == status, await response.text()
    return await response.json()


async def _inbound(client: TestClient[Any, Any], menu_id: int, number: str) -> dict[str, Any]:
    body = {"call_type": "Voice Inbound (API)", "menu_id": menu_id, "end_user_number": number}
    call: dict[str, Any] = await _post(client, "/calls", body, 201)
    return call


async def _scheduled(client: TestClient[Any, Any], in_s: int, number: str) -> dict[str, Any]:
    body = {
        "call_type": "Voice Scheduled (API)",
        "menu_id": 9,
        "end_user_number": number,
        "scheduled_at": clock.iso(clock.now() + timedelta(seconds=in_s)),
    }
    call: dict[str, Any] = await _post(client, "/calls", body, 201)
    return call


async def _sms(client: TestClient[Any, Any], number: str) -> dict[str, Any]:
    body = {
        "chat_type": "Messaging (SMS)",
        "end_user_number": number,
        "outbound_number": "+1 628-555-0199",
        "message": "hello",
    }
    chat: dict[str, Any] = await _post(client, "/sms", body, 200)
    return chat


async def _set_status(client: TestClient[Any, Any], agent_id: int, status: str) -> None:
    response = await client.put(
        f"{API}/agents/{agent_id}/status", json={"status": status}, headers=basic()
    )
    assert response.status == 200, await response.text()


async def test_the_picture_counts_what_the_api_created(
    client: TestClient[Any, Any], redis: Redis, demo: dict[str, Any]
) -> None:
    outbound = {
        "call_type": "Voice Outbound (API)",
        "agent_email": "admin@somedomain.com",
        "end_user_number": "+1 859-657-9625",
    }
    assert (await _post(client, "/calls", outbound, 201))["status"] == "assigned"
    first = await _inbound(client, 9, "+1 205-555-0101")
    await _inbound(client, 9, "+1 205-555-0102")
    third = await _inbound(client, 51, "+1 205-555-0103")
    await _scheduled(client, 600, "+1 205-555-0104")  # in 10 minutes
    await _scheduled(client, 7200, "+1 205-555-0105")  # in 2 hours
    cancelled = await _scheduled(client, 60, "+1 205-555-0106")
    assert (await _post(client, f"/calls/{cancelled['id']}/finish", {}, 200))["status"] == "failed"
    await _sms(client, "+1 415-555-0100")
    ended = await _sms(client, "+1 415-555-0101")
    await _post(client, f"/chats/{ended['id']}/finish", {}, 200)
    await _set_status(client, 3, "unavailable")
    await _set_status(client, 4, "offline")
    tenant = await DirectoryCache(redis).tenant("demo")
    assert tenant is not None
    calls = Stores.of(redis, Scripts.register(redis), tenant).agents
    offers = await calls.make_offers(first["id"], [(2, 1, "g1")], clock.now(), 30)
    assert len(offers) == 1

    at_ms = _ms(first["queued_at"]) + 2500
    stats = await tenant_stats(redis, tenant, at_ms)

    statuses = dict.fromkeys(stats.calls, 0)
    assert stats.calls == {**statuses, "assigned": 1, "queued": 3, "scheduled": 2, "failed": 1}
    assert stats.queues == (
        MenuQueue(9, "Lock Star", 2, 2.5),
        MenuQueue(50, "Web Support", 0, 0.0),
        MenuQueue(51, "Phone Sales", 1, (at_ms - _ms(third["queued_at"])) / 1000),
    )
    assert stats.agents == {"available": 2, "unavailable": 1, "offline": 1}
    assert stats.offers_in_flight == 1
    assert stats.sms_sessions == 1
    assert stats.scheduled_next_hour == 1
    assert stats.subdomain == "demo" and stats.at_ms == at_ms

    rang_out = await tenant_stats(redis, tenant, offers[0].expires_at_ms)
    assert rang_out.offers_in_flight == 0
    later = await tenant_stats(redis, tenant, at_ms + 2 * HOUR_MS)
    assert later.scheduled_next_hour == 2  # the 2 h one is due within the hour then


def _ms(iso: str) -> int:
    moment = clock.parse_iso(iso)
    assert moment is not None
    return clock.to_ms(moment)


async def test_a_scheduled_call_leaves_the_schedule_when_it_fires(
    client: TestClient[Any, Any], redis: Redis, demo: dict[str, Any]
) -> None:
    call = await _scheduled(client, 600, "+1 205-555-0107")
    assert await redis.zrange(KEYS.scheduled, 0, -1, withscores=True) == [
        (str(call["id"]).encode(), float(_ms(call["scheduled_at"])))
    ]
    tenant = await DirectoryCache(redis).tenant("demo")
    assert tenant is not None
    ctx: dict[str, Any] = {"redis": redis, "job_try": 1}
    await startup(ctx)
    try:  # the job fires it now, ahead of time: what matters is what it leaves behind
        assert (await fire_scheduled_call(ctx, "demo", call["id"])).startswith("fired")
    finally:
        await shutdown(ctx)
    assert await redis.zcard(KEYS.scheduled) == 0
    stats = await tenant_stats(redis, tenant)
    assert (stats.scheduled_next_hour, stats.calls["scheduled"], stats.calls["queued"]) == (0, 0, 1)
    assert stats.queues[0].waiting == 1


async def test_an_empty_tenant_reads_as_zeros(redis: Redis, demo: dict[str, Any]) -> None:
    tenant = await DirectoryCache(redis).tenant("demo")
    assert tenant is not None
    stats = await tenant_stats(redis, tenant, 1_000)
    assert set(stats.calls.values()) == {0}
    assert len(stats.calls) == 16
    assert [(q.menu_id, q.waiting, q.longest_wait_s) for q in stats.queues] == [
        (9, 0, 0.0),
        (50, 0, 0.0),
        (51, 0, 0.0),
    ]
    assert stats.agents == {"available": 4, "unavailable": 0, "offline": 0}
    assert (stats.offers_in_flight, stats.sms_sessions, stats.scheduled_next_hour) == (0, 0, 0)
    assert stats.as_dict()["queues"][0] == {
        "menu_id": 9,
        "name": "Lock Star",
        "waiting": 0,
        "longest_wait_s": 0.0,
    }
