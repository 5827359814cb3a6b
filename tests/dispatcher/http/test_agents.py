"""The agent side's refusals: what is no agent status."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

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
