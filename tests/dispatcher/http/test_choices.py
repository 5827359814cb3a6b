"""The agent's choice of a 202 outbound call's number (POST /agents/{id}/calls/{call_id}/choice,
GET /agents/{id}/choices): every answer and its exact body, and what the choice stores and
queues. The call's dialling, its timeout and the race of the two: tests/workers/test_choices.py."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
import time_machine
from aiohttp.test_utils import TestClient
from arq.constants import job_key_prefix
from redis.asyncio import Redis

from dispatcher.domain import clock
from dispatcher.domain.compliance import CONTACT_LIMIT_SPAN_MS, ON_DNC_LIST
from dispatcher.store.keys import TenantKeys
from tests.conftest import basic, demo_document, load_directory
from tests.dispatcher.http.test_openapi import conforming

API = "/apps/api/v1"
CALLS = f"{API}/calls"
TENANT = TenantKeys("demo")
OUTBOUND = {
    "call_type": "Voice Outbound (API)",
    "agent_email": "admin@somedomain.com",
    "end_user_number": "+1 859-657-9625",
}
BY_TICKET = {
    "call_type": "Voice Outbound (API)",
    "agent_email": "agent@somedomain.com",
    "ticket_id": "71450",
}
NUMBERS = ["+16285550199", "+13392195276"]  # the demo's voice numbers, in the 202's order
CHICAGO_NUMBER = "+12052345678"  # Birmingham, Alabama: America/Chicago
CONTACT_NUMBERS = [CHICAGO_NUMBER, "+18596579626"]
NOT_WAITING = {"message": "Call is not waiting for a choice"}
CALL_NOT_FOUND = {"message": "Call not found"}


def agent_auth(agent_id: int) -> dict[str, str]:
    return basic(f"demo/{agent_id}", f"demo-agent-{agent_id}")


def choice_path(agent_id: int, call_id: int | str) -> str:
    return f"{API}/agents/{agent_id}/calls/{call_id}/choice"


async def _load(redis: Redis, change: Callable[[dict[str, Any]], None]) -> None:
    document = demo_document()
    change(document["tenants"][0])
    await load_directory(redis, document)


def _no_default(tenant: dict[str, Any]) -> None:
    tenant["settings"]["default_outbound_number"] = None


def _two_contact_numbers(tenant: dict[str, Any]) -> None:
    tenant["contacts"][0]["phone_numbers"] = list(CONTACT_NUMBERS)


async def _pending(client: TestClient[Any, Any], body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(CALLS, json=body, headers=basic())
    assert response.status == 202, await response.text()
    pending: dict[str, Any] = await response.json()
    return pending


async def _choose(
    client: TestClient[Any, Any], agent_id: int, call_id: int | str, body: Any
) -> tuple[int, Any]:
    response = await client.post(
        choice_path(agent_id, call_id), json=body, headers=agent_auth(agent_id)
    )
    return response.status, await response.json()


async def _meta(redis: Redis, call_id: int) -> dict[str, Any]:
    raw = await redis.hget(TENANT.call(call_id), "meta")
    assert raw is not None
    meta: dict[str, Any] = orjson.loads(raw)
    return meta


async def _queued(redis: Redis, job_id: str) -> bool:
    return bool(await redis.exists(job_key_prefix + job_id))


async def test_the_outbound_number_chosen_is_recorded_and_the_dial_queued(
    client: TestClient[Any, Any], redis: Redis
) -> None:
    await _load(redis, _no_default)
    pending = await _pending(client, OUTBOUND)
    call_id = pending["call_id"]
    created_ms = clock.to_ms(clock.parse_iso((await _call(client, call_id))["created_at"]))  # type: ignore[arg-type]
    listed = await client.get(f"{API}/agents/1/choices", headers=agent_auth(1))
    assert (listed.status, await listed.json()) == (
        200,
        [
            {
                "call_id": call_id,
                "pending_action": "select_outbound_number",
                "choices": NUMBERS,
                "expires_at": clock.iso(clock.from_ms(created_ms + 300_000)),
            }
        ],
    )
    # The timeout's job was queued with the call, due at its expiry.
    assert await redis.zscore("arq:queue", f"expire_choice:demo:{call_id}") == created_ms + 300_000
    assert not await _queued(redis, f"dial_outbound:demo:{call_id}")

    status, call = await _choose(client, 1, call_id, {"outbound_number": "+1 339-219-5276"})
    assert status == 200
    assert (call["id"], call["status"], call["outbound_number"]) == (
        call_id,
        "assigned",
        "+13392195276",
    )
    assert await _call(client, call_id) == call
    meta = await _meta(redis, call_id)
    assert (meta["pending_action"], meta["end_user_number"]) == (None, "+18596579625")
    assert await _queued(redis, f"dial_outbound:demo:{call_id}")
    listed = await client.get(f"{API}/agents/1/choices", headers=agent_auth(1))
    assert await listed.json() == []
    # Chosen once: the same choice again is a conflict, and so is another.
    assert await _choose(client, 1, call_id, {"outbound_number": NUMBERS[1]}) == (409, NOT_WAITING)
    assert await _choose(client, 1, call_id, {"outbound_number": NUMBERS[0]}) == (409, NOT_WAITING)


async def _call(client: TestClient[Any, Any], call_id: int) -> dict[str, Any]:
    response = await client.get(f"{CALLS}/{call_id}", headers=basic())
    assert response.status == 200
    call: dict[str, Any] = await response.json()
    return call


async def test_the_tenants_token_may_choose_for_any_agent(
    client: TestClient[Any, Any], redis: Redis
) -> None:
    await _load(redis, _no_default)
    pending = await _pending(client, OUTBOUND)
    response = await client.post(
        choice_path(1, pending["call_id"]), json={"outbound_number": NUMBERS[0]}, headers=basic()
    )
    assert response.status == 200
    assert (await response.json())["outbound_number"] == NUMBERS[0]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({}, "outbound_number is required"),
        ({"outbound_number": None}, "outbound_number is required"),
        ({"outbound_number": "  "}, "outbound_number is required"),
        ({"outbound_number": "nope"}, "outbound_number is not well formed"),
        ({"outbound_number": 16285550199}, "outbound_number is not well formed"),
        (
            {"outbound_number": "+1 760-867-5309"},
            "outbound_number must be one of +16285550199, +13392195276",
        ),
        (
            {"end_user_number": "+1 859-657-9625"},
            "Only outbound_number can be chosen for this call",
        ),
        (
            {"outbound_number": NUMBERS[0], "end_user_number": "+1 859-657-9625"},
            "Only outbound_number can be chosen for this call",
        ),
        ([NUMBERS[0]], "Request body must be a JSON object"),
    ],
)
async def test_a_choice_that_is_not_one_offered_is_refused_and_the_call_still_waits(
    client: TestClient[Any, Any], redis: Redis, body: Any, message: str
) -> None:
    await _load(redis, _no_default)
    pending = await _pending(client, OUTBOUND)
    call_id = pending["call_id"]
    assert await _choose(client, 1, call_id, body) == (400, {"message": message})
    assert (await _meta(redis, call_id))["pending_action"] == "select_outbound_number"
    # Any format libphonenumber reads; other keys are ignored, as in every request.
    choice = {"outbound_number": "(628) 555-0199", "note": "x"}
    status, call = await _choose(client, 1, call_id, choice)
    assert (status, call["outbound_number"]) == (200, NUMBERS[0])


async def test_unknown_calls_and_other_agents_calls_are_not_found(
    client: TestClient[Any, Any], redis: Redis
) -> None:
    await _load(redis, _no_default)
    admins = (await _pending(client, OUTBOUND))["call_id"]
    choice = {"outbound_number": NUMBERS[0]}
    assert await _choose(client, 1, 99, choice) == (404, CALL_NOT_FOUND)
    assert await _choose(client, 1, "abc", choice) == (404, CALL_NOT_FOUND)
    # Agent 2 does not hold agent 1's call, with its own token or the tenant's.
    assert await _choose(client, 2, admins, choice) == (404, CALL_NOT_FOUND)
    response = await client.post(choice_path(2, admins), json=choice, headers=basic())
    assert (response.status, await response.json()) == (404, CALL_NOT_FOUND)
    response = await client.post(choice_path(99, admins), json=choice, headers=basic())
    assert (response.status, await response.json()) == (404, {"message": "Agent not found"})
    # Agent 2's token acts for agent 2 alone.
    response = await client.post(choice_path(1, admins), json=choice, headers=agent_auth(2))
    assert (response.status, await response.json()) == (
        403,
        {"message": "An agent's token acts for that agent only"},
    )
    listed = await client.get(f"{API}/agents/1/choices", headers=agent_auth(2))
    assert listed.status == 403
    assert (await _meta(redis, admins))["pending_action"] == "select_outbound_number"


async def test_a_call_that_waits_for_no_choice_is_a_conflict(
    client: TestClient[Any, Any], redis: Redis
) -> None:
    await _load(redis, _no_default)
    dialled = await client.post(
        CALLS, json={**OUTBOUND, "outbound_number": NUMBERS[1]}, headers=basic()
    )
    assert dialled.status == 201
    dialled_id = (await dialled.json())["id"]
    choice = {"outbound_number": NUMBERS[0]}
    assert await _choose(client, 1, dialled_id, choice) == (409, NOT_WAITING)
    ended = await client.post(f"{CALLS}/{dialled_id}/finish", headers=basic())
    assert ended.status == 200
    waiting = (await _pending(client, OUTBOUND))["call_id"]
    finished = await client.post(f"{CALLS}/{waiting}/finish", headers=agent_auth(1))
    assert (await finished.json())["fail_reason"] == "ag_canceled"
    assert await _choose(client, 1, waiting, choice) == (409, NOT_WAITING)
    # A conflict is told before the body is judged.
    assert await _choose(client, 1, waiting, {}) == (409, NOT_WAITING)
    assert await redis.hget(TENANT.agent(1), "voice") == b"0"


async def test_the_end_users_number_chosen_is_recorded_and_the_dial_queued(
    client: TestClient[Any, Any], redis: Redis
) -> None:
    await _load(redis, _two_contact_numbers)
    pending = await _pending(client, BY_TICKET)
    assert (pending["pending_action"], pending["choices"]) == (
        "select_end_user_number",
        CONTACT_NUMBERS,
    )
    call_id = pending["call_id"]
    assert await _choose(client, 2, call_id, {"outbound_number": NUMBERS[0]}) == (
        400,
        {"message": "Only end_user_number can be chosen for this call"},
    )
    assert await _choose(client, 2, call_id, {"end_user_number": "+1 859-657-9625"}) == (
        400,
        {"message": f"end_user_number must be one of {', '.join(CONTACT_NUMBERS)}"},
    )
    before = await _call(client, call_id)
    status, call = await _choose(client, 2, call_id, {"end_user_number": "+1 859-657-9626"})
    assert (status, call) == (200, before)  # the call object carries no end user's number
    meta = await _meta(redis, call_id)
    assert (meta["pending_action"], meta["end_user_number"]) == (None, "+18596579626")
    number = await client.get(f"{API}/agents/2/calls/{call_id}/end_user", headers=agent_auth(2))
    assert await number.json() == {"call_id": call_id, "end_user_number": "+18596579626"}
    assert await _queued(redis, f"dial_outbound:demo:{call_id}")


async def test_both_numbers_are_chosen_in_turn(client: TestClient[Any, Any], redis: Redis) -> None:
    def both(tenant: dict[str, Any]) -> None:
        _no_default(tenant)
        _two_contact_numbers(tenant)

    await _load(redis, both)
    call_id = (await _pending(client, BY_TICKET))["call_id"]
    status, call = await _choose(client, 2, call_id, {"end_user_number": CONTACT_NUMBERS[1]})
    assert (status, call["outbound_number"]) == (200, None)
    assert not await _queued(redis, f"dial_outbound:demo:{call_id}")
    listed = await client.get(f"{API}/agents/2/choices", headers=agent_auth(2))
    [waiting] = await listed.json()
    assert (waiting["pending_action"], waiting["choices"]) == ("select_outbound_number", NUMBERS)
    assert await _choose(client, 2, call_id, {"end_user_number": CONTACT_NUMBERS[1]}) == (
        400,
        {"message": "Only outbound_number can be chosen for this call"},
    )
    status, call = await _choose(client, 2, call_id, {"outbound_number": NUMBERS[1]})
    assert (status, call["outbound_number"]) == (200, NUMBERS[1])
    assert await _queued(redis, f"dial_outbound:demo:{call_id}")


async def test_a_chosen_number_on_the_dnc_list_is_refused_and_the_call_still_waits(
    client: TestClient[Any, Any], redis: Redis
) -> None:
    await _load(redis, _two_contact_numbers)
    listed = await client.post(
        f"{API}/outbound_dialer/dnc",
        json={"contacts": [{"phone_number": CONTACT_NUMBERS[1]}]},
        headers=basic(),
    )
    assert listed.status == 200, await listed.text()
    call_id = (await _pending(client, BY_TICKET))["call_id"]
    choice = {"end_user_number": CONTACT_NUMBERS[1]}
    assert await _choose(client, 2, call_id, choice) == (400, {"message": ON_DNC_LIST})
    meta = await _meta(redis, call_id)
    assert (meta["pending_action"], meta["end_user_number"]) == ("select_end_user_number", None)
    assert not await _queued(redis, f"dial_outbound:demo:{call_id}")
    status, _ = await _choose(client, 2, call_id, {"end_user_number": CONTACT_NUMBERS[0]})
    assert status == 200


async def test_a_chosen_number_over_its_contact_limit_is_refused(
    client: TestClient[Any, Any], redis: Redis
) -> None:
    def limited(tenant: dict[str, Any]) -> None:
        _two_contact_numbers(tenant)
        tenant["settings"]["contact_limit_24h"] = 1

    await _load(redis, limited)
    first = await client.post(
        CALLS, json={**OUTBOUND, "end_user_number": CONTACT_NUMBERS[1]}, headers=basic()
    )
    assert first.status == 201
    first_id = (await first.json())["id"]
    made = await redis.zscore(TENANT.attempts(CONTACT_NUMBERS[1]), str(first_id))
    assert made is not None
    call_id = (await _pending(client, BY_TICKET))["call_id"]
    again = clock.iso(clock.from_ms(int(made) + CONTACT_LIMIT_SPAN_MS))
    assert await _choose(client, 2, call_id, {"end_user_number": CONTACT_NUMBERS[1]}) == (
        400,
        {
            "message": "This call cannot be placed because the phone number has reached its"
            f" contact limit of 1 calls in 24 hours; it may be called again at {again}"
        },
    )
    assert (await _meta(redis, call_id))["pending_action"] == "select_end_user_number"
    # The other number may be called; its choice counts as its attempt, as a creation does.
    status, _ = await _choose(client, 2, call_id, {"end_user_number": CONTACT_NUMBERS[0]})
    assert status == 200
    assert await redis.zscore(TENANT.attempts(CONTACT_NUMBERS[0]), str(call_id)) is not None


# Saturday 8 June 2030, 07:00 in Chicago: a weekdays' window opens on Monday at 09:00 there.
SATURDAY = datetime(2030, 6, 8, 12, tzinfo=UTC)
WEEKDAYS_9_TO_5 = {"weekly": {day: ["09:00-17:00"] for day in ("mon", "tue", "wed", "thu", "fri")}}


async def test_a_chosen_number_outside_its_calling_window_is_refused(
    client: TestClient[Any, Any], redis: Redis
) -> None:
    def windowed(tenant: dict[str, Any]) -> None:
        _two_contact_numbers(tenant)
        tenant["settings"]["calling_window"] = WEEKDAYS_9_TO_5

    await _load(redis, windowed)
    with time_machine.travel(SATURDAY, tick=True):
        # Waiting for its end user's number, the call is judged as that is chosen.
        call_id = (await _pending(client, BY_TICKET))["call_id"]
        assert await _choose(client, 2, call_id, {"end_user_number": CHICAGO_NUMBER}) == (
            400,
            {
                "message": "This call cannot be placed now because it is outside the calling"
                " window at the phone number's location; the window opens at"
                " 2030-06-10T14:00:00.000Z"
            },
        )
    assert (await _meta(redis, call_id))["pending_action"] == "select_end_user_number"


async def test_the_choice_answers_conform_to_the_openapi_document(
    client: TestClient[Any, Any], redis: Redis
) -> None:
    await _load(redis, _no_default)
    call_id = (await _pending(client, OUTBOUND))["call_id"]
    listed = await client.get(f"{API}/agents/1/choices", headers=agent_auth(1))
    assert len(await conforming(listed, "/apps/api/v1/agents/{id}/choices")) == 1
    template = "/apps/api/v1/agents/{id}/calls/{call_id}/choice"
    for body, status in (({}, 400), ({"outbound_number": NUMBERS[0]}, 200), ({}, 409)):
        response = await client.post(choice_path(1, call_id), json=body, headers=agent_auth(1))
        assert response.status == status
        await conforming(response, template)
    unknown = await client.post(choice_path(1, 99), json={}, headers=agent_auth(1))
    assert await conforming(unknown, template) == CALL_NOT_FOUND
