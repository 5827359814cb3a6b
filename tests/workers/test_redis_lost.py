"""What a worker takes for Redis going away: redis-py's connection errors, and uvloop's
RuntimeError when redis-py writes to a connection that closed under it (seen killing a worker
when Redis restarted mid-write). A job that loses Redis runs again; any other error stays one."""

from __future__ import annotations

from typing import Any

import pytest
from arq import Retry
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import WatchError

from workers.settings import POLL_FAILED, REDIS_RETRY_S, lost_redis, retried_when_redis_is_down

CLOSED = RuntimeError(
    "unable to perform operation on <TCPTransport closed=True reading=False 0x55>; "
    "the handler is closed"
)


def test_redis_errors_and_a_closed_transport_are_redis_lost_other_errors_are_not() -> None:
    assert lost_redis(RedisConnectionError("Connection closed by server."))
    assert lost_redis(CLOSED)
    assert lost_redis(WatchError("connection lost"), POLL_FAILED)
    assert not lost_redis(WatchError("connection lost"))  # a job's own WATCH: a conflict
    assert not lost_redis(RuntimeError("something else"))
    assert not lost_redis(ValueError("the handler is closed"))


async def test_a_job_whose_redis_connection_closed_under_it_runs_again() -> None:
    async def writes_to_a_closed_connection(ctx: dict[str, Any]) -> str:
        raise CLOSED

    with pytest.raises(Retry) as retry:
        await retried_when_redis_is_down(writes_to_a_closed_connection)({})
    assert retry.value.defer_score == REDIS_RETRY_S * 1000


async def test_a_job_s_other_runtime_error_is_not_retried() -> None:
    async def fails(ctx: dict[str, Any]) -> str:
        raise RuntimeError("a bug")

    with pytest.raises(RuntimeError, match="^a bug$"):
        await retried_when_redis_is_down(fails)({})
