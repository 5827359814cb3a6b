"""Agents' own credentials (Basic user `<subdomain>/<agent id>`): hashed in Redis like the
tenant's, good on that agent's routes only; the tenant's token keeps working everywhere."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from dispatcher.store.keys import TenantKeys
from tests.conftest import ADMIN_TOKEN, basic, demo_document, load_directory
from tests.dispatcher.http.test_openapi import conforming
from tests.workers.conftest import (
    API,
    CALLS,
    SOLO_MENU,
    inbound_call,
    load_tenant,
    wait_for_offer,
    wait_for_status,
)
from tests.workers.conftest import worker as worker  # the ARQ worker fixture

OTHER_AGENT = {"message": "An agent's token acts for that agent only"}
TENANT_ONLY = {"message": "This route needs the tenant's API token, not an agent's"}
NOT_YOUR_CALL = {"message": "An agent's token reaches the calls assigned to that agent only"}
UNAUTHORIZED = {"message": "Unauthorized"}
INBOUND = {"call_type": "Voice Inbound (API)", "menu_id": 9, "end_user_number": "+1 205-123-4567"}


def agent(agent_id: int, token: str | None = None) -> dict[str, str]:
    return basic(f"demo/{agent_id}", token or f"demo-agent-{agent_id}")


async def _answer(response: Any) -> tuple[int, Any]:
    return response.status, await response.json()


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", f"{API}/agents/2", None),
        ("GET", f"{API}/agents/2/offers", None),
        ("PUT", f"{API}/agents/2/status", {"status": "unavailable"}),
    ],
)
async def test_an_agent_token_works_on_its_own_routes_only(
    client: TestClient[Any, Any], demo: Any, method: str, path: str, body: Any
) -> None:
    own = await client.request(method, path, json=body, headers=agent(2))
    assert own.status == 200, await own.text()
    other = await client.request(method, path, json=body, headers=agent(1))
    assert await _answer(other) == (403, OTHER_AGENT)
    tenant = await client.request(method, path, json=body, headers=basic())
    assert tenant.status == 200


async def test_an_agent_opens_its_own_event_stream_only(
    client: TestClient[Any, Any], demo: Any
) -> None:
    other = await client.get(f"{API}/agents/2/events", headers=agent(1))
    assert await _answer(other) == (403, OTHER_AGENT)
    own = await client.get(f"{API}/agents/2/events", headers=agent(2))
    assert own.status == 200
    assert own.headers["Content-Type"] == "text/event-stream"
    own.close()


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", f"{API}/agents", None),
        ("POST", CALLS, INBOUND),
        ("GET", CALLS, None),
        ("POST", f"{CALLS}/batch", {"calls": [INBOUND]}),
        ("PATCH", f"{CALLS}/1/customer_flag", {"repeat_customer": True}),
        ("GET", f"{API}/chats", None),
        ("GET", f"{API}/campaigns", None),
    ],
)
async def test_an_agent_token_is_refused_on_the_tenants_routes(
    client: TestClient[Any, Any], demo: Any, redis: Redis, method: str, path: str, body: Any
) -> None:
    response = await client.request(method, path, json=body, headers=agent(2))
    assert await _answer(response) == (403, TENANT_ONLY)
    assert await redis.zcard(TenantKeys("demo").calls) == 0


@pytest.mark.parametrize(
    "headers",
    [
        agent(2, "demo-agent-1"),  # another agent's token
        agent(2, "demo-token"),  # the tenant's token is no agent's
        basic("demo", "demo-agent-2"),  # an agent's token is not the tenant's
        agent(99),
        basic("demo/", "demo-agent-2"),
        basic("demo/x", "demo-agent-2"),
        basic("demo/2/2", "demo-agent-2"),
    ],
)
async def test_wrong_agent_credentials_are_401(
    client: TestClient[Any, Any], demo: Any, headers: dict[str, str]
) -> None:
    response = await client.get(f"{API}/agents/2", headers=headers)
    assert await _answer(response) == (401, UNAUTHORIZED)


async def test_an_agent_without_a_token_in_the_directory_cannot_sign_in(
    client: TestClient[Any, Any], redis: Redis
) -> None:
    document = demo_document()
    del document["tenants"][0]["agents"][1]["api_tokens"]
    await load_directory(redis, document)
    response = await client.get(f"{API}/agents/2", headers=agent(2))
    assert await _answer(response) == (401, UNAUTHORIZED)
    assert (await client.get(f"{API}/agents/1", headers=agent(1))).status == 200


async def test_agent_tokens_are_stored_hashed_and_never_dumped(
    client: TestClient[Any, Any], demo: Any, redis: Redis
) -> None:
    stored = await redis.get(TenantKeys("demo").directory)
    assert stored is not None and b"demo-agent-" not in stored
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    dumped = await (await client.get("/manager/api/v1/config", headers=admin)).text()
    assert "demo-agent-" not in dumped and "api_tokens" not in dumped


async def test_the_operator_api_sets_an_agents_token(
    client: TestClient[Any, Any], demo: Any
) -> None:
    document = copy.deepcopy(demo_document())
    document["tenants"][0]["agents"][1]["api_tokens"] = ["rotated"]
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    loaded = await client.put("/manager/api/v1/config", json=document, headers=admin)
    assert loaded.status == 200, await loaded.text()
    assert (await client.get(f"{API}/agents/2", headers=agent(2, "rotated"))).status == 200
    old = await client.get(f"{API}/agents/2", headers=agent(2))
    assert await _answer(old) == (401, UNAUTHORIZED)


@pytest.mark.usefixtures("worker")
async def test_an_agent_accepts_and_finishes_its_own_offer_and_call_only(
    client: TestClient[Any, Any], redis: Redis
) -> None:
    await load_tenant(redis, menus={SOLO_MENU: {"offer_timeout_s": 60, "max_wait_s": 120}})
    call = await inbound_call(client, SOLO_MENU)
    offer = await wait_for_offer(client, 1, call["id"])  # agent 1's alone
    accept = f"{API}/offers/{offer['id']}/accept"
    for path in (accept, f"{API}/offers/{offer['id']}/decline"):
        assert await _answer(await client.post(path, headers=agent(2))) == (403, OTHER_AGENT)
    assert (await client.post(accept, headers=agent(1))).status == 200
    await wait_for_status(client, call["id"], "connected")
    held = f"{CALLS}/{call['id']}"
    assert await _answer(await client.get(held, headers=agent(2))) == (403, NOT_YOUR_CALL)
    assert (await client.get(held, headers=agent(1))).status == 200
    finish = f"{CALLS}/{call['id']}/finish"
    assert await _answer(await client.post(finish, headers=agent(2))) == (403, NOT_YOUR_CALL)
    finished = await client.post(finish, headers=agent(1))
    assert finished.status == 200
    assert (await finished.json())["status"] == "finished"


@pytest.mark.usefixtures("worker")
async def test_an_agent_declines_its_own_offer(client: TestClient[Any, Any], redis: Redis) -> None:
    await load_tenant(redis, menus={SOLO_MENU: {"offer_timeout_s": 60, "max_wait_s": 120}})
    call = await inbound_call(client, SOLO_MENU)
    offer = await wait_for_offer(client, 1, call["id"])
    declined = await client.post(f"{API}/offers/{offer['id']}/decline", headers=agent(1))
    assert await _answer(declined) == (
        200,
        {"id": offer["id"], "call_id": call["id"], "state": "declined"},
    )


@pytest.mark.usefixtures("worker")
async def test_an_agent_reads_the_number_of_a_call_it_is_offered_or_holds_only(
    client: TestClient[Any, Any], redis: Redis
) -> None:
    """The console's caller: the call object has no number, this route gives it, to the agent
    offered or holding that call (and to the tenant, on that agent's path)."""
    await load_tenant(redis, menus={SOLO_MENU: {"offer_timeout_s": 60, "max_wait_s": 120}})
    call = await inbound_call(client, SOLO_MENU, number="+1 205-555-0142")
    offer = await wait_for_offer(client, 1, call["id"])  # agent 1's alone
    number = {"call_id": call["id"], "end_user_number": "+12055550142"}
    own = f"{API}/agents/1/calls/{call['id']}/end_user"
    read = await client.get(own, headers=agent(1))
    assert await conforming(read, "/apps/api/v1/agents/{id}/calls/{call_id}/end_user") == number
    assert await _answer(await client.get(own, headers=basic())) == (200, number)
    assert await _answer(await client.get(own, headers=agent(2))) == (403, OTHER_AGENT)
    not_found = (404, {"message": "Call not found"})
    other = f"{API}/agents/2/calls/{call['id']}/end_user"
    assert await _answer(await client.get(other, headers=agent(2))) == not_found
    for missing in ("999", "x", "-1"):
        path = f"{API}/agents/1/calls/{missing}/end_user"
        assert await _answer(await client.get(path, headers=agent(1))) == not_found
    assert (await client.post(f"{API}/offers/{offer['id']}/accept", headers=agent(1))).status == 200
    finished = await client.post(f"{CALLS}/{call['id']}/finish", headers=agent(1))
    assert finished.status == 200
    assert await _answer(await client.get(own, headers=agent(1))) == (200, number)  # held


async def test_an_agent_reads_its_tenants_time_zone(
    client: TestClient[Any, Any], demo: Any
) -> None:
    zone = {"subdomain": "demo", "timezone": "America/Los_Angeles"}
    for headers in (agent(2), basic()):
        answer = await client.get(f"{API}/agents/2/tenant", headers=headers)
        assert await _answer(answer) == (200, zone)
        await conforming(answer, "/apps/api/v1/agents/{id}/tenant")
    answer = await client.get(f"{API}/agents/2/tenant", headers=agent(1))
    assert await _answer(answer) == (403, OTHER_AGENT)
    answer = await client.get(f"{API}/agents/99/tenant", headers=basic())
    assert await _answer(answer) == (404, {"message": "Agent not found"})
