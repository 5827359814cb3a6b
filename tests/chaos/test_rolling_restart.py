"""A rolling restart of the workers under load: three `dispatcher worker` processes, restarted
one at a time with SIGTERM while calls are being created. Every worker exits 0, and every call
ends exactly once. With a grace period the jobs in flight finish; with none they are handed
back and another worker runs them at once."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from redis.asyncio import Redis

from tests.chaos.harness import (
    CallEvents,
    Load,
    accepting_agents,
    all_ended,
    check_each_call_ended_once,
    directory,
    report,
    running,
    sized,
    stored_call_ids,
    worker_stops,
)
from tests.conftest import load_directory
from tests.polling import eventually

AGENTS, WORKERS = 40, 3


@pytest.mark.parametrize(("mode", "grace_s"), [("finish", "15"), ("hand back", "0")])
async def test_rolling_restart_of_workers_loses_nothing(
    mode: str, grace_s: str, redis: Redis, redis_url: str, tmp_path: Path
) -> None:
    # Each dial takes 0.2 s, so every worker holds jobs in flight when it is told to stop.
    await load_directory(redis, directory(AGENTS, dial_latency_s=0.2))
    total, restarts = sized(150, 1_000), sized(3, 9)
    started = time.monotonic()
    exit_codes = []
    async with (
        running(tmp_path, redis_url, DISPATCHER_SHUTDOWN_GRACE_S=grace_s) as system,
        accepting_agents(redis_url, AGENTS),
        CallEvents(redis) as events,
    ):
        port = await system.serve()
        for n in range(WORKERS):
            await system.worker(f"worker-{n}")
        async with Load(port, rate=sized(60, 100), total=total) as load:
            for restart in range(restarts):
                mark = total * (restart + 1) // (restarts + 1)
                await eventually(lambda m=mark: len(load.created) >= m, "calls created", 60)
                name = f"worker-{restart % WORKERS}"
                exit_codes.append(await system.stop(name))
                await system.worker(name)
            await load.done()
        await all_ended(redis, load.created, timeout=sized(30, 120))
    assert exit_codes == [0] * restarts
    assert sorted(await stored_call_ids(redis)) == sorted(load.created)
    assert load.statuses() == {201: total}
    ended = await check_each_call_ended_once(redis, load.created, AGENTS, events, lossless=True)
    stops = [stop for log in tmp_path.glob("worker-*.log") for stop in worker_stops(log)]
    assert len(stops) == restarts
    report(
        f"rolling restart ({mode}, grace {grace_s} s)",
        calls=total,
        workers=WORKERS,
        restarts=restarts,
        exit_codes_0=exit_codes.count(0),
        jobs_finished_in_grace=sum(stop["finished"] for stop in stops),
        jobs_handed_back=sum(stop["handed_back"] for stop in stops),
        ended=dict(ended),
        lost=0,
        twice=0,
        seconds=round(time.monotonic() - started, 1),
    )
