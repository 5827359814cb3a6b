"""Tenants cannot read or change each other's calls, chats, agents or offers: every attempt by
one tenant on another's objects answers as if they did not exist, and changes nothing."""

from __future__ import annotations

import copy
from typing import Any

from aiohttp.test_utils import TestClient
from arq import Worker
from redis.asyncio import Redis

from tests.conftest import basic, load_directory
from tests.polling import eventually
from tests.workers.conftest import API, CALLS, tenant_document

RIVAL_AGENT = 500
RIVAL_MENU = 70
RIVAL = basic("rival", "rival-token")
DEMO = basic()
CALL_NOT_FOUND = {"message": "Call not found"}
CHAT_NOT_FOUND = {"message": "Chat not found"}
AGENT_NOT_FOUND = {"message": "Agent not found"}
OFFER_GONE = {"message": "Offer is no longer available"}
SMS = {
    "chat_type": "Messaging (SMS)",
    "end_user_number": "+1 415-555-0100",
    "outbound_number": "+1 628-555-0199",
    "message": "hello",
}


def two_tenants() -> dict[str, Any]:
    """demo, and rival: the same directory plus agent 500, alone in menu 70 (slow offers)."""
    document = tenant_document()
    rival = copy.deepcopy(document["tenants"][0])
    rival.update(subdomain="rival", api_tokens=["rival-token"])
    rival["agents"].append({"id": RIVAL_AGENT, "email": "rival@somedomain.com"})
    rival["menus"].append(
        {"id": RIVAL_MENU, "name": "Rival", "type": "ivr_menu", "routing": "multicast",
         "groups": [[RIVAL_AGENT]], "offer_timeout_s": 30, "max_wait_s": 60}
    )  # fmt: skip
    document["tenants"].append(rival)
    return document


async def answer(
    client: TestClient[Any, Any],
    method: str,
    path: str,
    headers: dict[str, str],
    body: Any = None,
) -> tuple[int, Any]:
    response = await client.request(method, path, json=body, headers=headers)
    return response.status, await response.json()


async def test_one_tenant_can_neither_read_nor_change_anothers_objects(
    client: TestClient[Any, Any], redis: Redis, worker: Worker
) -> None:
    await load_directory(redis, two_tenants())
    inbound = {
        "call_type": "Voice Inbound (API)",
        "menu_id": RIVAL_MENU,
        "end_user_number": "+1 205-123-4567",
    }
    status, call = await answer(client, "POST", CALLS, RIVAL, inbound)
    assert (status, call["id"]) == (201, 1)
    status, chat = await answer(client, "POST", f"{API}/sms", RIVAL, SMS)
    assert (status, chat["id"]) == (200, 1)

    async def offered() -> list[Any] | None:
        _, offers = await answer(client, "GET", f"{API}/agents/{RIVAL_AGENT}/offers", RIVAL)
        return offers or None

    offer = (await eventually(offered, "the rival's offer"))[0]

    attempts = [
        ("GET", f"{CALLS}/1", None, 404, CALL_NOT_FOUND),
        ("GET", f"{CALLS}/1/customer_flag", None, 404, CALL_NOT_FOUND),
        ("PATCH", f"{CALLS}/1/customer_flag", {"bad_actor": True}, 404, CALL_NOT_FOUND),
        ("POST", f"{CALLS}/1/finish", {}, 404, CALL_NOT_FOUND),
        ("GET", CALLS, None, 200, []),
        ("GET", f"{API}/chats/1", None, 404, CHAT_NOT_FOUND),
        ("POST", f"{API}/chats/1/finish", {}, 404, CHAT_NOT_FOUND),
        ("GET", f"{API}/chats", None, 200, []),
        ("GET", f"{API}/agents/{RIVAL_AGENT}", None, 404, AGENT_NOT_FOUND),
        ("PUT", f"{API}/agents/{RIVAL_AGENT}/status", {"status": "offline"}, 404, AGENT_NOT_FOUND),
        ("GET", f"{API}/agents/{RIVAL_AGENT}/offers", None, 404, AGENT_NOT_FOUND),
        ("GET", f"{API}/agents/{RIVAL_AGENT}/events", None, 404, AGENT_NOT_FOUND),
        ("POST", f"{API}/offers/{offer['id']}/accept", {}, 409, OFFER_GONE),
        ("POST", f"{API}/offers/{offer['id']}/decline", {}, 409, OFFER_GONE),
    ]
    for method, path, body, status, expected in attempts:
        seen = await answer(client, method, path, DEMO, body)
        assert seen == (status, expected), (method, path)

    # Credentials open their own tenant only.
    for subdomain, token in (("demo", "rival-token"), ("rival", "demo-token")):
        seen = await answer(client, "GET", CALLS, basic(subdomain, token))
        assert seen == (401, {"message": "Unauthorized"})

    # The same ids in each tenant are different agents.
    assert (await answer(client, "PUT", f"{API}/agents/1/status", DEMO, {"status": "offline"}))[
        0
    ] == 200
    _, rival_admin = await answer(client, "GET", f"{API}/agents/1", RIVAL)
    assert rival_admin["status"] == "available"

    # Nothing of the rival's changed: its offer is still open and its agent takes the call.
    status, accepted = await answer(client, "POST", f"{API}/offers/{offer['id']}/accept", RIVAL)
    assert (status, accepted["status"], accepted["agent_info"]["id"]) == (200, "assigned", 500)
    _, rival_chat = await answer(client, "GET", f"{API}/chats/1", RIVAL)
    assert rival_chat["status"] == chat["status"]
    _, flags = await answer(client, "GET", f"{CALLS}/1/customer_flag", RIVAL)
    assert flags["bad_actor"] is False
