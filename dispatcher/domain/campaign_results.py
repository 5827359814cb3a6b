"""A campaign's results: its calls gathered into contacts (a first call and its redials), each
contact's final outcome in the platform's contact-status words, the campaign's report, and the
rows of its export (docs/api.md, "A campaign's results")."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import orjson

from dispatcher.directory.schema import RedialPolicy
from dispatcher.domain import clock
from dispatcher.domain.campaigns import CANCELLED_DETAILS
from dispatcher.domain.compliance import ON_DNC_LIST
from dispatcher.domain.redials import MACHINE
from dispatcher.domain.statuses import TERMINAL_CALL_STATUSES, CallStatus, FailReason


class Outcome(StrEnum):
    """A contact's final outcome, from its latest call (in the order the report lists them)."""

    ANSWERED = "answered"
    NOT_PICKED_UP = "not_picked_up"
    BUSY = "busy"
    MACHINE = "machine"
    DNC = "dnc"
    FAILED = "failed"
    REDIAL_SCHEDULED = "redial_scheduled"
    MAX_ATTEMPTS_REACHED = "max_attempts_reached"
    PENDING = "pending"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class CampaignCall:
    """What the results need of one call of a campaign: its object's facts and its meta's."""

    id: int
    contact_id: int  # its contact's first call (its own id for a first call)
    status: str
    fail_reason: str
    fail_details: str | None
    answered_by: str | None
    number: str | None
    end_user_id: int | None
    out_contact_id: str | None
    created_at: str
    scheduled_at: str | None
    queued_at: str | None
    assigned_at: str | None
    connected_at: str | None
    ends_at: str | None
    held: bool

    @classmethod
    def of(cls, doc: bytes, meta: bytes) -> CampaignCall:
        call: dict[str, Any] = orjson.loads(doc)
        facts: dict[str, Any] = orjson.loads(meta)
        end_user = call.get("end_user") or {}
        contact = facts.get("contact_id")
        return cls(
            id=call["id"],
            contact_id=contact if isinstance(contact, int) else call["id"],
            status=call["status"],
            fail_reason=call.get("fail_reason") or FailReason.NOTHING,
            fail_details=call.get("fail_details"),
            answered_by=call.get("answered_by") or facts.get("answered_by"),
            number=facts.get("end_user_number"),
            end_user_id=end_user.get("id"),
            out_contact_id=end_user.get("out_contact_id"),
            created_at=call["created_at"],
            scheduled_at=call.get("scheduled_at"),
            queued_at=call.get("queued_at"),
            assigned_at=call.get("assigned_at"),
            connected_at=call.get("connected_at"),
            ends_at=call.get("ends_at"),
            held=call.get("held_until") is not None,
        )

    @property
    def machine(self) -> bool:
        """A machine answered and the call failed for it (redials.outcome_of's `machine`)."""
        return self.fail_reason == FailReason.EU_NO_ANSWER and self.answered_by == MACHINE


@dataclass(slots=True)
class Contact:
    """One contact of a campaign: its first call, its latest, and how many calls it had (the
    first, its redials made, and a redial scheduled)."""

    first: CampaignCall
    latest: CampaignCall
    attempts: int = 1


class Contacts:
    """A campaign's contacts, folded from its calls read oldest first: a redial's id is drawn
    after its parent's, so each contact's latest call is the last one read for it. Holds one
    contact (two calls' facts) each, not the calls."""

    def __init__(self) -> None:
        self.by_id: dict[int, Contact] = {}
        self.calls = 0

    def add(self, stored: Iterable[tuple[bytes, bytes]]) -> None:
        for doc, meta in stored:
            call = CampaignCall.of(doc, meta)
            self.calls += 1
            contact = self.by_id.get(call.contact_id)
            if contact is None:
                self.by_id[call.contact_id] = Contact(first=call, latest=call)
            else:
                contact.latest = call
                contact.attempts += 1

    def ordered(self) -> list[Contact]:
        """By first call, oldest first (the export's order)."""
        return [self.by_id[contact_id] for contact_id in sorted(self.by_id)]


def outcome(contact: Contact, policy: RedialPolicy | None) -> Outcome:
    """The contact's final outcome, read from its latest call (docs/api.md gives each)."""
    call = contact.latest
    if call.status == CallStatus.SCHEDULED:
        return Outcome.REDIAL_SCHEDULED if contact.attempts > 1 else Outcome.PENDING
    if call.status not in TERMINAL_CALL_STATUSES:
        return Outcome.PENDING
    if call.status == CallStatus.FINISHED:
        return Outcome.ANSWERED
    return _failure(contact, policy)


def _failure(contact: Contact, policy: RedialPolicy | None) -> Outcome:
    call = contact.latest
    if call.fail_details == ON_DNC_LIST:
        return Outcome.DNC
    cancelled = call.fail_details == CANCELLED_DETAILS or (
        call.fail_reason == FailReason.AG_CANCELED and call.fail_details is None
    )
    if cancelled:
        return Outcome.CANCELLED
    # The policy's word for the failure, as the redial of it was decided (redials.outcome_of).
    named = MACHINE if call.machine else call.fail_reason
    if policy is not None and named in policy.after_s and contact.attempts >= policy.max_attempts:
        return Outcome.MAX_ATTEMPTS_REACHED
    if call.machine:
        return Outcome.MACHINE
    if call.fail_reason == FailReason.EU_BUSY:
        return Outcome.BUSY
    if call.fail_reason == FailReason.EU_NO_ANSWER:
        return Outcome.NOT_PICKED_UP
    return Outcome.FAILED


def report(campaign_id: int, contacts: Contacts, policy: RedialPolicy | None) -> dict[str, Any]:
    """GET /campaigns/:id/report's answer."""
    outcomes: Counter[Outcome] = Counter()
    attempts: Counter[int] = Counter()
    waits: list[float] = []
    talks: list[float] = []
    held = 0
    for contact in contacts.by_id.values():
        found = outcome(contact, policy)
        outcomes[found] += 1
        attempts[contact.attempts] += 1
        held += contact.latest.held
        if found == Outcome.ANSWERED:
            _measure(waits, contact.latest.queued_at, contact.latest.assigned_at)
            _measure(talks, contact.latest.connected_at, contact.latest.ends_at)
    total = len(contacts.by_id)
    return {
        "campaign_id": campaign_id,
        "contacts": total,
        "calls": contacts.calls,
        "redials": contacts.calls - total,
        "held": held,
        "outcomes": {name.value: outcomes[name] for name in Outcome},
        "attempts": {
            "distribution": {str(n): attempts[n] for n in sorted(attempts)},
            "mean": round(contacts.calls / total, 3) if total else None,
        },
        "contact_rate": round(outcomes[Outcome.ANSWERED] / total, 4) if total else None,
        "wait_duration": _mean(waits),
        "call_duration": _mean(talks),
    }


def _measure(into: list[float], start: str | None, end: str | None) -> None:
    began, ended = clock.parse_iso(start), clock.parse_iso(end)
    if began is not None and ended is not None:
        into.append(_seconds(began, ended))


def _seconds(began: datetime, ended: datetime) -> float:
    return max(0.0, (ended - began).total_seconds())


def _mean(values: list[float]) -> dict[str, Any]:
    """Seconds, to the millisecond; null mean when no answered call had both moments."""
    mean = round(sum(values) / len(values), 3) if values else None
    return {"calls": len(values), "mean": mean}


# The export's columns: one row per contact.
EXPORT_COLUMNS = (
    "first_call_id",
    "end_user_number",
    "end_user_id",
    "out_contact_id",
    "latest_call_id",
    "outcome",
    "attempts",
    "latest_status",
    "fail_reason",
    "fail_details",
    "answered_by",
    "first_created_at",
    "latest_scheduled_at",
    "latest_queued_at",
    "latest_connected_at",
    "latest_ended_at",
)


def export_row(contact: Contact, policy: RedialPolicy | None) -> list[Any]:
    """A contact's row, in EXPORT_COLUMNS' order (the cells as exports.cell writes them)."""
    first, latest = contact.first, contact.latest
    return [
        first.id,
        first.number,
        first.end_user_id,
        first.out_contact_id,
        latest.id,
        outcome(contact, policy).value,
        contact.attempts,
        latest.status,
        latest.fail_reason,
        latest.fail_details,
        latest.answered_by,
        first.created_at,
        latest.scheduled_at,
        latest.queued_at,
        latest.connected_at,
        latest.ends_at,
    ]
