"""A worker killed with SIGKILL in the middle of routing a load of inbound calls (offers,
accepts, dials), with jobs in flight: its replacement takes over, and every call still ends
once, none assigned twice, none lost. The killed worker's jobs come back when their in-progress
keys expire (job timeout + 10 s, ARQ), so this one takes a while even at its small size.

tests/workers/test_crash.py is the quick version (30 outbound calls, one kill mid-dial)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from arq.constants import in_progress_key_prefix
from redis.asyncio import Redis

from tests.chaos.harness import (
    CHAOS,
    TERMINAL,
    CallEvents,
    Load,
    accepting_agents,
    all_ended,
    check_each_call_ended_once,
    directory,
    report,
    running,
    sized,
    statuses,
    stored_call_ids,
)
from tests.conftest import load_directory
from tests.polling import eventually

AGENTS = 40


async def _in_progress(redis: Redis) -> list[bytes]:
    keys: list[bytes] = await redis.keys(in_progress_key_prefix + "*")
    return keys


async def _any_in_progress(redis: Redis) -> bool:
    return bool(await _in_progress(redis))


@pytest.mark.skipif(not CHAOS, reason="make chaos (tests/workers/test_crash.py is quick)")
async def test_worker_killed_mid_routing_loses_and_repeats_nothing(
    redis: Redis, redis_url: str, tmp_path: Path
) -> None:
    await load_directory(redis, directory(AGENTS, dial_latency_s=0.5))
    total, kills = sized(120, 1_000), sized(1, 3)
    started = time.monotonic()
    orphaned, unended = [], []
    async with (
        running(tmp_path, redis_url, DISPATCHER_JOB_TIMEOUT_S="1") as system,
        accepting_agents(redis_url, AGENTS),
        CallEvents(redis) as events,
    ):
        port = await system.serve()
        await system.worker("worker-0")
        async with Load(port, rate=sized(60, 150), total=total) as load:
            for kill in range(kills):
                mark = total * (kill + 1) // (kills + 1)
                await eventually(lambda m=mark: len(load.created) >= m, "calls created", 60)
                # One worker runs, so every in-progress job is the one about to be killed.
                await eventually(lambda: _any_in_progress(redis), "a job in progress", 10)
                await system.kill(f"worker-{kill}")
                orphaned.append(len(await _in_progress(redis)))
                now = await statuses(redis, load.created)
                unended.append(sum(status not in TERMINAL for status in now))
                await system.worker(f"worker-{kill + 1}")
            await load.done()
        await all_ended(redis, load.created, timeout=sized(40, 120))
    assert all(orphaned), orphaned  # each kill left jobs behind, in the middle of routing
    assert sorted(await stored_call_ids(redis)) == sorted(load.created)
    assert load.statuses() == {201: total}
    # A kill between a write and its announcement may drop the announcement: lossless=False.
    ended = await check_each_call_ended_once(redis, load.created, AGENTS, events, lossless=False)
    report(
        "worker SIGKILL mid-routing",
        calls=total,
        kills=kills,
        jobs_orphaned_per_kill=orphaned,
        calls_not_ended_per_kill=unended,
        ended=dict(ended),
        lost=0,
        twice=0,
        seconds=round(time.monotonic() - started, 1),
    )
