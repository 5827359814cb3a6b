"""Rate limits: token buckets in Redis (lib.lua's take_tokens, taken by Scripts.take)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from dispatcher.domain import clock
from dispatcher.domain.errors import TooManyRequests
from dispatcher.store.keys import Key


@dataclass(frozen=True)
class Bucket:
    """One bucket: its key, its rate per second and how many tokens it holds at most."""

    key: Key
    rate: float
    burst: float
    at_ms: int | None = None  # the moment tokens are taken at; None: now

    def lua(self) -> tuple[Key, dict[str, Any]]:
        """Its key, and the rate, burst and now (ms) that a script taking from it reads."""
        now = clock.to_ms(clock.now()) if self.at_ms is None else self.at_ms
        return self.key, {"rate": self.rate, "burst": self.burst, "now": now}

    def refused(self, wait_ms: int) -> TooManyRequests:
        return TooManyRequests(
            f"Too many requests: the limit is {self.rate:g} per second", math.ceil(wait_ms / 1000)
        )
