"""The timeout of a 202 outbound call's choice: a call still waiting for its agent's choice
when it comes due fails `expired`, and its agent's slot is freed."""

from __future__ import annotations

from typing import Any

import structlog

from dispatcher.domain import choices
from dispatcher.domain.statuses import FailReason
from dispatcher.store.calls import Snapshot
from dispatcher.store.stores import end_call
from workers.context import stores_of, typed

log = structlog.get_logger("workers.choices")


def _still_waiting(current: Snapshot) -> bool:
    return choices.waiting(current.call, current.meta)


async def expire_choice(ctx: dict[str, Any], subdomain: str, call_id: int) -> str:
    """Queued with the call as it is created, due at its `choice_timeout_s`. The end is a
    compare-and-set on the call's revision, like the choice: of a choice and this job racing,
    exactly one is written, and a call chosen first is left to dial."""
    stores = await stores_of(typed(ctx), subdomain)
    if stores is None:
        return "no tenant"
    reason = FailReason.EXPIRED
    after = await end_call(stores, call_id, reason, details=choices.EXPIRED, only_if=_still_waiting)
    if after is None:
        return "chosen or ended"
    log.info("choice expired", tenant=subdomain, call_id=call_id)
    return "expired"
