"""Campaigns: scheduled callbacks in bulk, fired at their pace. Validation of a new campaign,
of the calls that join one, and the campaign object clients read."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import BaseModel

from dispatcher.directory.schema import CallingWindow, Menu, RedialPolicy
from dispatcher.directory.tenant import Tenant
from dispatcher.domain import clock, machines, redials, windows
from dispatcher.domain.call_requests import OutboundPlan, QueuedPlan, scheduled_menu
from dispatcher.domain.compliance import NO_CAMPAIGN_RULES, CampaignRules
from dispatcher.domain.errors import Conflict, InvalidRequest
from dispatcher.domain.fields import blank, integer
from dispatcher.domain.machines import AnsweringMachine
from dispatcher.domain.statuses import TERMINAL_CALL_STATUSES, CallType

MAX_NAME_CHARS = 200
DEFAULT_CALLS_PER_SECOND = 10.0
# One call every 1,000 s (about 17 minutes) at the slowest: the pump's GCRA (release_campaign.lua)
# works in ms, and Redis takes its expiries (PX) as integers only below 1e17, which a rate near
# 0 (1e-300/s: an interval of 1e303 ms) overflows, failing the pump.
MIN_CALLS_PER_SECOND = 0.001
MAX_CALLS_PER_SECOND = 10_000
MAX_WAITING_CAP = 1_000_000
MAX_ESTIMATED_WAIT_S = 86_400
MAX_CONTACT_LIMIT = 1_000
NAME_TAKEN = "A campaign with this name already exists"
CAMPAIGN_CANCELLED = "Campaign is cancelled"
CAMPAIGN_NOT_FOUND = "Campaign not found"
ONLY_SCHEDULED = "Only scheduled calls can join a campaign"
# fail_reason of the calls a cancel ends before they fired (ended by the API's user, as
# POST /calls/:id/finish ends an unconnected call), and the words that say why.
CANCELLED_DETAILS = "Campaign cancelled before the call fired"


class CampaignAction(StrEnum):
    PAUSE = "pause"
    RESUME = "resume"
    CANCEL = "cancel"


class CampaignState(StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    CANCELLED = "cancelled"
    # Read only, never stored: a running campaign with calls, every one of them ended, none
    # due (see shown_state). A call that joins later, or a redial, makes it running again.
    COMPLETED = "completed"


@dataclass(frozen=True)
class CampaignPlan:
    name: str
    menu: Menu
    calls_per_second: float
    max_waiting: int | None
    rules: CampaignRules = NO_CAMPAIGN_RULES


def validate_campaign(body: dict[str, Any], tenant: Tenant) -> CampaignPlan:
    """POST /campaigns: name, then menu (as a scheduled call's), then pacing."""
    name = _name(body.get("name"))
    menu = scheduled_menu(body.get("menu_id"), tenant)
    pacing = body.get("pacing")
    if pacing is None:
        pacing = {}
    if not isinstance(pacing, dict):
        raise InvalidRequest("pacing must be an object")
    calls_per_second = _calls_per_second(pacing.get("calls_per_second"))
    max_waiting = _max_waiting(pacing.get("max_waiting"))
    max_wait_s = _max_estimated_wait(pacing.get("max_estimated_wait_s"))
    rules = _rules(body).model_copy(update={"max_estimated_wait_s": max_wait_s})
    return CampaignPlan(
        name=name,
        menu=menu,
        calls_per_second=calls_per_second,
        max_waiting=max_waiting,
        rules=rules,
    )


def _rules(body: dict[str, Any]) -> CampaignRules:
    """The campaign's own calling window, contact limit and redial policy, in place of the
    tenant's, and its plan for answering machines."""
    raw_window, raw_limit = body.get("calling_window"), body.get("contact_limit_24h")
    window = windows.parse_window(raw_window) if raw_window is not None else None
    limit = integer(raw_limit) if not isinstance(raw_limit, str | float) else None
    if raw_limit is not None and (limit is None or not 1 <= limit <= MAX_CONTACT_LIMIT):
        raise InvalidRequest(
            f"contact_limit_24h must be an integer from 1 to {MAX_CONTACT_LIMIT}, or null"
        )
    return CampaignRules(
        calling_window=window,
        contact_limit_24h=limit,
        redial=redials.parse_policy(body.get("redial")),
        answering_machine=machines.parse(body.get(machines.FIELD)),
    )


def _name(raw: object) -> str:
    if blank(raw):
        raise InvalidRequest("name is required")
    name = raw.strip() if isinstance(raw, str) else ""
    if not name or len(name) > MAX_NAME_CHARS or not name.isprintable():
        raise InvalidRequest(f"name must be 1 to {MAX_NAME_CHARS} printable characters")
    return name


def _calls_per_second(raw: object) -> float:
    if raw is None:
        return DEFAULT_CALLS_PER_SECOND
    if (
        isinstance(raw, bool)
        or not isinstance(raw, int | float)
        or not math.isfinite(raw)
        or not MIN_CALLS_PER_SECOND <= raw <= MAX_CALLS_PER_SECOND
    ):
        raise InvalidRequest(
            f"pacing.calls_per_second must be a number from {MIN_CALLS_PER_SECOND:g}"
            f" to {MAX_CALLS_PER_SECOND}"
        )
    return float(raw)


def _max_waiting(raw: object) -> int | None:
    if raw is None:
        return None
    value = integer(raw) if not isinstance(raw, str) else None
    if value is None or not 1 <= value <= MAX_WAITING_CAP:
        raise InvalidRequest(
            f"pacing.max_waiting must be an integer from 1 to {MAX_WAITING_CAP}, or null"
        )
    return value


def _max_estimated_wait(raw: object) -> int | None:
    if raw is None:
        return None
    value = integer(raw) if not isinstance(raw, str) else None
    if value is None or not 0 <= value <= MAX_ESTIMATED_WAIT_S:
        raise InvalidRequest(
            "pacing.max_estimated_wait_s must be an integer of seconds from 0 to"
            f" {MAX_ESTIMATED_WAIT_S}, or null"
        )
    return value


def with_campaign_defaults(body: dict[str, Any], menu_id: int) -> dict[str, Any]:
    """A call joining a campaign is a scheduled call on the campaign's menu unless it says
    otherwise; it is then validated exactly as POST /calls would validate it."""
    filled = dict(body)
    if "call_type" not in filled:
        filled["call_type"] = CallType.SCHEDULED.value
    if blank(filled.get("menu_id")) and blank(filled.get("call_id")):
        filled["menu_id"] = menu_id
    return filled


def check_joins(plan: OutboundPlan | QueuedPlan, menu_id: int) -> QueuedPlan:
    """After the checks of POST /calls: only a scheduled call on the campaign's own menu (the
    queue its pacing protects) may join it."""
    if not isinstance(plan, QueuedPlan) or plan.scheduled_at is None:
        raise InvalidRequest(ONLY_SCHEDULED)
    if plan.menu.id != menu_id:
        raise InvalidRequest(f"menu_id must be the campaign's menu ({menu_id})")
    return plan


class Pacing(BaseModel):
    calls_per_second: float
    max_waiting: int | None
    max_estimated_wait_s: int | None


class Progress(BaseModel):
    fired: int  # queued at their time (or later: paused, paced)
    not_fired: int  # still scheduled
    overdue: int  # still scheduled although their time has come: held by pause or pace
    ended_unfired: int  # ended before they fired: cancelled, or finished through the API
    held: int  # still scheduled, held past their time: calling window, contact limit
    fired_percent: float


class Lateness(BaseModel):
    """How late the fired calls were queued, against their scheduled_at."""

    mean_ms: float | None
    max_ms: int | None


class CampaignObject(BaseModel):
    id: int
    name: str
    menu_id: int
    state: CampaignState
    pacing: Pacing
    created_at: str
    paused_at: str | None
    cancelled_at: str | None
    total: int
    counts: dict[str, int]  # calls by status, statuses with none left out
    progress: Progress
    lateness: Lateness
    calling_window: CallingWindow | None  # its own, in place of the tenant's (None: the tenant's)
    contact_limit_24h: int | None
    redial: RedialPolicy | None  # its own, in place of the tenant's (None: the tenant's)
    answering_machine: AnsweringMachine | None  # None: no detection asked


def campaign_object(fields: dict[str, str], overdue: int, redialling: int = 0) -> CampaignObject:
    """The campaign as stored (its hash, decoded), how many of its calls are overdue, and how
    many of its failed calls have their redial being made."""
    total, fired = int(fields.get("total", 0)), int(fields.get("fired", 0))
    raw_rules = fields.get("rules")
    rules = CampaignRules.model_validate_json(raw_rules) if raw_rules else NO_CAMPAIGN_RULES
    counts = {
        name.removeprefix("n:"): int(value)
        for name, value in sorted(fields.items())
        if name.startswith("n:") and int(value) > 0
    }
    not_fired = counts.get("scheduled", 0)
    max_waiting = fields.get("max_waiting", "")
    return CampaignObject(
        id=int(fields["id"]),
        name=fields["name"],
        menu_id=int(fields["menu_id"]),
        state=shown_state(CampaignState(fields["state"]), total, counts, redialling),
        pacing=Pacing(
            calls_per_second=float(fields["rate"]),
            max_waiting=int(max_waiting) if max_waiting else None,
            max_estimated_wait_s=rules.max_estimated_wait_s,
        ),
        created_at=_stamp(fields.get("created_at")) or "",
        paused_at=_stamp(fields.get("paused_at")),
        cancelled_at=_stamp(fields.get("cancelled_at")),
        total=total,
        counts=counts,
        progress=Progress(
            fired=fired,
            not_fired=not_fired,
            overdue=overdue,
            ended_unfired=max(0, total - fired - not_fired),
            held=int(fields.get("held", 0)),
            fired_percent=round(100 * fired / total, 1) if total else 0.0,
        ),
        lateness=Lateness(
            mean_ms=round(int(fields.get("late_sum", 0)) / fired, 1) if fired else None,
            max_ms=int(fields.get("late_max", 0)) if fired else None,
        ),
        calling_window=rules.calling_window,
        contact_limit_24h=rules.contact_limit_24h,
        redial=rules.redial,
        answering_machine=rules.answering_machine,
    )


def shown_state(
    stored: CampaignState, total: int, counts: dict[str, int], redialling: int = 0
) -> CampaignState:
    """What a reader is told: `completed` once every call of a running campaign has ended,
    read from its counts by status. A call still scheduled (not fired yet, or a redial due)
    or on its way (queued to connected) keeps it running, and so does a failed call whose
    redial is being made (`redialling`, noted in the failure's own write). Derived on each
    read, so no write races the pump, a late join or a redial."""
    live = sum(n for status, n in counts.items() if status not in TERMINAL_CALL_STATUSES)
    if stored == CampaignState.RUNNING and total > 0 and live == 0 and redialling == 0:
        return CampaignState.COMPLETED
    return stored


def _stamp(raw_ms: str | None) -> str | None:
    return clock.iso(clock.from_ms(int(raw_ms))) if raw_ms else None


def cancelled() -> Conflict:
    return Conflict(CAMPAIGN_CANCELLED)
