"""Outbound calls through the simulated carrier: connecting, results, pacing, and finishing."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from arq import Worker
from redis.asyncio import Redis

from tests.conftest import basic
from tests.workers.conftest import (
    API,
    CALLS,
    EXTRA_AGENTS,
    SOLO_MENU,
    TENANT,
    CallEvents,
    get_call,
    get_json,
    held_calls,
    inbound_call,
    load_tenant,
    outbound_call,
    post_json,
    wait_for_status,
)
from workers.connecting import carrier_result, connect_call
from workers.routing import route_call

BUSY_NUMBER = "+1 205-123-4567"
BUSY_RULE = {"prefix": "+1205", "outcome": "busy"}


async def test_an_outbound_call_is_dialled_connected_and_finished(
    client: TestClient[Any, Any], redis: Redis, worker: Worker
) -> None:
    await load_tenant(redis)
    async with CallEvents(redis) as events:
        created = await outbound_call(client)
        call_id = created["id"]
        assert (created["status"], created["agent_info"]["id"]) == ("assigned", 1)
        assert [(p["type"], p["status"]) for p in created["participants"]] == [
            ("agent", "waiting"),
            ("end_user", "waiting"),
        ]
        finished = await wait_for_status(client, call_id, "finished")
        assert await events.wait_until(call_id, "finished") == [
            "connecting",
            "connected",
            "finished",
        ]
    assert finished["connected_at"] is not None
    assert finished["ends_at"] is not None
    assert finished["call_duration"] >= 0
    assert (finished["fail_reason"], finished["disconnected_by"]) == (
        "nothing",
        "disconnected_by_end_user",
    )
    assert [(p["type"], p["status"]) for p in finished["participants"]] == [
        ("agent", "finished"),
        ("end_user", "finished"),
    ]
    assert (await get_json(client, f"{API}/agents/1"))["active_calls"] == 0
    again = await outbound_call(client)
    assert again["status"] == "assigned"


@pytest.mark.parametrize(
    ("outcome", "fail_reason"),
    [
        ("busy", "eu_busy"),
        ("no_answer", "eu_no_answer"),
        ("wrong_number", "eu_wrong_number"),
        ("failed", "voip_conn_general"),
    ],
)
async def test_a_carrier_failure_fails_the_call_and_frees_the_agent(
    client: TestClient[Any, Any], redis: Redis, worker: Worker, outcome: str, fail_reason: str
) -> None:
    rule = {**BUSY_RULE, "outcome": outcome}
    simulator = {"answer_after_s": 0.05, "talk_time_s": 0.1, "rules": [rule]}
    await load_tenant(redis, settings={"simulator": simulator})
    async with CallEvents(redis) as events:
        call_id = (await outbound_call(client, number=BUSY_NUMBER))["id"]
        failed = await wait_for_status(client, call_id, "failed")
        assert await events.wait_until(call_id, "failed") == ["connecting", "failed"]
    assert failed["fail_reason"] == fail_reason
    assert failed["ends_at"] is not None
    assert failed["connected_at"] is None
    assert {p["fail_reason"] for p in failed["participants"]} == {fail_reason}
    assert await held_calls(redis, 1) == 0
    # The agent's slot is free again: a new outbound call for them is accepted.
    again = await outbound_call(client)
    assert (again["status"], again["agent_info"]["id"]) == ("assigned", 1)
    await wait_for_status(client, again["id"], "finished")


async def test_outbound_calls_are_paced_to_the_tenants_calls_per_second(
    client: TestClient[Any, Any], redis: Redis, worker: Worker
) -> None:
    await load_tenant(redis, settings={"calls_per_second": 5})
    async with CallEvents(redis) as events:
        ids = []
        for agent_id in EXTRA_AGENTS:
            call = await outbound_call(client, agent_email=f"agent{agent_id}@somedomain.com")
            assert (call["status"], call["agent_info"]["id"]) == ("assigned", agent_id)
            ids.append(call["id"])
        for call_id in ids:
            await wait_for_status(client, call_id, "finished", timeout=10)
            statuses = await events.wait_until(call_id, "finished")
            assert statuses == ["connecting", "connected", "finished"], call_id
        dialled = sorted(events.first_time(call_id, "connecting") for call_id in ids)
    # A bucket of 5 (the burst) then one call every 200 ms: the 10th dials ~1 s after the 1st.
    assert dialled[-1] - dialled[0] >= 0.7
    assert sum(1 for at in dialled if at - dialled[0] < 0.1) <= 6
    for agent_id in EXTRA_AGENTS:
        assert await held_calls(redis, agent_id) == 0


async def test_finish_ends_a_queued_call_once(
    client: TestClient[Any, Any], redis: Redis, worker: Worker
) -> None:
    await load_tenant(redis, menus={SOLO_MENU: {"offer_timeout_s": 5, "max_wait_s": 10}})
    call_id = (await inbound_call(client, SOLO_MENU))["id"]

    response = await client.post(f"{CALLS}/{call_id}/finish", headers=basic())
    assert response.status == 200
    ended = await response.json()
    assert (ended["id"], ended["status"], ended["fail_reason"]) == (
        call_id,
        "failed",
        "ag_canceled",
    )
    assert ended["ends_at"] is not None
    assert await get_call(client, call_id) == ended

    again = await client.post(f"{CALLS}/{call_id}/finish", headers=basic())
    assert (again.status, await again.json()) == (409, {"message": "Call has already ended"})
    unknown = await client.post(f"{CALLS}/9999/finish", headers=basic())
    assert (unknown.status, await unknown.json()) == (404, {"message": "Call not found"})
    assert (await get_call(client, call_id))["status"] == "failed"


async def test_finish_cancels_an_outbound_call_still_ringing(
    client: TestClient[Any, Any], redis: Redis, worker: Worker
) -> None:
    simulator = {"answer_after_s": 0.5, "talk_time_s": 0.1}
    await load_tenant(redis, settings={"simulator": simulator})
    async with CallEvents(redis) as events:
        call_id = (await outbound_call(client))["id"]
        await wait_for_status(client, call_id, "connecting")
        ended = await post_json(client, f"{CALLS}/{call_id}/finish")
        assert (ended["status"], ended["fail_reason"]) == ("failed", "ag_canceled")
        assert await held_calls(redis, 1) == 0
        # The carrier's answer arrives after the call ended and changes nothing.
        await events.wait_until(call_id, "failed")
        again = await outbound_call(client)
        await wait_for_status(client, again["id"], "connected")
        assert events.statuses(call_id) == ["connecting", "failed"]
    assert (await get_call(client, call_id))["status"] == "failed"


async def test_repeated_jobs_for_an_ended_call_change_nothing(
    client: TestClient[Any, Any], redis: Redis, worker: Worker, job_context: dict[str, Any]
) -> None:
    await load_tenant(redis)
    call_id = (await outbound_call(client))["id"]
    finished = await wait_for_status(client, call_id, "finished")
    rev = await redis.hget(TENANT.call(call_id), "rev")

    # What a retried or duplicated job would do once the call has ended.
    assert await connect_call(job_context, "demo", call_id) == "not connecting"
    for outcome in ("answer", "completed", "busy"):
        assert await carrier_result(job_context, "demo", call_id, outcome) == "ignored"
    assert await route_call(job_context, "demo", call_id) == "not queued"
    assert await redis.hget(TENANT.call(call_id), "rev") == rev
    assert await get_call(client, call_id) == finished
    assert await held_calls(redis, 1) == 0


async def test_a_completion_that_overtakes_its_answer_still_finishes_the_call(
    client: TestClient[Any, Any], redis: Redis, worker: Worker, job_context: dict[str, Any]
) -> None:
    """A retried answer job can run after the completion: an answered call finishes."""
    await load_tenant(redis, settings={"simulator": {"answer_after_s": 30, "talk_time_s": 1}})
    call_id = (await outbound_call(client))["id"]
    await wait_for_status(client, call_id, "connecting")
    assert await carrier_result(job_context, "demo", call_id, "completed") == "finished"
    call = await get_call(client, call_id)
    assert (call["status"], call["fail_reason"]) == ("finished", "nothing")
    assert call["connected_at"] is not None
    assert call["disconnected_by"] == "disconnected_by_end_user"
    assert await carrier_result(job_context, "demo", call_id, "answer") == "ignored"
    assert await held_calls(redis, 1) == 0
