"""Answering-machine detection through Twilio, without network: a campaign's call, accepted by
its agent, is placed at the fake Twilio with asynchronous detection asked for, and the fake's
signed detection results connect it, or hang up or leave the message and fail it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from arq import Worker
from redis.asyncio import Redis

from dispatcher.domain import clock
from dispatcher.store import jobs
from tests.polling import eventually
from tests.twilio_fake import AUTH_TOKEN, FakeTwilio
from tests.workers.carriers.conftest import PUBLIC_URL, dialled, recorded
from tests.workers.conftest import (
    API,
    get_call,
    get_json,
    held_calls,
    load_tenant,
    post_json,
    wait_for_offer,
    wait_for_status,
)
from tests.workers.test_machines import CONNECT, HANG_UP, LOCK_STAR, PLAY, SAY

CAMPAIGNS = f"{API}/campaigns"
END_USER = "+18596579625"
NO_CONTENT = (204, "")
TWILIO = {"carrier": "twilio"}
ANSWER_TWIML = (
    "<Response><Say>Hello. This is an automated call from our support team. "
    "We will be in touch. Goodbye.</Say></Response>"
)


async def placed_campaign_call(
    client: TestClient[Any, Any], redis: Redis, fake: FakeTwilio, machine: dict[str, Any] | None
) -> tuple[int, str]:
    """A campaign's call, fired, accepted by agent 1 and dialled at the fake: id and sid."""
    await load_tenant(redis, settings=TWILIO, menus={LOCK_STAR: {"groups": [[1]]}})
    body: dict[str, Any] = {"name": "machines", "menu_id": LOCK_STAR}
    if machine is not None:
        body["answering_machine"] = machine
    campaign = await post_json(client, CAMPAIGNS, body, status=201)
    due = clock.iso(clock.now() + timedelta(seconds=0.2))
    calls = {"calls": [{"end_user_number": END_USER, "scheduled_at": due}]}
    joined = await post_json(client, f"{CAMPAIGNS}/{campaign['id']}/calls/batch", calls)
    call_id: int = joined["results"][0]["body"]["id"]
    offer = await wait_for_offer(client, 1, call_id)
    await post_json(client, f"{API}/offers/{offer['id']}/accept")
    sid = await dialled(fake)
    assert await recorded(redis, call_id) == sid
    return call_id, sid


def detection(call_id: int, mode: str) -> list[tuple[str, str]]:
    return [
        ("MachineDetection", mode),
        ("AsyncAmd", "true"),
        ("AsyncAmdStatusCallback", f"{PUBLIC_URL}/carrier/twilio/demo/calls/{call_id}/machine"),
        ("AsyncAmdStatusCallbackMethod", "POST"),
    ]


@pytest.mark.parametrize(
    ("machine", "mode"),
    [(HANG_UP, "Enable"), (CONNECT, "Enable"), (SAY, "DetectMessageEnd"), (None, None)],
    ids=["hang_up", "connect", "message", "none"],
)
async def test_the_dial_asks_for_asynchronous_detection_as_the_campaign_plans(
    ingress: TestClient[Any, Any],
    redis: Redis,
    fake: FakeTwilio,
    twilio_worker: Worker,
    machine: dict[str, Any] | None,
    mode: str | None,
) -> None:
    call_id, sid = await placed_campaign_call(ingress, redis, fake, machine)
    form = list(fake.calls[sid].form.items())
    status_url = f"{PUBLIC_URL}/carrier/twilio/demo/calls/{call_id}/status"
    assert form == [
        ("To", END_USER),
        ("From", "+13392195276"),
        ("Twiml", ANSWER_TWIML),
        ("Timeout", "30"),
        ("StatusCallback", status_url),
        ("StatusCallbackEvent", "initiated"),
        ("StatusCallbackEvent", "ringing"),
        ("StatusCallbackEvent", "answered"),
        ("StatusCallbackEvent", "completed"),
        ("StatusCallbackMethod", "POST"),
        *(detection(call_id, mode) if mode is not None else []),
    ]
    # Answered: with detection asked, the call waits for who answered; without, it connects.
    assert await fake.call_status(sid, "in-progress") == NO_CONTENT
    if mode is None:
        connected = await wait_for_status(ingress, call_id, "connected")
        assert "answered_by" not in connected
    else:
        await wait_for_jobs_done(redis)
        assert (await get_call(ingress, call_id))["status"] == "connecting"


@pytest.mark.parametrize(
    ("machine", "answered_by", "details", "hangups", "updates"),
    [
        (HANG_UP, "machine_start", "Answered by a machine; hung up", 1, []),
        (
            SAY,
            "machine_end_beep",
            "Answered by a machine; message left",
            0,
            ["<Response><Say>Please call us back at 555-0100.</Say><Hangup /></Response>"],
        ),
        (
            PLAY,
            "machine_end_silence",
            "Answered by a machine; message left",
            0,
            [
                "<Response><Play>https://recordings.example.com/callback.mp3</Play>"
                "<Hangup /></Response>"
            ],
        ),
        (HANG_UP, "fax", "Answered by a machine; hung up", 1, []),
    ],
    ids=["hang_up", "say", "play_url", "fax"],
)
async def test_a_machine_is_hung_up_on_or_given_the_message_and_the_call_fails(
    ingress: TestClient[Any, Any],
    redis: Redis,
    fake: FakeTwilio,
    twilio_worker: Worker,
    machine: dict[str, Any],
    answered_by: str,
    details: str,
    hangups: int,
    updates: list[str],
) -> None:
    call_id, sid = await placed_campaign_call(ingress, redis, fake, machine)
    assert await fake.call_status(sid, "in-progress") == NO_CONTENT
    assert await fake.machine_detected(sid, answered_by) == NO_CONTENT
    failed = await wait_for_status(ingress, call_id, "failed")
    assert {key: failed[key] for key in ("fail_reason", "fail_details", "answered_by")} == {
        "fail_reason": "eu_no_answer",
        "fail_details": details,
        "answered_by": "machine",
    }
    assert await held_calls(redis, 1) == 0
    assert (await get_json(ingress, f"{API}/agents/1"))["active_calls"] == 0
    await wait_for_jobs_done(redis)
    assert [(s, list(r.form.items())) for s, r in fake.hangups] == [
        (sid, [("Status", "completed")])
    ] * hangups
    assert [(s, list(r.form.items())) for s, r in fake.updates] == [
        (sid, [("Twiml", twiml)]) for twiml in updates
    ]
    # Twilio then reports the call completed (and may repeat the result): nothing changes.
    assert await fake.call_status(sid, "completed") == NO_CONTENT
    assert await fake.machine_detected(sid, answered_by) == NO_CONTENT
    await wait_for_jobs_done(redis)
    assert await get_call(ingress, call_id) == failed


@pytest.mark.parametrize(
    ("answered_by", "shown"),
    [
        ("human", "human"),
        ("unknown", "unknown"),
        ("machine_start", "machine"),
        ("machine_end_beep", "machine"),
        ("machine_end_silence", "machine"),
        ("machine_end_other", "machine"),
        ("fax", "machine"),
    ],
)
async def test_who_answered_a_connected_call_is_what_twilio_detected(
    ingress: TestClient[Any, Any],
    redis: Redis,
    fake: FakeTwilio,
    twilio_worker: Worker,
    answered_by: str,
    shown: str,
) -> None:
    """The campaign connects machines too: every verdict connects, and says who answered."""
    call_id, sid = await placed_campaign_call(ingress, redis, fake, CONNECT)
    assert await fake.call_status(sid, "in-progress") == NO_CONTENT
    assert await fake.machine_detected(sid, answered_by) == NO_CONTENT
    connected = await wait_for_status(ingress, call_id, "connected")
    assert (connected["answered_by"], connected["fail_reason"]) == (shown, "nothing")
    assert await fake.call_status(sid, "completed") == NO_CONTENT
    finished = await wait_for_status(ingress, call_id, "finished")
    assert finished["answered_by"] == shown
    assert (fake.hangups, fake.updates) == ([], [])
    assert await held_calls(redis, 1) == 0


async def test_a_person_is_connected_on_a_campaign_that_hangs_up_on_machines(
    ingress: TestClient[Any, Any], redis: Redis, fake: FakeTwilio, twilio_worker: Worker
) -> None:
    call_id, sid = await placed_campaign_call(ingress, redis, fake, HANG_UP)
    assert await fake.call_status(sid, "in-progress") == NO_CONTENT
    assert await fake.machine_detected(sid, "human") == NO_CONTENT
    connected = await wait_for_status(ingress, call_id, "connected")
    assert connected["answered_by"] == "human"
    assert fake.hangups == []


async def test_a_detection_result_that_is_not_one_or_not_signed_is_refused(
    ingress: TestClient[Any, Any], redis: Redis, fake: FakeTwilio, twilio_worker: Worker
) -> None:
    call_id, sid = await placed_campaign_call(ingress, redis, fake, HANG_UP)
    url = f"{PUBLIC_URL}/carrier/twilio/demo/calls/{call_id}/machine"
    form = [("AccountSid", fake.calls[sid].account), ("AnsweredBy", "robot"), ("CallSid", sid)]
    assert await fake.post(url, form, AUTH_TOKEN) == (400, '{"message":"AnsweredBy is invalid"}')
    good = [*form[:1], ("AnsweredBy", "machine_start"), ("CallSid", sid)]
    forged = await fake.post(url, good, "another-auth-token")
    assert forged == (403, '{"message":"Twilio signature is invalid"}')
    missing = await fake.post(f"{PUBLIC_URL}/carrier/twilio/demo/calls/x/machine", good, AUTH_TOKEN)
    assert missing == (404, '{"message":"Call not found"}')
    await wait_for_jobs_done(redis)
    assert (await get_call(ingress, call_id))["status"] == "connecting"
    assert "answered_by" not in await get_call(ingress, call_id)


async def wait_for_jobs_done(redis: Redis) -> None:
    async def idle() -> bool | None:
        return True if not await redis.zrange(jobs.QUEUE_NAME, 0, -1) else None

    await eventually(idle, "the queued jobs to run")


async def test_a_message_twilio_refuses_to_take_is_hung_up_all_the_same(
    ingress: TestClient[Any, Any], redis: Redis, fake: FakeTwilio, twilio_worker: Worker
) -> None:
    call_id, sid = await placed_campaign_call(ingress, redis, fake, SAY)
    fake.fail_next(400, 21210)  # the next request: the message's new TwiML
    assert await fake.machine_detected(sid, "machine_end_beep") == NO_CONTENT
    failed = await wait_for_status(ingress, call_id, "failed")
    assert failed["fail_details"] == "Answered by a machine; message left"
    await wait_for_jobs_done(redis)
    assert (fake.failures, fake.updates) == ([], [])
    assert [s for s, _ in fake.hangups] == [sid]


async def test_a_call_that_ends_before_twilio_can_tell_who_answered_is_unknown(
    ingress: TestClient[Any, Any], redis: Redis, fake: FakeTwilio, twilio_worker: Worker
) -> None:
    call_id, sid = await placed_campaign_call(ingress, redis, fake, HANG_UP)
    assert await fake.call_status(sid, "in-progress") == NO_CONTENT
    assert await fake.call_status(sid, "completed") == NO_CONTENT
    finished = await wait_for_status(ingress, call_id, "finished")
    assert (finished["answered_by"], finished["disconnected_by"]) == (
        "unknown",
        "disconnected_by_end_user",
    )
    assert await held_calls(redis, 1) == 0


async def test_an_answer_reported_after_the_machines_verdict_cuts_no_message_off(
    ingress: TestClient[Any, Any], redis: Redis, fake: FakeTwilio, twilio_worker: Worker
) -> None:
    """Callbacks out of order: the verdict first, the answer after the call has failed. The
    answer of a call that has ended would be hung up; a machine's is left to hear its message."""
    call_id, sid = await placed_campaign_call(ingress, redis, fake, SAY)
    assert await fake.machine_detected(sid, "machine_end_beep") == NO_CONTENT
    failed = await wait_for_status(ingress, call_id, "failed")
    assert await fake.call_status(sid, "in-progress") == NO_CONTENT
    await wait_for_jobs_done(redis)
    assert ([s for s, _ in fake.updates], fake.hangups) == ([sid], [])
    assert await get_call(ingress, call_id) == failed
