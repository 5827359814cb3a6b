"""Every request/response example of the seed documents, table-driven.

Calls come from seed 003 (outbound, inbound, scheduled, customer_flag), SMS from seed 000. Each
case starts from the demo directory (deploy/demo.yaml), changed where the example needs it (a menu
after hours, SMS off, an agent unavailable, ...). The seeds are sloppy in places; where they
contradict API.md, its **Decided** notes win and the case's id or comment says what was adapted.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from dispatcher.app import create_app
from dispatcher.domain.records import CallMeta
from dispatcher.history.archive import Archive
from dispatcher.metrics import Metrics
from dispatcher.settings import Settings
from dispatcher.store.keys import TenantKeys
from dispatcher.store.records import Kind
from dispatcher.store.scripts import Scripts
from tests.conftest import ADMIN_TOKEN, basic, demo_document, load_directory
from workers.archiver import Archiver

CALLS = "/apps/api/v1/calls"
SMS = "/apps/api/v1/sms"

OUTBOUND = "Voice Outbound (API)"
INBOUND = "Voice Inbound (API)"
SCHEDULED = "Voice Scheduled (API)"
MESSAGING_SMS = "Messaging (SMS)"

# The seeds schedule calls in 2019; a fixed time far in the future keeps every case deterministic.
FUTURE = "2099-09-15T00:19:14.421Z"
# Monday 2099-09-14 10:00 in Los Angeles (the demo tenant's time zone), and Monday 17:19 there.
MONDAY_MORNING_LA = "2099-09-14T17:00:00.000Z"
MONDAY_EVENING_LA = FUTURE

WEEK = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

Document = dict[str, Any]
Change = Callable[[Document], None]

CALL_FIELDS = frozenset(
    """id parent_id lang call_type status created_at queued_at assigned_at connected_at ends_at
    scheduled_at wait_duration call_duration hold_duration rating has_feedback voip_provider
    out_ticket_id out_ticket_url verified recording_url recording_permission voicemail_reason
    deflection disconnected_by fail_details fail_reason support_number selected_menu menu_path
    agent_info end_user photos videos transfers deflection_details participants offer_type
    offer_events answer_type outbound_number""".split()
)
CHAT_FIELDS = frozenset(
    """id lang chat_type status created_at queued_at assigned_at ends_at wait_duration
    chat_duration rating has_feedback out_ticket_id out_ticket_url verified disconnected_by
    fail_reason selected_menu menu_path agent_info end_user photos videos transfers participants
    offer_type offer_events answer_type outbound_number""".split()
)


class _Stamp:
    """Equal to any timestamp of the spec's format: ISO 8601 UTC with milliseconds and 'Z'."""

    PATTERN = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and bool(self.PATTERN.match(other))

    def __hash__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return "<timestamp>"


class _AnyId:
    """Equal to any positive integer id (booleans excluded)."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, int) and not isinstance(other, bool) and other > 0

    def __hash__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return "<id>"


STAMP: Any = _Stamp()
ANY_ID: Any = _AnyId()


def assert_matches(actual: Any, expected: Any, at: str = "response") -> None:
    """`actual` has every key of `expected` with an equal value; lists match element by element
    and must have the same length. Keys `expected` does not name are not checked."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{at}: expected an object, got {actual!r}"
        for key, value in expected.items():
            assert key in actual, f"{at}: missing key {key!r} in {actual!r}"
            assert_matches(actual[key], value, f"{at}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list), f"{at}: expected a list, got {actual!r}"
        assert len(actual) == len(expected), f"{at}: expected {len(expected)} items, got {actual!r}"
        for index, (got, want) in enumerate(zip(actual, expected, strict=True)):
            assert_matches(got, want, f"{at}[{index}]")
    else:
        assert actual == expected, f"{at}: expected {expected!r}, got {actual!r}"


def assert_call_object(call: dict[str, Any]) -> None:
    """Invariants of every call object: all fields present, participants point back at it."""
    assert CALL_FIELDS <= call.keys(), f"missing fields: {sorted(CALL_FIELDS - call.keys())}"
    for participant in call["participants"]:
        assert participant["call_id"] == call["id"]
        if participant["type"] == "end_user":
            end_user = call["end_user"]
            assert participant["end_user_id"] == (end_user["id"] if end_user else None)


def assert_chat_object(chat: dict[str, Any]) -> None:
    assert CHAT_FIELDS <= chat.keys(), f"missing fields: {sorted(CHAT_FIELDS - chat.keys())}"
    for participant in chat["participants"]:
        assert participant["chat_id"] == chat["id"]
        if participant["type"] == "end_user":
            assert participant["end_user_id"] == chat["end_user"]["id"]


# --- changes to the demo directory -------------------------------------------------------------


def _tenant(document: Document) -> Document:
    tenant: Document = document["tenants"][0]
    return tenant


def _by_id(items: list[Document], item_id: int) -> Document:
    return next(item for item in items if item["id"] == item_id)


def set_menu(menu_id: int, **values: Any) -> Change:
    def change(document: Document) -> None:
        _by_id(_tenant(document)["menus"], menu_id).update(values)

    return change


def set_agent(agent_id: int, **values: Any) -> Change:
    def change(document: Document) -> None:
        _by_id(_tenant(document)["agents"], agent_id).update(values)

    return change


def set_settings(**values: Any) -> Change:
    def change(document: Document) -> None:
        _tenant(document)["settings"].update(values)

    return change


def drop_outbound_number(number: str) -> Change:
    def change(document: Document) -> None:
        numbers = _tenant(document)["outbound_numbers"]
        _tenant(document)["outbound_numbers"] = [n for n in numbers if n["number"] != number]

    return change


def add_contact(contact: Document) -> Change:
    def change(document: Document) -> None:
        _tenant(document)["contacts"].append(contact)

    return change


async def load_demo(redis: Redis, changes: tuple[Change, ...] = ()) -> None:
    document = demo_document()
    for change in changes:
        change(document)
    await load_directory(redis, document)


async def post(client: TestClient[Any, Any], path: str, body: dict[str, Any]) -> tuple[int, Any]:
    response = await client.post(path, json=body, headers=basic())
    return response.status, await response.json()


# --- expected fragments ------------------------------------------------------------------------

ADMIN_INFO = {
    "id": 1,
    "name": "Admin UJET",
    "first_name": "Admin",
    "last_name": "UJET",
    "agent_number": None,
    "avatar_url": "https://somedomain.com/avatar.jpg",
}
AGENT_SMITH_INFO = {
    "id": 2,
    "name": "Agent Smith",
    "first_name": "Agent",
    "last_name": "Smith",
    "agent_number": None,
    "avatar_url": "https://somedomain.com/agent.jpg",
}
JOHN_DOE_INFO = {
    "id": 4,
    "name": "John Doe",
    "first_name": "John",
    "last_name": "Doe",
    "agent_number": "9",
    "avatar_url": "https://foobar.com/johndoe",
}
LOCK_STAR = {
    "id": 9,
    "name": "Lock Star",
    "parent_id": None,
    "position": 0,
    "deleted": False,
    "hidden": False,
    "menu_type": "mobile_menu",
    "output_msg": "You selected Lock Star.",
}
LOCK_STAR_PATH = {"items_count": 1, "name": "Lock Star", "materialized_path": "9"}
ANONYMOUS_END_USER = {"id": ANY_ID, "identifier": None, "out_contact_id": None}
CONTACT_67 = {"id": 67, "identifier": None, "out_contact_id": "381630957514"}
CONTACT_75 = {"id": 75, "identifier": None, "out_contact_id": "389391400633"}
CONTACT_87 = {"id": 87, "identifier": None, "out_contact_id": None}


def waiting(kind: str, **ids: Any) -> dict[str, Any]:
    return {
        "id": ANY_ID,
        "type": kind,
        "status": "waiting",
        "call_duration": None,
        "hold_duration": None,
        "connected_at": None,
        "ended_at": None,
        "fail_reason": "nothing",
        **ids,
    }


def outbound_call(agent: dict[str, Any], end_user: Any, ticket_id: str | None) -> dict[str, Any]:
    return {
        "id": ANY_ID,
        "parent_id": None,
        "lang": "en",
        "call_type": OUTBOUND,
        "status": "assigned",
        "created_at": STAMP,
        "queued_at": None,
        "assigned_at": STAMP,
        "connected_at": None,
        "ends_at": None,
        "scheduled_at": None,
        "out_ticket_id": ticket_id,
        "fail_reason": "nothing",
        "selected_menu": None,
        "menu_path": None,
        "agent_info": agent,
        "end_user": end_user,
        "participants": [
            waiting("agent", user_id=agent["id"], end_user_id=None),
            waiting("end_user", user_id=None),
        ],
        "offer_type": None,
        "offer_events": [],
        "answer_type": "manual",
        "outbound_number": "+13392195276",
    }


def queued_call(end_user: dict[str, Any], ticket_id: str | None = None) -> dict[str, Any]:
    return {
        "id": ANY_ID,
        "parent_id": None,
        "lang": "en",
        "call_type": INBOUND,
        "status": "queued",
        "created_at": STAMP,
        "queued_at": STAMP,
        "assigned_at": None,
        "connected_at": None,
        "scheduled_at": None,
        "out_ticket_id": ticket_id,
        # Menu 9 records `never`, so the permission granted in the seed bodies is not asked.
        "recording_permission": "not_asked",
        "selected_menu": LOCK_STAR,
        "menu_path": LOCK_STAR_PATH,
        "agent_info": None,
        "end_user": end_user,
        "participants": [waiting("end_user", user_id=None)],
        "offer_type": "cascade",
        "offer_events": [{"casting_time": STAMP, "group": "Group 1"}],
        "answer_type": "manual",
        "outbound_number": "+13392195276",
    }


def scheduled_call(scheduled_at: str, end_user: dict[str, Any]) -> dict[str, Any]:
    return {
        **queued_call(end_user),
        "call_type": SCHEDULED,
        "status": "scheduled",
        "queued_at": None,
        "scheduled_at": scheduled_at,
        # Nobody is offered the call before scheduled_at.
        "offer_events": [],
    }


def sms_chat(
    chat_type: str = MESSAGING_SMS,
    agent: dict[str, Any] | None = None,
    ticket_id: str | None = None,
    end_user: dict[str, Any] = CONTACT_87,
) -> dict[str, Any]:
    participants: list[dict[str, Any]] = [
        {
            "id": ANY_ID,
            "type": "end_user",
            "status": "connected",
            "user_id": None,
            "end_user_id": end_user["id"],
            "connected_at": STAMP,
            "ended_at": None,
            "fail_reason": "nothing",
        }
    ]
    if agent is not None:
        participants.append(
            {
                "id": ANY_ID,
                "type": "agent",
                "status": "connected",
                "user_id": agent["id"],
                "end_user_id": None,
                "connected_at": STAMP,
                "ended_at": None,
                "fail_reason": "nothing",
            }
        )
    return {
        "id": ANY_ID,
        "lang": "en",
        "chat_type": chat_type,
        "status": "assigned" if agent else "selecting",
        "created_at": STAMP,
        "queued_at": None,
        "assigned_at": STAMP if agent else None,
        "ends_at": None,
        "out_ticket_id": ticket_id,
        "disconnected_by": "disconnected_by_unknown",
        "fail_reason": None,
        "selected_menu": None,
        "menu_path": None,
        "agent_info": agent,
        "end_user": end_user,
        "participants": participants,
        "offer_type": None,
        "offer_events": [],
        "answer_type": "manual",
        "outbound_number": "+16285550199",
    }


# --- the cases ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Refusal:
    """A request the API refuses with `400 {"message": message}`."""

    body: dict[str, Any]
    message: str
    changes: tuple[Change, ...] = ()


@dataclass(frozen=True)
class Success:
    body: dict[str, Any]
    status: int
    expected: dict[str, Any]
    changes: tuple[Change, ...] = ()


def outbound(**values: Any) -> dict[str, Any]:
    return {"call_type": OUTBOUND, **values}


def inbound(**values: Any) -> dict[str, Any]:
    return {
        "call_type": INBOUND,
        "lang": "en",
        "menu_id": 9,
        "end_user_number": "+1 859-657-9625",
        "recording_permission": "recording_permission_granted",
        **values,
    }


def scheduled(**values: Any) -> dict[str, Any]:
    return inbound(**{"call_type": SCHEDULED, "scheduled_at": FUTURE, **values})


def without(body: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {key: value for key, value in body.items() if key not in keys}


def sms(**values: Any) -> dict[str, Any]:
    return {
        "chat_type": MESSAGING_SMS,
        "end_user_number": "+1 415-555-0100",
        "outbound_number": "+1 628-555-0199",
        "message": "lorem ipsum",
        "ticket_id": "5006x00000XXxxxXXX",
        **values,
    }


NO_DEFAULT_NUMBER = set_settings(default_outbound_number=None)
SEVERAL_NUMBERS_CONTACT = add_contact(
    {
        "ticket_id": "80001",
        "id": 90,
        "out_contact_id": "400000000001",
        "phone_numbers": ["+1 859-657-9625", "+1 415-555-0100"],
    }
)

CALL_REFUSALS = [
    # Outbound, seed section "Outbound Call - end_user_number" (and its repeats in "ticket_id").
    pytest.param(
        Refusal(
            outbound(
                agent_email="agent@somedomain.com", end_user_number="+1 205-123-4567", lang="en"
            ),
            "Agent is not available to take this call",
            (set_agent(2, status="unavailable"),),
        ),
        id="outbound-agent-not-available",
    ),
    pytest.param(
        # The seed's repeat names allen, who may not call at all: an offline agent instead.
        Refusal(
            outbound(agent_email="admin@somedomain.com", end_user_number="+1 205-123-4567"),
            "Agent is not available to take this call",
            (set_agent(1, status="offline"),),
        ),
        id="outbound-agent-offline-not-available",
    ),
    pytest.param(
        # The seed's body names allen and gives a number: neither fits the error it shows.
        Refusal(
            outbound(agent_email="admin@somedomain.com", lang="en"),
            "ticket_id or end_user_number required",
        ),
        id="outbound-ticket-or-number-required",
    ),
    pytest.param(
        Refusal(
            outbound(agent_email="admin@somedomain.com", ticket_id="", end_user_number=""),
            "ticket_id or end_user_number required",
        ),
        id="outbound-ticket-or-number-required-empty-strings",
    ),
    pytest.param(
        # The seed uses admin@somedomain.com, which is an agent of the demo tenant.
        Refusal(
            outbound(
                agent_email="nobody@somedomain.com", end_user_number="+1 205-123-4567", lang="en"
            ),
            "Not a valid agent email",
        ),
        id="outbound-not-a-valid-agent-email",
    ),
    pytest.param(
        Refusal(
            outbound(end_user_number="+1 205-123-4567", lang="en"),
            "Agent email required",
        ),
        id="outbound-agent-email-required",
    ),
    pytest.param(
        Refusal(
            outbound(agent_email="", end_user_number="+1 205-123-4567", lang="en"),
            "Agent email required",
        ),
        id="outbound-agent-email-empty",
    ),
    pytest.param(
        Refusal(
            outbound(
                agent_email="allen@somedomain.com", end_user_number="+1 205-123-4567", lang="en"
            ),
            "Agent does not have access to make calls",
        ),
        id="outbound-agent-cannot-make-calls",
    ),
    pytest.param(
        # The seed names allen (no call permission); admin reaches the number check.
        Refusal(
            outbound(
                agent_email="admin@somedomain.com",
                outbound_number="+1 760-410-8538",
                end_user_number="123123",
                lang="en",
            ),
            "end_user_number is not well-formed",
        ),
        id="outbound-end-user-number-not-well-formed",
    ),
    pytest.param(
        Refusal(
            outbound(
                agent_email="admin@somedomain.com",
                outbound_number="+1 760-410-8538",
                ticket_id=1,
                lang="en",
            ),
            "Contact not found",
        ),
        id="outbound-contact-not-found",
    ),
    pytest.param(
        Refusal(
            outbound(agent_email="admin@somedomain.com", ticket_id="80002"),
            "Contact not found",
            (add_contact({"ticket_id": "80002", "id": 91, "phone_numbers": []}),),
        ),
        id="outbound-contact-without-phone-number",
    ),
    pytest.param(
        # The seed's "Invalid call type" body carries a valid call type.
        Refusal(
            outbound(
                call_type="InvalidCallType",
                agent_email="allen@somedomain.com",
                outbound_number="+1 760-410-8538",
                end_user_number="123123",
                lang="en",
            ),
            "Invalid call type",
        ),
        id="outbound-invalid-call-type",
    ),
    pytest.param(
        Refusal(
            without(
                outbound(agent_email="admin@somedomain.com", end_user_number="123123"), "call_type"
            ),
            "Invalid call type",
        ),
        id="call-type-missing",
    ),
    pytest.param(
        # Verbatim seed body: it shows "Invalid call type", but ScheduledCall is the deprecated
        # alias of "Voice Scheduled (API)", and that body names neither menu_id nor call_id.
        Refusal(
            {
                "call_type": "ScheduledCall",
                "agent_email": "allen@somedomain.com",
                "outbound_number": "+1 760-410-8538",
                "end_user_number": "123123",
                "lang": "en",
            },
            "menu_id is required",
        ),
        id="outbound-seed-invalid-call-type-is-scheduled-alias",
    ),
    # Inbound.
    pytest.param(
        Refusal(inbound(end_user_number="+1 999-657-12"), "end_user_number is not well formed"),
        id="inbound-end-user-number-not-well-formed",
    ),
    pytest.param(
        Refusal(
            inbound(),
            "Menu is in 'manual redirection' state, can't accept calls",
            (set_menu(9, state="manual_redirection"),),
        ),
        id="inbound-manual-redirection",
    ),
    pytest.param(
        Refusal(inbound(call_type="InvalidCallType"), "Invalid call type"),
        id="inbound-invalid-call-type",
    ),
    pytest.param(
        Refusal(without(inbound(), "menu_id"), "menu_id is required"),
        id="inbound-menu-id-required",
    ),
    pytest.param(
        Refusal(inbound(menu_id=50), "Only IVR and mobile menu IDs are permitted"),
        id="inbound-web-menu-not-permitted",
    ),
    pytest.param(
        Refusal(
            inbound(),
            "Menu is in 'after hours' state, can't accept incoming calls",
            (set_menu(9, state="after_hours"),),
        ),
        id="inbound-after-hours",
    ),
    pytest.param(
        Refusal(
            inbound(),
            "Menu is in 'after hours' state, can't accept incoming calls",
            (set_menu(9, hours={"weekly": {}}),),
        ),
        id="inbound-after-hours-by-weekly-hours",
    ),
    pytest.param(
        Refusal(inbound(lang="fr"), "Language 'fr' is not available"),
        id="inbound-language-not-available",
    ),
    pytest.param(
        Refusal(inbound(lang="xy"), "Language 'xy' is not found"),
        id="inbound-language-not-found",
    ),
    pytest.param(
        Refusal(inbound(menu_id=9999), "menu_id 9999 is not found"),
        id="inbound-menu-not-found",
    ),
    pytest.param(
        Refusal(inbound(menu_id="menu_999"), "menu_id is not well formed"),
        id="inbound-menu-id-not-well-formed",
    ),
    pytest.param(
        Refusal(without(inbound(), "end_user_number"), "end_user_number is required"),
        id="inbound-end-user-number-required",
    ),
    # Scheduled.
    pytest.param(
        Refusal(scheduled(end_user_number="+1 999-657-12"), "end_user_number is not well formed"),
        id="scheduled-end-user-number-not-well-formed",
    ),
    pytest.param(
        Refusal(
            scheduled(),
            "Menu is in 'manual redirection' state, can't accept calls",
            (set_menu(9, state="manual_redirection"),),
        ),
        id="scheduled-manual-redirection",
    ),
    pytest.param(
        Refusal(scheduled(call_type="InvalidCallType"), "Invalid call type"),
        id="scheduled-invalid-call-type",
    ),
    pytest.param(
        Refusal(without(scheduled(), "menu_id"), "menu_id is required"),
        id="scheduled-menu-id-required",
    ),
    pytest.param(
        # Menu 50 is a web menu in the demo, which scheduled calls accept: make it an IVR menu.
        Refusal(
            scheduled(menu_id=50),
            "Only mobile and web menu IDs are permitted",
            (set_menu(50, type="ivr_menu"),),
        ),
        id="scheduled-ivr-menu-not-permitted",
    ),
    pytest.param(
        Refusal(scheduled(menu_id=51), "Only mobile and web menu IDs are permitted"),
        id="scheduled-demo-ivr-menu-51-not-permitted",
    ),
    pytest.param(
        Refusal(
            scheduled(),
            "Menu is in 'after hours' state, can't accept incoming calls",
            (set_menu(9, state="after_hours"),),
        ),
        id="scheduled-after-hours",
    ),
    pytest.param(
        # Judged at scheduled_at in the menu's time zone: Monday 17:19 in Los Angeles.
        Refusal(
            scheduled(scheduled_at=MONDAY_EVENING_LA),
            "Menu is in 'after hours' state, can't accept incoming calls",
            (set_menu(9, hours={"weekly": {"mon": ["09:00-17:00"]}}),),
        ),
        id="scheduled-after-hours-at-scheduled-time",
    ),
    pytest.param(
        Refusal(scheduled(lang="fr"), "Language 'fr' is not available"),
        id="scheduled-language-not-available",
    ),
    pytest.param(
        Refusal(scheduled(lang="xy"), "Language 'xy' is not found"),
        id="scheduled-language-not-found",
    ),
    pytest.param(
        Refusal(scheduled(menu_id=9999), "menu_id 9999 is not found"),
        id="scheduled-menu-not-found",
    ),
    pytest.param(
        Refusal(scheduled(menu_id="menu_999"), "menu_id is not well formed"),
        id="scheduled-menu-id-not-well-formed",
    ),
    pytest.param(
        Refusal(without(scheduled(), "end_user_number"), "end_user_number is required"),
        id="scheduled-end-user-number-required",
    ),
    pytest.param(
        Refusal(without(scheduled(), "scheduled_at"), "scheduled_at is required"),
        id="scheduled-scheduled-at-required",
    ),
    # Scheduled, **Decided** in API.md.
    pytest.param(
        Refusal(
            without(scheduled(call_id=999, end_user_number="+82-10-6861-2345"), "menu_id"),
            "Call 999 is not found",
        ),
        id="scheduled-call-id-not-found",
    ),
    pytest.param(
        Refusal(scheduled(scheduled_at="next tuesday"), "scheduled_at is not well formed"),
        id="scheduled-scheduled-at-not-well-formed",
    ),
    pytest.param(
        # The seeds' own scheduled_at, verbatim: 2019 is the past now.
        Refusal(
            scheduled(scheduled_at="2019-09-15T00:19:14.421Z"),
            "scheduled_at must be in the future",
        ),
        id="scheduled-seed-2019-time-is-in-the-past",
    ),
]


# Two faults at once: the one API.md checks first wins.
CALL_CHECK_ORDER = [
    pytest.param(
        Refusal(outbound(agent_email="nobody@somedomain.com"), "Not a valid agent email"),
        id="order-outbound-agent-email-before-numbers",
    ),
    pytest.param(
        Refusal(
            outbound(agent_email="allen@somedomain.com"), "Agent does not have access to make calls"
        ),
        id="order-outbound-permission-before-numbers",
    ),
    pytest.param(
        Refusal(
            outbound(agent_email="admin@somedomain.com", ticket_id="1", end_user_number="123123"),
            "Contact not found",
        ),
        id="order-outbound-ticket-before-end-user-number",
    ),
    pytest.param(
        Refusal(
            outbound(agent_email="agent@somedomain.com", end_user_number="123123"),
            "end_user_number is not well-formed",
            (set_agent(2, status="unavailable"),),
        ),
        id="order-outbound-number-before-availability",
    ),
    pytest.param(
        Refusal(inbound(call_type="Voice Inbound", menu_id="x"), "Invalid call type"),
        id="order-inbound-call-type-first",
    ),
    pytest.param(
        Refusal(inbound(menu_id=50, lang="xy"), "Only IVR and mobile menu IDs are permitted"),
        id="order-inbound-menu-type-before-language",
    ),
    pytest.param(
        Refusal(
            inbound(lang="xy"),
            "Language 'xy' is not found",
            (set_menu(9, state="after_hours"),),
        ),
        id="order-inbound-language-before-hours",
    ),
    pytest.param(
        Refusal(
            inbound(),
            "Menu is in 'after hours' state, can't accept incoming calls",
            (set_menu(9, state="manual_redirection", hours={"weekly": {}}),),
        ),
        id="order-inbound-after-hours-before-redirection",
    ),
    pytest.param(
        Refusal(
            without(inbound(), "end_user_number"),
            "Menu is in 'manual redirection' state, can't accept calls",
            (set_menu(9, state="manual_redirection"),),
        ),
        id="order-inbound-redirection-before-end-user-number",
    ),
    pytest.param(
        Refusal(
            without(scheduled(call_id=999, menu_id="menu_999"), "menu_id"),
            "Call 999 is not found",
        ),
        id="order-scheduled-call-id-before-menu",
    ),
    pytest.param(
        Refusal(scheduled(call_id=999, menu_id="menu_999"), "Call 999 is not found"),
        id="order-scheduled-call-id-before-menu-well-formed",
    ),
    pytest.param(
        Refusal(
            without(scheduled(scheduled_at="soon"), "end_user_number"),
            "end_user_number is required",
        ),
        id="order-scheduled-end-user-number-before-scheduled-at",
    ),
]


@pytest.mark.parametrize("case", CALL_CHECK_ORDER)
async def test_call_check_order(case: Refusal, client: TestClient[Any, Any], redis: Redis) -> None:
    await load_demo(redis, case.changes)
    status, body = await post(client, CALLS, case.body)
    assert (status, body) == (400, {"message": case.message})


@pytest.mark.parametrize("case", CALL_REFUSALS)
async def test_call_refusal(case: Refusal, client: TestClient[Any, Any], redis: Redis) -> None:
    await load_demo(redis, case.changes)
    status, body = await post(client, CALLS, case.body)
    assert (status, body) == (400, {"message": case.message})


CALL_SUCCESSES = [
    # Outbound.
    pytest.param(
        Success(
            outbound(
                agent_email="admin@somedomain.com",
                end_user_number="+1 859-657-9625",
                outbound_number="+1 339-219-5276",
                lang="en",
            ),
            201,
            outbound_call(ADMIN_INFO, end_user=None, ticket_id=None),
        ),
        id="outbound-by-end-user-number",
    ),
    pytest.param(
        # The seed answers with agent 1 for agent@somedomain.com: the agent named is agent 2.
        Success(
            outbound(
                agent_email="agent@somedomain.com",
                ticket_id="71450",
                outbound_number="+1 339-219-5276",
                lang="en",
            ),
            201,
            outbound_call(AGENT_SMITH_INFO, end_user=CONTACT_67, ticket_id="71450"),
        ),
        id="outbound-by-ticket-id-agent",
    ),
    pytest.param(
        Success(
            outbound(
                agent_email="admin@somedomain.com",
                ticket_id="71450",
                outbound_number="+1 339-219-5276",
                lang="en",
            ),
            201,
            outbound_call(ADMIN_INFO, end_user=CONTACT_67, ticket_id="71450"),
        ),
        id="outbound-by-ticket-id-admin",
    ),
    pytest.param(
        Success(
            outbound(agent_email="admin@somedomain.com", ticket_id=71450),
            201,
            outbound_call(ADMIN_INFO, end_user=CONTACT_67, ticket_id="71450"),
        ),
        id="outbound-integer-ticket-id-stored-as-string",
    ),
    pytest.param(
        Success(
            outbound(
                call_type="OutboundCall",
                agent_email="admin@somedomain.com",
                end_user_number="+1 859-657-9625",
            ),
            201,
            outbound_call(ADMIN_INFO, end_user=None, ticket_id=None),
        ),
        id="outbound-deprecated-alias-OutboundCall",
    ),
    pytest.param(
        # "Prompt the call adapter with several outbound numbers": no number given, no default.
        Success(
            outbound(
                agent_email="admin@somedomain.com", end_user_number="+1 859-657-9625", lang="en"
            ),
            202,
            {
                "call_type": OUTBOUND,
                "agent_email": "admin@somedomain.com",
                "end_user_number": "+18596579625",
                "lang": "en",
                "call_id": ANY_ID,
                "pending_action": "select_outbound_number",
            },
            (NO_DEFAULT_NUMBER,),
        ),
        id="outbound-accepted-prompt-several-outbound-numbers",
    ),
    pytest.param(
        # "Accepted: an outbound number must be selected". The seed's body names "123123" (not a
        # number) and an unmanaged outbound number; its answer shows +1 205-123-4567.
        Success(
            outbound(
                agent_email="agent@somedomain.com",
                outbound_number="+1 760-867-5309",
                end_user_number="+1 205-123-4567",
                lang="en",
            ),
            202,
            {
                "call_type": OUTBOUND,
                "agent_email": "agent@somedomain.com",
                "end_user_number": "+12051234567",
                "lang": "en",
                "call_id": ANY_ID,
                "pending_action": "select_outbound_number",
            },
            (NO_DEFAULT_NUMBER,),
        ),
        id="outbound-accepted-select-outbound-number",
    ),
    pytest.param(
        # "Accepted: the agent must place the call by ticket id": the ticket's contact has
        # several numbers (the seed's body names allen, who may not call).
        Success(
            outbound(agent_email="admin@somedomain.com", ticket_id="80001", lang="en"),
            202,
            {
                "call_type": OUTBOUND,
                "agent_email": "admin@somedomain.com",
                "ticket_id": "80001",
                "lang": "en",
                "call_id": ANY_ID,
                "pending_action": "select_end_user_number",
            },
            (SEVERAL_NUMBERS_CONTACT,),
        ),
        id="outbound-accepted-select-end-user-number",
    ),
    # Inbound.
    pytest.param(
        Success(
            inbound(end_user_number="+82-10-6861-2345"),
            201,
            queued_call(ANONYMOUS_END_USER),
        ),
        id="inbound-by-end-user-number",
    ),
    pytest.param(
        Success(
            inbound(ticket_id="76517"),
            201,
            queued_call(CONTACT_75, ticket_id="76517"),
        ),
        id="inbound-by-ticket-id",
    ),
    pytest.param(
        Success(
            inbound(call_type="IncomingCall", end_user_number="+82-10-6861-2345"),
            201,
            queued_call(ANONYMOUS_END_USER),
        ),
        id="inbound-deprecated-alias-IncomingCall",
    ),
    pytest.param(
        Success(
            inbound(menu_id="9", end_user_number="+82-10-6861-2345"),
            201,
            queued_call(ANONYMOUS_END_USER),
        ),
        id="inbound-menu-id-as-digit-string",
    ),
    pytest.param(
        Success(
            inbound(end_user_number="+82-10-6861-2345"),
            201,
            queued_call(ANONYMOUS_END_USER),
            (set_menu(9, hours={"weekly": {day: ["00:00-24:00"] for day in WEEK}}),),
        ),
        id="inbound-open-by-weekly-hours",
    ),
    pytest.param(
        Success(
            inbound(menu_id=51, end_user_number="+82-10-6861-2345"),
            201,
            {
                **queued_call(ANONYMOUS_END_USER),
                "selected_menu": {"id": 51, "name": "Phone Sales", "menu_type": "ivr_menu"},
                # This menu asks for recording permission (the default), so it is honoured.
                "recording_permission": "granted",
                "menu_path": {"items_count": 1, "name": "Phone Sales", "materialized_path": "51"},
                "offer_type": "multicast",
            },
        ),
        id="inbound-ivr-menu",
    ),
    # Scheduled (Decided: canonical type, status "scheduled", scheduled_at echoed).
    pytest.param(
        Success(
            scheduled(end_user_number="+82-10-6861-2345"),
            201,
            scheduled_call(FUTURE, ANONYMOUS_END_USER),
        ),
        id="scheduled-by-menu-id",
    ),
    pytest.param(
        Success(
            scheduled(call_type="ScheduledCall", end_user_number="+82-10-6861-2345"),
            201,
            scheduled_call(FUTURE, ANONYMOUS_END_USER),
        ),
        id="scheduled-deprecated-alias-ScheduledCall",
    ),
    pytest.param(
        Success(
            scheduled(menu_id=50, end_user_number="+82-10-6861-2345"),
            201,
            {
                **scheduled_call(FUTURE, ANONYMOUS_END_USER),
                "selected_menu": {"id": 50, "name": "Web Support", "menu_type": "web_menu"},
                # This menu asks for recording permission (the default), so it is honoured.
                "recording_permission": "granted",
                "menu_path": {"items_count": 1, "name": "Web Support", "materialized_path": "50"},
                "offer_type": "multicast",
            },
        ),
        id="scheduled-web-menu",
    ),
    pytest.param(
        # Monday 10:00 in Los Angeles, inside the menu's only window.
        Success(
            scheduled(scheduled_at=MONDAY_MORNING_LA, end_user_number="+82-10-6861-2345"),
            201,
            scheduled_call(MONDAY_MORNING_LA, ANONYMOUS_END_USER),
            (set_menu(9, hours={"weekly": {"mon": ["09:00-17:00"]}}),),
        ),
        id="scheduled-open-at-scheduled-time",
    ),
]


@pytest.mark.parametrize("case", CALL_SUCCESSES)
async def test_call_success(case: Success, client: TestClient[Any, Any], redis: Redis) -> None:
    await load_demo(redis, case.changes)
    status, body = await post(client, CALLS, case.body)
    assert status == case.status, body
    assert_matches(body, case.expected)
    if status == 201:
        assert_call_object(body)
        stored = await client.get(f"{CALLS}/{body['id']}", headers=basic())
        assert stored.status == 200
        assert await stored.json() == body
    else:
        stored = await client.get(f"{CALLS}/{body['call_id']}", headers=basic())
        assert stored.status == 200
        assert_matches(await stored.json(), {"id": body["call_id"], "status": "assigned"})


async def test_outbound_agent_at_voice_capacity_is_not_available(
    client: TestClient[Any, Any], redis: Redis
) -> None:
    """The seed's second "Agent is not available" example: admin (voice capacity 1) holds a
    call already."""
    await load_demo(redis)
    body = outbound(
        agent_email="admin@somedomain.com", end_user_number="+1 205-123-4567", lang="en"
    )
    first_status, _ = await post(client, CALLS, body)
    assert first_status == 201
    assert await post(client, CALLS, body) == (
        400,
        {"message": "Agent is not available to take this call"},
    )


@pytest.mark.parametrize(
    ("body", "contact_number"),
    [
        pytest.param(
            outbound(
                agent_email="admin@somedomain.com",
                ticket_id="71450",
                end_user_number="+1 205-123-4567",
                outbound_number="+1 339-219-5276",
            ),
            "+18596579625",
            id="outbound",
        ),
        pytest.param(
            inbound(ticket_id="76517", end_user_number="+82-10-6861-2345"),
            "+18596579625",
            id="inbound",
        ),
        pytest.param(
            scheduled(ticket_id="76517", end_user_number="+82-10-6861-2345"),
            "+18596579625",
            id="scheduled",
        ),
    ],
)
async def test_ticket_id_takes_priority_over_end_user_number(
    body: dict[str, Any], contact_number: str, client: TestClient[Any, Any], redis: Redis
) -> None:
    """The seed's parameter tables: "ticket_id takes priority over end_user_number" when both are
    given. The number the call will dial is kept beside the call (its public object has no field
    for it), so it is read from the stored record."""
    await load_demo(redis)
    status, call = await post(client, CALLS, body)
    assert status == 201, call
    stored_meta = redis.hget(TenantKeys("demo").call(call["id"]), "meta")
    raw_meta = await cast(Awaitable[bytes | None], stored_meta)
    assert raw_meta is not None
    assert CallMeta.model_validate_json(raw_meta).end_user_number == contact_number


async def test_scheduled_by_call_id_uses_the_parent_call_menu(
    client: TestClient[Any, Any], redis: Redis
) -> None:
    """The seed's "scheduled call by call id" (call 514): an existing call is made first."""
    await load_demo(redis)
    status, parent = await post(client, CALLS, inbound(end_user_number="+82-10-6861-2345"))
    assert status == 201
    request = without(
        scheduled(call_id=parent["id"], end_user_number="+82-10-6861-2345"), "menu_id"
    )
    status, call = await post(client, CALLS, request)
    assert status == 201, call
    assert_matches(call, {**scheduled_call(FUTURE, ANONYMOUS_END_USER), "parent_id": parent["id"]})
    assert call["id"] != parent["id"]
    assert_call_object(call)


async def test_customer_flag_get_then_patch(client: TestClient[Any, Any], redis: Redis) -> None:
    """The seed's customer_flag GET and PATCH (with its `repeat_customers` spelling)."""
    await load_demo(redis)
    status, call = await post(client, CALLS, inbound(end_user_number="+82-10-6861-2345"))
    assert status == 201
    url = f"{CALLS}/{call['id']}/customer_flag"
    response = await client.get(url, headers=basic())
    assert response.status == 200
    assert await response.json() == {
        "verified_customer": False,
        "bad_actor": False,
        "repeat_customer": False,
    }
    response = await client.patch(
        url,
        json={"verified_customer": True, "bad_actor": False, "repeat_customers": True},
        headers=basic(),
    )
    assert response.status == 200
    flags = {"verified_customer": True, "bad_actor": False, "repeat_customer": True}
    assert await response.json() == flags
    response = await client.get(url, headers=basic())
    assert (response.status, await response.json()) == (200, flags)


async def test_customer_flag_seed_placeholder_values_are_refused(
    client: TestClient[Any, Any], redis: Redis
) -> None:
    """The seed's PATCH body verbatim carries the placeholder "boolean": not a boolean, 400."""
    await load_demo(redis)
    status, call = await post(client, CALLS, inbound(end_user_number="+82-10-6861-2345"))
    assert status == 201
    url = f"{CALLS}/{call['id']}/customer_flag"
    response = await client.patch(
        url,
        json={
            "verified_customer": "boolean",
            "bad_actor": "boolean",
            "repeat_customers": "boolean",
        },
        headers=basic(),
    )
    assert response.status == 400
    assert set(await response.json()) == {"message"}
    response = await client.get(url, headers=basic())
    assert await response.json() == {
        "verified_customer": False,
        "bad_actor": False,
        "repeat_customer": False,
    }


@pytest.mark.parametrize("method", ["GET", "PATCH"])
async def test_customer_flag_of_unknown_call(
    method: str, client: TestClient[Any, Any], redis: Redis
) -> None:
    await load_demo(redis)
    response = await client.request(
        method, f"{CALLS}/999/customer_flag", json={"bad_actor": True}, headers=basic()
    )
    assert (response.status, await response.json()) == (404, {"message": "Call not found"})


# --- SMS (seed 000) ----------------------------------------------------------------------------

SMS_REFUSALS = [
    pytest.param(
        Refusal(without(sms(), "chat_type"), "chat_type needs to be provided"),
        id="sms-chat-type-required",
    ),
    pytest.param(
        Refusal(sms(chat_type="In-app"), "valid chat type needs to be provided"),
        id="sms-valid-chat-type-required",
    ),
    pytest.param(
        Refusal(sms(), "SMS is not enabled", (set_settings(sms_enabled=False),)),
        id="sms-not-enabled",
    ),
    pytest.param(
        Refusal(sms(), "Outbound SMS is not enabled", (set_settings(outbound_sms_enabled=False),)),
        id="sms-outbound-not-enabled",
    ),
    pytest.param(
        Refusal(without(sms(), "end_user_number"), "end_user_number is required"),
        id="sms-end-user-number-required",
    ),
    pytest.param(
        Refusal(sms(end_user_number="12345"), "end_user_number is invalid"),
        id="sms-end-user-number-invalid",
    ),
    pytest.param(
        Refusal(sms(outbound_number="+82 000-000-0000"), "Non-US phone number not allowed"),
        id="sms-non-us-outbound-number",
    ),
    pytest.param(
        Refusal(sms(end_user_number="+82-10-6861-2345"), "Non-US phone number not allowed"),
        id="sms-non-us-end-user-number",
    ),
    pytest.param(
        Refusal(without(sms(), "outbound_number"), "outbound_number is required"),
        id="sms-outbound-number-required",
    ),
    pytest.param(
        Refusal(sms(outbound_number="12345"), "outbound_number is invalid"),
        id="sms-outbound-number-invalid",
    ),
    pytest.param(
        Refusal(sms(), "outbound_number is not found", (drop_outbound_number("+1 628-555-0199"),)),
        id="sms-outbound-number-not-found",
    ),
    pytest.param(
        # A managed number that is not SMS-capable.
        Refusal(sms(outbound_number="+1 339-219-5276"), "outbound_number is not found"),
        id="sms-voice-only-outbound-number-not-found",
    ),
    pytest.param(
        Refusal(sms(message=""), "message is required"),
        id="sms-message-required",
    ),
    pytest.param(
        Refusal(without(sms(), "message"), "message is required"),
        id="sms-message-missing",
    ),
    # **Decided** in API.md.
    pytest.param(
        Refusal(sms(agentId=99), "Agent not found"),
        id="sms-agent-id-not-found",
    ),
    pytest.param(
        Refusal(sms(agentEmail="nobody@somedomain.com"), "Agent not found"),
        id="sms-agent-email-not-found",
    ),
]


SMS_CHECK_ORDER = [
    pytest.param(
        Refusal(
            sms(chat_type="In-app"),
            "valid chat type needs to be provided",
            (set_settings(sms_enabled=False),),
        ),
        id="order-sms-chat-type-before-enabled",
    ),
    pytest.param(
        Refusal(
            without(sms(), "end_user_number"),
            "SMS is not enabled",
            (set_settings(sms_enabled=False, outbound_sms_enabled=False),),
        ),
        id="order-sms-enabled-before-outbound-enabled",
    ),
    pytest.param(
        Refusal(
            sms(end_user_number="12345", outbound_number="12345"), "end_user_number is invalid"
        ),
        id="order-sms-end-user-number-before-outbound-number",
    ),
    pytest.param(
        Refusal(sms(outbound_number="+1 415-555-0100", message=""), "outbound_number is not found"),
        id="order-sms-outbound-number-before-message",
    ),
    pytest.param(
        Refusal(sms(message="", agentId=99), "message is required"),
        id="order-sms-message-before-agent",
    ),
]


@pytest.mark.parametrize("case", SMS_CHECK_ORDER)
async def test_sms_check_order(case: Refusal, client: TestClient[Any, Any], redis: Redis) -> None:
    await load_demo(redis, case.changes)
    status, body = await post(client, SMS, case.body)
    assert (status, body) == (400, {"message": case.message})


@pytest.mark.parametrize("case", SMS_REFUSALS)
async def test_sms_refusal(case: Refusal, client: TestClient[Any, Any], redis: Redis) -> None:
    await load_demo(redis, case.changes)
    status, body = await post(client, SMS, case.body)
    assert (status, body) == (400, {"message": case.message})


ADMIN_CHAT_INFO = {**ADMIN_INFO, "email": "admin@somedomain.com"}
JOHN_DOE_CHAT_INFO = {**JOHN_DOE_INFO, "email": "john.doe@foo.com"}

SMS_SUCCESSES = [
    pytest.param(
        Success(sms(), 200, sms_chat(ticket_id="5006x00000XXxxxXXX")),
        id="sms-with-ticket-id",
    ),
    pytest.param(
        # The seed answers with John Doe for agentId 1: agent 1 is Admin UJET.
        Success(
            without(sms(agentId=1), "ticket_id"),
            200,
            sms_chat(agent=ADMIN_CHAT_INFO),
        ),
        id="sms-assigned-by-agent-id",
    ),
    pytest.param(
        # The seed answers with agent_info null: the spec says the agent's info.
        Success(
            without(sms(agentEmail="john.doe@foo.com"), "ticket_id"),
            200,
            sms_chat(agent=JOHN_DOE_CHAT_INFO),
        ),
        id="sms-assigned-by-agent-email",
    ),
    pytest.param(
        # The seed's "without ticket id" body carries one: dropped here.
        Success(without(sms(), "ticket_id"), 200, sms_chat()),
        id="sms-without-ticket-id",
    ),
    pytest.param(
        Success(
            without(sms(chat_type="SMS"), "ticket_id"),
            200,
            sms_chat(chat_type=MESSAGING_SMS),
        ),
        id="sms-deprecated-chat-type-SMS",
    ),
    pytest.param(
        Success(
            without(sms(chat_type="Messaging (API)"), "ticket_id"),
            200,
            sms_chat(chat_type="Messaging (API)"),
        ),
        id="sms-chat-type-messaging-api",
    ),
    pytest.param(
        Success(
            without(sms(end_user_number="+82-10-6861-2345"), "ticket_id"),
            200,
            sms_chat(end_user=ANONYMOUS_END_USER),
            (set_settings(sms_allowed_regions=["US", "KR"]),),
        ),
        id="sms-allowed-region-added",
    ),
]


@pytest.mark.parametrize("case", SMS_SUCCESSES)
async def test_sms_success(case: Success, client: TestClient[Any, Any], redis: Redis) -> None:
    await load_demo(redis, case.changes)
    status, body = await post(client, SMS, case.body)
    assert status == case.status, body
    assert_matches(body, case.expected)
    assert_chat_object(body)
    stored = await client.get(f"/apps/api/v1/chats/{body['id']}", headers=basic())
    assert stored.status == 200
    assert await stored.json() == body


async def test_sms_consumer_already_in_an_active_session(
    client: TestClient[Any, Any], redis: Redis
) -> None:
    """The seed's last example: the same consumer a second time, while the first session lasts."""
    await load_demo(redis)
    status, first = await post(client, SMS, sms())
    assert status == 200, first
    assert await post(client, SMS, sms(message="second")) == (
        400,
        {"message": "Outbound SMS failed. Consumer is already in an active SMS session."},
    )
    # Any spelling of the same number is the same consumer.
    assert await post(client, SMS, sms(end_user_number="(415) 555-0100")) == (
        400,
        {"message": "Outbound SMS failed. Consumer is already in an active SMS session."},
    )


async def test_unknown_subdomain_is_resource_not_found(
    client: TestClient[Any, Any], redis: Redis
) -> None:
    """The seed's response-code table: 404 "Resource not found - check the subdomain"."""
    await load_demo(redis)
    response = await client.post(CALLS, json=inbound(), headers=basic("nodomain", "demo-token"))
    assert (response.status, await response.json()) == (404, {"message": "Resource not found"})


# --- the same objects once archived ------------------------------------------------------------


@pytest.fixture
async def archiving(
    redis_url: str, redis: Redis, database_url: str, pg: asyncpg.Pool
) -> AsyncIterator[tuple[TestClient[Any, Any], Archiver]]:
    """A client of an app that reads archived records, and an archiver that moves a record as
    soon as it is in the ended set."""
    settings = Settings(
        redis_url=redis_url,
        admin_token=ADMIN_TOKEN,  # type: ignore[arg-type]
        database_url=database_url,
        hot_retention_s=0,
    )
    archiver = Archiver(redis, Scripts.register(redis), Archive(pg), settings, Metrics())
    async with TestClient(TestServer(create_app(settings))) as client:
        yield client, archiver


async def _archived_reads_back_the_same(
    client: TestClient[Any, Any], redis: Redis, archiver: Archiver, kind: Kind, path: str
) -> None:
    """GET of the record, and of its list, give the same bytes after it moved to PostgreSQL
    (put in the ended set as it is: the move does not care why a record is there)."""
    record_id = int(path.rsplit("/", 1)[1])
    list_path = path.rsplit("/", 1)[0] + "?per=5"
    before = [await (await client.get(p, headers=basic())).read() for p in (path, list_path)]
    await redis.zadd(TenantKeys("demo").ended(kind), {f"{record_id:015d}": 0})
    done = await archiver.tick(asyncio.get_running_loop().time() + 30)
    assert done.released == 1
    tenant = TenantKeys("demo")
    assert not await redis.exists(
        tenant.call(record_id) if kind == "call" else tenant.chat(record_id)
    )
    after = [await (await client.get(p, headers=basic())).read() for p in (path, list_path)]
    assert after == before


@pytest.mark.parametrize("case", CALL_SUCCESSES)
async def test_call_success_reads_back_byte_identical_once_archived(
    case: Success, archiving: tuple[TestClient[Any, Any], Archiver], redis: Redis
) -> None:
    client, archiver = archiving
    await load_demo(redis, case.changes)
    status, body = await post(client, CALLS, case.body)
    assert status == case.status, body
    call_id = body["id"] if status == 201 else body["call_id"]
    await _archived_reads_back_the_same(client, redis, archiver, "call", f"{CALLS}/{call_id}")


@pytest.mark.parametrize("case", SMS_SUCCESSES)
async def test_sms_success_reads_back_byte_identical_once_archived(
    case: Success, archiving: tuple[TestClient[Any, Any], Archiver], redis: Redis
) -> None:
    client, archiver = archiving
    await load_demo(redis, case.changes)
    status, body = await post(client, SMS, case.body)
    assert status == case.status, body
    chat = f"/apps/api/v1/chats/{body['id']}"
    await _archived_reads_back_the_same(client, redis, archiver, "chat", chat)
