"""Rate limits: token buckets in Redis (lib.lua's take_tokens) shared by every process."""

from __future__ import annotations

import math
from dataclasses import dataclass

from dispatcher.domain import clock
from dispatcher.domain.errors import TooManyRequests
from dispatcher.store.scripts import Scripts


@dataclass(frozen=True)
class Bucket:
    """One bucket: its key, its rate per second and how many tokens it holds at most."""

    key: str
    rate: float
    burst: int

    def script_args(self) -> list[float | int]:
        """The rate, burst and now (ms) that a script taking from it reads."""
        return [self.rate, self.burst, clock.to_ms(clock.now())]

    def refused(self, wait_ms: int) -> TooManyRequests:
        return TooManyRequests(
            f"Too many requests: the limit is {self.rate:g} per second", math.ceil(wait_ms / 1000)
        )


async def take(scripts: Scripts, bucket: Bucket | None, tokens: int = 1) -> None:
    """`tokens` of `bucket` (None: no limit), or 429 with the seconds to wait for them."""
    if bucket is None or tokens <= 0:
        return
    wait_ms = await scripts.take_token(keys=[bucket.key], args=[*bucket.script_args(), tokens])
    if wait_ms:
        raise bucket.refused(wait_ms)
