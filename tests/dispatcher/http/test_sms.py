"""One active SMS session per consumer, enforced atomically in Redis."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from dispatcher.store.keys import TenantKeys
from tests.conftest import basic, demo_document, load_directory

SMS = {
    "chat_type": "Messaging (SMS)",
    "end_user_number": "+1 415-555-0100",
    "outbound_number": "+1 628-555-0199",
    "message": "lorem ipsum",
}
ACTIVE = {"message": "Outbound SMS failed. Consumer is already in an active SMS session."}


async def test_concurrent_requests_for_one_consumer_give_exactly_one_200(
    client: TestClient[Any, Any], redis: Redis, demo: dict[str, Any]
) -> None:
    responses = await asyncio.gather(
        *[client.post("/apps/api/v1/sms", json=SMS, headers=basic()) for _ in range(50)]
    )
    statuses = sorted(r.status for r in responses)
    assert statuses == [200] + [400] * 49
    for response in responses:
        if response.status == 400:
            assert await response.json() == ACTIVE
    assert await redis.zcard(TenantKeys("demo").chats) == 1


async def test_distinct_consumers_each_get_a_session(
    client: TestClient[Any, Any], demo: dict[str, Any]
) -> None:
    numbers = [f"+1 415-555-01{n:02d}" for n in range(20)]
    responses = await asyncio.gather(
        *[
            client.post("/apps/api/v1/sms", json={**SMS, "end_user_number": n}, headers=basic())
            for n in numbers
        ]
    )
    assert [r.status for r in responses] == [200] * 20
    ids = sorted([(await r.json())["id"] for r in responses])
    assert ids == list(range(1, 21))


async def test_the_same_consumer_written_differently_is_one_consumer(
    client: TestClient[Any, Any], demo: dict[str, Any]
) -> None:
    first = await client.post("/apps/api/v1/sms", json=SMS, headers=basic())
    assert first.status == 200
    again = await client.post(
        "/apps/api/v1/sms", json={**SMS, "end_user_number": "(415) 555-0100"}, headers=basic()
    )
    assert again.status == 400
    assert await again.json() == ACTIVE


async def test_session_expires_with_the_tenants_timeout(
    client: TestClient[Any, Any], redis: Redis
) -> None:
    document = demo_document()
    document["tenants"][0]["settings"]["sms_session_timeout_s"] = 120
    await load_directory(redis, document)
    response = await client.post("/apps/api/v1/sms", json=SMS, headers=basic())
    assert response.status == 200
    session = TenantKeys("demo").sms_session("+14155550100")
    assert await redis.get(session) == str((await response.json())["id"]).encode()
    assert 119_000 < await redis.pttl(session) <= 120_000


async def test_session_is_per_tenant(client: TestClient[Any, Any], redis: Redis) -> None:
    document = demo_document()
    document["tenants"].append(
        {**document["tenants"][0], "subdomain": "other", "api_tokens": ["other-token"]}
    )
    await load_directory(redis, document)
    mine = await client.post("/apps/api/v1/sms", json=SMS, headers=basic())
    theirs = await client.post("/apps/api/v1/sms", json=SMS, headers=basic("other", "other-token"))
    assert (mine.status, theirs.status) == (200, 200)


async def test_opted_out_consumer_is_refused(
    client: TestClient[Any, Any], redis: Redis, demo: dict[str, Any]
) -> None:
    await redis.zadd(TenantKeys("demo").do_not_contact, {"+14155550100": 1})
    response = await client.post("/apps/api/v1/sms", json=SMS, headers=basic())
    assert response.status == 400
    assert await response.json() == {
        "message": "Outbound SMS failed. Consumer has opted out of SMS."
    }
    assert await redis.exists(TenantKeys("demo").sms_session("+14155550100")) == 0


async def test_chat_is_readable_and_listed(
    client: TestClient[Any, Any], demo: dict[str, Any]
) -> None:
    created = await (
        await client.post("/apps/api/v1/sms", json={**SMS, "agentId": 4}, headers=basic())
    ).json()
    assert created["status"] == "assigned"
    assert created["agent_info"]["email"] == "john.doe@foo.com"
    assert [p["type"] for p in created["participants"]] == ["end_user", "agent"]
    fetched = await client.get(f"/apps/api/v1/chats/{created['id']}", headers=basic())
    assert fetched.status == 200
    assert await fetched.json() == created
    listed = await client.get("/apps/api/v1/chats?status=assigned", headers=basic())
    assert await listed.json() == [created]
    missing = await client.get("/apps/api/v1/chats/999", headers=basic())
    assert missing.status == 404
    assert await missing.json() == {"message": "Chat not found"}


async def test_overlong_message_is_refused(
    client: TestClient[Any, Any], demo: dict[str, Any]
) -> None:
    response = await client.post(
        "/apps/api/v1/sms", json={**SMS, "message": "x" * 1601}, headers=basic()
    )
    assert response.status == 400
    assert await response.json() == {"message": "message is too long (at most 1600 characters)"}


async def test_malformed_ticket_is_refused_as_for_calls(
    client: TestClient[Any, Any], demo: dict[str, Any]
) -> None:
    response = await client.post(
        "/apps/api/v1/sms", json={**SMS, "ticket_id": ["a"]}, headers=basic()
    )
    assert response.status == 400
    assert await response.json() == {"message": "ticket_id is not well formed"}
