"""Validation of POST /calls bodies, per call type, in the exact order of the spec."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from dispatcher.directory.schema import Agent, Contact, Menu
from dispatcher.directory.tenant import Tenant
from dispatcher.domain import clock, compliance, fields, languages, phones
from dispatcher.domain.errors import InvalidRequest
from dispatcher.domain.fields import blank, integer
from dispatcher.domain.statuses import CALL_TYPE_ALIASES, CallType

SELECT_OUTBOUND_NUMBER = "select_outbound_number"
SELECT_END_USER_NUMBER = "select_end_user_number"
RECORDING_PERMISSIONS = {
    "recording_permission_not_asked": "not_asked",
    "recording_permission_denied": "denied",
    "recording_permission_granted": "granted",
}


@dataclass(frozen=True)
class OutboundPlan:
    agent: Agent
    lang: str
    ticket_id: str | None
    contact: Contact | None
    end_user_number: str | None
    end_user_choices: list[str]
    outbound_number: str | None
    outbound_choices: list[str]

    @property
    def pending_action(self) -> str | None:
        if self.end_user_number is None:
            return SELECT_END_USER_NUMBER
        if self.outbound_number is None:
            return SELECT_OUTBOUND_NUMBER
        return None


@dataclass(frozen=True)
class QueuedPlan:
    """An inbound call, or a scheduled one (with `scheduled_at`)."""

    call_type: CallType
    menu: Menu
    lang: str
    end_user_number: str
    ticket_id: str | None
    contact: Contact | None
    outbound_number: str | None
    recording_permission: str
    scheduled_at: datetime | None = None
    parent_id: int | None = None
    attempt: int = 1  # a campaign's redial: its contact's attempt number
    contact_id: int | None = None  # a redial: the id of its contact's first call


@dataclass(frozen=True)
class ParentCall:
    id: int
    menu_id: int | None


def call_type_of(body: dict[str, Any]) -> CallType:
    raw = body.get("call_type")
    call_type = CALL_TYPE_ALIASES.get(raw) if isinstance(raw, str) else None
    if call_type is None:
        raise InvalidRequest("Invalid call type")
    return call_type


def parent_call_id(body: dict[str, Any]) -> int | None:
    """The `call_id` of a scheduled call when it can name a call at all."""
    return integer(body.get("call_id"))


def wanted_parent(body: dict[str, Any]) -> int | None:
    """The earlier call a scheduled call's body names (`call_id`): `validate` needs it looked up
    first (one read, or one pipelined read for a whole batch)."""
    raw = body.get("call_type")
    scheduled = isinstance(raw, str) and CALL_TYPE_ALIASES.get(raw) is CallType.SCHEDULED
    return parent_call_id(body) if scheduled else None


def validate(
    body: dict[str, Any], tenant: Tenant, now: datetime, parent: ParentCall | None
) -> OutboundPlan | QueuedPlan:
    """A POST /calls body of any call type, checked in the spec's order (`parent`: the call
    named by `wanted_parent`, None when there is none)."""
    call_type = call_type_of(body)
    if call_type is CallType.OUTBOUND:
        plan = validate_outbound(body, tenant)
        _within_window(plan, tenant, now)
        return plan
    if call_type is CallType.INBOUND:
        return validate_inbound(body, tenant, now)
    return validate_scheduled(body, tenant, now, parent)


def validate_outbound(body: dict[str, Any], tenant: Tenant) -> OutboundPlan:
    email = body.get("agent_email")
    if blank(email):
        raise InvalidRequest("Agent email required")
    agent = tenant.agent_by_email(email) if isinstance(email, str) else None
    if agent is None:
        raise InvalidRequest("Not a valid agent email")
    if not agent.can_make_calls:
        raise InvalidRequest("Agent does not have access to make calls")
    ticket_id = fields.ticket_id(body.get("ticket_id"))
    raw_number = body.get("end_user_number")
    if ticket_id is None and blank(raw_number):
        raise InvalidRequest("ticket_id or end_user_number required")
    contact, end_user_number, choices = _outbound_end_user(tenant, ticket_id, raw_number)
    lang = _known_language(body)
    outbound_number, outbound_choices = _outbound_number(tenant, body.get("outbound_number"))
    return OutboundPlan(
        agent=agent,
        lang=lang,
        ticket_id=ticket_id,
        contact=contact,
        end_user_number=end_user_number,
        end_user_choices=choices,
        outbound_number=outbound_number,
        outbound_choices=outbound_choices,
    )


def _within_window(plan: OutboundPlan, tenant: Tenant, now: datetime) -> None:
    """An outbound call is dialled at once: outside its calling window it is refused. One
    waiting for its end user's number to be chosen is judged when it is chosen."""
    if plan.end_user_number is None:
        return
    refusal = compliance.outbound_refusal(tenant, plan.end_user_number, now)
    if refusal is not None:
        raise refusal


def validate_inbound(body: dict[str, Any], tenant: Tenant, now: datetime) -> QueuedPlan:
    menu = _menu(body.get("menu_id"), tenant, {"ivr_menu", "mobile_menu"}, "IVR and mobile")
    lang = _menu_language(body, menu)
    _menu_open(tenant, menu, now)
    return _queued_plan(body, tenant, CallType.INBOUND, menu, lang)


def validate_scheduled(
    body: dict[str, Any], tenant: Tenant, now: datetime, parent: ParentCall | None
) -> QueuedPlan:
    raw_menu, raw_parent = body.get("menu_id"), body.get("call_id")
    if blank(raw_menu) and blank(raw_parent):
        raise InvalidRequest("menu_id is required")
    if not blank(raw_parent) and (parent is None or parent.id != parent_call_id(body)):
        raise InvalidRequest(f"Call {raw_parent} is not found")
    if blank(raw_menu) and parent is not None:
        if parent.menu_id is None:
            raise InvalidRequest("menu_id is required")
        raw_menu = parent.menu_id
    menu = scheduled_menu(raw_menu, tenant)
    lang = _menu_language(body, menu)
    scheduled_at = clock.parse_iso(body.get("scheduled_at"))
    if menu.state == "after_hours" or (
        scheduled_at is not None and tenant.is_after_hours(menu, scheduled_at)
    ):
        raise InvalidRequest("Menu is in 'after hours' state, can't accept incoming calls")
    _menu_not_redirecting(menu)
    plan = _queued_plan(body, tenant, CallType.SCHEDULED, menu, lang)
    if blank(body.get("scheduled_at")):
        raise InvalidRequest("scheduled_at is required")
    if scheduled_at is None:
        raise InvalidRequest("scheduled_at is not well formed")
    if scheduled_at <= now:
        raise InvalidRequest("scheduled_at must be in the future")
    return replace(plan, scheduled_at=scheduled_at, parent_id=parent.id if parent else None)


def _queued_plan(
    body: dict[str, Any], tenant: Tenant, call_type: CallType, menu: Menu, lang: str
) -> QueuedPlan:
    raw_number = body.get("end_user_number")
    if blank(raw_number):
        raise InvalidRequest("end_user_number is required")
    number = phones.normalize(raw_number)
    if number is None:
        raise InvalidRequest("end_user_number is not well formed")
    ticket_id = fields.ticket_id(body.get("ticket_id"))
    contact = tenant.contacts_by_ticket.get(ticket_id) if ticket_id is not None else None
    if contact is not None and contact.phone_numbers:
        # The ticket's contact takes priority over the number given.
        number = number if number in contact.phone_numbers else contact.phone_numbers[0]
    contact = contact or tenant.contacts_by_number.get(number)
    return QueuedPlan(
        call_type=call_type,
        menu=menu,
        lang=lang,
        end_user_number=number,
        ticket_id=ticket_id,
        contact=contact,
        outbound_number=_callback_number(tenant, body.get("outbound_number")),
        recording_permission=_recording_permission(body, menu),
    )


def scheduled_menu(raw: object, tenant: Tenant) -> Menu:
    """A menu that takes scheduled calls (mobile or web), or the spec's error for `raw`."""
    return _menu(raw, tenant, {"mobile_menu", "web_menu"}, "mobile and web")


def _menu(raw: object, tenant: Tenant, types: set[str], kinds: str) -> Menu:
    if blank(raw):
        raise InvalidRequest("menu_id is required")
    menu_id = integer(raw)
    if menu_id is None:
        raise InvalidRequest("menu_id is not well formed")
    menu = tenant.menus_by_id.get(menu_id)
    if menu is None:
        raise InvalidRequest(f"menu_id {menu_id} is not found")
    if menu.type not in types:
        raise InvalidRequest(f"Only {kinds} menu IDs are permitted")
    return menu


def _menu_language(body: dict[str, Any], menu: Menu) -> str:
    lang = _known_language(body)
    if lang not in menu.languages:
        raise InvalidRequest(f"Language '{lang}' is not available")
    return lang


def _known_language(body: dict[str, Any]) -> str:
    lang = body.get("lang")
    if lang is None:
        return "en"
    if not languages.is_known(lang):
        raise InvalidRequest(f"Language '{lang}' is not found")
    return str(lang)


def _menu_open(tenant: Tenant, menu: Menu, at: datetime) -> None:
    if tenant.is_after_hours(menu, at):
        raise InvalidRequest("Menu is in 'after hours' state, can't accept incoming calls")
    _menu_not_redirecting(menu)


def _menu_not_redirecting(menu: Menu) -> None:
    if menu.state == "manual_redirection":
        raise InvalidRequest("Menu is in 'manual redirection' state, can't accept calls")


def _outbound_end_user(
    tenant: Tenant, ticket_id: str | None, raw_number: object
) -> tuple[Contact | None, str | None, list[str]]:
    if ticket_id is not None:
        contact = tenant.contacts_by_ticket.get(ticket_id)
        if contact is None or not contact.phone_numbers:
            raise InvalidRequest("Contact not found")
        # The ticket takes priority: a number given only settles which of the contact's.
        given = phones.normalize(raw_number)
        if given is not None and given in contact.phone_numbers:
            return contact, given, []
        if len(contact.phone_numbers) == 1:
            return contact, contact.phone_numbers[0], []
        return contact, None, list(contact.phone_numbers)
    number = phones.normalize(raw_number)
    if number is None:
        raise InvalidRequest("end_user_number is not well-formed")
    return None, number, []


def _outbound_number(tenant: Tenant, raw: object) -> tuple[str | None, list[str]]:
    """The managed number to call from; (None, choices) when the agent must pick one."""
    given = phones.normalize(raw)
    if given is not None and given in tenant.voice_numbers:
        return given, []
    default = tenant.doc.settings.default_outbound_number
    if default is not None:
        return default, []
    if len(tenant.voice_numbers) == 1:
        return tenant.voice_numbers[0], []
    if not tenant.voice_numbers:
        raise InvalidRequest("No outbound number is available")
    return None, list(tenant.voice_numbers)


def _callback_number(tenant: Tenant, raw: object) -> str | None:
    given = phones.normalize(raw)
    if given is not None and given in tenant.voice_numbers:
        return given
    return tenant.doc.settings.default_outbound_number


def _recording_permission(body: dict[str, Any], menu: Menu) -> str:
    raw = body.get("recording_permission")
    if raw is None:
        raw = "recording_permission_not_asked"
    permission = RECORDING_PERMISSIONS.get(raw) if isinstance(raw, str) else None
    if permission is None:
        raise InvalidRequest("recording_permission is not valid")
    return permission if menu.recording == "ask" else "not_asked"
