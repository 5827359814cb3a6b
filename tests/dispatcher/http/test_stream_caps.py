"""Event streams are capped per dashboard session, per agent and per tenant, counted in Redis
across processes, and share the process's one pub/sub connection however many are open."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from dispatcher.app import create_app
from dispatcher.domain import clock
from dispatcher.http import dashboard
from dispatcher.http.appkeys import EVENT_STREAMS
from dispatcher.settings import Settings
from dispatcher.store.keys import TenantKeys
from tests.conftest import basic
from tests.dispatcher.http.test_dashboard import DEMO, login
from tests.polling import eventually

KEYS = TenantKeys("demo")
DASHBOARD = "/dashboard/events"


def agent_events(agent_id: int) -> str:
    return f"/apps/api/v1/agents/{agent_id}/events"


@contextlib.asynccontextmanager
async def _api(settings: Settings, **caps: int) -> AsyncIterator[TestClient[Any, Any]]:
    """The API with the given caps (DISPATCHER_STREAMS_PER_*)."""
    async with TestClient(TestServer(create_app(settings.model_copy(update=caps)))) as client:
        yield client


async def _opened(client: TestClient[Any, Any], path: str, **kwargs: Any) -> aiohttp.ClientResponse:
    stream = await client.get(path, **kwargs)
    assert stream.status == 200, await stream.text()
    assert await asyncio.wait_for(stream.content.readuntil(b"\n\n"), 5) == b": connected\n\n"
    return stream


async def _refusal(client: TestClient[Any, Any], path: str, **kwargs: Any) -> tuple[int, Any]:
    answer = await client.get(path, **kwargs)
    assert answer.headers.get("Retry-After") == "5"
    return answer.status, await answer.json()


async def _connected_clients(redis: Redis) -> int:
    return int((await redis.info("clients"))["connected_clients"])


async def _subscribed_clients(redis: Redis) -> int:
    """Connections subscribed to at least one channel (pub/sub connections)."""
    return sum(1 for client in await redis.client_list() if int(client["sub"]) > 0)


async def _ended(client: TestClient[Any, Any]) -> bool | None:
    return True if not client.app[EVENT_STREAMS] else None


async def test_streams_of_one_session_share_one_connection_and_one_too_many_is_refused(
    settings: Settings, demo: Any, redis: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """1,500 streams on one session were 1,500 Redis clients: now the process's pub/sub
    connection carries them all, and the session may hold only so many."""
    async with _api(settings, streams_per_session=20) as capped:
        monkeypatch.setattr(dashboard, "TICK_S", 3600.0)  # one picture each, then quiet
        await login(capped, DEMO)
        # The first stream makes the pool's connections and the pub/sub one.
        (await _pictured(capped)).close()
        await eventually(lambda: _ended(capped), "the first stream to end")
        before = await _connected_clients(redis)
        streams = [await _pictured(capped) for _ in range(20)]
        assert await _connected_clients(redis) == before
        assert await _subscribed_clients(redis) == 1
        assert await _refusal(capped, DASHBOARD) == (
            429,
            {"message": "Too many event streams open for this dashboard session (at most 20)"},
        )
        streams.pop().close()
        await eventually(lambda: _open_count(capped, 19), "a stream to end")
        (await _opened(capped, DASHBOARD)).close()  # a place freed is taken again


async def _pictured(client: TestClient[Any, Any]) -> aiohttp.ClientResponse:
    """A dashboard stream, once it has sent its first picture (and so made its reads)."""
    stream = await _opened(client, DASHBOARD)
    assert await asyncio.wait_for(stream.content.readuntil(b"\n\n"), 5) == b"retry: 2000\n\n"
    picture = await asyncio.wait_for(stream.content.readuntil(b"\n\n"), 5)
    assert picture.startswith(b"event: snapshot\n")
    return stream


async def _open_count(client: TestClient[Any, Any], count: int) -> bool | None:
    return True if len(client.app[EVENT_STREAMS]) == count else None


async def test_each_session_has_its_own_cap(settings: Settings, demo: Any) -> None:
    async with _api(settings, streams_per_session=2) as capped:
        await login(capped, DEMO)
        first = [await _opened(capped, DASHBOARD) for _ in range(2)]
        assert await _refusal(capped, DASHBOARD) == (
            429,
            {"message": "Too many event streams open for this dashboard session (at most 2)"},
        )
        capped.session.cookie_jar.clear()
        await login(capped, DEMO)  # a second operator
        second = await _opened(capped, DASHBOARD)
        for stream in [*first, second]:
            stream.close()


async def test_streams_of_an_agent_count_across_processes(
    settings: Settings, demo: Any, redis: Redis
) -> None:
    """A stream another process holds counts (a lease in Redis), one of a process that died
    does not once its lease has lapsed."""
    async with _api(settings, streams_per_agent=2) as capped:
        in_an_hour = clock.to_ms(clock.now()) + 3_600_000
        await redis.zadd(KEYS.agent_streams(2), {"elsewhere": in_an_hour, "crashed": 1})
        stream = await _opened(capped, agent_events(2), headers=basic())
        assert await _refusal(capped, agent_events(2), headers=basic()) == (
            429,
            {"message": "Too many event streams open for this agent (at most 2)"},
        )
        assert b"crashed" not in await redis.zrange(KEYS.agent_streams(2), 0, -1)
        (await _opened(capped, agent_events(1), headers=basic())).close()  # another agent: its own
        stream.close()
        await eventually(lambda: _ended(capped), "the streams to end")
        assert await redis.zrange(KEYS.agent_streams(2), 0, -1) == [b"elsewhere"]


async def test_dashboard_and_agent_streams_share_the_tenant_cap(
    settings: Settings, demo: Any, redis: Redis
) -> None:
    async with _api(settings, streams_per_tenant=2) as capped:
        await login(capped, DEMO)
        streams = [
            await _opened(capped, DASHBOARD),
            await _opened(capped, agent_events(1), headers=basic()),
        ]
        refused = {"message": "Too many event streams open for this tenant (at most 2)"}
        assert await _refusal(capped, agent_events(2), headers=basic()) == (429, refused)
        assert await _refusal(capped, DASHBOARD) == (429, refused)
        assert await redis.zcard(KEYS.streams) == 2  # a refusal takes no lease anywhere
        assert await redis.zcard(KEYS.agent_streams(2)) == 0
        for stream in streams:
            stream.close()
        await eventually(lambda: _ended(capped), "the streams to end")
        assert await redis.exists(KEYS.streams) == 0  # each stream's lease left with it
