"""Worker-side fixtures: a live ARQ worker on the test Redis, fast tenant timings, and helpers
that drive the system through the HTTP API and wait by bounded polling."""

from __future__ import annotations

import asyncio
import contextlib
import time
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar, cast

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from arq import Worker
from arq.constants import result_key_prefix
from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from dispatcher.store.keys import TenantKeys
from tests.conftest import basic, demo_document, load_directory
from tests.polling import eventually
from workers.settings import (
    create_worker,
    shutdown,
    startup,
    webhook_shutdown,
    webhook_startup,
)
from workers.worker import DispatchWorker

API = "/apps/api/v1"
CALLS = f"{API}/calls"
TENANT = TenantKeys("demo")
OFFER_GONE = {"message": "Offer is no longer available"}
TERMINAL = {"finished", "failed"}

# Menus added to the demo tenant for the worker tests.
MULTICAST_MENU = 60  # ivr_menu, multicast, one group of the ten extra agents
SOLO_MENU = 61  # ivr_menu, multicast, one group: agent 1 (Admin) alone
EXTRA_AGENTS = list(range(10, 20))

T = TypeVar("T")


@pytest.fixture
async def worker(redis_url: str, redis: Redis) -> AsyncIterator[Worker]:
    """An ARQ worker with the production settings, polling every 10 ms, on the flushed Redis."""
    arq_worker = create_worker(redis_url, handle_signals=False, poll_delay=0.01)
    task = asyncio.create_task(arq_worker.async_run())
    yield arq_worker
    await stop_worker(arq_worker, task)


async def stop_worker(arq_worker: DispatchWorker, polling: asyncio.Task[Any]) -> None:
    """Stops a worker started with `async_run()` in a task, and closes it."""
    # No new job first, and one poll to see it: cancelled while starting a job, ARQ's WATCH
    # pipeline can be left holding its connection (a ResourceWarning when collected).
    arq_worker.stop_taking_jobs()
    await asyncio.sleep(arq_worker.poll_delay_s * 2)
    polling.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await polling
    # Let jobs in flight finish (they are short), so close() neither cancels nor re-raises.
    await asyncio.gather(*arq_worker.tasks.values(), return_exceptions=True)
    await close_worker(arq_worker)


async def close_worker(arq_worker: Worker) -> None:
    with warnings.catch_warnings():
        # ARQ closes its pool with redis-py's deprecated close(); not this project's code.
        warnings.filterwarnings("ignore", "Call to deprecated close", DeprecationWarning)
        await arq_worker.close()


@pytest.fixture
async def job_context(redis: Redis) -> AsyncIterator[dict[str, Any]]:
    """The ctx a job gets, built by the worker's own startup (closed by its shutdown)."""
    ctx: dict[str, Any] = {"redis": redis, "job_try": 1}
    await startup(ctx)
    yield ctx
    await shutdown(ctx)


@pytest.fixture
async def webhook_context(job_context: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
    """job_context with what the webhook lane's startup adds (its HTTP session and state),
    for a delivery of the demo tenant's call 1."""
    job_context["job_id"] = "deliver_webhook:demo:1:call-1"
    await webhook_startup(job_context)
    yield job_context
    await webhook_shutdown(job_context)


def tenant_document(
    *,
    settings: dict[str, Any] | None = None,
    menus: dict[int, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The demo directory with fast simulator and routing timings, ten extra agents (10..19,
    English only) and two extra menus; `settings` and `menus` (by id) override fields."""
    document = demo_document()
    tenant = document["tenants"][0]
    tenant["settings"]["simulator"] = {"answer_after_s": 0.05, "talk_time_s": 0.1, "rules": []}
    tenant["settings"].update(settings or {})
    tenant["agents"] += [
        {"id": agent_id, "email": f"agent{agent_id}@somedomain.com", "first_name": f"A{agent_id}"}
        for agent_id in EXTRA_AGENTS
    ]
    fast = {"cascade_interval_s": 0.3, "offer_timeout_s": 0.5, "max_wait_s": 0.8}
    for menu in tenant["menus"]:
        menu.update(fast)
    tenant["menus"] += [
        {"id": MULTICAST_MENU, "name": "Race", "type": "ivr_menu", "routing": "multicast",
         "groups": [EXTRA_AGENTS], **fast},
        {"id": SOLO_MENU, "name": "Solo", "type": "ivr_menu", "routing": "multicast",
         "groups": [[1]], **fast},
    ]  # fmt: skip
    for menu in tenant["menus"]:
        menu.update((menus or {}).get(menu["id"], {}))
    return document


async def load_tenant(
    redis: Redis,
    *,
    settings: dict[str, Any] | None = None,
    menus: dict[int, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    document = tenant_document(settings=settings, menus=menus)
    await load_directory(redis, document)
    return document


async def get_json(client: TestClient[Any, Any], path: str, status: int = 200) -> Any:
    response = await client.get(path, headers=basic())
    assert response.status == status, await response.text()
    return await response.json()


async def post_json(
    client: TestClient[Any, Any], path: str, body: Any = None, status: int = 200
) -> Any:
    response = await client.post(path, json=body if body is not None else {}, headers=basic())
    assert response.status == status, await response.text()
    return await response.json()


async def get_call(client: TestClient[Any, Any], call_id: int) -> dict[str, Any]:
    call: dict[str, Any] = await get_json(client, f"{CALLS}/{call_id}")
    return call


async def wait_for_status(
    client: TestClient[Any, Any], call_id: int, status: str, timeout: float = 5
) -> dict[str, Any]:
    """Polls GET /calls/{id} until the call has `status`; fails with the last seen object (and
    at once if the call ended in another status)."""
    seen: list[dict[str, Any]] = []

    async def probe() -> dict[str, Any] | None:
        call = await get_call(client, call_id)
        seen.append(call)
        if call["status"] in TERMINAL and call["status"] != status:
            pytest.fail(f"call {call_id} ended {call['status']} while waiting for {status}: {call}")
        return call if call["status"] == status else None

    return await eventually(probe, lambda: f"call {call_id} {status}: {seen[-1]}", timeout)


async def offers_of(client: TestClient[Any, Any], agent_id: int) -> list[dict[str, Any]]:
    offers: list[dict[str, Any]] = await get_json(client, f"{API}/agents/{agent_id}/offers")
    return offers


async def wait_for_offer(
    client: TestClient[Any, Any], agent_id: int, call_id: int, timeout: float = 5
) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        found = [o for o in await offers_of(client, agent_id) if o["call_id"] == call_id]
        return found[0] if found else None

    return await eventually(probe, f"an offer of call {call_id} to agent {agent_id}", timeout)


async def wait_for_job(redis: Redis, job_id: str, timeout: float = 5) -> None:
    """Until ARQ has stored the result of `job_id` (the job ran to its end)."""

    async def probe() -> bool | None:
        return True if await redis.exists(result_key_prefix + job_id) else None

    await eventually(probe, f"job {job_id} to complete", timeout)


async def inbound_call(
    client: TestClient[Any, Any], menu_id: int, lang: str = "en", number: str = "+1 205-123-4567"
) -> dict[str, Any]:
    body = {
        "call_type": "Voice Inbound (API)",
        "menu_id": menu_id,
        "end_user_number": number,
        "lang": lang,
    }
    call: dict[str, Any] = await post_json(client, CALLS, body, status=201)
    assert call["status"] == "queued"
    return call


async def outbound_call(
    client: TestClient[Any, Any],
    agent_email: str = "admin@somedomain.com",
    number: str = "+1 859-657-9625",
    status: int = 201,
) -> dict[str, Any]:
    body = {
        "call_type": "Voice Outbound (API)",
        "agent_email": agent_email,
        "end_user_number": number,
    }
    call: dict[str, Any] = await post_json(client, CALLS, body, status=status)
    return call


async def next_event(pubsub: PubSub) -> Any:
    """The next message published on `pubsub`'s channels, decoded; the first read after a
    subscription may be its confirmation, which is skipped."""
    for _ in range(3):
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=2)
        if message is not None:
            return orjson.loads(message["data"])
    raise AssertionError("no event published")


class CallEvents:
    """Records the tenant's announced call events (the pub/sub channel every stored transition
    is announced on), with the monotonic time each arrived: orders of states, not guesses."""

    def __init__(self, redis: Redis) -> None:
        self._pubsub: PubSub = redis.pubsub()
        self._stack = contextlib.AsyncExitStack()
        self._task: asyncio.Task[None] | None = None
        self.seen: list[tuple[float, dict[str, Any]]] = []

    async def __aenter__(self) -> CallEvents:
        await self._stack.enter_async_context(self._pubsub)  # closed on exit
        await self._pubsub.subscribe(TENANT.events)
        self._task = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._pubsub.unsubscribe()
        await self._stack.aclose()

    async def _read(self) -> None:
        while True:
            message = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
            if message is None:
                continue
            event = orjson.loads(message["data"])
            if event.get("type") == "call.updated":
                self.seen.append((time.monotonic(), event["call"]))

    def statuses(self, call_id: int) -> list[str]:
        return [str(call["status"]) for _, call in self.seen if call["id"] == call_id]

    def first_time(self, call_id: int, status: str) -> float:
        return next(
            at for at, call in self.seen if call["id"] == call_id and call["status"] == status
        )

    async def wait_until(self, call_id: int, status: str, timeout: float = 5) -> list[str]:
        async def probe() -> list[str] | None:
            statuses = self.statuses(call_id)
            return statuses if status in statuses else None

        return await eventually(probe, f"call {call_id} announced {status}", timeout)


async def held_calls(redis: Redis, agent_id: int) -> int:
    raw = await cast(Awaitable[bytes | None], redis.hget(TENANT.agent(agent_id), "voice"))
    return int(raw or 0)


@contextlib.asynccontextmanager
async def hook_server(
    handle: Callable[[web.Request], Awaitable[web.Response]],
) -> AsyncIterator[str]:
    """A local webhook receiver: `handle` answers POST /hook; yields its URL."""
    app = web.Application()
    app.router.add_post("/hook", handle)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    try:
        yield str(server.make_url("/hook"))
    finally:
        await server.close()
