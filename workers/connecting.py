"""Connecting an assigned call through the carrier, paced per tenant, and the results."""

from __future__ import annotations

from typing import Any

import structlog

from dispatcher.domain import clock, lifecycle
from dispatcher.domain.statuses import CallStatus, FailReason
from dispatcher.store import jobs
from dispatcher.store.lifecycle import Calls, Change, Snapshot, end_call
from workers.carriers.base import CarrierError, Dial
from workers.context import WorkerContext, calls_of, typed

log = structlog.get_logger("workers.connecting")

CARRIER_FAILURES = {
    "busy": FailReason.EU_BUSY,
    "no_answer": FailReason.EU_NO_ANSWER,
    "wrong_number": FailReason.EU_WRONG_NUMBER,
    "failed": FailReason.VOIP_CONN_GENERAL,
}


async def connect_call(ctx: dict[str, Any], subdomain: str, call_id: int) -> str:
    """assigned -> connecting -> dialled. Excess calls over the tenant's calls per second wait
    for a token of the shared bucket (re-queued, never dropped)."""
    context = typed(ctx)
    calls = await calls_of(context, subdomain)
    snapshot = await calls.load(call_id) if calls else None
    if calls is None or snapshot is None:
        return "no call"
    if snapshot.call.status == CallStatus.ASSIGNED:
        if snapshot.meta.pending_action is not None:
            return "waiting for the agent's choice"
        wait_ms = await calls.take_carrier_token(calls.tenant.doc.settings.calls_per_second)
        if wait_ms:
            due = clock.to_ms(clock.now()) + wait_ms
            await calls.enqueue(
                [jobs.JobSpec(jobs.CONNECT_CALL, subdomain, call_id, due, (), f"paced{due}")]
            )
            return f"paced {wait_ms} ms"
        snapshot = await calls.apply(call_id, _to_connecting)
    if snapshot is None or snapshot.call.status != CallStatus.CONNECTING:
        return "not connecting"
    if snapshot.meta.carrier_call_id is not None:
        return "dialled already"
    return await _dial(context, calls, snapshot)


def _to_connecting(current: Snapshot) -> Change | None:
    if current.call.status != CallStatus.ASSIGNED:
        return None
    return Change(lifecycle.connecting(current.call))


async def _dial(context: WorkerContext, calls: Calls, snapshot: Snapshot) -> str:
    carrier = context["carriers"].get(calls.tenant.doc.settings.carrier)
    number = snapshot.meta.end_user_number
    try:
        if carrier is None or number is None:
            raise CarrierError("no carrier or no number to dial")
        carrier_id = await carrier.dial(
            Dial(calls.tenant, snapshot.call.id, number, snapshot.call.outbound_number)
        )
    except CarrierError as exc:
        await end_call(calls, snapshot.call.id, FailReason(exc.fail_reason), details=str(exc))
        return "carrier refused"

    def record(current: Snapshot) -> Change | None:
        meta = current.meta.model_copy(update={"carrier_call_id": carrier_id})
        return Change(current.call, meta=meta, announce=False)

    await calls.apply(snapshot.call.id, record)
    return "dialled"


async def carrier_result(ctx: dict[str, Any], subdomain: str, call_id: int, outcome: str) -> str:
    """What the carrier reports: answer, completed, or a failure (busy, no_answer, ...)."""
    context = typed(ctx)
    calls = await calls_of(context, subdomain)
    if calls is None:
        return "no tenant"
    context["metrics"].carrier_result(calls.tenant.doc.settings.carrier, outcome)
    now = clock.now()

    def answer(current: Snapshot) -> Change | None:
        if current.call.status != CallStatus.CONNECTING:
            return None
        return Change(lifecycle.connected(current.call, now))

    if outcome == "answer":
        return "connected" if await calls.apply(call_id, answer) else "ignored"
    if outcome == "completed":
        # Only an answered call completes: when its answer is still to come (a retried job
        # runs late), the call was connected all the same, and it finishes.
        await calls.apply(call_id, answer)
        ended = await end_call(calls, call_id, None, by="disconnected_by_end_user")
        return "finished" if ended else "ignored"
    reason = CARRIER_FAILURES.get(outcome, FailReason.UNKNOWN)
    return "failed" if await end_call(calls, call_id, reason) else "ignored"
