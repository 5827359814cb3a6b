"""Trying a carrier request again: as an ARQ retry of its job, so a pause holds no worker slot
and outlives a worker's restart."""

from __future__ import annotations

import structlog
from arq import Retry

from dispatcher.carriers.base import CarrierError

log = structlog.get_logger("workers.retries")

# The first pause between tries, doubled each time (or the carrier's Retry-After if longer).
RETRY_BASE_S = 0.25


def retry_if_worth_it(exc: CarrierError, job_try: int, tries: int, request: str) -> None:
    """Raises ARQ's Retry when the carrier was busy or out of reach (`retry_after_s` set) and
    this was not the last of `tries`; returns when the `request` has failed for good."""
    if exc.retry_after_s is None or job_try >= tries:
        return
    backoff_s: float = RETRY_BASE_S * 2.0 ** (job_try - 1)
    defer_s = max(exc.retry_after_s, backoff_s)
    log.warning(
        "carrier unavailable, trying again", request=request, error=str(exc), defer_s=defer_s
    )
    raise Retry(defer=defer_s) from exc
