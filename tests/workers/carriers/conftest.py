"""Fixtures of the Twilio tests: the fake Twilio, the ingress behind a pretend proxy at the
public URL, and workers with Twilio settings pointing at the fake."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from arq import Worker
from redis.asyncio import Redis

from dispatcher.app import create_app
from dispatcher.settings import Settings
from tests.conftest import ADMIN_TOKEN
from tests.polling import eventually
from tests.twilio_fake import ACCOUNT_SID, ACME_SID, ACME_TOKEN, AUTH_TOKEN, FakeTwilio
from tests.workers.conftest import TENANT, stop_worker
from workers.settings import create_worker
from workers.worker import DispatchWorker

# Where Twilio reaches the ingress: a proxy's host and path prefix, not the test server's.
PUBLIC_URL = "https://dispatch.example.com/dsp"
ACCOUNTS = {
    "": {"sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN},
    "ACME": {"sid": ACME_SID, "auth_token": ACME_TOKEN},
}
StartWorker = Callable[..., Awaitable[Worker]]


def twilio_settings(redis_url: str, api_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "redis_url": redis_url,
        "admin_token": ADMIN_TOKEN,
        "public_url": PUBLIC_URL,
        "twilio_api_url": api_url,
        "twilio_accounts": ACCOUNTS,
        **overrides,
    }
    return Settings(**values)


@pytest.fixture
async def fake() -> AsyncIterator[FakeTwilio]:
    twilio = FakeTwilio()
    twilio.api_url = await twilio.start()
    yield twilio
    await twilio.close()


@pytest.fixture
async def ingress(
    redis_url: str, redis: Redis, fake: FakeTwilio
) -> AsyncIterator[TestClient[Any, Any]]:
    settings = twilio_settings(redis_url, fake.api_url)
    async with TestClient(TestServer(create_app(settings))) as client:
        fake.proxy = (PUBLIC_URL, str(client.make_url("")).rstrip("/"))
        yield client


@pytest.fixture
async def start_worker(
    redis_url: str, redis: Redis, fake: FakeTwilio
) -> AsyncIterator[StartWorker]:
    """Starts a worker with the Twilio settings (and `overrides`); all stop at the end."""
    running: list[tuple[DispatchWorker, asyncio.Task[Any]]] = []

    async def start(**overrides: Any) -> Worker:
        settings = twilio_settings(redis_url, fake.api_url, **overrides)
        worker = create_worker(redis_url, handle_signals=False, poll_delay=0.01, settings=settings)
        running.append((worker, asyncio.create_task(worker.async_run())))
        return worker

    yield start
    for worker, task in running:
        await stop_worker(worker, task)


@pytest.fixture
async def twilio_worker(start_worker: StartWorker) -> Worker:
    return await start_worker()


async def carrier_call_id(redis: Redis, call_id: int) -> str | None:
    raw = await redis.hget(TENANT.call(call_id), "meta")
    meta = orjson.loads(raw) if raw else {}
    found = meta.get("carrier_call_id")
    return str(found) if found else None


async def recorded(redis: Redis, call_id: int) -> str:
    """Until the call's carrier call id is recorded."""

    async def probe() -> str | None:
        return await carrier_call_id(redis, call_id)

    return await eventually(probe, f"the carrier call id of call {call_id}")


async def dialled(fake: FakeTwilio, count: int = 1) -> str:
    """Until the fake has been asked for `count` calls; the last one's sid."""

    async def probe() -> str | None:
        return list(fake.calls)[-1] if len(fake.calls) >= count else None

    return await eventually(probe, f"{count} calls placed at the fake Twilio")
