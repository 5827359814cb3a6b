"""Batches of call requests: the body's shape, and what a batch costs against the rate limit."""

from __future__ import annotations

import math
from typing import Any

from dispatcher.domain.errors import InvalidRequest

MAX_ITEMS = 1000
# A batch of n items takes ceil(n / 10) tokens of the tenant's request bucket: an item costs
# a tenth of a request. At the default 200 requests/s that is 2,000 calls/s per tenant (100,000
# in under a minute), where one token a batch would let a tenant past its limit 1,000-fold.
ITEMS_PER_TOKEN = 10
BAD_ITEMS = f"calls must be a list of 1 to {MAX_ITEMS} call requests"


def items_of(body: dict[str, Any]) -> list[Any]:
    """The call requests of a batch body `{"calls": [...]}`; each is checked on its own."""
    if "calls" not in body:
        raise InvalidRequest("calls is required")
    items = body["calls"]
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_ITEMS:
        raise InvalidRequest(BAD_ITEMS)
    return items


def tokens_for(items: int) -> int:
    """The rate-limit tokens a batch of `items` call requests takes."""
    return max(1, math.ceil(items / ITEMS_PER_TOKEN))
