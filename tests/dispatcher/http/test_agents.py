"""The agent side's refusals: what is no agent status."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from dispatcher.store.keys import TenantKeys
from tests.conftest import basic


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
        message = None
        for _ in range(3):  # the first read may be the subscription's confirmation
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=2)
            if message is not None:
                break
        assert message is not None
        assert orjson.loads(message["data"]) == {
            "type": "agent.updated",
            "agent_id": 3,
            "status": "unavailable",
        }
