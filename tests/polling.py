"""The one polling helper of the suite: wait for a condition without a fixed sleep."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

import pytest

T = TypeVar("T")
POLL_S = 0.02


Waited = str | Callable[[], str]


@overload
async def eventually(
    probe: Callable[[], Awaitable[T | None]], what: Waited, timeout: float = 5
) -> T: ...


@overload
async def eventually(probe: Callable[[], T | None], what: Waited, timeout: float = 5) -> T: ...


async def eventually(probe: Callable[[], Any], what: Waited, timeout: float = 5) -> Any:
    """Calls `probe` (plain or async) every 20 ms until it returns something other than None or
    False, and returns that; fails the test after `timeout` seconds, naming `what` (a callable
    `what` is asked at that moment, so the message can show the last value seen)."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if inspect.isawaitable(value):
            value = await value
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            waited = what if isinstance(what, str) else what()
            pytest.fail(f"timed out after {timeout} s waiting for {waited}")
        await asyncio.sleep(POLL_S)


async def seconds_until(probe: Callable[[], bool], what: str, timeout: float) -> float:
    """`eventually`, timed: the seconds until `probe` held."""
    started = time.monotonic()
    await eventually(probe, what, timeout)
    return time.monotonic() - started
