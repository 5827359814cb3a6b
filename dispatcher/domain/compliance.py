"""Calls that must not be placed: which rules bind a call (the company DNC list, the calling
window in the end user's local time, the contact limit per number), and what a call told no is
answered or becomes. The checks that must be atomic with a call's write run in Redis
(store/scripts.py's Guard); the calling window is a matter of the clock, judged here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict

from dispatcher.directory.schema import CallingWindow, RedialPolicy
from dispatcher.directory.tenant import Tenant
from dispatcher.domain import clock, windows
from dispatcher.domain.errors import InvalidRequest
from dispatcher.domain.machines import AnsweringMachine
from dispatcher.domain.statuses import CallType

# The platform's text for a call to a listed number, exact: the 400 of POST /calls, and the
# fail_details of a scheduled call that comes due after its number was listed.
ON_DNC_LIST = "This call cannot be placed because the phone number is on the Company DNC list"
CONTACT_LIMIT_SPAN = timedelta(hours=24)
CONTACT_LIMIT_SPAN_MS = 86_400_000
# What a held call's object says holds it (`held_reason`).
HELD_BY_WINDOW = "calling_window"
HELD_BY_LIMIT = "contact_limit"
NEVER_OPENS = "The calling window does not open at the phone number's location within 400 days"
DNC_KINDS = {CallType.OUTBOUND: "outbound", CallType.SCHEDULED: "scheduled"}


@dataclass(frozen=True)
class Rules:
    """What binds one call: whether the DNC list blocks it, the window it must fall in (None:
    any hour), and its number's contact limit (None: no limit)."""

    dnc: bool
    window: CallingWindow | None
    contact_limit: int | None

    @property
    def binds(self) -> bool:
        return self.dnc or self.window is not None or self.contact_limit is not None


class CampaignRules(BaseModel):
    """A campaign's own calling window, contact limit and redial policy (None: the tenant's),
    and what its calls do when a machine answers (None: no detection asked)."""

    model_config = ConfigDict(frozen=True)

    calling_window: CallingWindow | None = None
    contact_limit_24h: int | None = None
    redial: RedialPolicy | None = None
    # Fire only while the menu's estimated wait is at most this (GET /wait_times's estimate)
    max_estimated_wait_s: int | None = None
    answering_machine: AnsweringMachine | None = None


NO_CAMPAIGN_RULES = CampaignRules()


def rules_for(tenant: Tenant, call_type: CallType, campaign: CampaignRules | None) -> Rules:
    """A tenant's rules for a call kind, a campaign's own taking the place of the tenant's.
    Inbound calls are bound by none. The DNC list and the contact limit bind the kinds the
    tenant's `dnc_call_types` names; the calling window binds every outbound and scheduled
    call."""
    kind = DNC_KINDS.get(call_type)
    if kind is None:
        return Rules(dnc=False, window=None, contact_limit=None)
    settings = tenant.doc.settings
    own = campaign or NO_CAMPAIGN_RULES
    listed = kind in settings.dnc_call_types
    limit = own.contact_limit_24h or settings.contact_limit_24h
    return Rules(
        dnc=listed,
        window=own.calling_window or settings.calling_window,
        contact_limit=limit if listed else None,
    )


def opening(tenant: Tenant, window: CallingWindow | None, number: str, at: datetime) -> datetime:
    """`at` when a call to `number` may be placed then, else the window's next opening at the
    number's location (every zone of it). InvalidRequest when it never opens."""
    if window is None:
        return at
    zones = windows.zones_of(number, tenant.doc.timezone)
    opens = windows.opening(window, zones, at)
    if opens is None:
        raise InvalidRequest(NEVER_OPENS)
    return opens


def outbound_refusal(tenant: Tenant, number: str, now: datetime) -> InvalidRequest | None:
    """Why an outbound call to `number` may not be dialled at `now` (its calling window is
    closed there, or never opens), or None: judged as the call is created and as it is dialled."""
    window = rules_for(tenant, CallType.OUTBOUND, None).window
    if window is None:
        return None
    try:
        opens = opening(tenant, window, number, now)
    except InvalidRequest as never:
        return never
    return outside_window(opens) if opens > now else None


def outside_window(opens: datetime) -> InvalidRequest:
    """An outbound API call asked for outside its window."""
    return InvalidRequest(
        "This call cannot be placed now because it is outside the calling window at the phone"
        f" number's location; the window opens at {clock.iso(opens)}"
    )


def over_contact_limit(limit: int, retry_at_ms: int) -> InvalidRequest:
    """An outbound API call to a number that had its `limit` attempts in the last 24 hours."""
    return InvalidRequest(
        "This call cannot be placed because the phone number has reached its contact limit of"
        f" {limit} calls in 24 hours; it may be called again at"
        f" {clock.iso(clock.from_ms(retry_at_ms))}"
    )
