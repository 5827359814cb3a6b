"""The health route answers once the app is up."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient


async def test_healthz(client: TestClient[Any, Any]) -> None:
    response = await client.get("/healthz")
    assert response.status == 200
    assert await response.json() == {"status": "ok"}
