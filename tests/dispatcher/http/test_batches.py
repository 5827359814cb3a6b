"""POST /calls/batch: each item is answered exactly as POST /calls answers the same body, the
valid ones are created even when others fail, and a client_token makes an item idempotent."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from dispatcher.app import create_app
from dispatcher.domain import clock
from dispatcher.settings import Settings
from dispatcher.store.keys import TenantKeys
from tests.conftest import basic, demo_document, load_directory
from tests.dispatcher.http.test_openapi import conforming

CALLS = "/apps/api/v1/calls"
BATCH = f"{CALLS}/batch"
DEMO = TenantKeys("demo")
LATER = clock.iso(clock.now() + timedelta(days=2))
INBOUND = {"call_type": "Voice Inbound (API)", "menu_id": 9, "end_user_number": "+1 205-123-4567"}
SCHEDULED = {**INBOUND, "call_type": "Voice Scheduled (API)", "scheduled_at": LATER}
OUTBOUND = {
    "call_type": "Voice Outbound (API)",
    "agent_email": "admin@somedomain.com",
    "end_user_number": "+1 628-555-0142",
    "outbound_number": "+1 628-555-0199",
}
# Every kind of answer POST /calls gives, in an order where earlier items change later ones
# (the admin's only voice slot, the anonymous end-user ids, the parent call).
MIXED: list[Any] = [
    INBOUND,
    {"call_type": "nope"},
    "not an object",
    [1, 2],
    OUTBOUND,
    {**OUTBOUND, "end_user_number": "+1 628-555-0143"},  # the admin's slot is taken now
    {**OUTBOUND, "agent_email": "agent@somedomain.com", "outbound_number": None},  # 202
    {**OUTBOUND, "agent_email": "allen@somedomain.com"},
    {**INBOUND, "menu_id": 9999},
    {**INBOUND, "menu_id": 50},
    {**INBOUND, "lang": "fr"},
    {**INBOUND, "end_user_number": "12"},
    {**INBOUND, "end_user_number": "+1 415-555-0177", "ticket_id": 71450},
    SCHEDULED,
    {**SCHEDULED, "scheduled_at": "2001-01-01T00:00:00Z"},
    {**SCHEDULED, "scheduled_at": "tomorrow"},
    {**SCHEDULED, "menu_id": None, "call_id": 1},  # the call made before the batch
    {**SCHEDULED, "menu_id": None, "call_id": 999},
    {**SCHEDULED, "recording_permission": "maybe"},
    {**INBOUND, "ticket_id": [1]},
]
STAMP = re.compile(rb'"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"')


def _same_moments(raw: bytes) -> Any:
    """The answer with every timestamp made equal (two runs differ by when they ran), except
    scheduled_at, which the request gives."""
    value = orjson.loads(STAMP.sub(b'"<t>"', raw))
    if isinstance(value, dict) and value.get("scheduled_at") is not None:
        value["scheduled_at"] = "given"
    return value


@pytest.fixture
def no_default_number() -> dict[str, Any]:
    """The demo tenant without a default outbound number (an outbound call without one is
    202), and with one call made before each run: the parent of a scheduled item."""
    document = demo_document()
    document["tenants"][0]["settings"]["default_outbound_number"] = None
    return document


async def _fresh(client: TestClient[Any, Any], redis: Redis, document: dict[str, Any]) -> None:
    await redis.flushdb()
    await load_directory(redis, document)
    parent = {**INBOUND, "end_user_number": "+1 205-555-0101"}
    assert (await client.post(CALLS, json=parent, headers=basic())).status == 201


async def _batch(
    client: TestClient[Any, Any], items: list[Any], status: int = 200
) -> dict[str, Any]:
    response = await client.post(BATCH, json={"calls": items}, headers=basic())
    assert response.status == status, await response.text()
    answer: dict[str, Any] = await response.json()
    return answer


async def test_each_item_is_answered_as_post_calls_answers_it(
    client: TestClient[Any, Any], redis: Redis, no_default_number: dict[str, Any]
) -> None:
    await _fresh(client, redis, no_default_number)
    response = await client.post(BATCH, json={"calls": MIXED}, headers=basic())
    assert response.status == 200
    batch = orjson.loads(await response.read())
    in_batch = [(r["status"], _same_moments(orjson.dumps(r["body"]))) for r in batch["results"]]
    stored_by_batch = await redis.zcard(DEMO.calls)

    await _fresh(client, redis, no_default_number)
    one_by_one = []
    for item in MIXED:
        single = await client.post(
            CALLS, data=orjson.dumps(item), headers={**basic(), "Content-Type": "application/json"}
        )
        one_by_one.append((single.status, _same_moments(await single.read())))

    assert in_batch == one_by_one
    assert [status for status, _ in in_batch] == [
        201, 400, 400, 400, 201, 400, 202, 400, 400, 400,
        400, 400, 201, 201, 400, 400, 201, 400, 400, 400,
    ]  # fmt: skip
    assert (batch["created"], batch["replayed"], batch["failed"]) == (6, 0, 14)
    assert [r["replayed"] for r in batch["results"]] == [False] * len(MIXED)
    assert stored_by_batch == await redis.zcard(DEMO.calls) == 7
    # Ids in item order, as the one-by-one run drew them (the refused claim used one).
    assert [r["body"].get("id", r["body"].get("call_id")) for r in batch["results"]][:7] == [
        2, None, None, None, 3, None, 5,
    ]  # fmt: skip
    messages = [r["body"].get("message") for r in batch["results"]]
    assert messages[1:4] == ["Invalid call type", *["Request body must be a JSON object"] * 2]
    assert messages[5] == "Agent is not available to take this call"
    assert messages[14:18] == [
        "scheduled_at must be in the future",
        "scheduled_at is not well formed",
        None,
        "Call 999 is not found",
    ]


async def test_client_tokens_make_a_reupload_create_nothing(
    client: TestClient[Any, Any], redis: Redis, demo: dict[str, Any]
) -> None:
    items = [
        {**SCHEDULED, "end_user_number": f"+1 205-555-01{i:02d}", "client_token": f"row-{i}"}
        for i in range(5)
    ]
    first = await _batch(client, items)
    assert (first["created"], first["replayed"], first["failed"]) == (5, 0, 0)
    again = await _batch(client, items)
    assert (again["created"], again["replayed"], again["failed"]) == (0, 5, 0)
    assert [r["body"] for r in again["results"]] == [r["body"] for r in first["results"]]
    assert [(r["status"], r["replayed"]) for r in again["results"]] == [(201, True)] * 5
    assert await redis.zcard(DEMO.calls) == 5
    # A client_token is the item's Idempotency-Key of POST /calls (the body without the token).
    body = {k: v for k, v in items[0].items() if k != "client_token"}
    single = await client.post(CALLS, json=body, headers={**basic(), "Idempotency-Key": "row-0"})
    assert single.headers["Idempotent-Replayed"] == "true"
    assert await single.json() == first["results"][0]["body"]


async def test_a_reused_token_with_another_call_is_409_for_that_item_alone(
    client: TestClient[Any, Any], redis: Redis, demo: dict[str, Any]
) -> None:
    await _batch(client, [{**SCHEDULED, "client_token": "t-1"}])
    changed = {**SCHEDULED, "end_user_number": "+1 205-555-0199", "client_token": "t-1"}
    twice = {**INBOUND, "client_token": "t-2"}
    answer = await _batch(client, [changed, twice, twice, {**INBOUND, "client_token": ""}])
    statuses = [(r["status"], r["replayed"]) for r in answer["results"]]
    assert statuses == [(409, False), (201, False), (201, True), (400, False)]
    assert answer["results"][0]["body"] == {
        "message": "client_token was already used with a different call"
    }
    assert answer["results"][2]["body"] == answer["results"][1]["body"]
    assert answer["results"][3]["body"] == {
        "message": "client_token must be 1 to 255 printable ASCII characters"
    }
    assert await redis.zcard(DEMO.calls) == 2


async def test_a_batch_of_1000_is_stored_whole(
    client: TestClient[Any, Any], redis: Redis, demo: dict[str, Any]
) -> None:
    items = [{**SCHEDULED, "end_user_number": f"+1 205-555-{i:04d}"} for i in range(1000)]
    answer = await _batch(client, items)
    assert (answer["created"], answer["failed"]) == (1000, 0)
    assert [r["body"]["id"] for r in answer["results"]] == list(range(1, 1001))
    assert await redis.zcard(DEMO.calls_by_status("scheduled")) == 1000
    stored = orjson.loads(await redis.hget(DEMO.call(1000), "doc"))
    assert stored == answer["results"][-1]["body"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{", "Request body is not valid JSON"),
        (b"[]", "Request body must be a JSON object"),
        (b"{}", "calls is required"),
        (b'{"calls": {}}', "calls must be a list of 1 to 1000 call requests"),
        (b'{"calls": []}', "calls must be a list of 1 to 1000 call requests"),
        (orjson.dumps({"calls": [{}] * 1001}), "calls must be a list of 1 to 1000 call requests"),
    ],
)
async def test_whole_body_errors_are_one_400(
    client: TestClient[Any, Any], redis: Redis, demo: dict[str, Any], body: bytes, message: str
) -> None:
    headers = {**basic(), "Content-Type": "application/json"}
    response = await client.post(BATCH, data=body, headers=headers)
    assert (response.status, await response.json()) == (400, {"message": message})
    assert await redis.zcard(DEMO.calls) == 0


async def test_an_idempotency_key_on_a_batch_is_refused(
    client: TestClient[Any, Any], demo: dict[str, Any]
) -> None:
    headers = {**basic(), "Idempotency-Key": "b-1"}
    response = await client.post(BATCH, json={"calls": [INBOUND]}, headers=headers)
    assert (response.status, await response.json()) == (
        400,
        {"message": "Idempotency-Key is not taken on batches: give each call a client_token"},
    )


async def test_an_oversize_batch_is_413(redis_url: str, demo: dict[str, Any]) -> None:
    settings = Settings(redis_url=redis_url, max_body_bytes=4096)
    async with TestClient(TestServer(create_app(settings))) as small:
        response = await small.post(BATCH, json={"calls": [INBOUND] * 100}, headers=basic())
        assert (response.status, await response.json()) == (
            413,
            {"message": "Request body is too large (limit 4096 bytes)"},
        )


async def test_a_batch_takes_a_token_per_ten_items(
    client: TestClient[Any, Any], redis: Redis
) -> None:
    document = demo_document()
    document["tenants"][0]["settings"].update(rate_limit_per_s=1, rate_limit_burst=10)
    await load_directory(redis, document)
    # 45 items: 5 tokens of the 10.
    items = [{**SCHEDULED, "end_user_number": f"+1 205-555-{i:04d}"} for i in range(45)]
    await _batch(client, items)
    # 100 items: 10 tokens; the request takes 1 (4 left), its items 9 more: 5 s to wait.
    refused = await client.post(BATCH, json={"calls": [INBOUND] * 100}, headers=basic())
    assert (refused.status, await refused.json()) == (
        429,
        {"message": "Too many requests: the limit is 1 per second"},
    )
    assert refused.headers["Retry-After"] == "5"
    assert await redis.zcard(DEMO.calls) == 45


async def test_batch_answers_conform_to_the_document(
    client: TestClient[Any, Any], redis: Redis, no_default_number: dict[str, Any]
) -> None:
    await _fresh(client, redis, no_default_number)
    answered = await client.post(BATCH, json={"calls": MIXED}, headers=basic())
    body = await conforming(answered, BATCH)
    assert len(body["results"]) == len(MIXED)
    refused = await client.post(BATCH, json={"calls": []}, headers=basic())
    await conforming(refused, BATCH)


async def test_batch_is_no_call_id(client: TestClient[Any, Any], demo: dict[str, Any]) -> None:
    response = await client.get(BATCH, headers=basic())
    assert (response.status, response.headers["Allow"]) == (405, "POST")
    assert await response.json() == {"message": "Method not allowed"}
    assert (await client.get(f"{CALLS}/batchx", headers=basic())).status == 404
