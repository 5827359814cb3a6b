"""The Twilio carrier end to end, without network: calls and SMS placed through POST /calls and
POST /sms reach a local fake Twilio, whose signed status callbacks reach the ingress at its
public URL (through a pretend proxy) and move the calls."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient
from arq import Worker
from redis.asyncio import Redis

from dispatcher.store import jobs
from tests.conftest import basic, load_directory
from tests.polling import eventually
from tests.twilio_fake import ACME_SID, AUTH_TOKEN, FakeTwilio, signature
from tests.workers.carriers.conftest import (
    PUBLIC_URL,
    StartWorker,
    carrier_call_id,
    dialled,
    recorded,
)
from tests.workers.conftest import (
    API,
    CALLS,
    TENANT,
    CallEvents,
    get_call,
    held_calls,
    load_tenant,
    outbound_call,
    post_json,
    tenant_document,
    wait_for_job,
    wait_for_status,
)
from workers.connecting import carrier_result

TWILIO = {"carrier": "twilio"}
END_USER = "+18596579625"  # outbound_call()'s number
DEFAULT_FROM = "+13392195276"  # the demo tenant's default outbound number
ANSWER_TWIML = (
    "<Response><Say>Hello. This is an automated call from our support team. "
    "We will be in touch. Goodbye.</Say></Response>"
)
NO_CONTENT = (204, "")


def status_url(call_id: int) -> str:
    return f"{PUBLIC_URL}/carrier/twilio/demo/calls/{call_id}/status"


async def connecting_call(
    client: TestClient[Any, Any], fake: FakeTwilio, redis: Redis
) -> tuple[int, str]:
    """An outbound call dialled at the fake and recorded: its id and Twilio sid."""
    call_id = (await outbound_call(client))["id"]
    sid = await dialled(fake)
    assert await recorded(redis, call_id) == sid
    return call_id, sid


async def connected_call(
    client: TestClient[Any, Any], fake: FakeTwilio, redis: Redis
) -> tuple[int, str]:
    call_id, sid = await connecting_call(client, fake, redis)
    assert await fake.call_status(sid, "in-progress") == NO_CONTENT
    await wait_for_status(client, call_id, "connected")
    return call_id, sid


async def queued_jobs(redis: Redis) -> set[str]:
    return {member.decode() for member in await redis.zrange(jobs.QUEUE_NAME, 0, -1)}


async def test_an_outbound_call_is_dialled_at_twilio_and_moved_by_its_callbacks(
    ingress: TestClient[Any, Any], redis: Redis, fake: FakeTwilio, twilio_worker: Worker
) -> None:
    await load_tenant(redis, settings=TWILIO)
    async with CallEvents(redis) as events:
        created = await outbound_call(ingress)
        call_id = created["id"]
        assert (created["status"], created["voip_provider"]) == ("assigned", "voip_provider_twilio")
        sid = await dialled(fake)
        placed = fake.calls[sid]
        assert placed.account == fake.calls[sid].account == "AC" + "0123456789abcdef" * 2
        assert list(placed.form.items()) == [
            ("To", END_USER),
            ("From", DEFAULT_FROM),
            ("Twiml", ANSWER_TWIML),
            ("Timeout", "30"),
            ("StatusCallback", status_url(call_id)),
            ("StatusCallbackEvent", "initiated"),
            ("StatusCallbackEvent", "ringing"),
            ("StatusCallbackEvent", "answered"),
            ("StatusCallbackEvent", "completed"),
            ("StatusCallbackMethod", "POST"),
        ]
        assert await recorded(redis, call_id) == sid

        for status in ("queued", "initiated", "ringing"):
            assert await fake.call_status(sid, status) == NO_CONTENT
        assert (await get_call(ingress, call_id))["status"] == "connecting"

        assert await fake.call_status(sid, "in-progress") == NO_CONTENT
        connected = await wait_for_status(ingress, call_id, "connected")
        assert connected["connected_at"] is not None
        assert (connected["ends_at"], connected["fail_reason"]) == (None, "nothing")
        assert [(p["type"], p["status"]) for p in connected["participants"]] == [
            ("agent", "connected"),
            ("end_user", "connected"),
        ]

        assert await fake.call_status(sid, "completed", CallDuration="12") == NO_CONTENT
        finished = await wait_for_status(ingress, call_id, "finished")
        assert await events.wait_until(call_id, "finished") == [
            "connecting",
            "connected",
            "finished",
        ]
    assert {key: finished[key] for key in FIXED} == {
        "id": call_id,
        "call_type": "Voice Outbound (API)",
        "status": "finished",
        "voip_provider": "voip_provider_twilio",
        "outbound_number": DEFAULT_FROM,
        "fail_reason": "nothing",
        "fail_details": None,
        "disconnected_by": "disconnected_by_end_user",
        "connected_at": connected["connected_at"],
    }
    assert finished["ends_at"] is not None and finished["call_duration"] >= 0
    assert [(p["type"], p["status"], p["fail_reason"]) for p in finished["participants"]] == [
        ("agent", "finished", "nothing"),
        ("end_user", "finished", "nothing"),
    ]
    assert await held_calls(redis, 1) == 0
    assert fake.hangups == []


FIXED = (
    "id",
    "call_type",
    "status",
    "voip_provider",
    "outbound_number",
    "fail_reason",
    "fail_details",
    "disconnected_by",
    "connected_at",
)


@pytest.mark.parametrize(
    ("status", "extra", "fail_reason"),
    [
        ("busy", {}, "eu_busy"),
        ("no-answer", {}, "eu_no_answer"),
        ("failed", {}, "voip_conn_general"),
        ("failed", {"SipResponseCode": "404"}, "eu_wrong_number"),
    ],
)
async def test_twilio_failures_fail_the_call_and_free_the_agent(
    ingress: TestClient[Any, Any],
    redis: Redis,
    fake: FakeTwilio,
    twilio_worker: Worker,
    status: str,
    extra: dict[str, str],
    fail_reason: str,
) -> None:
    await load_tenant(redis, settings=TWILIO)
    async with CallEvents(redis) as events:
        call_id, sid = await connecting_call(ingress, fake, redis)
        assert await fake.call_status(sid, "ringing") == NO_CONTENT
        # Applied before the failure is reported, as Twilio's seconds apart are: two reports
        # applied at once may find the call ended by the other first, and hang up a carrier
        # call that is over (the race docs/decisions.md leaves, harmless at Twilio).
        await wait_for_job(redis, f"{jobs.CARRIER_RESULT}:demo:{call_id}:ringing-{sid}")
        assert await fake.call_status(sid, status, **extra) == NO_CONTENT
        failed = await wait_for_status(ingress, call_id, "failed")
        assert await events.wait_until(call_id, "failed") == ["connecting", "failed"]
    assert (failed["fail_reason"], failed["connected_at"]) == (fail_reason, None)
    assert {p["fail_reason"] for p in failed["participants"]} == {fail_reason}
    assert await held_calls(redis, 1) == 0
    assert fake.hangups == []  # Twilio ended it: nothing to hang up


async def test_forged_missing_and_misdirected_signatures_are_refused_and_change_nothing(
    ingress: TestClient[Any, Any], redis: Redis, fake: FakeTwilio, twilio_worker: Worker
) -> None:
    await load_tenant(redis, settings=TWILIO)
    call_id, sid = await connecting_call(ingress, fake, redis)
    await eventually(lambda: _no_jobs(redis), "the dial job to end")
    before = await get_call(ingress, call_id)
    rev = await redis.hget(TENANT.call(call_id), "rev")
    url = status_url(call_id)
    form = [
        ("AccountSid", fake.calls[sid].account),
        ("CallSid", sid),
        ("CallStatus", "in-progress"),
    ]
    invalid = (403, '{"message":"Twilio signature is invalid"}')
    attempts = {
        "missing": ({}, None, (403, '{"message":"Twilio signature is missing"}')),
        "forged": ({"X-Twilio-Signature": "bm90IGEgc2lnbmF0dXJl"}, None, invalid),
        "other token": (None, "another-auth-token", invalid),
        # What the process sees behind the proxy is not what Twilio called and signed.
        "local url": (None, None, invalid),
    }
    for name, (headers, token, expected) in attempts.items():
        signed = str(ingress.make_url(url.removeprefix(PUBLIC_URL))) if name == "local url" else url
        answer = await fake.post(url, form, token or AUTH_TOKEN, signed_url=signed, headers=headers)
        assert answer == expected, name
    tampered = [*form[:2], ("CallStatus", "busy")]
    sig = signature(AUTH_TOKEN, url, form)  # signed for in-progress, sent as busy
    assert (
        await fake.post(url, tampered, AUTH_TOKEN, headers={"X-Twilio-Signature": sig}) == invalid
    )
    assert await queued_jobs(redis) == set()
    assert await redis.hget(TENANT.call(call_id), "rev") == rev
    assert await get_call(ingress, call_id) == before


async def test_a_repeated_callback_changes_nothing(
    ingress: TestClient[Any, Any],
    redis: Redis,
    fake: FakeTwilio,
    twilio_worker: Worker,
    job_context: dict[str, Any],
) -> None:
    await load_tenant(redis, settings=TWILIO)
    call_id, sid = await connected_call(ingress, fake, redis)
    assert await fake.call_status(sid, "completed") == NO_CONTENT
    finished = await wait_for_status(ingress, call_id, "finished")
    rev = await redis.hget(TENANT.call(call_id), "rev")

    # Twilio sends them again: the same job ids, queued once (ARQ keeps their results).
    await eventually(lambda: _no_jobs(redis), "the completion job to end")
    for status in ("in-progress", "completed"):
        assert await fake.call_status(sid, status) == NO_CONTENT
    assert await queued_jobs(redis) == set()
    # Even once ARQ has forgotten the first jobs, applying them again changes nothing.
    assert await carrier_result(job_context, "demo", call_id, "completed", sid) == "ignored"
    assert await redis.hget(TENANT.call(call_id), "rev") == rev
    assert await get_call(ingress, call_id) == finished
    assert await held_calls(redis, 1) == 0


async def test_finishing_a_connected_call_hangs_it_up_at_twilio(
    ingress: TestClient[Any, Any], redis: Redis, fake: FakeTwilio, twilio_worker: Worker
) -> None:
    await load_tenant(redis, settings=TWILIO)
    call_id, sid = await connected_call(ingress, fake, redis)
    ended = await post_json(ingress, f"{CALLS}/{call_id}/finish")
    assert (ended["status"], ended["disconnected_by"]) == ("finished", "disconnected_by_agent")

    async def hung_up() -> list[tuple[str, list[tuple[str, str]]]] | None:
        return [(s, list(r.form.items())) for s, r in fake.hangups] or None

    assert await eventually(hung_up, "the hang-up at the fake") == [
        (sid, [("Status", "completed")])
    ]
    # Twilio then reports the call completed: it had ended here already.
    assert await fake.call_status(sid, "completed") == NO_CONTENT
    await eventually(lambda: _no_jobs(redis), "the completion job to run")
    assert await get_call(ingress, call_id) == ended


async def test_finishing_a_ringing_call_cancels_it_at_twilio(
    ingress: TestClient[Any, Any], redis: Redis, fake: FakeTwilio, twilio_worker: Worker
) -> None:
    await load_tenant(redis, settings=TWILIO)
    call_id, sid = await connecting_call(ingress, fake, redis)
    ended = await post_json(ingress, f"{CALLS}/{call_id}/finish")
    assert (ended["status"], ended["fail_reason"]) == ("failed", "ag_canceled")

    async def hung_up() -> list[str] | None:
        return [s for s, _ in fake.hangups] or None

    assert await eventually(hung_up, "the hang-up at the fake") == [sid]
    assert await fake.call_status(sid, "canceled") == NO_CONTENT
    await eventually(lambda: _no_jobs(redis), "the cancellation job to run")
    assert await get_call(ingress, call_id) == ended
    assert await held_calls(redis, 1) == 0


async def _no_jobs(redis: Redis) -> bool | None:
    return True if not await queued_jobs(redis) else None


async def test_an_agent_with_a_phone_number_is_dialled_when_the_end_user_answers(
    ingress: TestClient[Any, Any], redis: Redis, fake: FakeTwilio, twilio_worker: Worker
) -> None:
    document = tenant_document(settings={**TWILIO, "twilio": {"ring_timeout_s": 20}})
    document["tenants"][0]["agents"][0]["agent_number"] = "+1 415-555-0111"
    await load_directory(redis, document)
    await outbound_call(ingress)
    placed = fake.calls[await dialled(fake)]
    assert placed.one("Twiml") == (
        f'<Response><Dial callerId="{DEFAULT_FROM}" timeout="20">+14155550111</Dial></Response>'
    )
    assert placed.one("Timeout") == "20"


async def test_a_tenant_on_its_own_twilio_account_uses_that_accounts_credentials(
    ingress: TestClient[Any, Any], redis: Redis, fake: FakeTwilio, twilio_worker: Worker
) -> None:
    await load_tenant(redis, settings={**TWILIO, "twilio": {"account": "acme"}})
    call_id = (await outbound_call(ingress))["id"]
    sid = await dialled(fake)
    assert fake.calls[sid].account == ACME_SID  # the fake checked its auth token too
    # Its callbacks are signed with that account's token, and verified with it.
    assert await fake.call_status(sid, "in-progress") == NO_CONTENT
    await wait_for_status(ingress, call_id, "connected")


@pytest.mark.parametrize(
    ("settings", "overrides", "details"),
    [
        (
            TWILIO,
            {"twilio_accounts": {}},
            "the twilio carrier is not set up (its credentials are not set)",
        ),
        (
            {**TWILIO, "twilio": {"account": "globex"}},
            {},
            "no Twilio credentials for this tenant "
            "(TWILIO_ACCOUNT_SID_GLOBEX and TWILIO_AUTH_TOKEN_GLOBEX are not set)",
        ),
    ],
    ids=["no-credentials", "no-tenant-credentials"],
)
async def test_a_tenant_on_twilio_without_credentials_fails_its_calls_with_the_reason(
    ingress: TestClient[Any, Any],
    redis: Redis,
    fake: FakeTwilio,
    start_worker: StartWorker,
    settings: dict[str, Any],
    overrides: dict[str, Any],
    details: str,
) -> None:
    await start_worker(**overrides)
    await load_tenant(redis, settings=settings)
    call_id = (await outbound_call(ingress))["id"]
    failed = await wait_for_status(ingress, call_id, "failed")
    assert (failed["fail_reason"], failed["fail_details"]) == ("voip_conn_general", details)
    assert fake.calls == {}
    assert await held_calls(redis, 1) == 0


@pytest.mark.parametrize(
    ("status", "code", "fail_reason", "details"),
    [
        (400, 21211, "eu_wrong_number", "Twilio refused the call: HTTP 400, error 21211"),
        (400, 21210, "voip_conn_general", "Twilio refused the call: HTTP 400, error 21210"),
        (401, 20003, "voip_conn_general", "Twilio refused the call: HTTP 401, error 20003"),
        (429, 20429, "voip_conn_general", "Twilio refused the call: HTTP 429, error 20429"),
        (500, None, "voip_conn_general", "Twilio refused the call: HTTP 500"),
    ],
)
async def test_twilio_refusing_the_dial_fails_the_call_with_the_mapped_reason(
    ingress: TestClient[Any, Any],
    redis: Redis,
    fake: FakeTwilio,
    twilio_worker: Worker,
    status: int,
    code: int | None,
    fail_reason: str,
    details: str,
) -> None:
    """Refusals fail at once; 429 and 5xx are tried three times (Retry-After 0 here, so the
    pauses are the backoff's: 0.25 s and 0.5 s), then fail."""
    await load_tenant(redis, settings=TWILIO)
    fake.fail_next(status, code, times=3, retry_after="0")
    call_id = (await outbound_call(ingress))["id"]
    failed = await wait_for_status(ingress, call_id, "failed")
    assert (failed["fail_reason"], failed["fail_details"]) == (fail_reason, details)
    tries = 3 if status in {429, 500} else 1
    assert len(fake.failures) == 3 - tries
    assert fake.calls == {}
    assert await held_calls(redis, 1) == 0


async def test_a_dial_twilio_was_busy_for_is_tried_again(
    ingress: TestClient[Any, Any], redis: Redis, fake: FakeTwilio, twilio_worker: Worker
) -> None:
    await load_tenant(redis, settings=TWILIO)
    fake.fail_next(503, None, times=1, retry_after="0")
    fake.fail_next(429, 20429, times=1, retry_after="0")
    call_id = (await outbound_call(ingress))["id"]
    sid = await dialled(fake)
    assert await recorded(redis, call_id) == sid
    assert (fake.failures, len(fake.calls)) == ([], 1)
    assert (await get_call(ingress, call_id))["status"] == "connecting"


async def test_a_dial_whose_answer_was_lost_is_found_by_its_callback_and_not_repeated(
    ingress: TestClient[Any, Any], redis: Redis, fake: FakeTwilio, start_worker: StartWorker
) -> None:
    """Twilio placed the call but its answer never arrived (a timeout): the call's first
    callback names it, and the dial tried again finds it recorded."""
    await start_worker(twilio_timeout_s=0.3)
    await load_tenant(redis, settings=TWILIO)
    fake.stall_s = 1.0
    call_id = (await outbound_call(ingress))["id"]
    sid = await dialled(fake)
    assert await fake.call_status(sid, "initiated") == NO_CONTENT
    assert await recorded(redis, call_id) == sid
    await eventually(lambda: _no_jobs(redis), "the dial tried again", timeout=5)
    assert list(fake.calls) == [sid]
    assert fake.hangups == []
    assert await fake.call_status(sid, "in-progress") == NO_CONTENT
    await wait_for_status(ingress, call_id, "connected")


async def test_a_second_twilio_call_for_one_call_is_hung_up(
    ingress: TestClient[Any, Any], redis: Redis, fake: FakeTwilio, start_worker: StartWorker
) -> None:
    """The lost answer again, but its callback comes only after the repeated dial placed a
    second call: the first one recorded stays the call's, the other is hung up."""
    await start_worker(twilio_timeout_s=0.3)
    await load_tenant(redis, settings=TWILIO)
    fake.stall_s = 1.0
    call_id = (await outbound_call(ingress))["id"]
    first = await dialled(fake)
    second = await dialled(fake, 2)
    assert await recorded(redis, call_id) == second
    assert await fake.call_status(first, "ringing") == NO_CONTENT

    async def hung_up() -> list[str] | None:
        return [s for s, _ in fake.hangups] or None

    assert await eventually(hung_up, "the first call hung up") == [first]
    assert await fake.call_status(first, "canceled") == NO_CONTENT
    assert await fake.call_status(second, "in-progress") == NO_CONTENT
    await wait_for_status(ingress, call_id, "connected")
    assert await carrier_call_id(redis, call_id) == second


SESSION = {
    "chat_type": "Messaging (SMS)",
    "end_user_number": "+1 415-555-0100",
    "outbound_number": "+1 628-555-0199",
    "message": "Your technician is on the way.",
}


async def test_an_outbound_sms_is_sent_through_twilio_and_its_delivery_failures_counted(
    ingress: TestClient[Any, Any], redis: Redis, fake: FakeTwilio, twilio_worker: Worker
) -> None:
    await load_tenant(redis, settings=TWILIO)
    chat_id = (await post_json(ingress, f"{API}/sms", SESSION))["id"]

    sid = await eventually(lambda: _first(fake), "the message at the fake Twilio")
    message = fake.messages[sid]
    assert message.account == "AC" + "0123456789abcdef" * 2
    assert list(message.form.items()) == [
        ("To", "+14155550100"),
        ("From", "+16285550199"),
        ("Body", "Your technician is on the way."),
        ("StatusCallback", f"{PUBLIC_URL}/carrier/twilio/demo/messages/{chat_id}/status"),
    ]
    for status in ("queued", "sent", "delivered"):
        assert await fake.message_status(sid, status) == NO_CONTENT
    assert await redis.hgetall(TENANT.sms_delivery_failures) == {}
    for _ in range(2):  # counted once, however often Twilio reports it
        answer = await fake.message_status(sid, "undelivered", ErrorCode="30003")
        assert answer == NO_CONTENT
    assert await redis.hgetall(TENANT.sms_delivery_failures) == {b"undelivered": b"1"}


async def test_an_inbound_twilio_sms_keeps_the_session_and_an_opt_out_ends_it(
    ingress: TestClient[Any, Any], redis: Redis, fake: FakeTwilio, twilio_worker: Worker
) -> None:
    await load_tenant(redis, settings=TWILIO)
    chat_id = (await post_json(ingress, f"{API}/sms", SESSION))["id"]
    await eventually(lambda: _first(fake), "the message at the fake Twilio")
    url = f"{PUBLIC_URL}/carrier/twilio/demo/sms"

    def inbound(body: str) -> list[tuple[str, str]]:
        return [
            ("AccountSid", "AC" + "0123456789abcdef" * 2),
            ("Body", body),
            ("From", "+14155550100"),
            ("MessageSid", "SM" + "ab" * 16),
            ("NumMedia", "0"),
            ("To", "+16285550199"),
        ]

    empty_twiml = (200, '<?xml version="1.0" encoding="UTF-8"?><Response />')
    assert await fake.post(url, inbound("On my way"), AUTH_TOKEN) == empty_twiml
    forged = await fake.post(url, inbound("STOP"), "another-auth-token")
    assert forged == (403, '{"message":"Twilio signature is invalid"}')
    assert (await get_chat(ingress, chat_id))["status"] == "selecting"
    assert await fake.post(url, inbound("STOP"), AUTH_TOKEN) == empty_twiml
    assert (await get_chat(ingress, chat_id))["status"] == "finished"
    assert await redis.zscore(TENANT.do_not_contact, "+14155550100") is not None
    texts = [
        orjson.loads(m)["text"] for m in await redis.lrange(TENANT.chat_messages(chat_id), 0, -1)
    ]
    assert texts == ["Your technician is on the way.", "On my way", "STOP"]


async def _first(fake: FakeTwilio) -> str | None:
    return next(iter(fake.messages), None)


async def get_chat(client: TestClient[Any, Any], chat_id: int) -> dict[str, Any]:
    response = await client.get(f"{API}/chats/{chat_id}", headers=basic())
    assert response.status == 200
    chat: dict[str, Any] = await response.json()
    return chat
