"""The ingress killed with SIGKILL under load: every create it acknowledged (201) is stored with
its routing job queued, and no call is stored without its job, because the record and the job
are written by one Lua script."""

from __future__ import annotations

import time
from pathlib import Path

from redis.asyncio import Redis

from tests.chaos.harness import (
    KEYS,
    Load,
    directory,
    report,
    running,
    sized,
    stored_call_ids,
)
from tests.conftest import load_directory
from tests.polling import eventually

QUEUE = "arq:queue"


async def _jobs_queued(redis: Redis, call_ids: list[int]) -> list[int]:
    """The calls whose route_call job is queued (score in the queue, job body stored)."""
    queued = []
    for call_id in call_ids:
        job_id = f"route_call:{KEYS.subdomain}:{call_id}"
        if await redis.zscore(QUEUE, job_id) is not None and await redis.exists(
            f"arq:job:{job_id}"
        ):
            queued.append(call_id)
    return queued


async def test_killed_ingress_loses_no_acknowledged_call(
    redis: Redis, redis_url: str, tmp_path: Path
) -> None:
    await load_directory(redis, directory())
    kills, per_kill = sized(2, 10), sized(150, 1_000)
    acknowledged: list[int] = []
    cut = answered = 0
    started = time.monotonic()
    # No worker runs: every job must still be in the queue at the end.
    async with running(tmp_path, redis_url) as system:
        for _ in range(kills):
            port = await system.serve()
            async with Load(port, rate=100_000, total=10**9, concurrency=32) as load:
                await eventually(
                    lambda: len(load.created) >= per_kill, "creates before the kill", 60
                )
                await system.kill("serve")
            acknowledged += load.created
            statuses = load.statuses()
            cut += statuses.pop(0, 0)
            answered += sum(statuses.values())
            assert set(statuses) == {201}, statuses

    stored = await stored_call_ids(redis)
    lost = sorted(set(acknowledged) - set(stored))
    assert lost == []
    assert len(set(acknowledged)) == len(acknowledged)
    assert sorted(await _jobs_queued(redis, acknowledged)) == sorted(acknowledged)
    # Calls stored but never acknowledged (the answer was cut) have their job too.
    assert sorted(await _jobs_queued(redis, stored)) == sorted(stored)
    report(
        "ingress SIGKILL",
        kills=kills,
        acknowledged=len(acknowledged),
        stored=len(stored),
        stored_unacknowledged=len(stored) - len(acknowledged),
        no_answer=cut,  # cut mid-request, or refused once the process was gone
        lost=len(lost),
        without_job=len(stored) - len(await _jobs_queued(redis, stored)),
        seconds=round(time.monotonic() - started, 1),
    )
    assert answered >= kills * per_kill
