"""The agent's choice a `202` outbound call waits for (the number to call from, or which of the
contact's numbers to call): what may be chosen, and what the choice makes of the call."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dispatcher.directory.tenant import Tenant
from dispatcher.domain import clock, compliance, phones
from dispatcher.domain.call_requests import SELECT_END_USER_NUMBER, SELECT_OUTBOUND_NUMBER
from dispatcher.domain.errors import InvalidRequest
from dispatcher.domain.fields import blank
from dispatcher.domain.objects import CallObject
from dispatcher.domain.records import CallMeta
from dispatcher.domain.statuses import CallStatus

NOT_WAITING = "Call is not waiting for a choice"
# The fail_details of a call whose choice timed out (fail_reason `expired`).
EXPIRED = "No number was chosen for the call within the tenant's choice_timeout_s"
# The body's field that answers each pending action.
FIELDS = {SELECT_OUTBOUND_NUMBER: "outbound_number", SELECT_END_USER_NUMBER: "end_user_number"}


@dataclass(frozen=True)
class Choice:
    """A number picked for a call's pending action, in E.164."""

    action: str
    number: str


def waiting(call: CallObject, meta: CallMeta) -> bool:
    """The call still waits for its agent's choice: assigned, with an action pending."""
    return call.status == CallStatus.ASSIGNED and meta.pending_action is not None


def offered(meta: CallMeta) -> list[str]:
    """The numbers the call's pending action may be answered with (the 202's `choices`)."""
    if meta.pending_action == SELECT_END_USER_NUMBER:
        return meta.end_user_choices
    return meta.outbound_choices


def choice_of(body: dict[str, Any], meta: CallMeta, tenant: Tenant, now: datetime) -> Choice:
    """The choice a request's body makes for a call waiting with `meta`, in this order: the
    one field the pending action asks for, given, well formed, among the choices offered; then,
    since the call dials at once once nothing is pending, its calling window as at creation.
    Other keys are ignored, as in every request, but the other action's field: that choice is
    not the one the call waits for."""
    action = meta.pending_action
    assert action is not None
    field = FIELDS[action]
    if any(other in body for other in FIELDS.values() if other != field):
        raise InvalidRequest(f"Only {field} can be chosen for this call")
    raw = body.get(field)
    if blank(raw):
        raise InvalidRequest(f"{field} is required")
    number = phones.normalize(raw)
    if number is None:
        raise InvalidRequest(f"{field} is not well formed")
    choices = offered(meta)
    if number not in choices:
        raise InvalidRequest(f"{field} must be one of {', '.join(choices)}")
    dialled = number if action == SELECT_END_USER_NUMBER else meta.end_user_number
    if dialled is not None:
        refusal = compliance.outbound_refusal(tenant, dialled, now)
        if refusal is not None:
            raise refusal
    return Choice(action, number)


def chosen(call: CallObject, meta: CallMeta, choice: Choice) -> tuple[CallObject, CallMeta]:
    """The call and its private facts once `choice` is made: the number recorded (the call
    object carries the outbound number; the end user's is private, as on any call), and the
    next action pending, if the outbound number is still to be chosen after the end user's."""
    if choice.action == SELECT_OUTBOUND_NUMBER:
        call = call.model_copy(update={"outbound_number": choice.number})
        meta = meta.model_copy(update={"pending_action": None})
        return call, meta
    following = SELECT_OUTBOUND_NUMBER if call.outbound_number is None else None
    meta = meta.model_copy(update={"end_user_number": choice.number, "pending_action": following})
    return call, meta


def view(call_id: int, meta: CallMeta) -> dict[str, Any]:
    """A waiting choice as the agent's routes show it."""
    expires = clock.iso(clock.from_ms(meta.choice_expires_ms)) if meta.choice_expires_ms else None
    return {
        "call_id": call_id,
        "pending_action": meta.pending_action,
        "choices": offered(meta),
        "expires_at": expires,
    }
