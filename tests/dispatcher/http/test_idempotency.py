"""Idempotency-Key on POST /calls and POST /sms: a retry replays the first answer, creates
nothing, and the same key with another body is refused."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from dispatcher.store import jobs
from dispatcher.store.keys import TenantKeys
from tests.conftest import basic, demo_document, load_directory

CALLS = "/apps/api/v1/calls"
SMS_PATH = "/apps/api/v1/sms"
INBOUND = {"call_type": "Voice Inbound (API)", "menu_id": 9, "end_user_number": "+1 205-123-4567"}
SMS = {
    "chat_type": "Messaging (SMS)",
    "end_user_number": "+1 415-555-0100",
    "outbound_number": "+1 628-555-0199",
    "message": "lorem ipsum",
}
REUSED = {"message": "Idempotency-Key was already used with a different request body"}
BAD_KEY = {"message": "Idempotency-Key must be 1 to 255 printable ASCII characters"}
DEMO = TenantKeys("demo")


def keyed(key: str, subdomain: str = "demo", token: str = "demo-token") -> dict[str, str]:
    return {**basic(subdomain, token), "Idempotency-Key": key}


async def _calls_stored(redis: Redis, keys: TenantKeys = DEMO) -> int:
    return int(await redis.zcard(keys.calls))


async def test_a_retried_create_replays_the_first_answer_and_creates_nothing(
    client: TestClient[Any, Any], redis: Redis, demo: dict[str, Any]
) -> None:
    first = await client.post(CALLS, json=INBOUND, headers=keyed("retry-1"))
    assert first.status == 201
    assert "Idempotent-Replayed" not in first.headers
    retry = await client.post(CALLS, json=INBOUND, headers=keyed("retry-1"))
    assert retry.status == 201
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert await retry.read() == await first.read()
    assert (await retry.json())["id"] == 1
    assert await _calls_stored(redis) == 1
    assert await redis.zcard(jobs.QUEUE_NAME) <= 1  # the first's one job, or none if it ran


async def test_the_same_body_written_differently_is_the_same_request(
    client: TestClient[Any, Any], redis: Redis, demo: dict[str, Any]
) -> None:
    first = await client.post(CALLS, json=INBOUND, headers=keyed("k"))
    reordered = orjson.dumps(dict(reversed(list(INBOUND.items())))).replace(b",", b" ,  ")
    retry = await client.post(
        CALLS, data=reordered, headers={**keyed("k"), "Content-Type": "application/json"}
    )
    assert (retry.status, await retry.read()) == (201, await first.read())
    assert await _calls_stored(redis) == 1


async def test_the_same_key_with_another_body_is_409_and_creates_nothing(
    client: TestClient[Any, Any], redis: Redis, demo: dict[str, Any]
) -> None:
    assert (await client.post(CALLS, json=INBOUND, headers=keyed("k"))).status == 201
    other = {**INBOUND, "end_user_number": "+1 205-123-9999"}
    response = await client.post(CALLS, json=other, headers=keyed("k"))
    assert (response.status, await response.json()) == (409, REUSED)
    assert await _calls_stored(redis) == 1


async def test_concurrent_duplicates_create_once_and_all_get_the_same_answer(
    client: TestClient[Any, Any], redis: Redis, demo: dict[str, Any]
) -> None:
    responses = await asyncio.gather(
        *[client.post(CALLS, json=INBOUND, headers=keyed("burst")) for _ in range(30)]
    )
    bodies = {await r.read() for r in responses}
    assert [r.status for r in responses] == [201] * 30
    assert len(bodies) == 1
    assert sum(r.headers.get("Idempotent-Replayed") == "true" for r in responses) == 29
    assert await _calls_stored(redis) == 1
    waiting = await redis.zrange(DEMO.waiting(9), 0, -1)
    assert [int(x) for x in waiting] == [orjson.loads(bodies.pop())["id"]]


async def test_different_keys_create_different_calls(
    client: TestClient[Any, Any], redis: Redis, demo: dict[str, Any]
) -> None:
    ids = []
    for key in ("a", "b", "c"):
        response = await client.post(CALLS, json=INBOUND, headers=keyed(key))
        assert response.status == 201
        ids.append((await response.json())["id"])
    assert ids == [1, 2, 3]


async def test_a_refused_request_stores_nothing_under_its_key(
    client: TestClient[Any, Any], redis: Redis, demo: dict[str, Any]
) -> None:
    """Errors are not replayed: the corrected retry under the same key creates the call."""
    wrong = await client.post(CALLS, json={**INBOUND, "menu_id": 999}, headers=keyed("fix-me"))
    assert wrong.status == 400
    fixed = await client.post(CALLS, json=INBOUND, headers=keyed("fix-me"))
    assert fixed.status == 201
    assert await _calls_stored(redis) == 1


async def test_a_202_choice_is_replayed_as_202(client: TestClient[Any, Any], redis: Redis) -> None:
    document = demo_document()
    document["tenants"][0]["settings"]["default_outbound_number"] = None
    await load_directory(redis, document)
    body = {
        "call_type": "Voice Outbound (API)",
        "agent_email": "admin@somedomain.com",
        "end_user_number": "+1 859-657-9625",
        "outbound_number": "+1 760-867-5309",
    }
    first = await client.post(CALLS, json=body, headers=keyed("choose"))
    retry = await client.post(CALLS, json=body, headers=keyed("choose"))
    assert first.status == retry.status == 202
    assert await retry.read() == await first.read()
    assert (await retry.json())["pending_action"] == "select_outbound_number"
    assert await _calls_stored(redis) == 1


async def test_a_retried_sms_replays_instead_of_meeting_its_own_session(
    client: TestClient[Any, Any], redis: Redis, demo: dict[str, Any]
) -> None:
    first = await client.post(SMS_PATH, json=SMS, headers=keyed("sms-1"))
    assert first.status == 200
    retry = await client.post(SMS_PATH, json=SMS, headers=keyed("sms-1"))
    assert (retry.status, await retry.read()) == (200, await first.read())
    unkeyed = await client.post(SMS_PATH, json=SMS, headers=basic())
    assert (unkeyed.status, await unkeyed.json()) == (
        400,
        {"message": "Outbound SMS failed. Consumer is already in an active SMS session."},
    )
    assert await redis.zcard(DEMO.chats) == 1


async def test_keys_are_scoped_by_endpoint_and_by_tenant(
    client: TestClient[Any, Any], redis: Redis
) -> None:
    document = demo_document()
    other = {**demo_document()["tenants"][0], "subdomain": "other", "api_tokens": ["other-token"]}
    document["tenants"].append(other)
    await load_directory(redis, document)
    demo_call = await client.post(CALLS, json=INBOUND, headers=keyed("shared"))
    other_call = await client.post(
        CALLS, json=INBOUND, headers=keyed("shared", "other", "other-token")
    )
    demo_sms = await client.post(SMS_PATH, json=SMS, headers=keyed("shared"))
    assert (demo_call.status, other_call.status, demo_sms.status) == (201, 201, 200)
    assert "Idempotent-Replayed" not in other_call.headers
    assert "Idempotent-Replayed" not in demo_sms.headers
    assert await _calls_stored(redis) == 1
    assert await _calls_stored(redis, TenantKeys("other")) == 1


async def test_the_first_answer_is_kept_for_24_hours(
    client: TestClient[Any, Any], redis: Redis, demo: dict[str, Any]
) -> None:
    assert (await client.post(CALLS, json=INBOUND, headers=keyed("day"))).status == 201
    stored = [key async for key in redis.scan_iter(match=DEMO.prefix + "idem:calls:*")]
    assert len(stored) == 1
    assert 86_390_000 < await redis.pttl(stored[0]) <= 86_400_000


@pytest.mark.parametrize("key", ["", "x" * 256, "tab\there"])
async def test_a_malformed_key_is_400(
    client: TestClient[Any, Any], redis: Redis, demo: dict[str, Any], key: str
) -> None:
    response = await client.post(CALLS, json=INBOUND, headers=keyed(key))
    assert (response.status, await response.json()) == (400, BAD_KEY)
    assert await _calls_stored(redis) == 0


async def test_a_255_character_key_is_accepted(
    client: TestClient[Any, Any], redis: Redis, demo: dict[str, Any]
) -> None:
    key = "~" * 255
    first = await client.post(CALLS, json=INBOUND, headers=keyed(key))
    retry = await client.post(CALLS, json=INBOUND, headers=keyed(key))
    assert (first.status, retry.status) == (201, 201)
    assert retry.headers["Idempotent-Replayed"] == "true"
