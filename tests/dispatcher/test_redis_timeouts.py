"""How a process notices a Redis that stopped answering without a per-command socket timeout
(which cost a task per command): TCP keepalive on every TCP connection, and the API's
per-request deadline, which an event stream lifts once it is open."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from dispatcher.app import create_app
from dispatcher.redis_connection import connect, connect_arq
from dispatcher.settings import Settings
from dispatcher.store.keys import TenantKeys
from tests.conftest import basic


class SilentRedis:
    """A TCP server that takes a client's commands and answers each with `reply`, or never."""

    def __init__(self, reply: bytes | None) -> None:
        self._reply = reply
        self.server: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            if self._reply is not None:
                # one reply per command: RESP arrays start with '*'
                writer.write(self._reply * data.count(b"*"))
        writer.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        port = self.server.sockets[0].getsockname()[1]
        return f"redis://127.0.0.1:{port}/0"


@pytest.fixture
async def silent() -> AsyncIterator[SilentRedis]:
    fake = SilentRedis(None)
    fake.server = await asyncio.start_server(fake._serve, "127.0.0.1", 0)
    yield fake
    fake.server.close()


@pytest.fixture
async def answering() -> AsyncIterator[SilentRedis]:
    fake = SilentRedis(b"+OK\r\n")
    fake.server = await asyncio.start_server(fake._serve, "127.0.0.1", 0)
    yield fake
    fake.server.close()


async def test_a_redis_that_never_answers_gets_a_503_at_the_request_deadline(
    silent: SilentRedis,
) -> None:
    settings = Settings(
        redis_url=silent.url,
        request_timeout_s=0.6,
        body_timeout_s=0.3,
    )
    async with TestClient(TestServer(create_app(settings))) as client:
        started = time.monotonic()
        response = await client.get("/apps/api/v1/calls", headers=basic())
        elapsed = time.monotonic() - started
        assert response.status == 503
        assert await response.json() == {"message": "Service unavailable"}
        assert response.headers["Retry-After"] == "1"
    # the deadline, not a socket timeout (10 s before): generous for a loaded machine
    assert elapsed < 5


@pytest.mark.parametrize("connector", [connect, connect_arq])
async def test_tcp_connections_keep_alive_and_commands_have_no_socket_timeout(
    answering: SilentRedis, connector: Any
) -> None:
    client: Redis = connector(Settings(redis_url=answering.url))
    try:
        assert await client.set("k", "v") is True
        connection = client.connection_pool.make_connection()  # type: ignore[no-untyped-call]
        await connection.connect()
        try:
            sock = connection._writer.transport.get_extra_info("socket")
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 5
            assert connection.socket_timeout is None
        finally:
            await connection.disconnect()
    finally:
        await client.aclose()


def test_the_request_deadline_outlasts_the_body_timeout() -> None:
    with pytest.raises(ValueError) as raised:
        Settings(request_timeout_s=5, body_timeout_s=5)
    assert "DISPATCHER_REQUEST_TIMEOUT_S must be longer than DISPATCHER_BODY_TIMEOUT_S" in str(
        raised.value
    )


async def test_an_event_stream_outlives_the_request_deadline(
    redis_url: str, redis: Redis, demo: Any
) -> None:
    settings = Settings(
        redis_url=redis_url,
        request_timeout_s=0.5,
        body_timeout_s=0.2,
    )
    channel = TenantKeys("demo").agent_events(2)
    async with TestClient(TestServer(create_app(settings))) as client:
        stream = await client.get("/apps/api/v1/agents/2/events", headers=basic())
        assert stream.status == 200
        assert await asyncio.wait_for(stream.content.readuntil(b"\n\n"), 5) == b": connected\n\n"
        await asyncio.sleep(1.2)
        offer = {"id": 8, "call_id": 4, "group": "Group 1"}
        await redis.publish(channel, orjson.dumps({"event": "offer", "data": offer}))
        block = await asyncio.wait_for(stream.content.readuntil(b"event: offer"), 5)
        assert block.endswith(b"event: offer")
        stream.close()
