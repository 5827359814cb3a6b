"""What a worker takes for Redis going away: redis-py's connection errors, and uvloop's
RuntimeError when redis-py writes to a connection that closed under it (seen killing a worker
when Redis restarted mid-write). A job that loses Redis runs again; any other error stays one."""

from __future__ import annotations

import asyncio
import socket
import struct
from typing import Any

import pytest
import uvloop
from arq import Retry
from redis.asyncio.connection import Connection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import WatchError

from workers.redis_lost import CLOSED_TRANSPORT, POLL_FAILED, REDIS_RETRY_S, lost_redis
from workers.settings import retried_when_redis_is_down

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


async def _write_after_a_reset() -> BaseException:
    """What redis-py's next command raises on a connection its server reset (as a Redis that
    is killed or restarted does): a real socket, reset with SO_LINGER 0."""
    reset = asyncio.Event()

    async def accept_and_reset(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        linger = struct.pack("ii", 1, 0)
        writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
        writer.transport.abort()
        reset.set()

    server = await asyncio.start_server(accept_and_reset, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    connection = Connection(host="127.0.0.1", port=port, lib_name=None, lib_version=None)
    try:
        await connection.connect()  # type: ignore[no-untyped-call]
        await reset.wait()
        transport = connection._writer.transport if connection._writer else None
        for _ in range(500):  # until the loop has read the reset and closed its transport
            if transport is None or transport.is_closing():
                break
            await asyncio.sleep(0.01)
        with pytest.raises(Exception) as raised:
            await connection.send_command("PING", check_health=False)
        return raised.value
    finally:
        await connection.disconnect()
        server.close()
        await server.wait_closed()


def test_redis_py_s_write_on_a_reset_connection_under_uvloop_is_redis_lost() -> None:
    error = uvloop.run(_write_after_a_reset())
    # uvloop's own RuntimeError, let through by redis-py: the one error told by its text.
    assert type(error) is RuntimeError
    assert str(error).endswith(f"; {CLOSED_TRANSPORT}")
    assert lost_redis(error) and lost_redis(error, POLL_FAILED)


async def test_the_same_write_under_asyncio_s_loop_is_a_connection_error() -> None:
    error = await _write_after_a_reset()
    assert isinstance(error, RedisConnectionError)
    assert lost_redis(error)


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
