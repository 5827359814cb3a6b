"""Answering machines on the simulated carrier: a campaign's calls, fired, offered and accepted,
then dialled to a number its rules answer with a machine (or a person), with real workers."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient
from arq import Worker
from redis.asyncio import Redis

from dispatcher.domain import clock
from dispatcher.store import jobs
from tests.polling import eventually
from tests.workers.carriers.conftest import recorded
from tests.workers.conftest import (
    API,
    TENANT,
    get_json,
    held_calls,
    load_tenant,
    post_json,
    wait_for_offer,
    wait_for_status,
)
from workers.connecting import carrier_result

CAMPAIGNS = f"{API}/campaigns"
LOCK_STAR = 9  # mobile menu: takes scheduled calls
MACHINE_NUMBER = "+1 205-555-0100"
PERSON_NUMBER = "+1 859-657-9625"
SIMULATOR = {
    "answer_after_s": 0.05,
    "talk_time_s": 0.1,
    "rules": [{"prefix": "+1205555", "outcome": "machine"}],
}
HANG_UP = {"action": "hang_up"}
SAY = {"action": "message", "say": "Please call us back at 555-0100."}
PLAY = {"action": "message", "play_url": "https://recordings.example.com/callback.mp3"}
CONNECT = {"action": "connect"}
AGENT_1 = {LOCK_STAR: {"groups": [[1]]}}


def due_soon() -> str:
    return clock.iso(clock.now() + timedelta(seconds=0.2))


async def campaign_call(
    client: TestClient[Any, Any], machine: dict[str, Any] | None, number: str
) -> int:
    """A campaign (with `machine` as its answering_machine) and one call of it, due now: fired,
    offered to agent 1 and accepted, so the worker dials it. Its id."""
    body: dict[str, Any] = {"name": "machines", "menu_id": LOCK_STAR}
    if machine is not None:
        body["answering_machine"] = machine
    campaign = await post_json(client, CAMPAIGNS, body, status=201)
    assert campaign["answering_machine"] == (
        None if machine is None else {"say": None, "play_url": None, **machine}
    )
    calls = [{"end_user_number": number, "scheduled_at": due_soon()}]
    joined = await post_json(client, f"{CAMPAIGNS}/{campaign['id']}/calls/batch", {"calls": calls})
    assert joined["results"][0]["status"] == 201, joined
    call_id: int = joined["results"][0]["body"]["id"]
    offer = await wait_for_offer(client, 1, call_id)
    accepted = await post_json(client, f"{API}/offers/{offer['id']}/accept")
    assert (accepted["status"], accepted["agent_info"]["id"]) == ("assigned", 1)
    return call_id


async def meta_answered_by(redis: Redis, call_id: int) -> Any:
    raw = await redis.hget(TENANT.call(call_id), "meta")
    return orjson.loads(raw).get("answered_by")


async def assert_agent_free(client: TestClient[Any, Any], redis: Redis) -> None:
    assert await held_calls(redis, 1) == 0
    assert (await get_json(client, f"{API}/agents/1"))["active_calls"] == 0


@pytest.mark.parametrize(
    ("machine", "details"),
    [
        (HANG_UP, "Answered by a machine; hung up"),
        (SAY, "Answered by a machine; message left"),
        (PLAY, "Answered by a machine; message left"),
    ],
    ids=["hang_up", "say", "play_url"],
)
async def test_a_machine_ends_the_call_unanswered_and_frees_the_agent(
    client: TestClient[Any, Any],
    redis: Redis,
    worker: Worker,
    machine: dict[str, Any],
    details: str,
) -> None:
    await load_tenant(redis, settings={"simulator": SIMULATOR}, menus=AGENT_1)
    call_id = await campaign_call(client, machine, MACHINE_NUMBER)
    failed = await wait_for_status(client, call_id, "failed")
    assert {key: failed[key] for key in ("fail_reason", "fail_details", "answered_by")} == {
        "fail_reason": "eu_no_answer",
        "fail_details": details,
        "answered_by": "machine",
    }
    assert failed["connected_at"] is None
    assert {p["fail_reason"] for p in failed["participants"]} == {"eu_no_answer"}
    assert await meta_answered_by(redis, call_id) == "machine"
    await assert_agent_free(client, redis)


async def test_a_machine_is_connected_when_the_campaign_says_connect(
    client: TestClient[Any, Any], redis: Redis, worker: Worker
) -> None:
    await load_tenant(redis, settings={"simulator": SIMULATOR}, menus=AGENT_1)
    call_id = await campaign_call(client, CONNECT, MACHINE_NUMBER)
    finished = await wait_for_status(client, call_id, "finished")
    assert (finished["answered_by"], finished["fail_reason"]) == ("machine", "nothing")
    assert finished["connected_at"] is not None
    await assert_agent_free(client, redis)


async def test_a_person_answering_with_detection_asked_is_connected_as_human(
    client: TestClient[Any, Any], redis: Redis, worker: Worker
) -> None:
    await load_tenant(redis, settings={"simulator": SIMULATOR}, menus=AGENT_1)
    call_id = await campaign_call(client, HANG_UP, PERSON_NUMBER)
    connected = await wait_for_status(client, call_id, "connected")
    assert connected["answered_by"] == "human"
    finished = await wait_for_status(client, call_id, "finished")
    assert (finished["answered_by"], finished["fail_reason"]) == ("human", "nothing")
    assert await meta_answered_by(redis, call_id) == "human"
    await assert_agent_free(client, redis)


@pytest.mark.parametrize("number", [MACHINE_NUMBER, PERSON_NUMBER], ids=["machine", "person"])
async def test_without_detection_a_call_has_no_answered_by(
    client: TestClient[Any, Any], redis: Redis, worker: Worker, number: str
) -> None:
    """No plan for machines: nothing is detected, a machine's answer is an answer."""
    await load_tenant(redis, settings={"simulator": SIMULATOR}, menus=AGENT_1)
    call_id = await campaign_call(client, None, number)
    finished = await wait_for_status(client, call_id, "finished")
    assert "answered_by" not in finished
    assert finished["fail_reason"] == "nothing"
    assert await meta_answered_by(redis, call_id) is None
    await assert_agent_free(client, redis)


async def test_answering_machine_plans_are_validated_with_the_field_named(
    client: TestClient[Any, Any], redis: Redis
) -> None:
    await load_tenant(redis)
    must_be_url = "answering_machine.play_url must be an https:// URL of at most 2000 characters"
    refusals = [
        ("hang up", "answering_machine must be an object"),
        *(
            (machine, "answering_machine.action must be one of hang_up, message, connect")
            for machine in (
                {},
                {"action": "voicemail"},
                {"action": ["hang_up"]},
                {"action": {"hang_up": 1}},
                {"action": None},
            )
        ),
        ([HANG_UP], "answering_machine must be an object"),
        (
            {"action": "hang_up", "say": "hi"},
            "answering_machine.say and answering_machine.play_url are for the action message",
        ),
        (
            {"action": "connect", "play_url": PLAY["play_url"]},
            "answering_machine.say and answering_machine.play_url are for the action message",
        ),
        (
            {"action": "message"},
            "answering_machine: the action message needs exactly one of say or play_url",
        ),
        (
            {**SAY, "play_url": PLAY["play_url"]},
            "answering_machine: the action message needs exactly one of say or play_url",
        ),
        *(
            (
                {"action": "message", "say": say},
                "answering_machine.say must be text of 1 to 500 characters, no control characters",
            )
            for say in ("", "   ", "x" * 501, 5, "call\x00back", "\x1b[31m")
        ),
        *(
            ({"action": "message", "play_url": url}, must_be_url)
            for url in (
                "http://recordings.example.com/a.mp3",
                "ftp://recordings.example.com/a.mp3",
                "https://",
                "https://example.com:port/a.mp3",
                "https://example.com/" + "a" * 2000,
                7,
            )
        ),
        *(
            (
                {"action": "message", "play_url": url},
                "answering_machine.play_url must not be an internal address",
            )
            for url in (
                "https://127.0.0.1/a.mp3",
                "https://10.1.2.3/a.mp3",
                "https://169.254.169.254/latest",
                "https://[::1]/a.mp3",
            )
        ),
    ]
    for machine, message in refusals:
        body = {"name": "m", "menu_id": LOCK_STAR, "answering_machine": machine}
        assert await post_json(client, CAMPAIGNS, body, status=400) == {"message": message}, machine
    said = {**SAY, "say": " Please call us back\n\tat 555-0100. ", "play_url": None}
    body = {"name": "m", "menu_id": LOCK_STAR, "answering_machine": said}
    created = await post_json(client, CAMPAIGNS, body, status=201)
    assert created["answering_machine"] == {
        "action": "message",
        "say": "Please call us back\n\tat 555-0100.",
        "play_url": None,
    }
    assert (await get_json(client, f"{CAMPAIGNS}/{created['id']}")) == created
    plain = await post_json(client, CAMPAIGNS, {"name": "n", "menu_id": LOCK_STAR}, status=201)
    assert plain["answering_machine"] is None


async def test_a_machine_result_applied_twice_ends_the_call_once(
    client: TestClient[Any, Any], redis: Redis, worker: Worker, job_context: dict[str, Any]
) -> None:
    """A retried job (or one the carrier repeated) finds the machine recorded: nothing more."""
    slow = {**SIMULATOR, "answer_after_s": 60}  # its own results come after the test
    await load_tenant(redis, settings={"simulator": slow}, menus=AGENT_1)
    call_id = await campaign_call(client, SAY, MACHINE_NUMBER)
    await wait_for_status(client, call_id, "connecting")
    await recorded(redis, call_id)
    assert await carrier_result(job_context, "demo", call_id, "machine") == "failed, machine"
    failed = await get_json(client, f"{API}/calls/{call_id}")
    rev = await redis.hget(TENANT.call(call_id), "rev")
    assert await carrier_result(job_context, "demo", call_id, "machine") == "ignored"
    assert await carrier_result(job_context, "demo", call_id, "human") == "ignored"
    assert await redis.hget(TENANT.call(call_id), "rev") == rev
    assert await get_json(client, f"{API}/calls/{call_id}") == failed
    assert (failed["answered_by"], failed["fail_reason"]) == ("machine", "eu_no_answer")
    # One read of both (a transaction): the job may finish between two reads, and be counted
    # once queued and once done.
    async with redis.pipeline(transaction=True) as pipe:
        pipe.zrange(jobs.QUEUE_NAME, 0, -1)
        pipe.keys(f"arq:result:{jobs.LEAVE_MESSAGE}:*")
        queued, done = await pipe.execute()
    message_jobs = [m.decode() for m in queued if m.decode().startswith(jobs.LEAVE_MESSAGE)]
    assert len(message_jobs) + len(done) == 1
    await assert_agent_free(client, redis)


async def test_a_machine_is_redialled_after_the_policys_machine_delay(
    client: TestClient[Any, Any], redis: Redis, worker: Worker
) -> None:
    """The redial policy's `machine` outcome: a call a machine ended (eu_no_answer, answered
    by a machine) gets its child after after_s.machine, not after after_s.eu_no_answer."""
    await load_tenant(redis, settings={"simulator": SIMULATOR}, menus=AGENT_1)
    policy = {"max_attempts": 2, "after_s": {"eu_no_answer": 3600, "machine": 120}}
    body = {"name": "m", "menu_id": LOCK_STAR, "answering_machine": HANG_UP, "redial": policy}
    campaign = await post_json(client, CAMPAIGNS, body, status=201)
    calls = [{"end_user_number": MACHINE_NUMBER, "scheduled_at": due_soon()}]
    joined = await post_json(client, f"{CAMPAIGNS}/{campaign['id']}/calls/batch", {"calls": calls})
    first: int = joined["results"][0]["body"]["id"]
    offer = await wait_for_offer(client, 1, first)
    await post_json(client, f"{API}/offers/{offer['id']}/accept")

    async def recovered() -> dict[str, Any] | None:
        call: dict[str, Any] = await get_json(client, f"{API}/calls/{first}")
        return call if call["status"] == "recovered" else None

    parent = await eventually(recovered, "the machine's call recovered")  # failed, then redialled
    assert (parent["answered_by"], parent["fail_reason"], parent["fail_details"]) == (
        "machine",
        "eu_no_answer",
        "Answered by a machine; hung up",
    )
    children = await get_json(client, f"{API}/calls?status=scheduled")
    assert [(c["parent_id"], "answered_by" in c) for c in children] == [(first, False)]
    due = clock.parse_iso(children[0]["scheduled_at"])
    ended = clock.parse_iso(parent["ends_at"])
    assert due is not None and ended is not None
    assert 119 <= (due - ended).total_seconds() <= 121
    await assert_agent_free(client, redis)
