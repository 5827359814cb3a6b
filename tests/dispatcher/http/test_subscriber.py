"""The process's one pub/sub connection: messages fanned out to every stream of a channel, a
channel subscribed while a stream wants it, a lagging stream dropped, and Redis lost ending
every stream while the next one reconnects."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from dispatcher.http import subscriber
from dispatcher.http.subscriber import Inbox, Subscriber
from dispatcher.store.keys import TenantKeys
from tests.conftest import basic

CHANNEL = TenantKeys("demo").agent_events(2)
OTHER = TenantKeys("demo").agent_events(1)


async def _subscribers(redis: Redis, channel: str) -> int:
    [(_, count)] = await redis.pubsub_numsub(channel)
    return int(count)


async def _next(inbox: Inbox) -> bytes | None:
    return await asyncio.wait_for(inbox.get(), 5)


async def test_a_channel_is_subscribed_while_a_stream_wants_it(redis: Redis) -> None:
    fanout = Subscriber(redis)
    first: Inbox = asyncio.Queue()
    second: Inbox = asyncio.Queue()
    try:
        await fanout.join([CHANNEL], first)
        await fanout.join([CHANNEL], second)
        await fanout.join([OTHER], first)
        await redis.publish(CHANNEL, b"both")
        assert (await _next(first), await _next(second)) == (b"both", b"both")
        await fanout.leave([CHANNEL], first)
        assert await _subscribers(redis, CHANNEL) == 1  # the second stream still wants it
        await redis.publish(CHANNEL, b"second only")
        await redis.publish(OTHER, b"first only")
        assert (await _next(first), await _next(second)) == (b"first only", b"second only")
        await fanout.leave([CHANNEL], second)
        await fanout.leave([OTHER], first)
        assert (await _subscribers(redis, CHANNEL), await _subscribers(redis, OTHER)) == (0, 0)
        await fanout.join([CHANNEL], second)  # joined again after its unsubscribe
        await redis.publish(CHANNEL, b"again")
        assert await _next(second) == b"again"
    finally:
        await fanout.close()


async def test_a_stream_that_lags_is_dropped(redis: Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    """A client too far behind is ended rather than buffered for without bound; the streams
    beside it go on."""
    monkeypatch.setattr(subscriber, "BACKLOG", 3)
    fanout = Subscriber(redis)
    slow: Inbox = asyncio.Queue()
    keeping_up: Inbox = asyncio.Queue()
    try:
        await fanout.join([CHANNEL], slow)
        await fanout.join([CHANNEL], keeping_up)
        for n in range(5):
            await redis.publish(CHANNEL, str(n).encode())
            assert await _next(keeping_up) == str(n).encode()
        assert [slow.get_nowait() for _ in range(slow.qsize())] == [b"0", b"1", b"2", None]
    finally:
        await fanout.close()


async def _read_block(stream: Any) -> bytes:
    block: bytes = await asyncio.wait_for(stream.content.readuntil(b"\n\n"), 5)
    return block


async def test_losing_redis_ends_the_streams_and_the_next_one_reconnects(
    client: TestClient[Any, Any], demo: Any, redis: Redis
) -> None:
    """The browsers reconnect when their stream ends; the process opens a new connection."""
    stream = await client.get("/apps/api/v1/agents/2/events", headers=basic())
    assert await _read_block(stream) == b": connected\n\n"
    assert await _read_block(stream) == b"retry: 2000\n\n"
    assert await redis.client_kill_filter(_type="pubsub") == 1  # the process's only one
    assert await asyncio.wait_for(stream.content.read(), 5) == b""
    again = await client.get("/apps/api/v1/agents/3/events", headers=basic())
    assert again.status == 200
    assert await _read_block(again) == b": connected\n\n"
    assert await _read_block(again) == b"retry: 2000\n\n"
    offer = {"id": 9, "call_id": 4, "group": "Group 1"}
    await redis.publish(
        TenantKeys("demo").agent_events(3), orjson.dumps({"event": "offer", "data": offer})
    )
    assert await _read_block(again) == b"event: offer\ndata: " + orjson.dumps(offer) + b"\n\n"
    again.close()
