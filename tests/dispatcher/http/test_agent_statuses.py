"""Agent statuses in bulk (POST /agent_statuses and /agent_statuses/force_logout): agents named
directly or by team, the refusal for an agent holding a call, waking waiting calls, forced
logouts that wait for the call's end, bad bodies, unknown ids, tenants and tokens."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from arq import Worker
from redis.asyncio import Redis

from dispatcher.domain.agent_statuses import IN_CALL, LOGOUT_PENDING, MAX_IDS
from tests.conftest import basic, demo_document, load_directory
from tests.workers.conftest import (
    API,
    CALLS,
    SOLO_MENU,
    get_json,
    held_calls,
    inbound_call,
    load_tenant,
    offers_of,
    outbound_call,
    post_json,
    wait_for_job,
    wait_for_offer,
    wait_for_status,
)
from tests.workers.conftest import worker as worker  # the ARQ worker fixture

STATUSES = f"{API}/agent_statuses"
LOGOUT = f"{STATUSES}/force_logout"
AGENTS = {
    1: ("Admin UJET", "admin@somedomain.com", None),
    2: ("Agent Smith", "agent@somedomain.com", None),
    3: ("Allen Baker", "allen@somedomain.com", None),
    4: ("John Doe", "john.doe@foo.com", "9"),
}


def entry(agent_id: int, previous: str, current: str, **message: str) -> dict[str, Any]:
    name, email, number = AGENTS[agent_id]
    return {
        "agent_id": agent_id,
        "name": name,
        "email": email,
        "agent_number": number,
        "previous_status": previous,
        "current_status": current,
        **message,
    }


async def statuses(client: TestClient[Any, Any]) -> dict[int, tuple[str, int]]:
    """Each demo agent's (status, active_calls)."""
    agents = await get_json(client, f"{API}/agents")
    return {a["id"]: (a["status"], a["active_calls"]) for a in agents if a["id"] in AGENTS}


async def test_agents_named_directly_and_by_team_change_once_each_by_id(
    client: TestClient[Any, Any], demo: Any
) -> None:
    body = {"status": "Unavailable", "agent_ids": [4, 1], "team_ids": [1]}
    assert await post_json(client, STATUSES, body) == [
        entry(1, "available", "unavailable"),
        entry(2, "available", "unavailable"),
        entry(4, "available", "unavailable"),
    ]
    assert await statuses(client) == {
        1: ("unavailable", 0),
        2: ("unavailable", 0),
        3: ("available", 0),
        4: ("unavailable", 0),
    }
    # The platform's display names and this product's values, in any case.
    again = {"status": "AVAILABLE", "team_ids": [1]}
    assert await post_json(client, STATUSES, again) == [
        entry(1, "unavailable", "available"),
        entry(2, "unavailable", "available"),
    ]


async def test_an_agent_holding_a_call_keeps_its_status_and_says_why(
    client: TestClient[Any, Any], demo: Any, redis: Redis
) -> None:
    call = await outbound_call(client)  # agent 1 holds it (no worker: it stays assigned)
    assert (call["status"], await held_calls(redis, 1)) == ("assigned", 1)
    body = {"status": "Offline", "agent_ids": [1, 2]}
    assert await post_json(client, STATUSES, body) == [
        entry(1, "available", "available", message=IN_CALL),
        entry(2, "available", "offline"),
    ]
    assert IN_CALL == "Agent can't be changed from system status 'In-call'"
    assert (await statuses(client))[1] == ("available", 1)


async def test_agents_made_available_wake_the_call_waiting_for_them(
    client: TestClient[Any, Any], redis: Redis, worker: Worker
) -> None:
    await load_tenant(redis, menus={SOLO_MENU: {"offer_timeout_s": 5, "max_wait_s": 10}})
    away = {"status": "Unavailable", "agent_ids": [1]}
    assert await post_json(client, STATUSES, away) == [entry(1, "available", "unavailable")]
    call_id = (await inbound_call(client, SOLO_MENU))["id"]
    await wait_for_job(redis, f"route_call:demo:{call_id}")
    assert await offers_of(client, 1) == []

    back = {"status": "Available", "team_ids": [1]}
    assert await post_json(client, STATUSES, back) == [
        entry(1, "unavailable", "available"),
        entry(2, "available", "available"),
    ]
    offer = await wait_for_offer(client, 1, call_id)
    assert (offer["call_id"], offer["group"]) == (call_id, "Group 1")


async def test_force_logout_takes_idle_agents_offline(
    client: TestClient[Any, Any], demo: Any
) -> None:
    assert await post_json(client, LOGOUT, {"team_ids": [2]}) == [
        entry(3, "available", "offline"),
        entry(4, "available", "offline"),
    ]
    assert await statuses(client) == {
        1: ("available", 0),
        2: ("available", 0),
        3: ("offline", 0),
        4: ("offline", 0),
    }


async def test_force_logout_of_an_agent_in_a_call_waits_for_the_call_to_end(
    client: TestClient[Any, Any], demo: Any
) -> None:
    call = await outbound_call(client)
    assert await post_json(client, LOGOUT, {"agent_ids": [1, 2]}) == [
        entry(1, "available", "unavailable", message=LOGOUT_PENDING),
        entry(2, "available", "offline"),
    ]
    assert (await statuses(client))[1] == ("unavailable", 1)  # nothing more is offered
    ended = await post_json(client, f"{CALLS}/{call['id']}/finish")
    assert ended["status"] == "failed"  # it never connected
    assert (await statuses(client))[1] == ("offline", 0)


async def test_force_logout_during_a_connected_call_takes_effect_when_the_carrier_ends_it(
    client: TestClient[Any, Any], redis: Redis, worker: Worker
) -> None:
    await load_tenant(redis, settings={"simulator": {"answer_after_s": 0.05, "talk_time_s": 0.5}})
    call = await outbound_call(client)
    await wait_for_status(client, call["id"], "connected")
    assert await post_json(client, LOGOUT, {"agent_ids": [1]}) == [
        entry(1, "available", "unavailable", message=LOGOUT_PENDING)
    ]
    await wait_for_status(client, call["id"], "finished")  # the end user hung up
    assert (await statuses(client))[1] == ("offline", 0)


async def test_a_status_set_meanwhile_cancels_the_pending_logout(
    client: TestClient[Any, Any], demo: Any
) -> None:
    call = await outbound_call(client)
    await post_json(client, LOGOUT, {"agent_ids": [1]})
    back = await client.put(f"{API}/agents/1/status", json={"status": "available"}, headers=basic())
    assert back.status == 200
    await post_json(client, f"{CALLS}/{call['id']}/finish")
    assert (await statuses(client))[1] == ("available", 0)


BAD_STATUS = "status must be one of Available, Unavailable, Offline"
NO_AGENTS = "agent_ids or team_ids must name at least one agent"
IDS = "agent_ids must be an array of integer ids"


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        (STATUSES, ["Available"], "Request body must be a JSON object"),
        (STATUSES, {"agent_ids": [1]}, "status is required"),
        (STATUSES, {"status": 7, "agent_ids": [1]}, BAD_STATUS),
        (STATUSES, {"status": "In-call", "agent_ids": [1]}, BAD_STATUS),
        (STATUSES, {"status": "busy", "agent_ids": [1]}, BAD_STATUS),
        (STATUSES, {"status": "Available", "agent_ids": "1"}, IDS),
        (STATUSES, {"status": "Available", "agent_ids": [1.5]}, IDS),
        (STATUSES, {"status": "Available", "agent_ids": [True]}, IDS),
        (STATUSES, {"status": "Available", "agent_ids": ["1"]}, IDS),
        (
            STATUSES,
            {"status": "Available", "team_ids": list(range(1, MAX_IDS + 2))},
            f"team_ids must hold at most {MAX_IDS} ids a request",
        ),
        (STATUSES, {"status": "Available"}, NO_AGENTS),
        (STATUSES, {"status": "Available", "agent_ids": [], "team_ids": []}, NO_AGENTS),
        (STATUSES, {"status": "Available", "agent_ids": None}, IDS),
        (LOGOUT, {}, NO_AGENTS),
        (LOGOUT, {"team_ids": {"id": 1}}, "team_ids must be an array of integer ids"),
    ],
)
async def test_a_bad_body_is_400_and_changes_nothing(
    client: TestClient[Any, Any], demo: Any, path: str, body: Any, message: str
) -> None:
    response = await client.post(path, json=body, headers=basic())
    assert (response.status, await response.json()) == (400, {"message": message})
    assert {status for status, _ in (await statuses(client)).values()} == {"available"}


@pytest.mark.parametrize("path", [STATUSES, LOGOUT])
@pytest.mark.parametrize(
    ("named", "message"),
    [
        ({"agent_ids": [1, 99]}, "Agent 99 not found"),
        ({"agent_ids": [1], "team_ids": [1, 7]}, "Team 7 not found"),
    ],
)
async def test_an_unknown_agent_or_team_is_404_and_changes_nothing(
    client: TestClient[Any, Any], demo: Any, path: str, named: dict[str, Any], message: str
) -> None:
    response = await client.post(path, json={"status": "Offline", **named}, headers=basic())
    assert (response.status, await response.json()) == (404, {"message": message})
    assert {status for status, _ in (await statuses(client)).values()} == {"available"}


async def test_a_tenant_changes_its_own_agents_only(
    client: TestClient[Any, Any], redis: Redis
) -> None:
    document = demo_document()
    acme = copy.deepcopy(document["tenants"][0])
    acme.update(subdomain="acme", api_tokens=["acme-token"])
    document["tenants"].append(acme)
    await load_directory(redis, document)
    response = await client.post(
        LOGOUT, json={"agent_ids": [1]}, headers=basic("acme", "acme-token")
    )
    assert (response.status, await response.json()) == (200, [entry(1, "available", "offline")])
    assert (await statuses(client))[1] == ("available", 0)  # demo's agent 1


@pytest.mark.parametrize("path", [STATUSES, LOGOUT])
async def test_an_agents_own_token_is_refused(
    client: TestClient[Any, Any], demo: Any, path: str
) -> None:
    body = {"status": "Offline", "agent_ids": [1]}
    response = await client.post(path, json=body, headers=basic("demo/1", "demo-agent-1"))
    assert (response.status, await response.json()) == (
        403,
        {"message": "This route needs the tenant's API token, not an agent's"},
    )
