"""Webhooks: every announced call change is delivered, signed, and retried until accepted."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from arq import Retry, Worker
from redis.asyncio import Redis
from structlog.testing import capture_logs

from dispatcher.domain import clock
from dispatcher.domain.destinations import destination
from dispatcher.settings import Settings
from tests.polling import eventually
from tests.scrape import value
from tests.workers.conftest import (
    API,
    SOLO_MENU,
    get_call,
    hook_server,
    inbound_call,
    load_tenant,
    post_json,
    wait_for_offer,
    wait_for_status,
)
from workers.settings import WEBHOOK_FUNCTIONS
from workers.webhooks import signature, webhook_session

SECRET = "s3cret"
DELIVER = WEBHOOK_FUNCTIONS[0].coroutine
FAILURES = "dispatcher_webhook_failures_total"


@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes

    @property
    def event(self) -> dict[str, Any]:
        event: dict[str, Any] = orjson.loads(self.body)
        return event


@dataclass
class Receiver:
    """A tenant's webhook endpoint: records every request; answers 500 to the first `fail`."""

    url: str = ""
    fail: int = 0
    received: list[Delivery] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append(Delivery(dict(request.headers), await request.read()))
        return web.Response(status=500 if len(self.received) <= self.fail else 200)

    async def count(self, n: int, timeout: float) -> list[Delivery]:
        async def probe() -> list[Delivery] | None:
            return list(self.received) if len(self.received) >= n else None

        return await eventually(probe, f"{n} webhook deliveries", timeout)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    hooks = Receiver()
    async with hook_server(hooks.handle) as hooks.url:
        yield hooks


def assert_signed(delivery: Delivery) -> None:
    timestamp = delivery.headers["X-Signature-Timestamp"]
    assert timestamp.isdigit()
    expected = hmac.new(
        SECRET.encode(), timestamp.encode() + b"." + delivery.body, hashlib.sha256
    ).hexdigest()
    assert delivery.headers["X-Signature"] == expected
    assert signature(SECRET, timestamp, delivery.body) == expected
    assert delivery.headers["Content-Type"] == "application/json"


@pytest.mark.slow
async def test_a_refused_event_is_retried_and_every_delivery_is_signed(
    client: TestClient[Any, Any], redis: Redis, worker: Worker, receiver: Receiver
) -> None:
    receiver.fail = 1
    settings = {"webhook_url": receiver.url, "webhook_secret": SECRET}
    await load_tenant(redis, settings=settings, menus={51: {"max_wait_s": 0.3}})
    call_id = (await inbound_call(client, 51))["id"]  # multicast: one change, its expiry
    expired = await wait_for_status(client, call_id, "failed")
    assert expired["fail_reason"] == "expired"

    # ARQ defers the first retry by 2 s.
    first, retried = await receiver.count(2, timeout=10)
    for delivery in (first, retried):
        assert_signed(delivery)
    assert retried.body == first.body
    assert first.event == {"type": "call.updated", "call": expired}
    assert first.event["call"] == await get_call(client, call_id)
    assert len(receiver.received) == 2


async def test_each_change_of_a_call_reaches_the_webhook_once(
    client: TestClient[Any, Any], redis: Redis, worker: Worker, receiver: Receiver
) -> None:
    settings = {"webhook_url": receiver.url, "webhook_secret": SECRET}
    await load_tenant(redis, settings=settings, menus={SOLO_MENU: {"offer_timeout_s": 5}})
    call_id = (await inbound_call(client, SOLO_MENU))["id"]
    offer = await wait_for_offer(client, 1, call_id)
    await post_json(client, f"{API}/offers/{offer['id']}/accept")
    finished = await wait_for_status(client, call_id, "finished")

    deliveries = await receiver.count(4, timeout=5)
    for delivery in deliveries:
        assert_signed(delivery)
        assert delivery.event["type"] == "call.updated"
        assert delivery.event["call"]["id"] == call_id
    statuses = sorted(d.event["call"]["status"] for d in deliveries)
    assert statuses == ["assigned", "connected", "connecting", "finished"]
    last = next(d for d in deliveries if d.event["call"]["status"] == "finished")
    assert last.event["call"] == finished


async def test_without_a_secret_events_are_sent_unsigned(
    client: TestClient[Any, Any], redis: Redis, worker: Worker, receiver: Receiver
) -> None:
    await load_tenant(
        redis, settings={"webhook_url": receiver.url}, menus={51: {"max_wait_s": 0.2}}
    )
    call_id = (await inbound_call(client, 51))["id"]
    expired = await wait_for_status(client, call_id, "failed")
    [delivery] = await receiver.count(1, timeout=5)
    assert "X-Signature" not in delivery.headers
    assert delivery.headers["X-Signature-Timestamp"].isdigit()
    assert delivery.event == {"type": "call.updated", "call": expired}


async def test_a_finished_sms_session_reaches_the_webhook(
    client: TestClient[Any, Any], redis: Redis, worker: Worker, receiver: Receiver
) -> None:
    await load_tenant(redis, settings={"webhook_url": receiver.url, "webhook_secret": SECRET})
    sms = {
        "chat_type": "Messaging (SMS)",
        "end_user_number": "+1 415-555-0100",
        "outbound_number": "+1 628-555-0199",
        "message": "hello",
    }
    chat = await post_json(client, f"{API}/sms", sms)
    ended = await post_json(client, f"{API}/chats/{chat['id']}/finish")
    assert ended["status"] == "finished"
    [delivery] = await receiver.count(1, timeout=5)
    assert_signed(delivery)
    assert delivery.event == {"type": "chat.updated", "chat": ended}


@pytest.fixture
async def redirecting(receiver: Receiver) -> AsyncIterator[str]:
    """A webhook that answers 307 to `receiver`: a re-POST there would carry the signature."""

    async def handle(request: web.Request) -> web.Response:
        raise web.HTTPTemporaryRedirect(receiver.url)

    async with hook_server(handle) as url:
        yield url


def _failures(context: dict[str, Any], reason: str) -> float | None:
    return value(context["metrics"].render().decode(), FAILURES, reason=reason)


async def test_a_redirect_is_not_followed_and_counts_as_a_failed_delivery(
    redis: Redis, webhook_context: dict[str, Any], receiver: Receiver, redirecting: str
) -> None:
    await load_tenant(redis, settings={"webhook_url": redirecting, "webhook_secret": SECRET})
    with pytest.raises(Retry):
        await DELIVER(webhook_context, "demo", 1, '{"type":"call.updated"}')
    assert receiver.received == []
    assert _failures(webhook_context, "status_3xx") == 1


async def test_a_name_resolving_to_loopback_is_refused_as_it_connects(
    redis: Redis, webhook_context: dict[str, Any], receiver: Receiver
) -> None:
    # The suite allows 127.0.0.0/8 (tests/conftest.py); a worker with the default refuses it.
    await webhook_context["webhook_http"].close()
    strict = Settings(webhook_allowed_networks=())
    webhook_context["settings"] = strict
    webhook_context["webhook_http"] = webhook_session(strict)
    by_name = receiver.url.replace("127.0.0.1", "localhost")  # passes the load: a name
    await load_tenant(redis, settings={"webhook_url": by_name + "?token=t0ps3cret"})
    with capture_logs() as logs, pytest.raises(Retry):
        await DELIVER(webhook_context, "demo", 1, '{"type":"call.updated"}')
    assert receiver.received == []
    assert _failures(webhook_context, "refused") == 1
    port = by_name.split(":")[2].split("/")[0]
    [failed] = [line for line in logs if line["event"] == "webhook failed"]
    assert failed["destination"] == f"localhost:{port}"
    assert "t0ps3cret" not in str(logs)


async def test_a_literal_refused_address_is_not_called_at_all(
    redis: Redis, webhook_context: dict[str, Any], receiver: Receiver
) -> None:
    # A directory loaded with 127.0.0.0/8 allowed, delivered by a worker that allows none.
    await load_tenant(redis, settings={"webhook_url": receiver.url})
    webhook_context["settings"] = Settings(webhook_allowed_networks=())
    with pytest.raises(Retry):
        await DELIVER(webhook_context, "demo", 1, '{"type":"call.updated"}')
    assert receiver.received == []
    assert _failures(webhook_context, "refused") == 1


async def test_a_delivery_held_back_over_an_hour_gives_up(
    redis: Redis, webhook_context: dict[str, Any], receiver: Receiver
) -> None:
    """Deferrals count no try; a destination that stays down must not keep its events in
    Redis for ever."""
    await load_tenant(redis, settings={"webhook_url": receiver.url})
    lane = webhook_context["webhook_lane"]
    for _ in range(webhook_context["settings"].webhook_breaker_failures):
        lane.record(destination(receiver.url), delivered=False)  # its circuit is open
    webhook_context["enqueue_time"] = clock.now() - timedelta(minutes=59)
    with pytest.raises(Retry):
        await DELIVER(webhook_context, "demo", 1, '{"type":"call.updated"}')
    webhook_context["enqueue_time"] = clock.now() - timedelta(minutes=61)
    outcome = await DELIVER(webhook_context, "demo", 1, '{"type":"call.updated"}')
    assert outcome == "gave up: held back over 3600 s"
    assert receiver.received == []
    assert _failures(webhook_context, "held_too_long") == 1
