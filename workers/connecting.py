"""Connecting an assigned call through the carrier, paced per tenant, and the results."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog

from dispatcher.carriers.base import CarrierError, Dial
from dispatcher.domain import clock, compliance, lifecycle
from dispatcher.domain.records import first_carrier
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
# Results that say the carrier's call is still alive.
LIVE_OUTCOMES = frozenset({"ringing", "answer"})
# How often a dial (a hang-up) is tried when the carrier is busy or out of reach.
DIAL_TRIES = 3
HANGUP_TRIES = 5


async def connect_call(ctx: dict[str, Any], subdomain: str, call_id: int, switches: int = 0) -> str:
    """assigned -> connecting -> dialled through the tenant's first carrier. Excess calls over
    the tenant's calls per second wait for a token of the shared bucket (re-queued, never
    dropped). A call its carrier failed is in switching: the job `switches` n (queued with
    the move) dials it through the next carrier, unpaced (it took its token), and a job of an
    earlier attempt, run again, finds it is not its own any more."""
    context = typed(ctx)
    stores = await stores_of(context, subdomain)
    calls = stores.calls if stores else None
    snapshot = await calls.load(call_id) if calls else None
    if stores is None or calls is None or snapshot is None:
        return "no call"
    if snapshot.call.status == CallStatus.ASSIGNED:
        held = await _held_back(stores, snapshot)
        if held is not None:
            return held
        snapshot = await calls.apply(call_id, _to_connecting(first_carrier(calls.tenant)))
    elif snapshot.call.status == CallStatus.SWITCHING:
        snapshot = await calls.apply(call_id, _switched(switches))
    if snapshot is None or snapshot.call.status != CallStatus.CONNECTING:
        return "not connecting"
    if snapshot.meta.switches != switches:
        return "switched already"
    if snapshot.meta.carrier_call_id is not None:
        return "dialled already"
    return await _dial(context, stores, snapshot)


async def _held_back(stores: Stores, snapshot: Snapshot) -> str | None:
    """Why an assigned call is not dialled now (its agent's choice, its calling window, the
    tenant's pace: re-queued), or None."""
    calls, call_id = stores.calls, snapshot.call.id
    if snapshot.meta.pending_action is not None:
        return "waiting for the agent's choice"
    closed = _window_closed(calls, snapshot)
    if closed is not None:
        await end_call(stores, call_id, FailReason.AG_CANCELED, details=closed)
        return "outside its calling window"
    wait_ms = await calls.take_carrier_token(calls.tenant.doc.settings.calls_per_second)
    if wait_ms:
        due = clock.to_ms(clock.now()) + wait_ms
        sub = calls.tenant.subdomain
        await calls.enqueue([jobs.JobSpec(jobs.CONNECT_CALL, sub, call_id, due, (), f"paced{due}")])
        return f"paced {wait_ms} ms"
    return None


def _window_closed(calls: CallStore, snapshot: Snapshot) -> str | None:
    """An outbound API call is judged against its calling window as it is created, and again
    here, as it is dialled (the tenant's carrier pace may have held it since): why it may not be
    dialled now, or None. A scheduled call was judged as it fired."""
    number = snapshot.meta.end_user_number
    if snapshot.call.call_type != CallType.OUTBOUND or number is None:
        return None
    refusal = compliance.outbound_refusal(calls.tenant, number, clock.now())
    return refusal.message if refusal is not None else None


def _to_connecting(carrier: str) -> Callable[[Snapshot], Change | None]:
    def start(current: Snapshot) -> Change | None:
        if current.call.status != CallStatus.ASSIGNED:
            return None
        meta = current.meta.model_copy(update={"carrier": carrier})
        return Change(lifecycle.connecting(current.call, carrier=carrier), meta=meta)

    return start


def _switched(switches: int) -> Callable[[Snapshot], Change | None]:
    """switching -> connecting, by the job of this switch only."""

    def resume(current: Snapshot) -> Change | None:
        if current.call.status != CallStatus.SWITCHING or current.meta.switches != switches:
            return None
        return Change(lifecycle.connecting(current.call, carrier=current.meta.carrier))

    return resume


def _carrier_of(calls: CallStore, snapshot: Snapshot) -> str:
    return snapshot.meta.carrier or first_carrier(calls.tenant)


async def _dial(context: WorkerContext, stores: Stores, snapshot: Snapshot) -> str:
    calls = stores.calls
    number = snapshot.meta.end_user_number
    name = _carrier_of(calls, snapshot)
    try:
        carrier = context["carriers"].named(name)
        if number is None:
            raise CarrierError("no number to dial")
        carrier_id = await carrier.dial(
            Dial(
                calls.tenant,
                snapshot.call.id,
                number,
                snapshot.call.outbound_number,
                snapshot.agent_id,
            )
        )
    except CarrierError as exc:
        return await _not_dialled(context, stores, snapshot, name, exc)
    return await _record_dialled(calls, snapshot.call.id, carrier_id, name)


async def _not_dialled(
    context: WorkerContext, stores: Stores, snapshot: Snapshot, carrier: str, exc: CarrierError
) -> str:
    """A carrier at fault hands the call to the tenant's next carrier at once: a carrier that
    is down fails the next try too, and each try of one that times out waits out its timeout
    while the agent holds the call. The last carrier, or one only busy (429), is tried again,
    DIAL_TRIES times in all; any other refusal fails the call with the carrier's reason."""
    if exc.carrier_fault:
        switched = await _switch(stores.calls, snapshot, carrier, exc)
        if switched is not None:
            return switched
    retry_if_worth_it(exc, context["job_try"], DIAL_TRIES, "dial")
    log.warning("carrier refused the call", error=str(exc), fail_reason=exc.fail_reason)
    await end_call(stores, snapshot.call.id, FailReason(exc.fail_reason), details=str(exc))
    return "carrier refused"


async def _switch(
    calls: CallStore, snapshot: Snapshot, carrier: str, exc: CarrierError
) -> str | None:
    """connecting -> switching, with the job that dials the next carrier queued in the same
    write; None when `carrier` was the tenant's last. Only the attempt that failed switches:
    a call that moved on meanwhile (ended, or its carrier call recorded by a callback after
    all) is left as it is."""
    following = calls.tenant.doc.settings.next_carrier(carrier)
    if following is None:
        return None
    attempt, switches = snapshot.meta.switches, snapshot.meta.switches + 1
    now_ms = clock.to_ms(clock.now())
    sub, call_id = calls.tenant.subdomain, snapshot.call.id
    job = jobs.JobSpec(jobs.CONNECT_CALL, sub, call_id, now_ms, (switches,), f"switch{switches}")

    def switch(current: Snapshot) -> Change | None:
        meta = current.meta
        if current.call.status != CallStatus.CONNECTING or meta.switches != attempt:
            return None
        if meta.carrier_call_id is not None:
            return None
        moved = meta.model_copy(update={"carrier": following, "switches": switches})
        return Change(lifecycle.switching(current.call, following), meta=moved, jobs=[job])

    if await calls.apply(call_id, switch) is None:
        return "moved on meanwhile, not switched"
    log.warning("carrier failed the dial, switching", carrier=carrier, to=following, error=str(exc))
    return f"switching to {following}"


async def _record_dialled(calls: CallStore, call_id: int, carrier_id: str, carrier: str) -> str:
    """Records the carrier's call; the first carrier call recorded is the call's (a status
    callback may record it before the dial's answer arrives). Any other carrier call for it,
    or one placed for a call that ended meanwhile, is hung up."""
    after = await calls.apply(call_id, _adopt(carrier_id, carrier))
    if after is None:
        current = await calls.load(call_id)
        if current is None or current.meta.carrier_call_id != carrier_id:
            await calls.enqueue([_hangup(calls, call_id, carrier_id, carrier)])
            log.warning("call dialled twice, hanging up the second carrier call")
            return "dialled twice, hung up"
        after = current
    if after.call.status in TERMINAL_CALL_STATUSES:
        await calls.enqueue([_hangup(calls, call_id, carrier_id, carrier)])
        return "ended while dialling, hung up"
    return "dialled"


def _adopt(carrier_id: str, carrier: str | None) -> Callable[[Snapshot], Change | None]:
    """Records `carrier_id` as the call's carrier call, when it has none yet and `carrier` is
    the one placing it (None: a result from before results named their carrier)."""

    def record(current: Snapshot) -> Change | None:
        if current.meta.carrier_call_id is not None:
            return None
        if not _placing(current, carrier):
            return None
        meta = current.meta.model_copy(update={"carrier_call_id": carrier_id})
        return Change(current.call, meta=meta, announce=False)

    return record


def _placing(current: Snapshot, carrier: str | None) -> bool:
    """Whether `carrier` is the one placing the call (after a switch, the failed one is not)."""
    return carrier is None or current.meta.carrier in (None, carrier)


def _hangup(calls: CallStore, call_id: int, carrier_id: str, carrier: str | None) -> jobs.JobSpec:
    now_ms = clock.to_ms(clock.now())
    return jobs.hangup(calls.tenant.subdomain, call_id, carrier_id, now_ms, carrier)


async def carrier_result(
    ctx: dict[str, Any],
    subdomain: str,
    call_id: int,
    outcome: str,
    carrier_call_id: str | None = None,
    carrier: str | None = None,
) -> str:
    """What the carrier reports: ringing, answer, completed, or a failure (busy, no_answer,
    ...). A result counts only from the carrier placing the call (`carrier`: the one that
    sent it; None on results queued before they named it) and, when it names its carrier
    call (`carrier_call_id`, from a status callback), only for the call's own carrier call."""
    context = typed(ctx)
    stores = await stores_of(context, subdomain)
    if stores is None:
        return "no tenant"
    calls = stores.calls
    context["metrics"].carrier_result(carrier or first_carrier(calls.tenant), outcome)
    settled = await _settle_carrier_call(calls, call_id, outcome, carrier_call_id, carrier)
    if settled is not None:
        return settled
    return await _apply_result(stores, call_id, outcome)


async def _settle_carrier_call(
    calls: CallStore, call_id: int, outcome: str, carrier_id: str | None, carrier: str | None
) -> str | None:
    """None when the result applies to the call. A carrier call still alive that is not the
    call's own (a dial repeated after its answer was lost, or placed by a carrier the call
    switched away from), or whose call has ended here, is hung up at its carrier."""
    adopted = await calls.apply(call_id, _adopt(carrier_id, carrier)) if carrier_id else None
    snapshot = adopted or await calls.load(call_id)
    if snapshot is None:
        return "no call"
    live = outcome in LIVE_OUTCOMES
    own = _placing(snapshot, carrier) and carrier_id in (None, snapshot.meta.carrier_call_id)
    if not own:
        if live and carrier_id is not None:
            await calls.enqueue([_hangup(calls, call_id, carrier_id, carrier)])
            return "another carrier call, hung up"
        return "ignored"
    if live and carrier_id is not None and snapshot.call.status in TERMINAL_CALL_STATUSES:
        await calls.enqueue([_hangup(calls, call_id, carrier_id, carrier)])
        return "call ended, hung up"
    return None


async def _apply_result(stores: Stores, call_id: int, outcome: str) -> str:
    calls = stores.calls
    if outcome == "ringing":
        return "ringing"
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
        ended = await end_call(stores, call_id, None, by="disconnected_by_end_user")
        return "finished" if ended else "ignored"
    reason = CARRIER_FAILURES.get(outcome, FailReason.UNKNOWN)
    return "failed" if await end_call(stores, call_id, reason) else "ignored"


async def hangup_call(
    ctx: dict[str, Any], subdomain: str, call_id: int, carrier_id: str, carrier: str | None = None
) -> str:
    """Ends a carrier call the product no longer wants (the call ended here first, or it is
    not the call's own) at the carrier that placed it (None: the tenant's first)."""
    context = typed(ctx)
    tenant = await context["directory"].tenant(subdomain)
    if tenant is None:
        return "no tenant"
    structlog.contextvars.bind_contextvars(tenant=subdomain, call_id=call_id)
    carriers = context["carriers"]
    try:
        adapter = carriers.named(carrier) if carrier else carriers.of(tenant)
        await adapter.hangup(tenant, call_id, carrier_id)
    except CarrierError as exc:
        retry_if_worth_it(exc, context["job_try"], HANGUP_TRIES, "hang-up")
        log.error("carrier did not hang up", error=str(exc), carrier_call_id=carrier_id)
        return "not hung up"
    return "hung up"
