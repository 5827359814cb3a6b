"""What a worker counts: jobs by function and result, carrier results, scheduled-fire
lateness, webhook failures by reason; and its heartbeat, from its first poll to its stop."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from arq import Retry, Worker
from redis.asyncio import Redis

from dispatcher.app import create_worker_app
from dispatcher.domain import clock
from dispatcher.metrics import Metrics
from dispatcher.settings import Settings
from dispatcher.store import heartbeats, keys
from tests.polling import eventually
from tests.ports import free_port
from tests.scrape import families, samples, value
from tests.workers.conftest import (
    API,
    load_tenant,
    outbound_call,
    post_json,
    stop_worker,
    wait_for_status,
)
from tests.workers.test_scheduling import STILL, schedule
from workers.settings import FUNCTIONS, WEBHOOK_FUNCTIONS, create_worker, measured
from workers.webhooks import failure_reason

JOBS = "dispatcher_worker_jobs_total"
BY_NAME = {function.name: function.coroutine for function in FUNCTIONS}
DELIVER_WEBHOOK = WEBHOOK_FUNCTIONS[0].coroutine


def _jobs(metrics: Metrics) -> dict[tuple[str, str], float]:
    return {
        (dict(labels)["function"], dict(labels)["result"]): count
        for (name, labels), count in samples(metrics.render().decode()).items()
        if name == JOBS
    }


async def _until_jobs(metrics: Metrics, expected: dict[tuple[str, str], float]) -> None:
    """A job is counted once it returns, a hair after what it wrote is visible."""

    async def probe() -> bool | None:
        return True if _jobs(metrics) == expected else None

    with contextlib.suppress(pytest.fail.Exception):
        await eventually(probe, f"jobs {expected}")
    assert _jobs(metrics) == expected


async def test_a_call_s_jobs_and_carrier_results_are_counted(
    client: TestClient[Any, Any], redis: Redis, worker: Worker
) -> None:
    await load_tenant(redis)
    call = await outbound_call(client)
    await wait_for_status(client, call["id"], "finished")
    metrics: Metrics = worker.ctx["metrics"]
    await _until_jobs(metrics, {("dial_outbound", "ok"): 1, ("carrier_result", "ok"): 2})
    text = metrics.render().decode()
    results = "dispatcher_carrier_results_total"
    assert value(text, results, carrier="simulated", outcome="answer") == 1
    assert value(text, results, carrier="simulated", outcome="completed") == 1
    assert value(text, "dispatcher_worker_jobs_in_progress") == 0


async def test_a_fired_scheduled_call_s_lateness_is_observed(
    client: TestClient[Any, Any], redis: Redis, worker: Worker
) -> None:
    await load_tenant(redis, menus={9: STILL})
    call = await schedule(client, after_s=0.3)
    await wait_for_status(client, call["id"], "queued")
    metrics: Metrics = worker.ctx["metrics"]
    await _until_jobs(metrics, {("fire_scheduled_call", "ok"): 1})
    text = metrics.render().decode()
    assert value(text, "dispatcher_scheduled_fire_lateness_seconds_count") == 1
    lateness = value(text, "dispatcher_scheduled_fire_lateness_seconds_sum")
    assert lateness is not None and 0 <= lateness < 5


@pytest.fixture
async def refusing_hook() -> AsyncIterator[str]:
    async def refuse(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=503)

    app = web.Application()
    app.router.add_post("/hook", refuse)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    yield str(server.make_url("/hook"))
    await server.close()


def _closed_url() -> str:
    return f"http://127.0.0.1:{free_port()}/hook"


async def test_webhook_failures_are_counted_by_reason_and_job_results_by_kind(
    client: TestClient[Any, Any],
    redis: Redis,
    webhook_context: dict[str, Any],
    refusing_hook: str,
) -> None:
    job_context, deliver = webhook_context, DELIVER_WEBHOOK
    for url in (refusing_hook, _closed_url()):
        await load_tenant(redis, settings={"webhook_url": url})
        job_context["directory"].forget()
        with pytest.raises(Retry):
            await deliver(job_context, "demo", 1, '{"type":"call.updated"}')
    await load_tenant(redis, settings={"carrier": "twilio"})  # no adapter for it here
    job_context["directory"].forget()
    sms = {
        "chat_type": "Messaging (SMS)",
        "end_user_number": "+1 415-555-0100",
        "outbound_number": "+1 628-555-0199",
        "message": "hello",
    }
    chat = await post_json(client, f"{API}/sms", sms)
    # Not sent (the tenant's carrier has no adapter here): the job ran to its end, an "ok".
    assert await BY_NAME["send_sms"](job_context, "demo", chat["id"]) == "not sent"
    with pytest.raises(TypeError):  # a job given arguments it cannot take is an "error"
        await BY_NAME["send_sms"](job_context, "demo")

    metrics: Metrics = job_context["metrics"]
    text = metrics.render().decode()
    failures = "dispatcher_webhook_failures_total"
    assert value(text, failures, reason="status_5xx") == 1
    assert value(text, failures, reason="connection") == 1
    assert _jobs(metrics) == {
        ("deliver_webhook", "retry"): 2,
        ("send_sms", "ok"): 1,
        ("send_sms", "error"): 1,
    }
    assert value(text, "dispatcher_worker_jobs_in_progress") == 0


def test_a_failed_delivery_s_reason_is_one_of_a_few_labels() -> None:
    assert failure_reason(aiohttp.ServerTimeoutError("read")) == "timeout"
    assert failure_reason(TimeoutError()) == "timeout"
    assert failure_reason(aiohttp.ServerDisconnectedError()) == "connection"
    assert failure_reason(aiohttp.InvalidURL("nope")) == "client_error"


async def test_a_cancelled_job_is_counted_as_cancelled(job_context: dict[str, Any]) -> None:
    async def hang(ctx: dict[str, Any], *args: Any) -> str:
        await asyncio.sleep(60)
        return "never"

    running = asyncio.create_task(measured("hang", hang)(job_context))
    await asyncio.sleep(0)
    metrics: Metrics = job_context["metrics"]
    assert value(metrics.render().decode(), "dispatcher_worker_jobs_in_progress") == 1
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert _jobs(metrics) == {("hang", "cancelled"): 1}
    assert value(metrics.render().decode(), "dispatcher_worker_jobs_in_progress") == 0


async def test_a_worker_beats_from_its_first_poll_and_leaves_when_stopped(
    redis_url: str, redis: Redis
) -> None:
    arq_worker = create_worker(redis_url, handle_signals=False, poll_delay=0.01)
    polling = asyncio.create_task(arq_worker.async_run())

    async def beating() -> list[bytes] | None:
        return await redis.zrange(keys.WORKERS, 0, -1) or None

    assert await eventually(beating, "a heartbeat") == [arq_worker.worker_id.encode()]
    host, pid, suffix = arq_worker.worker_id.split(":")
    assert (host, int(pid), len(suffix)) == (socket.gethostname(), os.getpid(), 8)
    await stop_worker(arq_worker, polling)
    assert await redis.zrange(keys.WORKERS, 0, -1) == []


async def test_a_worker_s_metrics_port_serves_its_metrics_health_and_readiness(
    settings: Settings, redis: Redis
) -> None:
    metrics = Metrics()
    metrics.job_started()
    metrics.job_ended("route_call", "ok")
    async with TestClient(TestServer(create_worker_app(settings, metrics))) as server:
        text = await (await server.get("/metrics")).text()
        assert value(text, JOBS, function="route_call", result="ok") == 1
        assert "dispatcher_calls" not in families(text)  # the API's scrape has the picture
        assert "dispatcher_workers_alive" not in families(text)
        healthz = await server.get("/healthz")
        assert (healthz.status, await healthz.json()) == (200, {"status": "ok"})
        ready = await server.get("/readyz")
        assert ready.status == 503  # no heartbeat yet: this worker has not polled
        await heartbeats.beat(redis, "w:1:x", clock.to_ms(clock.now()))
        ready = await server.get("/readyz")
        assert (ready.status, await ready.json()) == (
            200,
            {
                "status": "ready",
                "checks": {"redis": "ok", "workers": "ok", "postgres": "not configured"},
            },
        )
        assert (await server.get("/apps/api/v1/calls")).status == 404  # no API here
