"""A 202 outbound call with real workers: dialled through the simulated carrier once its agent
chooses, failed `expired` (its agent freed) when nobody chooses in time, and a choice racing
its timeout: exactly one of them wins, and the agent's slot is freed once."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import orjson
from aiohttp.test_utils import TestClient
from arq import Worker
from redis.asyncio import Redis

from dispatcher.domain.choices import EXPIRED
from tests.conftest import basic, load_directory
from tests.workers.conftest import (
    API,
    CALLS,
    TENANT,
    CallEvents,
    get_json,
    held_calls,
    load_tenant,
    post_json,
    tenant_document,
    wait_for_status,
)
from workers.choices import expire_choice

NO_DEFAULT = {"default_outbound_number": None}
OUTBOUND = {
    "call_type": "Voice Outbound (API)",
    "agent_email": "admin@somedomain.com",
    "end_user_number": "+1 859-657-9625",
}
CHOSEN = "+13392195276"
NOT_WAITING = {"message": "Call is not waiting for a choice"}


async def _pending(client: TestClient[Any, Any]) -> int:
    pending = await post_json(client, CALLS, OUTBOUND, status=202)
    assert pending["pending_action"] == "select_outbound_number"
    call_id: int = pending["call_id"]
    return call_id


async def _choose(client: TestClient[Any, Any], call_id: int) -> tuple[int, Any]:
    response = await client.post(
        f"{API}/agents/1/calls/{call_id}/choice", json={"outbound_number": CHOSEN}, headers=basic()
    )
    return response.status, await response.json()


async def test_a_call_dials_once_its_agent_chooses(
    client: TestClient[Any, Any], redis: Redis, worker: Worker
) -> None:
    await load_tenant(redis, settings=NO_DEFAULT)
    async with CallEvents(redis) as events:
        call_id = await _pending(client)
        await asyncio.sleep(0.2)  # the worker leaves a waiting call be
        assert (await get_json(client, f"{CALLS}/{call_id}"))["status"] == "assigned"
        assert await _choose(client, call_id) == (
            200,
            await get_json(client, f"{CALLS}/{call_id}"),
        )
        finished = await wait_for_status(client, call_id, "finished")
        # Announced as it was created to wait, as its number was chosen, then as any call.
        assert await events.wait_until(call_id, "finished") == [
            "assigned",
            "assigned",
            "connecting",
            "connected",
            "finished",
        ]
    assert (finished["outbound_number"], finished["disconnected_by"]) == (
        CHOSEN,
        "disconnected_by_end_user",
    )
    assert await held_calls(redis, 1) == 0


async def test_a_call_nobody_chooses_for_expires_and_frees_its_agent(
    client: TestClient[Any, Any], redis: Redis, worker: Worker
) -> None:
    await load_tenant(redis, settings={**NO_DEFAULT, "choice_timeout_s": 0.3})
    call_id = await _pending(client)
    assert await held_calls(redis, 1) == 1
    failed = await wait_for_status(client, call_id, "failed")
    assert (failed["fail_reason"], failed["fail_details"]) == ("expired", EXPIRED)
    assert [(p["type"], p["status"], p["fail_reason"]) for p in failed["participants"]] == [
        ("agent", "failed", "expired"),
        ("end_user", "failed", "expired"),
    ]
    assert await held_calls(redis, 1) == 0
    assert await _choose(client, call_id) == (409, NOT_WAITING)
    listed = await client.get(f"{API}/agents/1/choices", headers=basic())
    assert await listed.json() == []
    # The agent is free for the next call.
    dialled = await post_json(client, CALLS, {**OUTBOUND, "outbound_number": CHOSEN}, status=201)
    assert dialled["status"] == "assigned"


async def test_a_choice_and_its_timeout_racing_have_exactly_one_outcome(
    client: TestClient[Any, Any], redis: Redis, job_context: dict[str, Any]
) -> None:
    """Forty rounds of the timeout's job and the agent's choice at once, a few ms apart either
    way. Agent 1 holds another call throughout (voice capacity 2), so that a slot freed twice
    would show: its count must be 1 after the timeout won, 2 after the choice did."""
    document = tenant_document(settings=NO_DEFAULT)
    document["tenants"][0]["agents"][0]["capacity"] = {"voice": 2, "chat": 5}
    await load_directory(redis, document)
    # No worker runs: this call stays assigned, holding one slot.
    await post_json(client, CALLS, {**OUTBOUND, "outbound_number": CHOSEN}, status=201)
    wins = {"expired": 0, "chosen": 0}
    jitter = random.Random(19)
    for _ in range(40):
        call_id = await _pending(client)
        lead = jitter.uniform(-0.003, 0.003)

        async def expire(delay: float = max(lead, 0.0), call: int = call_id) -> str:
            await asyncio.sleep(delay)
            return await expire_choice(job_context, "demo", call)

        async def choose(delay: float = max(-lead, 0.0), call: int = call_id) -> tuple[int, Any]:
            await asyncio.sleep(delay)
            return await _choose(client, call)

        expired, (status, body) = await asyncio.gather(expire(), choose())
        stored = orjson.loads(await redis.hget(TENANT.call(call_id), "doc"))
        history = [
            orjson.loads(raw) for raw in await redis.lrange(TENANT.call_history(call_id), 0, -1)
        ]
        ended = [entry for entry in history if entry.get("to") == "failed"]
        if expired == "expired":
            wins["expired"] += 1
            assert (status, body) == (409, NOT_WAITING)
            assert (stored["status"], stored["fail_reason"], len(ended)) == ("failed", "expired", 1)
            assert await held_calls(redis, 1) == 1
        else:
            wins["chosen"] += 1
            assert expired == "chosen or ended"
            assert (status, body["outbound_number"]) == (200, CHOSEN)
            assert (stored["status"], stored["outbound_number"], ended) == ("assigned", CHOSEN, [])
            assert await held_calls(redis, 1) == 2
            # The timeout's job run again later (a retry) changes nothing either.
            assert await expire_choice(job_context, "demo", call_id) == "chosen or ended"
            finished = await post_json(client, f"{CALLS}/{call_id}/finish")
            assert finished["fail_reason"] == "ag_canceled"
            assert await held_calls(redis, 1) == 1
    assert sum(wins.values()) == 40


async def test_choices_made_around_the_timeout_with_a_running_worker_each_end_one_way(
    client: TestClient[Any, Any], redis: Redis, worker: Worker
) -> None:
    """Twenty calls waiting at once (agent 1 with twenty voice slots), their timeout 0.3 s,
    each chosen between 0.2 and 0.5 s after its creation while the worker runs the timeouts:
    each call is either expired, never dialled, or dialled and finished; every slot is freed."""
    document = tenant_document(settings={**NO_DEFAULT, "choice_timeout_s": 0.3})
    document["tenants"][0]["agents"][0]["capacity"] = {"voice": 20, "chat": 5}
    await load_directory(redis, document)
    jitter = random.Random(7)

    async def one() -> tuple[int, int]:
        call_id = await _pending(client)
        await asyncio.sleep(jitter.uniform(0.2, 0.5))
        status, _ = await _choose(client, call_id)
        return call_id, status

    outcomes = await asyncio.gather(*[one() for _ in range(20)])
    for call_id, status in outcomes:
        ended = await wait_for_status(client, call_id, "finished" if status == 200 else "failed")
        if status == 200:
            assert ended["outbound_number"] == CHOSEN
        else:
            assert status == 409
            assert (ended["fail_reason"], ended["outbound_number"]) == ("expired", None)
            history = await redis.lrange(TENANT.call_history(call_id), 0, -1)
            assert [orjson.loads(raw)["to"] for raw in history] == ["failed"]
    assert await held_calls(redis, 1) == 0
