"""Server-sent event streams: events relayed from pub/sub, keep-alive comments, a client that
goes away, and the app's shutdown, which must end every stream at once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from dispatcher import redis_connection
from dispatcher.app import create_app
from dispatcher.http import agents
from dispatcher.http.appkeys import EVENT_STREAMS
from dispatcher.settings import Settings
from dispatcher.store.keys import TenantKeys
from tests.conftest import basic
from tests.polling import eventually

EVENTS = "/apps/api/v1/agents/2/events"
CHANNEL = TenantKeys("demo").agent_events(2)
DESK = TenantKeys("demo").agent_desk(2)


async def _subscribers(redis: Redis) -> int:
    [(_, count)] = await redis.pubsub_numsub(CHANNEL)
    return int(count)


async def _read_block(content: aiohttp.StreamReader) -> bytes:
    return await asyncio.wait_for(content.readuntil(b"\n\n"), 5)


async def test_the_agent_stream_relays_published_events(
    client: TestClient[Any, Any], demo: Any, redis: Redis
) -> None:
    stream = await client.get(EVENTS, headers=basic())
    assert stream.status == 200
    assert stream.headers["Content-Type"] == "text/event-stream"
    assert stream.headers["Cache-Control"] == "no-cache"
    assert await _read_block(stream.content) == b": connected\n\n"
    assert await _read_block(stream.content) == b"retry: 2000\n\n"
    offer = {"id": 7, "call_id": 3, "group": "Group 1"}
    await redis.publish(CHANNEL, orjson.dumps({"event": "offer", "data": offer}))
    assert await _read_block(stream.content) == b"event: offer\ndata: " + orjson.dumps(offer) + (
        b"\n\n"
    )
    stream.close()


async def test_an_idle_stream_sends_keep_alive_comments(
    client: TestClient[Any, Any], demo: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(agents, "KEEP_ALIVE_S", 0.05)
    stream = await client.get(EVENTS, headers=basic())
    assert await _read_block(stream.content) == b": connected\n\n"
    assert await _read_block(stream.content) == b"retry: 2000\n\n"
    assert await _read_block(stream.content) == b": keep-alive\n\n"
    stream.close()


async def test_a_client_that_goes_away_ends_its_stream_and_subscription(
    client: TestClient[Any, Any], demo: Any, redis: Redis
) -> None:
    stream = await client.get(EVENTS, headers=basic())
    await _read_block(stream.content)
    assert await _subscribers(redis) == 1
    assert len(client.app[EVENT_STREAMS]) == 1
    stream.close()

    async def ended() -> bool | None:
        return True if not client.app[EVENT_STREAMS] and not await _subscribers(redis) else None

    await eventually(ended, "the stream to end", timeout=5)


@pytest.fixture
async def served(settings: Settings, demo: Any) -> AsyncIterator[tuple[web.AppRunner, str]]:
    runner = web.AppRunner(create_app(settings), shutdown_timeout=10)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield runner, f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def test_shutdown_ends_open_streams_at_once(served: tuple[web.AppRunner, str]) -> None:
    """A stream would otherwise hold the stop for the whole grace period (10 s here)."""
    runner, base = served
    async with aiohttp.ClientSession() as http, http.get(base + EVENTS, headers=basic()) as stream:
        assert await _read_block(stream.content) == b": connected\n\n"
        started = time.monotonic()
        await runner.cleanup()
        assert time.monotonic() - started < 3
        assert await asyncio.wait_for(stream.content.read(), 5) == b"retry: 2000\n\n"
        assert stream.content.at_eof()


async def test_a_newer_stream_of_the_same_agent_supersedes_the_older_one(
    client: TestClient[Any, Any], demo: Any, redis: Redis
) -> None:
    """One desk per agent: a person signing in elsewhere (or over `agents simulate`) takes the
    agent's offers; the older stream is told so and ends, the newer one carries on."""
    older = await client.get(EVENTS, headers=basic())
    assert await _read_block(older.content) == b": connected\n\n"
    assert await _read_block(older.content) == b"retry: 2000\n\n"
    newer = await client.get(EVENTS, headers=basic())
    assert await _read_block(newer.content) == b": connected\n\n"
    assert await _read_block(newer.content) == b"retry: 2000\n\n"
    assert await _read_block(older.content) == b"event: superseded\ndata: {}\n\n"
    assert await asyncio.wait_for(older.content.read(), 5) == b""  # and it ends
    offer = {"id": 7, "call_id": 3, "group": "Group 1"}
    await redis.publish(CHANNEL, orjson.dumps({"event": "offer", "data": offer}))
    assert await _read_block(newer.content) == b"event: offer\ndata: " + orjson.dumps(offer) + (
        b"\n\n"
    )
    newer.close()


async def test_a_quiet_stream_outlives_the_redis_socket_timeout(
    settings: Settings, redis: Redis, demo: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A channel with nothing to say is not a Redis failure: the stream stays open past the
    client's socket timeout (10 s in production, 0.2 s here) and still relays what comes."""
    monkeypatch.setitem(redis_connection.CLIENT_OPTIONS, "socket_timeout", 0.2)
    async with TestClient(TestServer(create_app(settings))) as client:
        stream = await client.get(EVENTS, headers=basic())
        assert await _read_block(stream.content) == b": connected\n\n"
        assert await _read_block(stream.content) == b"retry: 2000\n\n"
        await asyncio.sleep(1.0)
        offer = {"id": 8, "call_id": 4, "group": "Group 1"}
        await redis.publish(CHANNEL, orjson.dumps({"event": "offer", "data": offer}))
        assert (
            await _read_block(stream.content)
            == b"event: offer\ndata: " + orjson.dumps(offer) + b"\n\n"
        )
        stream.close()


async def _announcements(pubsub: PubSub, count: int) -> None:
    """Waits until `count` desks were announced on the agent's channel."""
    async with asyncio.timeout(10):
        while count:
            # None: nothing within the second, or the subscription's own confirmation
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
            if message is not None:
                count -= orjson.loads(message["data"])["event"] == "superseded"


@pytest.mark.parametrize("together", [2, 5])
async def test_of_streams_opened_together_exactly_one_keeps_the_desk(
    settings: Settings, demo: Any, redis: Redis, together: int
) -> None:
    """Each stream announced itself and ended on any other's announcement: two consoles opened
    at once often both ended, leaving the agent with no desk. The last desk taken wins."""
    # Room for a trial's streams beside the last trial's, which end within a second.
    roomy = settings.model_copy(update={"streams_per_agent": 2 * together})
    async with TestClient(TestServer(create_app(roomy))) as client, redis.pubsub() as pubsub:
        await pubsub.subscribe(CHANNEL)
        for trial in range(10):
            streams = await asyncio.gather(
                *(client.get(EVENTS, headers=basic()) for _ in range(together))
            )
            for stream in streams:
                assert await _read_block(stream.content) == b": connected\n\n"
                assert await _read_block(stream.content) == b"retry: 2000\n\n"
            await _announcements(pubsub, together)  # so the offer comes after every one
            offer = {"id": trial, "call_id": 3, "group": "Group 1"}
            await redis.publish(CHANNEL, orjson.dumps({"event": "offer", "data": offer}))
            firsts = [await _read_block(stream.content) for stream in streams]
            offered = b"event: offer\ndata: " + orjson.dumps(offer) + b"\n\n"
            assert sorted(firsts) == sorted(
                [offered] + [b"event: superseded\ndata: {}\n\n"] * (together - 1)
            ), f"trial {trial}"
            for stream, first in zip(streams, firsts, strict=True):
                if first != offered:
                    assert await asyncio.wait_for(stream.content.read(), 5) == b""  # it ended
            assert await redis.exists(DESK) == 1  # the losers left the winner's desk alone
            for stream in streams:
                stream.close()

        async def freed() -> bool | None:
            ended = not client.app[EVENT_STREAMS]
            return True if ended and not await redis.exists(DESK) else None

        await eventually(freed, "the last desk to be freed", timeout=5)


async def test_a_stream_on_standby_waits_for_the_desk_and_takes_none(
    client: TestClient[Any, Any], demo: Any, redis: Redis
) -> None:
    """A simulated agent that a person took over waits so for the person's console to close:
    it takes the agent from nobody, relays none of the person's events, and holds the agent
    once the person's stream ends."""
    person = await client.get(EVENTS, headers=basic())
    assert await _read_block(person.content) == b": connected\n\n"
    assert await _read_block(person.content) == b"retry: 2000\n\n"
    waiting = await client.get(EVENTS + "?standby=true", headers=basic())
    assert await _read_block(waiting.content) == b": connected\n\n"
    assert await _read_block(waiting.content) == b"retry: 2000\n\n"
    assert await _read_block(waiting.content) == b"event: standby\ndata: {}\n\n"
    first = {"id": 7, "call_id": 3, "group": "Group 1"}
    await redis.publish(CHANNEL, orjson.dumps({"event": "offer", "data": first}))
    assert await _read_block(person.content) == b"event: offer\ndata: " + orjson.dumps(first) + (
        b"\n\n"
    )
    person.close()
    assert await _read_block(waiting.content) == b"event: ready\ndata: {}\n\n"
    second = {"id": 8, "call_id": 4, "group": "Group 1"}
    await redis.publish(CHANNEL, orjson.dumps({"event": "offer", "data": second}))
    assert (
        await _read_block(waiting.content)
        == b"event: offer\ndata: " + orjson.dumps(second) + b"\n\n"
    )
    waiting.close()


async def test_a_stream_on_standby_takes_a_free_desk_at_once_and_yields_it_as_any(
    client: TestClient[Any, Any], demo: Any, redis: Redis
) -> None:
    standby = await client.get(EVENTS + "?standby=true", headers=basic())
    assert await _read_block(standby.content) == b": connected\n\n"
    assert await _read_block(standby.content) == b"retry: 2000\n\n"
    assert await _read_block(standby.content) == b"event: ready\ndata: {}\n\n"
    person = await client.get(EVENTS, headers=basic())
    assert person.status == 200
    assert await _read_block(standby.content) == b"event: superseded\ndata: {}\n\n"
    assert await asyncio.wait_for(standby.content.read(), 5) == b""
    person.close()


async def test_standby_is_true_or_false(client: TestClient[Any, Any], demo: Any) -> None:
    refused = await client.get(EVENTS + "?standby=yes", headers=basic())
    assert refused.status == 400
    assert await refused.json() == {"message": "standby must be true or false"}
