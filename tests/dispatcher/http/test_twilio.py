"""Twilio's callback routes on their own (no worker): signatures, refusals, and answers that
conform to the OpenAPI document. End to end with a fake Twilio: tests/workers/carriers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import structlog
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from dispatcher.app import create_app
from dispatcher.settings import Settings
from dispatcher.store import jobs
from tests.conftest import demo_document, load_directory
from tests.dispatcher.http.test_openapi import conforming
from tests.twilio_fake import ACCOUNT_SID, AUTH_TOKEN, signature

PUBLIC_URL = "https://dispatch.example.com"
CALL_SID = "CA" + "12" * 16
MESSAGE_SID = "SM" + "34" * 16
CALL_STATUS = "/carrier/twilio/{subdomain}/calls/{call_id}/status"
MESSAGE_STATUS = "/carrier/twilio/{subdomain}/messages/{chat_id}/status"
INBOUND = "/carrier/twilio/{subdomain}/sms"
INVALID = {"message": "Twilio signature is invalid"}
MISSING = {"message": "Twilio signature is missing"}
Form = list[tuple[str, str]]


def settings_for(redis_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "redis_url": redis_url,
        "public_url": PUBLIC_URL,
        "twilio_accounts": {"": {"sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN}},
        **overrides,
    }
    return Settings(**values)


@pytest.fixture
async def twilio_tenant(redis: Redis) -> None:
    document = demo_document()
    document["tenants"][0]["settings"]["carrier"] = "twilio"
    await load_directory(redis, document)


@pytest.fixture
async def ingress(redis_url: str, redis: Redis) -> AsyncIterator[TestClient[Any, Any]]:
    async with TestClient(TestServer(create_app(settings_for(redis_url)))) as client:
        yield client


async def signed_post(
    client: TestClient[Any, Any], path: str, form: Form, token: str = AUTH_TOKEN
) -> Any:
    headers = {"X-Twilio-Signature": signature(token, PUBLIC_URL + path, form)}
    return await client.post(path, data=form, headers=headers)


def call_form(status: str = "ringing", sid: str = CALL_SID) -> Form:
    return [("AccountSid", ACCOUNT_SID), ("CallSid", sid), ("CallStatus", status)]


async def test_a_signed_call_status_queues_its_result_once(
    ingress: TestClient[Any, Any], redis: Redis, twilio_tenant: None
) -> None:
    path = CALL_STATUS.format(subdomain="demo", call_id=7)
    for _ in range(2):
        response = await signed_post(ingress, path, call_form("in-progress"))
        assert response.status == 204
        assert await conforming(response, CALL_STATUS) is None
    job_id = f"carrier_result:demo:7:answer-{CALL_SID}"
    assert await redis.zrange(jobs.QUEUE_NAME, 0, -1) == [job_id.encode()]
    failed = call_form("failed") + [("SipResponseCode", "484")]
    assert (await signed_post(ingress, path, failed)).status == 204
    assert f"carrier_result:demo:7:wrong_number-{CALL_SID}".encode() in await redis.zrange(
        jobs.QUEUE_NAME, 0, -1
    )


@pytest.mark.parametrize(
    ("form", "call_id", "status", "body"),
    [
        (call_form("answered"), "7", 400, {"message": "CallStatus is invalid"}),
        (call_form(sid="CA123"), "7", 400, {"message": "CallSid is invalid"}),
        ([("CallSid", CALL_SID)], "7", 400, {"message": "CallStatus is invalid"}),
        (call_form(), "seven", 404, {"message": "Call not found"}),
    ],
)
async def test_signed_but_malformed_call_statuses_are_refused(
    ingress: TestClient[Any, Any],
    redis: Redis,
    twilio_tenant: None,
    form: Form,
    call_id: str,
    status: int,
    body: dict[str, str],
) -> None:
    path = CALL_STATUS.format(subdomain="demo", call_id=call_id)
    response = await signed_post(ingress, path, form)
    assert (response.status, await conforming(response, CALL_STATUS)) == (status, body)
    assert await redis.zcard(jobs.QUEUE_NAME) == 0


async def test_unsigned_and_missigned_callbacks_are_403_on_every_route(
    ingress: TestClient[Any, Any], redis: Redis, twilio_tenant: None
) -> None:
    forms = {
        CALL_STATUS: call_form(),
        MESSAGE_STATUS: [("MessageSid", MESSAGE_SID), ("MessageStatus", "failed")],
        INBOUND: [("From", "+14155550100"), ("Body", "STOP")],
    }
    for template, form in forms.items():
        path = template.format(subdomain="demo", call_id=1, chat_id=1)
        missing = await ingress.post(path, data=form)
        assert (missing.status, await conforming(missing, template)) == (403, MISSING)
        with structlog.testing.capture_logs() as logged:
            forged = await ingress.post(path, data=form, headers={"X-Twilio-Signature": "Zm9v"})
        assert (forged.status, await conforming(forged, template)) == (403, INVALID)
        assert "Zm9v" not in repr(logged) and AUTH_TOKEN not in repr(logged)
        other = await signed_post(ingress, path, form, token="someone-elses-token")
        assert (other.status, await conforming(other, template)) == (403, INVALID)
        # Signed for the tenant, sent for another (that tenant is unknown here).
        elsewhere = template.format(subdomain="acme", call_id=1, chat_id=1)
        sig = signature(AUTH_TOKEN, PUBLIC_URL + path, form)
        moved = await ingress.post(elsewhere, data=form, headers={"X-Twilio-Signature": sig})
        assert (moved.status, await conforming(moved, template)) == (403, INVALID)
    assert await redis.zcard(jobs.QUEUE_NAME) == 0
    assert not await redis.exists("dsp:t:{demo}:sms:do_not_contact")


@pytest.mark.parametrize(
    "overrides",
    [{"twilio_accounts": {}}, {"public_url": None}],
    ids=["no-credentials", "no-public-url"],
)
async def test_callbacks_cannot_be_verified_without_credentials_or_public_url(
    redis_url: str, redis: Redis, twilio_tenant: None, overrides: dict[str, Any]
) -> None:
    settings = settings_for(redis_url, **overrides)
    async with TestClient(TestServer(create_app(settings))) as client:
        path = CALL_STATUS.format(subdomain="demo", call_id=1)
        response = await signed_post(client, path, call_form())
        assert (response.status, await response.json()) == (403, INVALID)


async def test_the_inbound_sms_webhook_answers_empty_twiml_and_refuses_bad_fields(
    ingress: TestClient[Any, Any], redis: Redis, twilio_tenant: None
) -> None:
    path = INBOUND.format(subdomain="demo")
    taken = await signed_post(ingress, path, [("From", "+1 415-555-0100"), ("Body", "hi")])
    assert taken.status == 200
    assert await conforming(taken, INBOUND) is None
    assert await taken.text() == '<?xml version="1.0" encoding="UTF-8"?><Response />'
    cases = [
        ([("From", "somebody"), ("Body", "hi")], {"message": "From is invalid"}),
        ([("From", "+14155550100")], {"message": "Body is required"}),
        (
            [("From", "+14155550100"), ("Body", "x" * 1601)],
            {"message": "Body is too long (at most 1600 characters)"},
        ),
    ]
    for form, body in cases:
        refused = await signed_post(ingress, path, form)
        assert (refused.status, await conforming(refused, INBOUND)) == (400, body)


async def test_message_statuses_count_failures_once_per_message_and_status(
    ingress: TestClient[Any, Any], redis: Redis, twilio_tenant: None
) -> None:
    path = MESSAGE_STATUS.format(subdomain="demo", chat_id=3)
    reports = [("delivered", MESSAGE_SID), ("failed", MESSAGE_SID), ("failed", MESSAGE_SID)]
    reports += [("undelivered", MESSAGE_SID), ("failed", "SM" + "56" * 16)]
    for status, sid in reports:
        form = [("MessageSid", sid), ("MessageStatus", status), ("ErrorCode", "30005")]
        response = await signed_post(ingress, path, form)
        assert response.status == 204
        assert await conforming(response, MESSAGE_STATUS) is None
    assert await redis.hgetall("dsp:t:{demo}:sms:delivery_failures") == {
        b"failed": b"2",
        b"undelivered": b"1",
    }
    bad_sid = await signed_post(ingress, path, [("MessageSid", "x"), ("MessageStatus", "sent")])
    assert (bad_sid.status, await bad_sid.json()) == (400, {"message": "MessageSid is invalid"})
    no_chat = MESSAGE_STATUS.format(subdomain="demo", chat_id="x")
    missing = await signed_post(ingress, no_chat, [("MessageSid", MESSAGE_SID)])
    assert (missing.status, await missing.json()) == (404, {"message": "Chat not found"})


async def test_a_body_that_is_no_form_is_400(
    ingress: TestClient[Any, Any], redis: Redis, twilio_tenant: None
) -> None:
    path = CALL_STATUS.format(subdomain="demo", call_id=1)
    headers = {
        "X-Twilio-Signature": "Zm9v",
        "Content-Type": "application/x-www-form-urlencoded",
    }
    response = await ingress.post(path, data=b"CallStatus=\xff\xfe", headers=headers)
    assert (response.status, await response.json()) == (
        400,
        {"message": "Request body is not a valid form"},
    )
