"""Building the call and chat objects of a validated request, with the private facts beside them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel

from dispatcher.directory.schema import Contact, Menu
from dispatcher.directory.tenant import Tenant
from dispatcher.domain import clock
from dispatcher.domain.call_requests import SELECT_END_USER_NUMBER, OutboundPlan, QueuedPlan
from dispatcher.domain.chat_requests import SmsPlan
from dispatcher.domain.objects import (
    AgentInfo,
    CallObject,
    CallParticipant,
    ChatAgentInfo,
    ChatObject,
    ChatParticipant,
    EndUser,
    MenuPathInfo,
    OfferEvent,
    SelectedMenu,
)
from dispatcher.domain.routing import group_name, unlocked_groups
from dispatcher.domain.statuses import CallStatus, CallType, ChatStatus


@dataclass(frozen=True)
class Ids:
    """Ids drawn from the tenant's counters for one new call or chat."""

    record: int
    first_participant: int
    end_user: int | None
    created: datetime  # from the store's clock, drawn with the id


class CallMeta(BaseModel):
    """What workers need about a call that its public object does not say."""

    end_user_number: str | None = None
    end_user_choices: list[str] = []
    outbound_choices: list[str] = []
    agent_id: int | None = None
    menu_id: int | None = None
    pending_action: str | None = None
    carrier_call_id: str | None = None
    # The carrier placing the call (set as it starts connecting; None on calls from before
    # failover: their tenant's first carrier) and how many times it moved to the next one.
    carrier: str | None = None
    switches: int = 0
    campaign_id: int | None = None  # fired by its campaign's pump, at the campaign's pace
    attempt: int = 1  # a campaign's call: which call to its contact this is (redials count on)
    contact_id: int | None = None  # a redial: its contact's first call (None: this call is)
    answered_by: str | None = None  # human, machine or unknown, when detection was asked
    # A 202 call's deadline for its agent's choice (ms), after which it fails `expired`.
    choice_expires_ms: int | None = None


class ChatMeta(BaseModel):
    end_user_number: str
    message: str
    agent_id: int | None = None


def voip_provider(carrier: str) -> str:
    """The call object's name for the carrier placing it."""
    return f"voip_provider_{carrier}"


def first_carrier(tenant: Tenant) -> str:
    """The carrier a new call is placed through, until it fails the call."""
    return tenant.doc.settings.carriers[0]


def first_groups(menu: Menu, now: datetime) -> list[str]:
    """The groups offered a call as it is queued."""
    return [group_name(i) for i in unlocked_groups(menu, now, now)]


def _end_user(contact: Contact | None, ids: Ids) -> EndUser:
    """The CRM's contact, or the end user numbered for this phone number."""
    return EndUser.of(contact) if contact else EndUser(id=ids.end_user or 0)


def outbound_call(
    plan: OutboundPlan, tenant: Tenant, ids: Ids, now: datetime
) -> tuple[CallObject, CallMeta]:
    stamp = clock.iso(now)
    end_user_id = plan.contact.id if plan.contact else None
    call = CallObject(
        id=ids.record,
        lang=plan.lang,
        call_type=CallType.OUTBOUND,
        status=CallStatus.ASSIGNED,
        created_at=stamp,
        assigned_at=stamp,
        voip_provider=voip_provider(first_carrier(tenant)),
        out_ticket_id=plan.ticket_id,
        agent_info=AgentInfo.of(plan.agent),
        end_user=EndUser.of(plan.contact) if plan.contact else None,
        participants=[
            CallParticipant(
                id=ids.first_participant, type="agent", call_id=ids.record, user_id=plan.agent.id
            ),
            CallParticipant(
                id=ids.first_participant + 1,
                type="end_user",
                call_id=ids.record,
                end_user_id=end_user_id,
            ),
        ],
        outbound_number=plan.outbound_number,
    )
    meta = CallMeta(
        end_user_number=plan.end_user_number,
        end_user_choices=plan.end_user_choices,
        outbound_choices=plan.outbound_choices,
        agent_id=plan.agent.id,
        pending_action=plan.pending_action,
        choice_expires_ms=_choice_expires_ms(plan, tenant, now),
    )
    return call, meta


def _choice_expires_ms(plan: OutboundPlan, tenant: Tenant, now: datetime) -> int | None:
    """When a call that waits for its agent's choice stops waiting (None: it waits for none)."""
    if plan.pending_action is None:
        return None
    return clock.to_ms(now) + round(tenant.doc.settings.choice_timeout_s * 1000)


def pending_choice(plan: OutboundPlan, call_id: int, meta: CallMeta) -> dict[str, object]:
    """The 202 answer of an outbound call that waits for the agent's choice: the accepted
    request, the created call and what must be chosen."""
    accepted: dict[str, object] = {
        "call_type": CallType.OUTBOUND.value,
        "agent_email": plan.agent.email,
    }
    if plan.ticket_id is not None:
        accepted["ticket_id"] = plan.ticket_id
    if plan.end_user_number is not None:
        accepted["end_user_number"] = plan.end_user_number
    accepted["lang"] = plan.lang
    accepted["call_id"] = call_id
    accepted["pending_action"] = meta.pending_action
    accepted["choices"] = (
        meta.end_user_choices
        if meta.pending_action == SELECT_END_USER_NUMBER
        else meta.outbound_choices
    )
    return accepted


def queued_call(
    plan: QueuedPlan, tenant: Tenant, ids: Ids, now: datetime
) -> tuple[CallObject, CallMeta]:
    stamp = clock.iso(now)
    end_user = _end_user(plan.contact, ids)
    scheduled = plan.scheduled_at is not None
    events = (
        []
        if scheduled
        else [OfferEvent(casting_time=stamp, group=group) for group in first_groups(plan.menu, now)]
    )
    call = CallObject(
        id=ids.record,
        parent_id=plan.parent_id,
        lang=plan.lang,
        call_type=plan.call_type,
        status=CallStatus.SCHEDULED if scheduled else CallStatus.QUEUED,
        created_at=stamp,
        queued_at=None if scheduled else stamp,
        scheduled_at=clock.iso(plan.scheduled_at) if plan.scheduled_at else None,
        voip_provider=voip_provider(first_carrier(tenant)),
        out_ticket_id=plan.ticket_id,
        recording_permission=plan.recording_permission,
        selected_menu=SelectedMenu.of(plan.menu),
        menu_path=MenuPathInfo.of(tenant.menu_path(plan.menu)),
        end_user=end_user,
        participants=[
            CallParticipant(
                id=ids.first_participant,
                type="end_user",
                call_id=ids.record,
                end_user_id=end_user.id,
            )
        ],
        offer_type=plan.menu.routing,
        offer_events=events,
        outbound_number=plan.outbound_number,
    )
    meta = CallMeta(
        end_user_number=plan.end_user_number,
        menu_id=plan.menu.id,
        attempt=plan.attempt,
        contact_id=plan.contact_id,
    )
    return call, meta


def sms_chat(plan: SmsPlan, ids: Ids, now: datetime) -> tuple[ChatObject, ChatMeta]:
    stamp = clock.iso(now)
    end_user = _end_user(plan.contact, ids)
    participants = [
        ChatParticipant(
            id=ids.first_participant,
            type="end_user",
            chat_id=ids.record,
            end_user_id=end_user.id,
            connected_at=stamp,
        )
    ]
    if plan.agent is not None:
        participants.append(
            ChatParticipant(
                id=ids.first_participant + 1,
                type="agent",
                chat_id=ids.record,
                user_id=plan.agent.id,
                connected_at=stamp,
            )
        )
    chat = ChatObject(
        id=ids.record,
        chat_type=plan.chat_type,
        status=ChatStatus.ASSIGNED if plan.agent else ChatStatus.SELECTING,
        created_at=stamp,
        assigned_at=stamp if plan.agent else None,
        out_ticket_id=plan.ticket_id,
        agent_info=ChatAgentInfo.of(plan.agent) if plan.agent else None,
        end_user=end_user,
        participants=participants,
        outbound_number=plan.outbound_number,
    )
    meta = ChatMeta(
        end_user_number=plan.end_user_number,
        message=plan.message,
        agent_id=plan.agent.id if plan.agent else None,
    )
    return chat, meta
