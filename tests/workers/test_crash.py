"""A worker killed with SIGKILL mid-job: another worker takes over, and every call still
reaches its end exactly once (each transition applied once, every agent slot released)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from tests.conftest import basic, demo_document, load_directory
from tests.workers.conftest import CALLS, TENANT

pytestmark = pytest.mark.subprocess

BIN = Path(sys.executable).parent / "dispatcher"
AGENTS = list(range(100, 130))


def _start_worker(redis_url: str, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISPATCHER_")}
    env.update(REDIS_URL=redis_url, DISPATCHER_JOB_TIMEOUT_S="1", DISPATCHER_LOG_FORMAT="json")
    with log.open("ab") as out:
        return subprocess.Popen([str(BIN), "worker"], env=env, stdout=out, stderr=out)


async def _statuses(redis: Redis, call_ids: list[int]) -> list[str]:
    docs = [await redis.hget(TENANT.call(call_id), "status") for call_id in call_ids]
    return [doc.decode() if doc else "?" for doc in docs]


async def test_worker_killed_mid_job_loses_and_repeats_nothing(
    client: TestClient[Any, Any], redis: Redis, redis_url: str, tmp_path: Path
) -> None:
    document = demo_document()
    tenant = document["tenants"][0]
    tenant["settings"].update(
        calls_per_second=1000,
        simulator={"dial_latency_s": 0.3, "answer_after_s": 0.2, "talk_time_s": 0.3},
    )
    tenant["agents"] += [{"id": a, "email": f"crash{a}@somedomain.com"} for a in AGENTS]
    await load_directory(redis, document)
    pubsub = redis.pubsub()
    await pubsub.subscribe(TENANT.events)
    call_ids = []
    for agent in AGENTS:
        body = {
            "call_type": "Voice Outbound (API)",
            "agent_email": f"crash{agent}@somedomain.com",
            "end_user_number": "+1 859-657-9625",
        }
        response = await client.post(CALLS, json=body, headers=basic())
        assert response.status == 201
        call_ids.append((await response.json())["id"])

    first = _start_worker(redis_url, tmp_path / "worker.log")
    deadline = time.monotonic() + 15
    while "connecting" not in await _statuses(redis, call_ids):
        assert time.monotonic() < deadline, "the first worker never started dialling"
        await asyncio.sleep(0.01)
    first.send_signal(signal.SIGKILL)
    first.wait()
    at_kill = Counter(await _statuses(redis, call_ids))
    assert at_kill["finished"] < len(call_ids), at_kill

    second = _start_worker(redis_url, tmp_path / "worker.log")
    try:
        deadline = time.monotonic() + 40
        while set(await _statuses(redis, call_ids)) != {"finished"}:
            assert time.monotonic() < deadline, Counter(await _statuses(redis, call_ids))
            await asyncio.sleep(0.05)
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=20) == 0  # a graceful stop, after the kill of the first

    announced: Counter[tuple[int, str]] = Counter()
    quiet_until = time.monotonic() + 1.0  # read until the channel has been quiet for 1 s
    while time.monotonic() < quiet_until:
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
        if message is not None:
            call = orjson.loads(message["data"])["call"]
            announced[(call["id"], call["status"])] += 1
            quiet_until = time.monotonic() + 1.0
    await pubsub.unsubscribe()
    await pubsub.aclose()  # type: ignore[no-untyped-call]
    # Live events are sent after the write, so a kill in between can drop one; none repeats.
    assert max(announced.values()) == 1, announced
    for call_id in call_ids:
        stored = await redis.hgetall(TENANT.call(call_id))
        # created, connecting, carrier id recorded, connected, finished: each applied once.
        assert stored[b"rev"] == b"5", (call_id, stored[b"rev"])
        doc = orjson.loads(stored[b"doc"])
        assert doc["connected_at"] and doc["ends_at"] and doc["fail_reason"] == "nothing"
    for agent in AGENTS:
        assert await redis.hget(TENANT.agent(agent), "voice") == b"0"
