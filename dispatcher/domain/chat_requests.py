"""Validation of POST /sms bodies, in the exact order of the spec."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import phonenumbers

from dispatcher.directory.schema import Agent, Contact
from dispatcher.directory.tenant import Tenant
from dispatcher.domain import phones
from dispatcher.domain.errors import InvalidRequest
from dispatcher.domain.fields import blank, integer, ticket_id
from dispatcher.domain.statuses import CHAT_TYPE_ALIASES, ChatType

MAX_MESSAGE_CHARS = 1600  # what carriers concatenate at most (10 segments)
ACTIVE_SESSION = "Outbound SMS failed. Consumer is already in an active SMS session."
OPTED_OUT = "Outbound SMS failed. Consumer has opted out of SMS."


@dataclass(frozen=True)
class SmsPlan:
    chat_type: ChatType
    end_user_number: str
    outbound_number: str
    message: str
    ticket_id: str | None
    contact: Contact | None
    agent: Agent | None


def validate_sms(body: dict[str, Any], tenant: Tenant) -> SmsPlan:
    chat_type = _chat_type(body.get("chat_type"))
    settings = tenant.doc.settings
    if not settings.sms_enabled:
        raise InvalidRequest("SMS is not enabled")
    if not settings.outbound_sms_enabled:
        raise InvalidRequest("Outbound SMS is not enabled")
    allowed = set(settings.sms_allowed_regions)
    end_user_number = _end_user_number(body.get("end_user_number"), allowed)
    outbound_number = _outbound_number(body.get("outbound_number"), allowed, tenant)
    message = body.get("message")
    if not isinstance(message, str) or not message.strip():
        raise InvalidRequest("message is required")
    if len(message) > MAX_MESSAGE_CHARS:
        raise InvalidRequest(f"message is too long (at most {MAX_MESSAGE_CHARS} characters)")
    ticket = ticket_id(body.get("ticket_id"))
    contact = tenant.contacts_by_ticket.get(ticket) if ticket else None
    return SmsPlan(
        chat_type=chat_type,
        end_user_number=end_user_number,
        outbound_number=outbound_number,
        message=message,
        ticket_id=ticket,
        contact=contact or tenant.contacts_by_number.get(end_user_number),
        agent=_agent(body, tenant),
    )


def _chat_type(raw: object) -> ChatType:
    if raw is None or raw == "":
        raise InvalidRequest("chat_type needs to be provided")
    chat_type = CHAT_TYPE_ALIASES.get(raw) if isinstance(raw, str) else None
    if chat_type is None:
        raise InvalidRequest("valid chat type needs to be provided")
    return chat_type


def _end_user_number(raw: object, allowed: set[str]) -> str:
    if blank(raw):
        raise InvalidRequest("end_user_number is required")
    number = phones.parse(raw)
    if number is None:
        raise InvalidRequest("end_user_number is invalid")
    if phones.region(number) not in allowed:
        raise InvalidRequest("Non-US phone number not allowed")
    return phones.e164(number)


def _outbound_number(raw: object, allowed: set[str], tenant: Tenant) -> str:
    if blank(raw):
        raise InvalidRequest("outbound_number is required")
    allowed_codes = {phonenumbers.country_code_for_region(region) for region in allowed}
    code = phones.country_code(raw)
    if code is not None and code not in allowed_codes:
        raise InvalidRequest("Non-US phone number not allowed")
    number = phones.normalize(raw)
    if number is None:
        raise InvalidRequest("outbound_number is invalid")
    if number not in tenant.sms_numbers:
        raise InvalidRequest("outbound_number is not found")
    return number


def _agent(body: dict[str, Any], tenant: Tenant) -> Agent | None:
    agent_id, agent_email = body.get("agentId"), body.get("agentEmail")
    if agent_id is not None:
        found = tenant.agents_by_id.get(integer(agent_id) or 0)
    elif agent_email is not None:
        found = tenant.agent_by_email(agent_email) if isinstance(agent_email, str) else None
    else:
        return None
    if found is None:
        raise InvalidRequest("Agent not found")
    return found
