"""Redials: which failed call of a campaign is called again, when, and as what. A redial is a
new scheduled call of the same campaign, the failed call's child (`parent_id`); the failed call
becomes `recovered` ("a failed call that was called back; the new call is its child"). The
store queues the look at a redial in the same write as the failure (store/calls.py), and the
job that makes it (workers/redials.py) makes one child per failed call however often it runs."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from dispatcher.directory.schema import (
    MAX_REDIAL_AFTER_S,
    MAX_REDIAL_ATTEMPTS,
    REDIAL_OUTCOMES,
    RedialPolicy,
)
from dispatcher.directory.tenant import Tenant
from dispatcher.domain.call_requests import QueuedPlan
from dispatcher.domain.compliance import CampaignRules
from dispatcher.domain.errors import InvalidRequest
from dispatcher.domain.objects import CallObject
from dispatcher.domain.records import CallMeta
from dispatcher.domain.statuses import CallStatus, CallType, FailReason

MACHINE = "machine"
# The fail reasons a redial may follow (a machine's answer fails a call eu_no_answer).
REDIALLED_REASONS = frozenset(REDIAL_OUTCOMES) - {MACHINE}
NEVER_REDIALLED = {
    FailReason.EU_REJECTED.value: "a rejected call is never redialled",
    FailReason.EU_WRONG_NUMBER.value: "a wrong number is never redialled",
}


def policy_for(tenant: Tenant, own: CampaignRules | None) -> RedialPolicy | None:
    """The campaign's own policy, else the tenant's default; None: no redials."""
    if own is not None and own.redial is not None:
        return own.redial
    return tenant.doc.settings.redial


def outcome_of(call: CallObject, meta: CallMeta) -> str | None:
    """The outcome of a failed (or recovered) call as a policy names it; None for a call that
    did not fail."""
    if call.status not in (CallStatus.FAILED, CallStatus.RECOVERED) or call.fail_reason is None:
        return None
    if call.fail_reason == FailReason.EU_NO_ANSWER and meta.answered_by == MACHINE:
        return MACHINE
    return call.fail_reason


def may_follow(call: CallObject) -> bool:
    """Whether a call ending now could be redialled by some policy: the store queues a look at
    it only then."""
    return call.status == CallStatus.FAILED and call.fail_reason in REDIALLED_REASONS


def redial_plan(
    tenant: Tenant, call: CallObject, meta: CallMeta, delay_s: int, now: datetime
) -> QueuedPlan | None:
    """The child of a failed campaign call: the same number, menu, language and outbound
    number, due `delay_s` after now; None when its menu is gone."""
    menu = tenant.menus_by_id.get(meta.menu_id or 0)
    number = meta.end_user_number
    if menu is None or number is None:
        return None
    ticket_id = call.out_ticket_id
    contact = tenant.contacts_by_ticket.get(ticket_id) if ticket_id is not None else None
    return QueuedPlan(
        call_type=CallType.SCHEDULED,
        menu=menu,
        lang=call.lang,
        end_user_number=number,
        ticket_id=ticket_id,
        contact=contact or tenant.contacts_by_number.get(number),
        outbound_number=call.outbound_number,
        recording_permission=call.recording_permission or "not_asked",
        scheduled_at=now + timedelta(seconds=delay_s),
        parent_id=call.id,
        attempt=meta.attempt + 1,
        contact_id=meta.contact_id or call.id,
    )


def parse_policy(raw: Any) -> RedialPolicy | None:
    """A campaign's `redial`, checked with messages that name the place of the problem;
    null: the tenant's default."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise InvalidRequest("redial must be an object")
    for name in raw:
        if name not in ("max_attempts", "after_s"):
            raise InvalidRequest(f"redial.{name} is not a redial setting (max_attempts, after_s)")
    attempts = raw.get("max_attempts")
    if isinstance(attempts, bool) or not isinstance(attempts, int):
        attempts = None
    if attempts is None or not 1 <= attempts <= MAX_REDIAL_ATTEMPTS:
        raise InvalidRequest(
            f"redial.max_attempts must be an integer from 1 to {MAX_REDIAL_ATTEMPTS}"
        )
    after = raw.get("after_s", {})
    if not isinstance(after, dict):
        raise InvalidRequest("redial.after_s must be an object of outcome: seconds")
    for outcome, seconds in after.items():
        _check_delay(str(outcome), seconds)
    return RedialPolicy.model_validate({"max_attempts": attempts, "after_s": after})


def _check_delay(outcome: str, seconds: object) -> None:
    place = f"redial.after_s.{outcome}"
    if outcome in NEVER_REDIALLED:
        raise InvalidRequest(f"{place}: {NEVER_REDIALLED[outcome]}")
    if outcome not in REDIAL_OUTCOMES:
        raise InvalidRequest(
            f"{place} is not an outcome that is redialled (one of {', '.join(REDIAL_OUTCOMES)})"
        )
    if isinstance(seconds, bool) or not isinstance(seconds, int):
        seconds = None
    if seconds is None or not 1 <= seconds <= MAX_REDIAL_AFTER_S:
        raise InvalidRequest(
            f"{place} must be an integer of seconds from 1 to {MAX_REDIAL_AFTER_S}"
        )
