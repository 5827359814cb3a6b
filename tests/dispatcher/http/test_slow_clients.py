"""Slow clients (slowloris) against a real listening server: headers or a body sent a byte at a
time hold neither a connection nor a handler past their timeouts, and others are still served."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from redis.asyncio import Redis

from dispatcher.app import create_app
from dispatcher.settings import Settings
from tests.chaos.harness import running
from tests.conftest import basic

BODY_TIMEOUT_S = 0.5
HEADERS = (
    "POST /apps/api/v1/calls HTTP/1.1\r\nHost: test\r\nAuthorization: {auth}\r\n"
    "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
).format(auth=basic()["Authorization"])
TOO_SLOW = b'{"message":"Request body was not received in time (limit %s s)"}'


@contextlib.asynccontextmanager
async def listening(settings: Settings, **server: Any) -> AsyncIterator[int]:
    """The app on a real socket, built as `dispatcher serve` builds it; yields the port."""
    runner = web.AppRunner(create_app(settings), access_log=None, **server)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        yield runner.addresses[0][1]
    finally:
        await runner.cleanup()


async def drip(port: int, head: bytes, drip: bytes, every_s: float, limit_s: float) -> bytes:
    """Sends `head`, then `drip` a byte at a time; returns what the server answered by the time
    it closed the connection. Fails when it was not closed within `limit_s`."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head)

    async def send_slowly() -> None:
        with contextlib.suppress(ConnectionError):
            for byte in drip:
                await asyncio.sleep(every_s)
                writer.write(bytes([byte]))
                await writer.drain()

    sender = asyncio.create_task(send_slowly())
    try:
        async with asyncio.timeout(limit_s):
            answer = b""
            with contextlib.suppress(ConnectionError):
                while chunk := await reader.read(65536):
                    answer += chunk
            return answer
    finally:
        sender.cancel()
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def read_answer(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    return head + await reader.readexactly(length)


async def healthy(port: int) -> bool:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
    answer = await reader.read()
    writer.close()
    return answer.startswith(b"HTTP/1.1 200 OK")


def test_timeouts_default_to_the_documented_values() -> None:
    settings = Settings()
    assert (settings.body_timeout_s, settings.keepalive_timeout_s) == (10.0, 75.0)


async def test_a_body_sent_a_byte_at_a_time_is_408_and_the_connection_closed(
    settings: Settings, demo: dict[str, Any]
) -> None:
    slow = settings.model_copy(update={"body_timeout_s": BODY_TIMEOUT_S})
    # aiohttp reads what still comes after the answer for its lingering time (10 s by default,
    # shortened here), then closes: the connection is held body_timeout_s + lingering at most.
    async with listening(slow, lingering_time=1) as port:
        started = time.monotonic()
        # 100 bytes announced, one sent every 0.1 s: 10 s if the server waited for them all.
        answer = await drip(port, HEADERS.encode(), b"x" * 100, every_s=0.1, limit_s=10)
        took = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), answer
    assert b"\r\nConnection: close\r\n" in answer
    assert answer.endswith(TOO_SLOW % b"0.5")
    assert took < BODY_TIMEOUT_S + 1 + 1.5, took


async def test_a_body_that_stops_is_408_and_the_handler_is_free(
    settings: Settings, demo: dict[str, Any]
) -> None:
    slow = settings.model_copy(update={"body_timeout_s": BODY_TIMEOUT_S})
    async with listening(slow) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(HEADERS.encode() + b'{"call_type": ')  # and then nothing
        started = time.monotonic()
        answer = await asyncio.wait_for(read_answer(reader), 5)
        assert time.monotonic() - started < 3
        assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
        assert answer.endswith(TOO_SLOW % b"0.5")
        writer.close()
        assert await healthy(port)


@pytest.mark.slow
async def test_many_slow_bodies_do_not_starve_other_clients(
    settings: Settings, demo: dict[str, Any]
) -> None:
    slow = settings.model_copy(update={"body_timeout_s": 1.0})
    async with listening(slow, lingering_time=1) as port:
        slowloris = [
            asyncio.create_task(drip(port, HEADERS.encode(), b"x" * 100, 0.2, limit_s=10))
            for _ in range(100)
        ]
        await asyncio.sleep(0.2)
        started = time.monotonic()
        assert await healthy(port)
        assert time.monotonic() - started < 1
        answers = await asyncio.gather(*slowloris)
    assert all(a.startswith(b"HTTP/1.1 408 ") for a in answers), {a[:40] for a in answers}


@pytest.mark.parametrize(
    ("head", "drip_bytes"),
    [
        (b"", b""),  # connects and says nothing
        (b"GET /healthz HTTP/1.1\r\n", b"Host: test\r\nX-Slow: " + b"a" * 200),  # slow headers
        (b"GET /heal", b"thz HTTP/1.1\r\n"),  # a slow request line
    ],
    ids=["silent", "slow-headers", "slow-request-line"],
)
@pytest.mark.subprocess
async def test_dispatcher_serve_closes_connections_that_never_complete_their_headers(
    redis: Redis, redis_url: str, tmp_path: Path, head: bytes, drip_bytes: bytes
) -> None:
    async with running(tmp_path, redis_url, DISPATCHER_KEEPALIVE_TIMEOUT_S="1") as system:
        port = await system.serve()
        started = time.monotonic()
        answer = await drip(port, head, drip_bytes, every_s=0.1, limit_s=10)
        took = time.monotonic() - started
        assert answer == b""
        assert 0.8 < took < 4, took
        assert await healthy(port)


@pytest.mark.subprocess
async def test_dispatcher_serve_answers_408_to_a_slow_body(
    redis: Redis, demo: dict[str, Any], redis_url: str, tmp_path: Path
) -> None:
    async with running(tmp_path, redis_url, DISPATCHER_BODY_TIMEOUT_S="1") as system:
        port = await system.serve()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(HEADERS.encode() + b"{")  # and nothing more
        started = time.monotonic()
        answer = await asyncio.wait_for(read_answer(reader), 10)
        assert 0.8 < time.monotonic() - started < 4
        writer.close()
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), answer
    assert answer.endswith(TOO_SLOW % b"1")


@pytest.mark.slow
async def test_keep_alive_still_serves_a_prompt_client(
    settings: Settings, demo: dict[str, Any]
) -> None:
    async with listening(settings, keepalive_timeout=1) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(3):
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
            assert (await read_answer(reader)).startswith(b"HTTP/1.1 200 OK")
            await asyncio.sleep(0.5)  # idle, but under the keep-alive timeout
        # Idle past it: closed.
        assert await asyncio.wait_for(reader.read(), 3) == b""
        writer.close()
