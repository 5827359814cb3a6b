"""Connecting an assigned call through the carrier, paced per tenant, and the results."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog

from dispatcher.carriers.base import CarrierError, Dial
from dispatcher.domain import clock, compliance, lifecycle
from dispatcher.domain.machines import AnsweredBy, AnsweringMachine, MachineAction
from dispatcher.domain.records import CallMeta
from dispatcher.domain.statuses import TERMINAL_CALL_STATUSES, CallStatus, CallType, FailReason
from dispatcher.store import jobs
from dispatcher.store.calls import CallStore, Change, Snapshot
from dispatcher.store.stores import Stores, end_call
from workers.context import WorkerContext, stores_of, typed
from workers.retries import retry_if_worth_it

log = structlog.get_logger("workers.connecting")

CARRIER_FAILURES = {
    "busy": FailReason.EU_BUSY,
    "no_answer": FailReason.EU_NO_ANSWER,
    "wrong_number": FailReason.EU_WRONG_NUMBER,
    "failed": FailReason.VOIP_CONN_GENERAL,
    "canceled": FailReason.AG_CANCELED,  # the product cancelled it (a hang-up while ringing)
}
# Results of a detection the campaign asked for: who answered (outcomes named as AnsweredBy).
ANSWERERS = frozenset(AnsweredBy)
# Results that say the carrier's call is still alive.
LIVE_OUTCOMES = frozenset({"ringing", "answer", *ANSWERERS})
# How often a dial (a hang-up) is tried when the carrier is busy or out of reach.
DIAL_TRIES = 3
HANGUP_TRIES = 5


async def connect_call(ctx: dict[str, Any], subdomain: str, call_id: int) -> str:
    """assigned -> connecting -> dialled. Excess calls over the tenant's calls per second wait
    for a token of the shared bucket (re-queued, never dropped)."""
    context = typed(ctx)
    stores = await stores_of(context, subdomain)
    calls = stores.calls if stores else None
    snapshot = await calls.load(call_id) if calls else None
    if stores is None or calls is None or snapshot is None:
        return "no call"
    if snapshot.call.status == CallStatus.ASSIGNED:
        if snapshot.meta.pending_action is not None:
            return "waiting for the agent's choice"
        closed = _window_closed(calls, snapshot)
        if closed is not None:
            await end_call(stores, call_id, FailReason.AG_CANCELED, details=closed)
            return "outside its calling window"
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
    return await _dial(context, stores, snapshot)


def _window_closed(calls: CallStore, snapshot: Snapshot) -> str | None:
    """An outbound API call is judged against its calling window as it is created, and again
    here, as it is dialled (the tenant's carrier pace may have held it since): why it may not be
    dialled now, or None. A scheduled call was judged as it fired."""
    number = snapshot.meta.end_user_number
    if snapshot.call.call_type != CallType.OUTBOUND or number is None:
        return None
    refusal = compliance.outbound_refusal(calls.tenant, number, clock.now())
    return refusal.message if refusal is not None else None


def _to_connecting(current: Snapshot) -> Change | None:
    if current.call.status != CallStatus.ASSIGNED:
        return None
    return Change(lifecycle.connecting(current.call))


async def _dial(context: WorkerContext, stores: Stores, snapshot: Snapshot) -> str:
    calls = stores.calls
    number = snapshot.meta.end_user_number
    try:
        carrier = context["carriers"].of(calls.tenant)
        if number is None:
            raise CarrierError("no number to dial")
        carrier_id = await carrier.dial(
            Dial(
                calls.tenant,
                snapshot.call.id,
                number,
                snapshot.call.outbound_number,
                snapshot.agent_id,
                await machine_plan(stores, snapshot.meta),
            )
        )
    except CarrierError as exc:
        return await _not_dialled(context, stores, snapshot.call.id, exc)
    return await _record_dialled(calls, snapshot.call.id, carrier_id)


async def _not_dialled(
    context: WorkerContext, stores: Stores, call_id: int, exc: CarrierError
) -> str:
    """A carrier that was busy or out of reach is tried again, DIAL_TRIES times in all; any
    other refusal fails the call with the carrier's reason."""
    retry_if_worth_it(exc, context["job_try"], DIAL_TRIES, "dial")
    log.warning("carrier refused the call", error=str(exc), fail_reason=exc.fail_reason)
    await end_call(stores, call_id, FailReason(exc.fail_reason), details=str(exc))
    return "carrier refused"


async def _record_dialled(calls: CallStore, call_id: int, carrier_id: str) -> str:
    """Records the carrier's call; the first carrier call recorded is the call's (a status
    callback may record it before the dial's answer arrives). Any other carrier call for it,
    or one placed for a call that ended meanwhile, is hung up."""
    after = await calls.apply(call_id, _adopt(carrier_id))
    if after is None:
        current = await calls.load(call_id)
        if current is None or current.meta.carrier_call_id != carrier_id:
            await calls.enqueue([_hangup(calls, call_id, carrier_id)])
            log.warning("call dialled twice, hanging up the second carrier call")
            return "dialled twice, hung up"
        after = current
    if after.call.status in TERMINAL_CALL_STATUSES:
        await calls.enqueue([_hangup(calls, call_id, carrier_id)])
        return "ended while dialling, hung up"
    return "dialled"


def _adopt(carrier_id: str) -> Callable[[Snapshot], Change | None]:
    def record(current: Snapshot) -> Change | None:
        if current.meta.carrier_call_id is not None:
            return None
        meta = current.meta.model_copy(update={"carrier_call_id": carrier_id})
        return Change(current.call, meta=meta, announce=False)

    return record


async def machine_plan(stores: Stores, meta: CallMeta) -> AnsweringMachine | None:
    """The call's campaign's plan for an answering machine: detection is asked for with one."""
    if meta.campaign_id is None:
        return None
    return (await stores.campaigns.rules(meta.campaign_id)).answering_machine


def _hangup(calls: CallStore, call_id: int, carrier_id: str) -> jobs.JobSpec:
    return jobs.hangup(calls.tenant.subdomain, call_id, carrier_id, clock.to_ms(clock.now()))


async def carrier_result(
    ctx: dict[str, Any],
    subdomain: str,
    call_id: int,
    outcome: str,
    carrier_call_id: str | None = None,
) -> str:
    """What the carrier reports: ringing, answer, completed, or a failure (busy, no_answer,
    ...). A result that names its carrier call (`carrier_call_id`, from a status callback)
    counts only for the call's own carrier call."""
    context = typed(ctx)
    stores = await stores_of(context, subdomain)
    if stores is None:
        return "no tenant"
    calls = stores.calls
    context["metrics"].carrier_result(calls.tenant.doc.settings.carrier, outcome)
    if carrier_call_id is not None:
        settled = await _settle_carrier_call(calls, call_id, outcome, carrier_call_id)
        if settled is not None:
            return settled
    return await _apply_result(stores, call_id, outcome)


async def _settle_carrier_call(
    calls: CallStore, call_id: int, outcome: str, carrier_id: str
) -> str | None:
    """None when the result applies to the call. A carrier call still alive that is not the
    call's own (a dial repeated after its answer was lost), or whose call has ended here, is
    hung up."""
    snapshot = await calls.apply(call_id, _adopt(carrier_id)) or await calls.load(call_id)
    if snapshot is None:
        return "no call"
    live = outcome in LIVE_OUTCOMES
    if snapshot.meta.carrier_call_id != carrier_id:
        if live:
            await calls.enqueue([_hangup(calls, call_id, carrier_id)])
            return "another carrier call, hung up"
        return "ignored"
    if live and snapshot.call.status in TERMINAL_CALL_STATUSES:
        if outcome in ANSWERERS and snapshot.meta.answered_by is not None:
            return "detected already"  # a repeat: the machine may be hearing its message
        await calls.enqueue([_hangup(calls, call_id, carrier_id)])
        return "call ended, hung up"
    return None


async def _apply_result(stores: Stores, call_id: int, outcome: str) -> str:
    if outcome == "ringing":
        return "ringing"
    if outcome in ANSWERERS:
        return await _answered_by(stores, call_id, AnsweredBy(outcome))
    if outcome not in {"answer", "completed"}:
        reason = CARRIER_FAILURES.get(outcome, FailReason.UNKNOWN)
        return "failed" if await end_call(stores, call_id, reason) else "ignored"
    calls = stores.calls
    snapshot = await calls.load(call_id)
    detecting = await _detecting(stores, snapshot)
    if outcome == "answer":
        if detecting:
            return "answered, detecting who"  # connected (or not) once the carrier can tell
        connected = await calls.apply(call_id, _answer(None), loaded=snapshot)
        return "connected" if connected else "ignored"
    # Completed: only an answered call completes. When its answer is still to come (a retried
    # job runs late, the carrier could not tell who answered before the end), the call was
    # connected all the same, and it finishes.
    await calls.apply(call_id, _answer(AnsweredBy.UNKNOWN if detecting else None), loaded=snapshot)
    ended = await end_call(stores, call_id, None, by="disconnected_by_end_user")
    return "finished" if ended else "ignored"


async def _detecting(stores: Stores, snapshot: Snapshot | None) -> bool:
    """Whether the carrier was asked who answers the call (its campaign has a machine plan)."""
    return snapshot is not None and await machine_plan(stores, snapshot.meta) is not None


def _answer(answered_by: AnsweredBy | None) -> Callable[[Snapshot], Change | None]:
    """connecting -> connected, recording who answered when the carrier detected it."""
    now = clock.now()

    def connect(current: Snapshot) -> Change | None:
        if current.call.status != CallStatus.CONNECTING:
            return None
        call = lifecycle.connected(current.call, now)
        if answered_by is None:
            return Change(call)
        return Change(
            call.model_copy(update={"answered_by": answered_by.value}),
            meta=current.meta.model_copy(update={"answered_by": answered_by.value}),
        )

    return connect


async def _answered_by(stores: Stores, call_id: int, answered_by: AnsweredBy) -> str:
    """A detection's result: a person (or someone the carrier could not tell) is connected, as
    is a machine when the campaign says connect; otherwise the machine ends the call."""
    snapshot = await stores.calls.load(call_id)
    if snapshot is None:
        return "no call"
    plan = await machine_plan(stores, snapshot.meta)
    if answered_by == AnsweredBy.MACHINE and plan is not None and plan.ends_call:
        return await _machine_ends(stores, snapshot, plan)
    connected = await stores.calls.apply(call_id, _answer(answered_by), loaded=snapshot)
    return f"connected, {answered_by.value}" if connected else "ignored"


async def _machine_ends(stores: Stores, snapshot: Snapshot, plan: AnsweringMachine) -> str:
    """A machine answered a call whose campaign hangs up or leaves a message: the machine is
    recorded with the carrier's job (hang up, or play the message and hang up), then the call
    fails as unanswered and frees its agent. Two steps, each safe to repeat: a retried job
    finds the machine recorded and ends the call."""
    calls, call_id = stores.calls, snapshot.call.id

    def mark(current: Snapshot) -> Change | None:
        if current.call.status != CallStatus.CONNECTING or current.meta.answered_by is not None:
            return None
        machine = AnsweredBy.MACHINE.value
        carrier_id = current.meta.carrier_call_id
        queued = [_machine_job(calls, call_id, carrier_id, plan)] if carrier_id else []
        return Change(
            current.call.model_copy(update={"answered_by": machine}),
            meta=current.meta.model_copy(update={"answered_by": machine}),
            jobs=queued,
            announce=False,
        )

    marked = await calls.apply(call_id, mark, loaded=snapshot) or await calls.load(call_id)
    if (
        marked is None
        or marked.call.status != CallStatus.CONNECTING
        or marked.meta.answered_by != AnsweredBy.MACHINE
    ):
        return "ignored"
    ended = await end_call(stores, call_id, FailReason.EU_NO_ANSWER, details=plan.fail_details)
    return "failed, machine" if ended else "ignored"


def _machine_job(
    calls: CallStore, call_id: int, carrier_id: str, plan: AnsweringMachine
) -> jobs.JobSpec:
    if plan.action == MachineAction.MESSAGE:
        now_ms = clock.to_ms(clock.now())
        return jobs.leave_message(calls.tenant.subdomain, call_id, carrier_id, now_ms)
    return _hangup(calls, call_id, carrier_id)


async def hangup_call(ctx: dict[str, Any], subdomain: str, call_id: int, carrier_id: str) -> str:
    """Ends a carrier call the product no longer wants (the call ended here first)."""
    context = typed(ctx)
    tenant = await context["directory"].tenant(subdomain)
    if tenant is None:
        return "no tenant"
    structlog.contextvars.bind_contextvars(tenant=subdomain, call_id=call_id)
    try:
        await context["carriers"].of(tenant).hangup(tenant, call_id, carrier_id)
    except CarrierError as exc:
        retry_if_worth_it(exc, context["job_try"], HANGUP_TRIES, "hang-up")
        log.error("carrier did not hang up", error=str(exc), carrier_call_id=carrier_id)
        return "not hung up"
    return "hung up"


async def leave_message(ctx: dict[str, Any], subdomain: str, call_id: int, carrier_id: str) -> str:
    """Plays the campaign's message to the machine that answered, which then hangs up; when
    the carrier cannot, the carrier call is hung up all the same."""
    context = typed(ctx)
    stores = await stores_of(context, subdomain)
    snapshot = await stores.calls.load(call_id) if stores else None
    if stores is None or snapshot is None:
        return "no call"
    plan = await machine_plan(stores, snapshot.meta)
    if plan is None or plan.action != MachineAction.MESSAGE:
        return "no message"
    tenant = stores.tenant
    structlog.contextvars.bind_contextvars(tenant=subdomain, call_id=call_id)
    try:
        await context["carriers"].of(tenant).leave_message(tenant, call_id, carrier_id, plan)
    except CarrierError as exc:
        retry_if_worth_it(exc, context["job_try"], HANGUP_TRIES, "message")
        log.error("carrier did not leave the message", error=str(exc), carrier_call_id=carrier_id)
        await stores.calls.enqueue([_hangup(stores.calls, call_id, carrier_id)])
        return "message not left, hung up"
    return "message left"
