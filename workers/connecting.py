"""Connecting an assigned call through the carrier, paced per tenant, and the results."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog

from dispatcher.carriers.base import CarrierError, Dial
from dispatcher.domain import clock, compliance, lifecycle
from dispatcher.domain.machines import AnsweredBy, AnsweringMachine, MachineAction
from dispatcher.domain.records import CallMeta, first_carrier
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
        connecting = _to_connecting(first_carrier(calls.tenant))
        snapshot = await calls.apply(call_id, connecting, loaded=snapshot)
    elif snapshot.call.status == CallStatus.SWITCHING:
        snapshot = await calls.apply(call_id, _switched(switches), loaded=snapshot)
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
                await machine_plan(stores, snapshot.meta),
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


async def machine_plan(stores: Stores, meta: CallMeta) -> AnsweringMachine | None:
    """The call's campaign's plan for an answering machine: detection is asked for with one."""
    if meta.campaign_id is None:
        return None
    return (await stores.campaigns.rules(meta.campaign_id)).answering_machine


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
    if isinstance(settled, str):
        return settled
    return await _apply_result(stores, settled, outcome)


async def _settle_carrier_call(
    calls: CallStore, call_id: int, outcome: str, carrier_id: str | None, carrier: str | None
) -> str | Snapshot:
    """The call as read when the result applies to it, else what became of the result. A
    carrier call still alive that is not the call's own (a dial repeated after its answer was
    lost, or placed by a carrier the call switched away from), or whose call has ended here,
    is hung up at its carrier."""
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
        if _detected_already(snapshot, outcome):
            return "detected already"
        await calls.enqueue([_hangup(calls, call_id, carrier_id, carrier)])
        return "call ended, hung up"
    return snapshot


def _detected_already(snapshot: Snapshot, outcome: str) -> bool:
    """A late or repeated result of a call whose answerer was recorded: a verdict again, or
    any live result once a machine ended the call, whose carrier call the machine's own job
    hangs up or gives the message (a hang-up now would cut the message off)."""
    answered_by = snapshot.meta.answered_by
    if answered_by is None:
        return False
    return outcome in ANSWERERS or answered_by == AnsweredBy.MACHINE


async def _apply_result(stores: Stores, snapshot: Snapshot, outcome: str) -> str:
    """The result applied to the call, as `snapshot` (just read) has it: no read again."""
    call_id = snapshot.call.id
    if outcome == "ringing":
        return "ringing"
    if outcome in ANSWERERS:
        return await _answered_by(stores, call_id, AnsweredBy(outcome))
    if outcome not in {"answer", "completed"}:
        reason = CARRIER_FAILURES.get(outcome, FailReason.UNKNOWN)
        # Read again, not ended over `snapshot`: a report of the same carrier call sent before
        # this one (ringing) may be applied beside it, and one that finds the call ended hangs
        # up a carrier call that is over. Reading again keeps that race as rare as it was.
        return "failed" if await end_call(stores, call_id, reason) else "ignored"
    calls = stores.calls
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
    # Ended over a fresh read, as a failure is (see above).
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
    fails as unanswered and frees its agent (a redial policy sees `answered_by` machine). Two
    steps, each safe to repeat: a retried job finds the machine recorded and ends the call."""
    calls, call_id = stores.calls, snapshot.call.id

    def mark(current: Snapshot) -> Change | None:
        if current.call.status != CallStatus.CONNECTING or current.meta.answered_by is not None:
            return None
        machine = AnsweredBy.MACHINE.value
        carrier_id = current.meta.carrier_call_id
        queued = [_machine_job(calls, current, carrier_id, plan)] if carrier_id else []
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
    calls: CallStore, current: Snapshot, carrier_id: str, plan: AnsweringMachine
) -> jobs.JobSpec:
    """The carrier's part, at the carrier placing the call: hang up, or leave the message."""
    call_id, carrier = current.call.id, current.meta.carrier
    if plan.action == MachineAction.MESSAGE:
        now_ms = clock.to_ms(clock.now())
        return jobs.leave_message(calls.tenant.subdomain, call_id, carrier_id, now_ms, carrier)
    return _hangup(calls, call_id, carrier_id, carrier)


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


async def leave_message(
    ctx: dict[str, Any], subdomain: str, call_id: int, carrier_id: str, carrier: str | None = None
) -> str:
    """Plays the campaign's message to the machine that answered, at the carrier that placed
    the call (None: the tenant's first), which then hangs up; when the carrier cannot, the
    carrier call is hung up all the same."""
    context = typed(ctx)
    stores = await stores_of(context, subdomain)
    snapshot = await stores.calls.load(call_id) if stores else None
    if stores is None or snapshot is None:
        return "no call"
    plan = await machine_plan(stores, snapshot.meta)
    if plan is None or plan.action != MachineAction.MESSAGE:
        return "no message"
    tenant, carriers = stores.tenant, context["carriers"]
    structlog.contextvars.bind_contextvars(tenant=subdomain, call_id=call_id)
    try:
        adapter = carriers.named(carrier) if carrier else carriers.of(tenant)
        await adapter.leave_message(tenant, call_id, carrier_id, plan)
    except CarrierError as exc:
        retry_if_worth_it(exc, context["job_try"], HANGUP_TRIES, "message")
        log.error("carrier did not leave the message", error=str(exc), carrier_call_id=carrier_id)
        await stores.calls.enqueue([_hangup(stores.calls, call_id, carrier_id, carrier)])
        return "message not left, hung up"
    return "message left"
