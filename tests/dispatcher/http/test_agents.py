"""The agent side: the list of a tenant's agents, and what is no agent status."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from dispatcher.store.keys import TenantKeys
from tests.conftest import basic
from tests.workers.conftest import next_event


@pytest.mark.parametrize(
    "status",
    [
        ["offline"],  # a list is no status (it was a 500: unhashable in a set)
        {"value": "available"},
        7,
        "busy",
    ],
)
async def test_agent_status_that_is_no_status_is_400(
    client: TestClient[Any, Any], demo: Any, status: Any
) -> None:
    response = await client.put(
        "/apps/api/v1/agents/1/status", json={"status": status}, headers=basic()
    )
    assert response.status == 400
    assert await response.json() == {
        "message": "status must be one of available, unavailable, offline"
    }


AGENTS = "/apps/api/v1/agents"


def _agent(agent_id: int, email: str, first: str, last: str, **live: Any) -> dict[str, Any]:
    return {
        "id": agent_id,
        "email": email,
        "name": f"{first} {last}",
        "first_name": first,
        "last_name": last,
        "status": "available",
        "languages": ["en"],
        "capacity": {"voice": 1, "chat": 5},
        "active_calls": 0,
        **live,
    }


async def test_agents_are_listed_by_id_with_their_live_status(
    client: TestClient[Any, Any], demo: Any
) -> None:
    changed = await client.put(f"{AGENTS}/3/status", json={"status": "offline"}, headers=basic())
    assert changed.status == 200
    response = await client.get(AGENTS, headers=basic())
    assert response.status == 200
    assert await response.json() == [
        _agent(1, "admin@somedomain.com", "Admin", "UJET"),
        _agent(2, "agent@somedomain.com", "Agent", "Smith", languages=["en", "ko"]),
        _agent(3, "allen@somedomain.com", "Allen", "Baker", status="offline"),
        _agent(4, "john.doe@foo.com", "John", "Doe"),
    ]
    assert response.headers["Total"] == "4"
    assert response.headers["Per-Page"] == "100"


async def test_agents_come_a_page_at_a_time(client: TestClient[Any, Any], demo: Any) -> None:
    response = await client.get(AGENTS, params={"per": "3", "page": "2"}, headers=basic())
    assert response.status == 200
    assert [agent["id"] for agent in await response.json()] == [4]
    base = f"http://{response.url.host}:{response.url.port}{AGENTS}"
    assert response.headers["Total"] == "4"
    assert response.headers["Per-Page"] == "3"
    assert response.headers["Link"] == (
        f'<{base}?per=3&page=1>; rel="first", <{base}?per=3&page=2>; rel="last", '
        f'<{base}?per=3&page=1>; rel="prev"'
    )
    beyond = await client.get(AGENTS, params={"page": "9"}, headers=basic())
    assert await beyond.json() == []


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"page": "0"}, "page must be a positive integer"),
        ({"per": "-1"}, "per must be a positive integer"),
    ],
)
async def test_bad_paging_is_400(
    client: TestClient[Any, Any], demo: Any, query: dict[str, str], message: str
) -> None:
    response = await client.get(AGENTS, params=query, headers=basic())
    assert response.status == 400
    assert await response.json() == {"message": message}


async def test_a_status_change_is_announced_on_the_tenants_channel(
    client: TestClient[Any, Any], demo: Any, redis: Redis
) -> None:
    """The dashboard shows it at once rather than at its next once-a-second picture."""
    async with redis.pubsub() as pubsub:
        await pubsub.subscribe(TenantKeys("demo").events)
        response = await client.put(
            "/apps/api/v1/agents/3/status", json={"status": "unavailable"}, headers=basic()
        )
        assert response.status == 200
        assert await next_event(pubsub) == {
            "type": "agent.updated",
            "agent_id": 3,
            "status": "unavailable",
        }
