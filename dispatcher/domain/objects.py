"""The call and chat objects as clients read them: every field present, null where unknown."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from dispatcher.directory.schema import Agent, Contact, Menu
from dispatcher.directory.tenant import MenuPath


class _Object(BaseModel):
    model_config = ConfigDict(extra="ignore")


def _absent(value: object) -> bool:
    """Keys this product adds to the platform's objects are left out where they do not apply."""
    return value is None


class AgentInfo(_Object):
    id: int
    name: str
    first_name: str
    last_name: str
    agent_number: str | None
    avatar_url: str | None

    @classmethod
    def of(cls, agent: Agent) -> AgentInfo:
        return cls(
            id=agent.id,
            name=agent.name,
            first_name=agent.first_name,
            last_name=agent.last_name,
            agent_number=agent.agent_number,
            avatar_url=agent.avatar_url,
        )


class ChatAgentInfo(AgentInfo):
    email: str

    @classmethod
    def of(cls, agent: Agent) -> ChatAgentInfo:
        return cls(**AgentInfo.of(agent).model_dump(), email=agent.email)


class EndUser(_Object):
    id: int
    identifier: str | None = None
    out_contact_id: str | None = None

    @classmethod
    def of(cls, contact: Contact) -> EndUser:
        return cls(
            id=contact.id, identifier=contact.identifier, out_contact_id=contact.out_contact_id
        )


class SelectedMenu(_Object):
    id: int
    name: str
    parent_id: int | None
    position: int
    deleted: bool
    hidden: bool
    menu_type: str
    output_msg: str | None

    @classmethod
    def of(cls, menu: Menu) -> SelectedMenu:
        return cls(
            id=menu.id,
            name=menu.name,
            parent_id=menu.parent_id,
            position=menu.position,
            deleted=False,
            hidden=menu.hidden,
            menu_type=menu.type,
            output_msg=menu.output_msg,
        )


class MenuPathInfo(_Object):
    items_count: int
    name: str
    materialized_path: str

    @classmethod
    def of(cls, path: MenuPath) -> MenuPathInfo:
        return cls(
            items_count=path.items_count, name=path.name, materialized_path=path.materialized_path
        )


class OfferEvent(_Object):
    casting_time: str
    group: str


class CallParticipant(_Object):
    id: int
    type: Literal["agent", "end_user"]
    status: str = "waiting"
    call_id: int
    user_id: int | None = None
    end_user_id: int | None = None
    call_duration: int | None = None
    hold_duration: int | None = None
    connected_at: str | None = None
    ended_at: str | None = None
    fail_reason: str = "nothing"


class CallObject(_Object):
    id: int
    parent_id: int | None = None
    lang: str = "en"
    call_type: str
    status: str
    created_at: str
    queued_at: str | None = None
    assigned_at: str | None = None
    connected_at: str | None = None
    ends_at: str | None = None
    scheduled_at: str | None = None
    wait_duration: int = 0
    call_duration: int = 0
    hold_duration: int = 0
    rating: int | None = None
    has_feedback: bool = False
    voip_provider: str | None = None
    out_ticket_id: str | None = None
    out_ticket_url: str | None = None
    verified: bool = False
    recording_url: str | None = None
    recording_permission: str = "not_asked"
    voicemail_reason: str = "not_voicemail"
    deflection: str = "no_deflection"
    disconnected_by: str = "disconnected_by_unknown"
    fail_details: str | None = None
    fail_reason: str = "nothing"
    support_number: str | None = None
    selected_menu: SelectedMenu | None = None
    menu_path: MenuPathInfo | None = None
    agent_info: AgentInfo | None = None
    end_user: EndUser | None = None
    photos: list[Any] = Field(default_factory=list)
    videos: list[Any] = Field(default_factory=list)
    transfers: list[Any] = Field(default_factory=list)
    deflection_details: list[Any] = Field(default_factory=list)
    participants: list[CallParticipant] = Field(default_factory=list)
    offer_type: str | None = None
    offer_events: list[OfferEvent] = Field(default_factory=list)
    answer_type: str = "manual"
    outbound_number: str | None = None
    # Added by this product, present only while the call is held: scheduled, due, and not
    # placed until then because of its calling window or its number's contact limit (docs/api.md).
    held_until: str | None = Field(default=None, exclude_if=_absent)
    held_reason: str | None = Field(default=None, exclude_if=_absent)
    # Added by this product, present only on a call whose campaign asked for answering-machine
    # detection, once it was answered: human, machine or unknown (docs/api.md).
    answered_by: str | None = Field(default=None, exclude_if=_absent)
    # Added by this product, present only on the calls of a campaign: the campaign's id, so that
    # a client can tell them apart and list them (GET /calls?campaign_id=).
    campaign_id: int | None = Field(default=None, exclude_if=_absent)


class ChatParticipant(_Object):
    id: int
    type: Literal["agent", "end_user"]
    status: str = "connected"
    chat_id: int
    user_id: int | None = None
    end_user_id: int | None = None
    chat_duration: int | None = None
    connected_at: str | None = None
    ended_at: str | None = None
    fail_reason: str = "nothing"


class ChatObject(_Object):
    id: int
    lang: str = "en"
    chat_type: str
    status: str
    created_at: str
    queued_at: str | None = None
    assigned_at: str | None = None
    ends_at: str | None = None
    wait_duration: int = 0
    chat_duration: int = 0
    rating: int | None = None
    has_feedback: bool = False
    out_ticket_id: str | None = None
    out_ticket_url: str | None = None
    verified: bool = False
    disconnected_by: str = "disconnected_by_unknown"
    fail_reason: str | None = None
    selected_menu: SelectedMenu | None = None
    menu_path: MenuPathInfo | None = None
    agent_info: ChatAgentInfo | None = None
    end_user: EndUser | None = None
    photos: list[Any] = Field(default_factory=list)
    videos: list[Any] = Field(default_factory=list)
    transfers: list[Any] = Field(default_factory=list)
    participants: list[ChatParticipant] = Field(default_factory=list)
    offer_type: str | None = None
    offer_events: list[OfferEvent] = Field(default_factory=list)
    answer_type: str = "manual"
    outbound_number: str | None = None


class CustomerFlags(_Object):
    verified_customer: bool = False
    bad_actor: bool = False
    repeat_customer: bool = False
