"""Pydantic schema of the directory file (docs/config.md); omitted optional keys take defaults."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime
from functools import cached_property
from typing import Annotated, Any, Literal, Self, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    model_validator,
)

from dispatcher.domain import destinations, languages, phones
from dispatcher.domain.statuses import AgentStatus

SUBDOMAIN = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
WINDOW = re.compile(r"([01]\d|2[0-3]):[0-5]\d-(([01]\d|2[0-3]):[0-5]\d|24:00)")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
ON_TENANT = "on_tenant"  # validation context key: called as each tenant of a file validates
# Validation context key: the networks a webhook_url may name besides public addresses. Only a
# directory being loaded has it: a stored one, read back, passed the check when it was loaded.
WEBHOOK_NETWORKS = "webhook_networks"
# Validation context key: the carrier adapters' names (dispatcher/carriers/registry.py), which a
# tenant's `carrier` and each of its `carriers` must be one of. Only a directory being loaded
# has it, as above.
CARRIERS = "carriers"


def _phone(raw: object) -> str:
    number = phones.normalize(raw)
    if number is None:
        raise ValueError("is not a possible phone number")
    return number


def _language(code: str) -> str:
    if not languages.is_known(code):
        raise ValueError(f"'{code}' is not an ISO 639-1 language code")
    return code


def _timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"'{name}' is not a known time zone") from exc
    return name


def _window(window: str) -> str:
    # Zero-padded HH:MM compare as text; a window ends after it starts, at 24:00 at the latest.
    if not WINDOW.fullmatch(window) or window[6:] <= window[:5]:
        raise ValueError(f"'{window}' is not a window like 09:00-17:00")
    return window


def _date(raw: object) -> date:
    """A calendar date written YYYY-MM-DD (YAML reads such text as a date already). Nothing
    else is taken: not a timestamp, nor a date and time, which would name no one local day."""
    if isinstance(raw, date) and not isinstance(raw, datetime):
        return raw
    if isinstance(raw, str) and DATE.fullmatch(raw):
        try:
            return date.fromisoformat(raw)
        except ValueError:
            pass
    raise ValueError("must be a date like 2026-12-25")


def _distinct(values: list[str]) -> list[str]:
    for value in values:
        if values.count(value) > 1:
            raise ValueError(f"lists '{value}' twice")
    return values


def _text_id(raw: object) -> object:
    return str(raw) if isinstance(raw, int) and not isinstance(raw, bool) else raw


def _webhook_url(url: str, info: ValidationInfo) -> str:
    context = info.context or {}
    if WEBHOOK_NETWORKS in context:
        problem = destinations.url_problem(url, context[WEBHOOK_NETWORKS])
        if problem is not None:
            raise ValueError(problem)
    return url


def _carrier(name: object, info: ValidationInfo) -> object:
    """Checked before the type, so that any value not named gives the one message."""
    names = (info.context or {}).get(CARRIERS)
    if names is not None and name not in names:
        raise ValueError(f"must be one of {', '.join(names)}")
    return name


Phone = Annotated[str, AfterValidator(_phone)]
Language = Annotated[str, AfterValidator(_language)]
TimeZone = Annotated[str, AfterValidator(_timezone)]
Window = Annotated[str, AfterValidator(_window)]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
LocalDate = Annotated[date, BeforeValidator(_date)]
TextId = Annotated[str, BeforeValidator(_text_id)]
WebhookUrl = Annotated[str, AfterValidator(_webhook_url)]
CarrierName = Annotated[str, BeforeValidator(_carrier)]
MenuType = Literal["ivr_menu", "mobile_menu", "web_menu"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


CarrierOutcome = Literal["answer", "machine", "busy", "no_answer", "wrong_number", "failed"]
# What the simulated carrier may do with a number: a result, or `unreachable`, the dial itself
# failing as a carrier that is down fails it (the call switches to the tenant's next carrier).
SimulatedOutcome = Literal[CarrierOutcome, "unreachable"]


class SimulatorRule(_Model):
    """Numbers starting with `prefix` (E.164) get `outcome` from the simulated carrier;
    `machine`: an answering machine answers (a person's answer where no detection is asked)."""

    prefix: str = Field(min_length=1)
    outcome: SimulatedOutcome


class SimulatorSettings(_Model):
    dial_latency_s: float = Field(default=0, ge=0, le=30)  # how long the carrier API takes
    answer_after_s: float = Field(default=1.0, ge=0)
    # None: the end user never hangs up; the agent finishes the call (`up --simulate-agents`).
    talk_time_s: float | None = Field(default=5.0, ge=0)
    rules: list[SimulatorRule] = Field(default_factory=list)

    def outcome_for(self, number: str) -> SimulatedOutcome:
        for rule in self.rules:
            if number.startswith(rule.prefix):
                return rule.outcome
        return "answer"


DEFAULT_ANSWER_MESSAGE = (
    "Hello. This is an automated call from our support team. We will be in touch. Goodbye."
)


class TwilioSettings(_Model):
    """How a tenant on `carrier: twilio` uses Twilio. Its credentials are never in the
    directory: the environment holds them (TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN, or with
    `account: acme` TWILIO_ACCOUNT_SID_ACME and TWILIO_AUTH_TOKEN_ACME)."""

    account: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_]{1,40}$")
    # How long the end user's phone rings before the call fails with eu_no_answer.
    ring_timeout_s: int = Field(default=30, ge=5, le=600)
    # What an end user who answers hears when the call's agent has no phone number to be
    # connected to (an agent_number written as an international number, +...); then it ends.
    answer_message: str = Field(default=DEFAULT_ANSWER_MESSAGE, min_length=1, max_length=1000)


MAX_WINDOWS_PER_DAY = 48
MAX_RESTRICTED_DATES = 1000


class CallingWindow(_Model):
    """When calls may be placed, in the end user's local time (dispatcher/domain/windows.py
    judges it): a day absent or empty has no calls, nor has a restricted date (a holiday, a
    whole local day at the end user's location)."""

    weekly: dict[Weekday, Annotated[list[Window], Field(max_length=MAX_WINDOWS_PER_DAY)]]
    restricted_dates: list[LocalDate] = Field(default_factory=list, max_length=MAX_RESTRICTED_DATES)

    @cached_property
    def spans(self) -> tuple[tuple[tuple[int, int], ...], ...]:
        """Each weekday's windows, Monday first, as minutes since midnight [start, end), sorted
        and with overlapping or touching windows merged: worked out once per window, as every
        outbound call is checked against it."""
        days = [self.weekly.get(day, []) for day in WEEKDAYS]  # type: ignore[call-overload]
        return tuple(_merged(windows) for windows in days)

    @cached_property
    def restricted(self) -> frozenset[date]:
        return frozenset(self.restricted_dates)

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy whose spans are worked out again, from its own windows."""
        copied = super().model_copy(update=update, deep=deep)
        for derived in ("spans", "restricted"):
            copied.__dict__.pop(derived, None)
        return copied


def _merged(windows: list[str]) -> tuple[tuple[int, int], ...]:
    spans = sorted((_minutes(w[:5]), _minutes(w[6:])) for w in windows)
    merged: list[tuple[int, int]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return tuple(merged)


def _minutes(clock: str) -> int:
    return int(clock[:2]) * 60 + int(clock[3:])


DncCallType = Literal["outbound", "scheduled"]


def _every_dnc_call_type() -> list[DncCallType]:
    return ["outbound", "scheduled"]


# The outcomes of a failed call that a redial policy may list: the end user busy or not
# answering, a machine answering (a call that fails `eu_no_answer` with `answered_by` machine),
# no agent taking it in time, the carrier failing it. Never a rejection: a person said no.
RedialOutcome = Literal[
    "eu_busy", "eu_no_answer", "machine", "expired", "voip_conn_general", "voip_conn_timeout"
]
REDIAL_OUTCOMES: tuple[str, ...] = get_args(RedialOutcome)
MAX_REDIAL_ATTEMPTS = 20
MAX_REDIAL_AFTER_S = 30 * 86_400


class RedialPolicy(_Model):
    """How a campaign's failed calls are called again: at most `max_attempts` calls to a contact
    in all (the first included), each redial due `after_s[outcome]` seconds after the failed
    attempt ended; an outcome not listed is not redialled."""

    max_attempts: int = Field(ge=1, le=MAX_REDIAL_ATTEMPTS)
    after_s: dict[RedialOutcome, Annotated[int, Field(ge=1, le=MAX_REDIAL_AFTER_S)]] = Field(
        default_factory=dict
    )

    def delay_s(self, outcome: str | None, attempt: int) -> int | None:
        """Seconds until the redial of an attempt (1-based) that ended with `outcome`; None
        when it is not redialled."""
        if outcome is None or attempt >= self.max_attempts:
            return None
        return next((s for name, s in self.after_s.items() if name == outcome), None)


class TenantSettings(_Model):
    sms_enabled: bool = True
    outbound_sms_enabled: bool = True
    sms_allowed_regions: list[str] = Field(default_factory=lambda: ["US"])
    sms_session_timeout_s: int = Field(default=3600, gt=0)
    default_outbound_number: Phone | None = None
    webhook_url: WebhookUrl | None = None
    webhook_secret: str | None = None
    # The carrier a call is placed through first; `carriers` the ones after it, in order
    # (docs/config.md): either may be given, both when they agree on the first.
    carrier: CarrierName = "simulated"
    carriers: Annotated[list[CarrierName], Field(min_length=1), AfterValidator(_distinct)] = Field(
        default_factory=lambda: ["simulated"]
    )
    calls_per_second: float = Field(default=10, gt=0)
    # An outbound call answered 202 fails `expired` when its agent has not chosen by then
    choice_timeout_s: float = Field(default=300, gt=0)
    # This tenant's API rate limit; unset: the process's DISPATCHER_RATE_LIMIT_* (0: no limit)
    rate_limit_per_s: float | None = Field(default=None, ge=0)
    rate_limit_burst: int | None = Field(default=None, ge=1)
    simulator: SimulatorSettings = Field(default_factory=SimulatorSettings)
    twilio: TwilioSettings = Field(default_factory=TwilioSettings)
    # None: calls at any hour
    calling_window: CallingWindow | None = None
    # At most this many call attempts to one number in any 24 hours; None: no limit
    contact_limit_24h: int | None = Field(default=None, ge=1)
    # The call kinds the company DNC list blocks (a campaign's calls are scheduled calls);
    # inbound calls never
    dnc_call_types: Annotated[list[DncCallType], AfterValidator(_distinct)] = Field(
        default_factory=_every_dnc_call_type
    )
    # The redial policy of campaigns that have none of their own; None: no redials
    redial: RedialPolicy | None = None

    @model_validator(mode="before")
    @classmethod
    def _carrier_order(cls, data: Any, info: ValidationInfo) -> Any:
        """`carrier` alone is the one carrier (directory files from before `carriers`);
        `carriers` alone names the first too. Given both, they must agree on the first."""
        if not isinstance(data, dict):
            return data
        carrier, carriers = data.get("carrier"), data.get("carriers")
        if carriers is None:
            # An unknown `carrier` is refused once, as itself, not again as a carriers' entry.
            names = (info.context or {}).get(CARRIERS)
            if carrier is None or (names is not None and carrier not in names):
                return data
            return {**data, "carriers": [carrier]}
        if not isinstance(carriers, list) or not carriers:
            return data  # refused by the field's own checks
        if carrier is None:
            return {**data, "carrier": carriers[0]}
        if carrier != carriers[0]:
            problem = f"carrier '{carrier}' must be the first of carriers when both are given"
            raise ValueError(problem)
        return data

    def next_carrier(self, current: str) -> str | None:
        """The carrier a call goes on to when `current` fails it; None after the last (or
        when `current` is no longer listed: the directory changed since)."""
        if current not in self.carriers:
            return None
        following = self.carriers.index(current) + 1
        return self.carriers[following] if following < len(self.carriers) else None


class OutboundNumber(_Model):
    number: Phone
    voice: bool = True
    sms: bool = True


class Capacity(_Model):
    voice: int = Field(default=1, ge=0)
    chat: int = Field(default=5, ge=0)


class Agent(_Model):
    id: int = Field(ge=1)
    email: str = Field(min_length=3, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")
    first_name: str = ""
    last_name: str = ""
    agent_number: TextId | None = None
    avatar_url: str | None = None
    can_make_calls: bool = True
    languages: list[Language] = Field(default_factory=lambda: ["en"])
    status: AgentStatus = AgentStatus.AVAILABLE
    capacity: Capacity = Field(default_factory=Capacity)
    # The agent's own credentials (Basic user `<subdomain>/<id>`), for the agent's routes only.
    # Read from the file, stored as hashes beside the tenant's (TenantRecord), never dumped.
    api_tokens: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=list, exclude=True, repr=False
    )

    @property
    def name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()


class Hours(_Model):
    timezone: TimeZone | None = None
    weekly: dict[Weekday, list[Window]]


class Menu(_Model):
    id: int = Field(ge=1)
    name: str
    type: MenuType
    parent_id: int | None = None
    position: int = 0
    output_msg: str | None = None
    hidden: bool = False
    languages: list[Language] = Field(default_factory=lambda: ["en"])
    state: Literal["open", "after_hours", "manual_redirection"] = "open"
    hours: Hours | None = None
    routing: Literal["cascade", "multicast"] = "cascade"
    groups: list[list[int]] = Field(default_factory=list)
    cascade_interval_s: float = Field(default=30, ge=0)
    offer_timeout_s: float = Field(default=30, gt=0)
    max_wait_s: float = Field(default=600, gt=0)
    recording: Literal["ask", "always", "never"] = "ask"


class Contact(_Model):
    ticket_id: TextId = Field(min_length=1)
    id: int
    identifier: str | None = None
    out_contact_id: TextId | None = None
    phone_numbers: list[Phone] = Field(default_factory=list)


class Team(_Model):
    """Agents named together, so a manager's bulk status change can name them at once."""

    id: int = Field(ge=1)
    name: str = Field(min_length=1)
    agent_ids: list[int] = Field(default_factory=list)


class TenantDoc(_Model):
    """A tenant's directory as stored: everything but its secrets."""

    subdomain: str = Field(pattern=SUBDOMAIN.pattern)
    timezone: TimeZone = "UTC"
    settings: TenantSettings = Field(default_factory=TenantSettings)
    outbound_numbers: list[OutboundNumber] = Field(default_factory=list)
    agents: list[Agent] = Field(default_factory=list)
    menus: list[Menu] = Field(default_factory=list)
    contacts: list[Contact] = Field(default_factory=list)
    teams: list[Team] = Field(default_factory=list)


class TenantFile(TenantDoc):
    api_tokens: list[Annotated[str, Field(min_length=1)]] = Field(min_length=1)

    @model_validator(mode="after")
    def _counted(self, info: ValidationInfo) -> TenantFile:
        """Tells the validation context's ON_TENANT callback, if any (a progress bar)."""
        on_tenant = (info.context or {}).get(ON_TENANT)
        if on_tenant is not None:
            on_tenant()
        return self


class DirectoryFile(_Model):
    tenants: list[TenantFile] = Field(min_length=1)


class TenantRecord(_Model):
    """What Redis holds for a tenant: the directory and the salted hashes of its tokens, and
    of its agents' own tokens by agent id."""

    directory: TenantDoc
    token_hashes: list[str]
    agent_token_hashes: dict[int, list[str]] = Field(default_factory=dict)
