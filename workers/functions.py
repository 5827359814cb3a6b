"""The job functions the workers run, by the names the ingress enqueues them under."""

from __future__ import annotations

from typing import Any

from arq.worker import func

from dispatcher.store import jobs


async def _not_yet(ctx: dict[str, Any], subdomain: str, record_id: int) -> None:
    raise NotImplementedError


ALL = [
    func(_not_yet, name=name)
    for name in (jobs.ROUTE_CALL, jobs.FIRE_SCHEDULED_CALL, jobs.DIAL_OUTBOUND, jobs.SEND_SMS)
]
