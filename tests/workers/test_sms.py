"""SMS sessions: the worker sends the first message; opt-outs, timeouts and finishing end it."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient
from arq import Worker
from redis.asyncio import Redis

from dispatcher.domain import clock
from tests.conftest import basic
from tests.polling import eventually
from tests.workers.conftest import API, TENANT, get_json, load_tenant, post_json

SMS = f"{API}/sms"
CHATS = f"{API}/chats"
CONSUMER = "+14155550100"
SESSION = {
    "chat_type": "Messaging (SMS)",
    "end_user_number": "+1 415-555-0100",
    "outbound_number": "+1 628-555-0199",
    "message": "Your technician is on the way.",
}
OPTED_OUT = {"message": "Outbound SMS failed. Consumer has opted out of SMS."}
ACTIVE = {"message": "Outbound SMS failed. Consumer is already in an active SMS session."}


async def messages(redis: Redis, chat_id: int) -> list[dict[str, Any]]:
    raw = await redis.lrange(TENANT.chat_messages(chat_id), 0, -1)
    return [orjson.loads(entry) for entry in raw]


async def sent(redis: Redis, chat_id: int) -> list[dict[str, Any]]:
    async def probe() -> list[dict[str, Any]] | None:
        found = await messages(redis, chat_id)
        return found or None

    return await eventually(probe, f"the first message of chat {chat_id}")


async def chat_status(client: TestClient[Any, Any], chat_id: int) -> str:
    return str((await get_json(client, f"{CHATS}/{chat_id}"))["status"])


async def wait_for_chat(
    client: TestClient[Any, Any], chat_id: int, status: str, timeout: float = 5
) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        chat: dict[str, Any] = await get_json(client, f"{CHATS}/{chat_id}")
        return chat if chat["status"] == status else None

    return await eventually(probe, f"chat {chat_id} {status}", timeout)


@pytest.mark.parametrize("word", [" stop ", "STOPALL", "Unsubscribe", "CANCEL", "end", "QUIT"])
async def test_the_worker_sends_the_first_message_and_an_opt_out_word_ends_the_session(
    client: TestClient[Any, Any], redis: Redis, worker: Worker, word: str
) -> None:
    await load_tenant(redis)
    chat = await post_json(client, SMS, SESSION)
    chat_id = chat["id"]
    assert chat["status"] == "selecting"

    [first] = await sent(redis, chat_id)
    assert (first["direction"], first["text"]) == ("outbound", SESSION["message"])
    assert clock.parse_iso(first["at"]) is not None
    assert await chat_status(client, chat_id) == "selecting"

    inbound = {"from": "+1 415-555-0100", "to": "+1 628-555-0199", "text": word}
    answer = await post_json(client, "/carrier/simulated/sms", inbound)
    assert answer == {"chat_id": chat_id, "opted_out": True}
    ended = await get_json(client, f"{CHATS}/{chat_id}")
    assert ended["status"] == "finished"
    assert ended["ends_at"] is not None
    assert [(m["direction"], m["text"]) for m in await messages(redis, chat_id)] == [
        ("outbound", SESSION["message"]),
        ("inbound", word),
    ]
    assert await redis.zscore(TENANT.do_not_contact, CONSUMER) is not None

    refused = await client.post(SMS, json=SESSION, headers=basic())
    assert (refused.status, await refused.json()) == (400, OPTED_OUT)


async def test_an_inbound_message_outside_a_session_is_recorded_nowhere(
    client: TestClient[Any, Any], redis: Redis, worker: Worker
) -> None:
    await load_tenant(redis)
    inbound = {"from": "+1 415-555-0100", "to": "+1 628-555-0199", "text": "hello?"}
    assert await post_json(client, "/carrier/simulated/sms", inbound) == {
        "chat_id": None,
        "opted_out": False,
    }
    chat = await post_json(client, SMS, SESSION)  # not opted out: a session may start
    assert chat["status"] == "selecting"


async def test_a_session_with_no_message_for_its_timeout_ends(
    client: TestClient[Any, Any], redis: Redis, worker: Worker
) -> None:
    await load_tenant(redis, settings={"sms_session_timeout_s": 1})
    chat_id = (await post_json(client, SMS, SESSION))["id"]
    await sent(redis, chat_id)
    busy = await client.post(SMS, json=SESSION, headers=basic())
    assert (busy.status, await busy.json()) == (400, ACTIVE)

    ended = await wait_for_chat(client, chat_id, "finished")
    created_at = clock.parse_iso(ended["created_at"])
    ends_at = clock.parse_iso(ended["ends_at"])
    assert created_at is not None and ends_at is not None
    assert 1.0 <= (ends_at - created_at).total_seconds() < 1.0 + 0.5
    assert await redis.get(TENANT.sms_session(CONSUMER)) is None

    again = await post_json(client, SMS, SESSION)
    assert again["id"] > chat_id
    assert again["status"] == "selecting"


async def test_a_message_from_the_consumer_keeps_the_session_alive(
    client: TestClient[Any, Any], redis: Redis, worker: Worker
) -> None:
    await load_tenant(redis, settings={"sms_session_timeout_s": 1})
    chat_id = (await post_json(client, SMS, SESSION))["id"]
    await sent(redis, chat_id)
    await asyncio.sleep(0.5)  # spacing only: the assertions below are on stored times
    inbound = {"from": "+1 415-555-0100", "to": "+1 628-555-0199", "text": "Thanks!"}
    assert await post_json(client, "/carrier/simulated/sms", inbound) == {
        "chat_id": chat_id,
        "opted_out": False,
    }

    ended = await wait_for_chat(client, chat_id, "finished")
    reply = (await messages(redis, chat_id))[-1]
    assert (reply["direction"], reply["text"]) == ("inbound", "Thanks!")
    replied_at = clock.parse_iso(reply["at"])
    ends_at = clock.parse_iso(ended["ends_at"])
    assert replied_at is not None and ends_at is not None
    # A full timeout after the consumer's message, not after the session started.
    assert 1.0 <= (ends_at - replied_at).total_seconds() < 1.0 + 0.5


async def test_finishing_a_chat_frees_the_consumer_at_once(
    client: TestClient[Any, Any], redis: Redis, worker: Worker
) -> None:
    await load_tenant(redis)
    chat_id = (await post_json(client, SMS, SESSION))["id"]
    await sent(redis, chat_id)

    ended = await post_json(client, f"{CHATS}/{chat_id}/finish")
    assert (ended["id"], ended["status"]) == (chat_id, "finished")
    assert ended["ends_at"] is not None
    assert await chat_status(client, chat_id) == "finished"

    fresh = await post_json(client, SMS, SESSION)
    assert fresh["id"] > chat_id
    assert fresh["status"] == "selecting"
    await sent(redis, fresh["id"])

    again = await client.post(f"{CHATS}/{chat_id}/finish", headers=basic())
    assert (again.status, await again.json()) == (409, {"message": "Chat has already ended"})
    unknown = await client.post(f"{CHATS}/9999/finish", headers=basic())
    assert (unknown.status, await unknown.json()) == (404, {"message": "Chat not found"})
    # Finishing the old chat again did not touch the consumer's new session.
    assert await chat_status(client, fresh["id"]) == "selecting"
