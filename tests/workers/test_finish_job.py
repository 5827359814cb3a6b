"""A job's end, recorded by finish_job.lua, leaves Redis as ARQ's own finish_job leaves it:
each case is recorded by both, for two jobs set up alike, and their keys compared."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from arq import Worker
from arq.constants import (
    abort_jobs_ss,
    in_progress_key_prefix,
    job_key_prefix,
    result_key_prefix,
    retry_key_prefix,
)
from redis.asyncio import Redis

from tests.workers.conftest import close_worker
from workers.settings import create_worker
from workers.worker import DispatchWorker

RESULT = '{"t":1,"s":true,"r":"fired 3 ms late; offered to 2","é":"\\u0000"}'.encode()

# finish_job's arguments after the job id: finish, result_data, result_timeout_s,
# keep_result_forever, incr_score, keep_in_progress.
CASES = {
    "finished, result kept 60 s": (True, RESULT, 60.0, False, None, None),
    "finished, result kept for good": (True, RESULT, 60.0, True, None, None),
    "finished, no result": (True, None, 0.0, False, None, None),
    "finished, in progress kept": (True, RESULT, 60.0, False, None, 5.0),
    "retried later: score raised": (False, None, 60.0, False, 2_500, None),
    "retried later: in progress kept": (False, None, 60.0, False, 2_500, 0.5),
    "not finished, nothing else": (False, None, 60.0, False, None, None),
}


@pytest.fixture
async def arq_worker(redis_url: str, redis: Redis) -> AsyncIterator[DispatchWorker]:
    worker = create_worker(redis_url, handle_signals=False)
    yield worker
    await close_worker(worker)


async def _job(redis: Redis, queue: str, job_id: str) -> None:
    await redis.set(job_key_prefix + job_id, b"body", px=90_000)
    await redis.set(retry_key_prefix + job_id, b"1", ex=88_400)
    await redis.set(in_progress_key_prefix + job_id, b"1", px=300_000)
    await redis.zadd(queue, {job_id: 1_000})
    await redis.zadd(abort_jobs_ss, {job_id: 1_000})


async def _state(redis: Redis, queue: str, job_id: str) -> dict[str, Any]:
    """What is left of the job: each key's value and its ttl to the second (-1: none, -2:
    gone), and its scores."""
    state: dict[str, Any] = {}
    for prefix in (job_key_prefix, retry_key_prefix, in_progress_key_prefix, result_key_prefix):
        key = prefix + job_id
        ttl_ms = await redis.pttl(key)
        state[prefix] = (await redis.get(key), round(ttl_ms / 1000) if ttl_ms > 0 else ttl_ms)
    state["queue"] = await redis.zscore(queue, job_id)
    state["aborts"] = await redis.zscore(abort_jobs_ss, job_id)
    return state


@pytest.mark.parametrize("case", list(CASES))
async def test_a_job_s_end_is_recorded_as_arq_records_it(
    arq_worker: DispatchWorker, redis: Redis, case: str
) -> None:
    queue = arq_worker.queue_name
    await _job(redis, queue, "arq")
    await _job(redis, queue, "ours")

    await Worker.finish_job(arq_worker, "arq", *CASES[case])
    await arq_worker.finish_job("ours", *CASES[case])

    ours = await _state(redis, queue, "ours")
    assert ours == await _state(redis, queue, "arq")
    finish, result = CASES[case][0], CASES[case][1]
    assert ours[result_key_prefix][0] == result  # the result, byte for byte, when kept
    assert (ours["queue"] is None) == finish
