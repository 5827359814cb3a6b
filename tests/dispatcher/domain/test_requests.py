"""Properties of the request validators: any JSON in any field gets one of the spec's messages,
and a body broken in several places gets the message of the first check in the spec's order."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from dispatcher.directory import loader
from dispatcher.directory.tenant import Tenant
from dispatcher.domain import call_requests, fields
from dispatcher.domain.chat_requests import validate_sms
from dispatcher.domain.errors import InvalidRequest
from dispatcher.domain.statuses import CallType
from tests.conftest import demo_document
from tests.hostile import any_text, json_values

TENANT = Tenant(doc=loader.validate(demo_document()).tenants[0], token_hashes=[])
NOW = datetime(2030, 1, 1, tzinfo=UTC)
MISSING = object()  # a key left out of the body

# Every message a validator may answer: API.md's, and the Decided ones of the project.
SPEC_MESSAGES = re.compile(
    "|".join(
        [
            r"Invalid call type",
            r"Agent email required",
            r"Not a valid agent email",
            r"Agent does not have access to make calls",
            r"ticket_id or end_user_number required",
            r"Contact not found",
            r"end_user_number is not well-formed",
            r"menu_id is required",
            r"menu_id is not well formed",
            r"menu_id -?\d+ is not found",
            r"Only IVR and mobile menu IDs are permitted",
            r"Only mobile and web menu IDs are permitted",
            r"Language '.*' is not found",
            r"Language '.*' is not available",
            r"Menu is in 'after hours' state, can't accept incoming calls",
            r"Menu is in 'manual redirection' state, can't accept calls",
            r"end_user_number is required",
            r"end_user_number is not well formed",
            r"scheduled_at is required",
            r"scheduled_at is not well formed",
            r"scheduled_at must be in the future",
            r"Call .* is not found",
            r"chat_type needs to be provided",
            r"valid chat type needs to be provided",
            r"end_user_number is invalid",
            r"Non-US phone number not allowed",
            r"outbound_number is required",
            r"outbound_number is invalid",
            r"outbound_number is not found",
            r"message is required",
            r"message is too long \(at most 1600 characters\)",
            r"Agent not found",
            r"ticket_id is not well formed",
            r"recording_permission is not valid",
            r"No outbound number is available",
        ]
    ),
    re.DOTALL,
)

CALL_FIELDS = ["call_type", "agent_email", "ticket_id", "end_user_number", "outbound_number",
               "lang", "menu_id", "call_id", "recording_permission", "scheduled_at"]  # fmt: skip
SMS_FIELDS = ["chat_type", "end_user_number", "outbound_number", "message", "ticket_id",
              "agentId", "agentEmail"]  # fmt: skip
CALL_TYPES = ["Voice Outbound (API)", "OutboundCall", "Voice Inbound (API)", "IncomingCall",
              "Voice Scheduled (API)", "ScheduledCall"]  # fmt: skip

VALID: dict[CallType, dict[str, Any]] = {
    CallType.OUTBOUND: {
        "call_type": "Voice Outbound (API)",
        "agent_email": "agent@somedomain.com",
        "end_user_number": "+1 628-555-0142",
        "lang": "en",
    },
    CallType.INBOUND: {
        "call_type": "Voice Inbound (API)",
        "menu_id": 9,
        "end_user_number": "+1 205-123-4567",
        "lang": "ko",
    },
    CallType.SCHEDULED: {
        "call_type": "Voice Scheduled (API)",
        "menu_id": 9,
        "end_user_number": "+1 205-123-4567",
        "scheduled_at": "2030-06-03T17:00:00Z",
    },
}
VALID_SMS = {
    "chat_type": "Messaging (SMS)",
    "end_user_number": "+1 415-555-0100",
    "outbound_number": "+1 628-555-0199",
    "message": "Your order has shipped.",
}

# Per kind, its checks in the spec's order: (field, [(bad value, message), ...]).
Breakers = list[tuple[object, str]]
Checks = list[tuple[str, Breakers]]
_REQUIRED_NUMBER: Breakers = [
    (MISSING, "end_user_number is required"),
    (None, "end_user_number is required"),
    ("  ", "end_user_number is required"),
]
_MENU: Breakers = [
    (MISSING, "menu_id is required"),
    ("", "menu_id is required"),
    ("nine", "menu_id is not well formed"),
    (9.0, "menu_id is not well formed"),
    (True, "menu_id is not well formed"),
    ("٩", "menu_id is not well formed"),
    (9999, "menu_id 9999 is not found"),
    ("09999", "menu_id 9999 is not found"),
    (-9, "menu_id -9 is not found"),
]
_LANG: Breakers = [
    ("xy", "Language 'xy' is not found"),
    ("fr", "Language 'fr' is not available"),
    ("EN", "Language 'EN' is not found"),
]
_TICKET: Breakers = [
    (["71450"], "ticket_id is not well formed"),
    (1.5, "ticket_id is not well formed"),
    ("t" * 256, "ticket_id is not well formed"),
]
_RECORDING: Breakers = [
    ("granted", "recording_permission is not valid"),
    (1, "recording_permission is not valid"),
]
ORDER: dict[CallType | str, Checks] = {
    CallType.OUTBOUND: [
        ("agent_email", [(MISSING, "Agent email required"), ("", "Agent email required"),
                         ("nobody@somedomain.com", "Not a valid agent email"),
                         (["agent@somedomain.com"], "Not a valid agent email"),
                         ("allen@somedomain.com", "Agent does not have access to make calls")]),
        ("ticket_id", [*_TICKET, ("nope", "Contact not found")]),
        ("end_user_number", [(MISSING, "ticket_id or end_user_number required"),
                             ("12", "end_user_number is not well-formed"),
                             ("+82 00 00000", "end_user_number is not well-formed"),
                             (16285550142, "end_user_number is not well-formed")]),
        ("lang", [("xy", "Language 'xy' is not found"),
                  (["en"], "Language '['en']' is not found")]),
    ],
    CallType.INBOUND: [
        ("menu_id", [*_MENU, (50, "Only IVR and mobile menu IDs are permitted")]),
        ("lang", _LANG),
        ("end_user_number", [*_REQUIRED_NUMBER, ("12", "end_user_number is not well formed")]),
        ("ticket_id", _TICKET),
        ("recording_permission", _RECORDING),
    ],
    CallType.SCHEDULED: [
        ("menu_id", [*_MENU, (51, "Only mobile and web menu IDs are permitted")]),
        ("lang", _LANG),
        ("end_user_number", [*_REQUIRED_NUMBER, ("12", "end_user_number is not well formed")]),
        ("ticket_id", _TICKET),
        ("recording_permission", _RECORDING),
        ("scheduled_at", [(MISSING, "scheduled_at is required"), ("", "scheduled_at is required"),
                          ("tomorrow", "scheduled_at is not well formed"),
                          (1906740000, "scheduled_at is not well formed"),
                          ("9999-12-31T23:59:59-01:00", "scheduled_at is not well formed"),
                          ("2029-12-31T23:59:59.999Z", "scheduled_at must be in the future"),
                          ("2030-01-01T00:00:00Z", "scheduled_at must be in the future")]),
    ],
    "sms": [
        ("chat_type", [(MISSING, "chat_type needs to be provided"),
                       ("", "chat_type needs to be provided"),
                       ("In-app", "valid chat type needs to be provided"),
                       (["SMS"], "valid chat type needs to be provided")]),
        ("end_user_number", [(MISSING, "end_user_number is required"),
                             ("12345", "end_user_number is invalid"),
                             ("+44 20 7946 0000", "Non-US phone number not allowed")]),
        ("outbound_number", [(MISSING, "outbound_number is required"),
                             ("+82 000-000-0000", "Non-US phone number not allowed"),
                             ("12345", "outbound_number is invalid"),
                             ("+1 760-867-5309", "outbound_number is not found"),
                             ("+1 339-219-5276", "outbound_number is not found")]),
        ("message", [(MISSING, "message is required"), (" \n", "message is required"),
                     (42, "message is required"),
                     ("x" * 1601, "message is too long (at most 1600 characters)")]),
        ("ticket_id", _TICKET),
        ("agentEmail", [("nobody@somedomain.com", "Agent not found"), (7, "Agent not found")]),
    ],
}  # fmt: skip


def _validate(body: dict[str, Any]) -> object:
    call_type = call_requests.call_type_of(body)
    if call_type is CallType.OUTBOUND:
        return call_requests.validate_outbound(body, TENANT)
    if call_type is CallType.INBOUND:
        return call_requests.validate_inbound(body, TENANT, NOW)
    return call_requests.validate_scheduled(body, TENANT, NOW, None)


def _answer(validate: Any, body: dict[str, Any]) -> str | None:
    """The validator's message, or None when it accepts the body; nothing else may escape."""
    try:
        validate(body)
    except InvalidRequest as refused:
        assert SPEC_MESSAGES.fullmatch(refused.message), refused.message
        return refused.message
    return None


@given(
    st.dictionaries(
        st.one_of(st.sampled_from(CALL_FIELDS), any_text),
        st.one_of(json_values, st.sampled_from(CALL_TYPES)),
        max_size=10,
    ),
    st.sampled_from(CALL_TYPES),
)
@example(
    {**VALID[CallType.SCHEDULED], "scheduled_at": "0001-01-01T00:00:00+01:00"}, "ScheduledCall"
)
def test_any_call_body_gets_a_spec_message(body: dict[str, Any], call_type: str) -> None:
    _answer(_validate, body)
    _answer(_validate, {**body, "call_type": call_type})


@given(
    st.dictionaries(st.one_of(st.sampled_from(SMS_FIELDS), any_text), json_values, max_size=8).map(
        lambda body: {**VALID_SMS, **body}
    )
)
def test_any_sms_body_gets_a_spec_message(body: dict[str, Any]) -> None:
    _answer(lambda b: validate_sms(b, TENANT), body)


@st.composite
def broken_bodies(draw: st.DrawFn, kind: CallType | str) -> tuple[dict[str, Any], str | None]:
    """A valid body with some fields broken, and the message of the first broken check."""
    body: dict[str, Any] = dict(VALID_SMS if kind == "sms" else VALID[CallType(kind)])
    expected = None
    for field, breakers in ORDER[kind]:
        if not draw(st.booleans()):
            continue
        value, message = draw(st.sampled_from(breakers))
        if value is MISSING:
            body.pop(field, None)
        else:
            body[field] = value
        expected = expected or message
    return body, expected


@pytest.mark.parametrize("kind", [*VALID, "sms"])
@given(data=st.data())
def test_the_first_broken_check_in_spec_order_answers(kind: CallType | str, data: Any) -> None:
    body, expected = data.draw(broken_bodies(kind))
    validate = (lambda b: validate_sms(b, TENANT)) if kind == "sms" else _validate
    assert _answer(validate, body) == expected, body


@given(st.one_of(json_values, st.integers(), st.text(alphabet="0123456789", max_size=25)))
@example("١٢")
@example("12\n")
@example(" 12")
@example("9" * 18)
@example("9" * 19)
def test_integer_fields_take_ints_and_ascii_digit_strings_only(raw: object) -> None:
    value = fields.integer(raw)
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        assert value is None
    elif isinstance(raw, int):
        assert value == raw
    elif raw.isascii() and raw.isdigit() and len(raw) <= 18:
        assert value == int(raw)
    else:
        assert value is None


@given(json_values)
def test_ticket_ids_are_text_of_bounded_length(raw: object) -> None:
    try:
        ticket = fields.ticket_id(raw)
    except InvalidRequest as refused:
        assert refused.message == "ticket_id is not well formed"
    else:
        assert ticket is None or (isinstance(ticket, str) and 0 < len(ticket) <= 255)
