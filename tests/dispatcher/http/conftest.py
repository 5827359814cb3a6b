"""Fixtures of the HTTP tests beyond the shared ones (tests/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from dispatcher.app import create_app
from dispatcher.settings import Settings
from tests.ports import free_port


@pytest.fixture
async def unreachable() -> AsyncIterator[TestClient[Any, Any]]:
    """The API pointed at a Redis that is not there (a closed port)."""
    settings = Settings(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    async with TestClient(TestServer(create_app(settings))) as test_client:
        yield test_client
