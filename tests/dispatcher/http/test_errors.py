"""Answers the error middleware gives for aiohttp's own refusals."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from tests.conftest import basic


async def test_a_method_the_path_lacks_is_405_with_allow(client: TestClient[Any, Any]) -> None:
    """RFC 9110: a 405 names the methods the resource has (aiohttp's Allow was dropped)."""
    response = await client.delete("/healthz")
    assert response.status == 405
    assert await response.json() == {"message": "Method not allowed"}
    assert set(response.headers["Allow"].split(",")) == {"GET", "HEAD"}
    response = await client.delete("/apps/api/v1/calls", headers=basic())
    assert response.status == 405
    assert set(response.headers["Allow"].split(",")) == {"GET", "HEAD", "POST"}
