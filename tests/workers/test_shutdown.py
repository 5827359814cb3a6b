"""`dispatcher worker` on SIGTERM: it starts no new job, lets the running one finish within the
grace period (DISPATCHER_SHUTDOWN_GRACE_S) or hands it back to the queue at once, and exits 0."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from arq.constants import in_progress_key_prefix, result_key_prefix
from redis.asyncio import Redis

from dispatcher.store.jobs import QUEUE_NAME
from tests.chaos.harness import running
from tests.conftest import demo_document, load_directory
from tests.polling import eventually
from tests.workers.conftest import TENANT, outbound_call

pytestmark = pytest.mark.subprocess


async def _load_demo(redis: Redis, dial_latency_s: float) -> None:
    document = demo_document()
    document["tenants"][0]["settings"]["simulator"] = {
        "dial_latency_s": dial_latency_s,
        "answer_after_s": 0,
        "talk_time_s": 0.05,
    }
    await load_directory(redis, document)


async def _status_is(redis: Redis, call_id: int, status: str) -> bool:
    stored: bytes | None = await redis.hget(TENANT.call(call_id), "status")
    return stored == status.encode()


async def test_sigterm_lets_the_running_job_finish_and_starts_no_other(
    client: TestClient[Any, Any], redis: Redis, redis_url: str, tmp_path: Path
) -> None:
    await _load_demo(redis, dial_latency_s=2)
    call_id = (await outbound_call(client))["id"]
    async with running(tmp_path, redis_url, DISPATCHER_SHUTDOWN_GRACE_S="10") as system:
        await system.worker("worker")
        # The dial job set the call connecting and now waits 2 s on the carrier.
        await eventually(lambda: _status_is(redis, call_id, "connecting"), "the dial to start", 10)
        assert await system.stop("worker") == 0
    # The dial ran to its end: connecting, then the carrier's call id recorded (rev 3) ...
    assert await redis.hget(TENANT.call(call_id), "rev") == b"3"
    assert await redis.exists(f"{result_key_prefix}dial_outbound:demo:{call_id}")
    # ... and the carrier's answer, queued as it ended, was left for another worker.
    assert await redis.zscore(QUEUE_NAME, f"carrier_result:demo:{call_id}:answer") is not None
    assert await _status_is(redis, call_id, "connecting")


async def test_sigterm_hands_back_a_job_that_outlives_the_grace_period(
    client: TestClient[Any, Any], redis: Redis, redis_url: str, tmp_path: Path
) -> None:
    await _load_demo(redis, dial_latency_s=8)
    call_id = (await outbound_call(client))["id"]
    job_id = f"dial_outbound:demo:{call_id}"
    async with running(tmp_path, redis_url, DISPATCHER_SHUTDOWN_GRACE_S="0.5") as system:
        await system.worker("first")
        await eventually(lambda: _status_is(redis, call_id, "connecting"), "the dial to start", 10)
        stopping = time.monotonic()
        assert await system.stop("first") == 0
        assert time.monotonic() - stopping < 5  # the dial would have taken 8 s
        # Handed back: still queued, due now, and no in-progress key holding it for 30 s.
        score = await redis.zscore(QUEUE_NAME, job_id)
        assert score is not None and score <= time.time() * 1000
        assert not await redis.exists(in_progress_key_prefix + job_id)
        assert await redis.hget(TENANT.call(call_id), "rev") == b"2"  # no carrier id yet

        await _load_demo(redis, dial_latency_s=0)
        await system.worker("second")
        await eventually(lambda: _status_is(redis, call_id, "finished"), "the call to finish", 10)
        assert await system.stop("second") == 0
