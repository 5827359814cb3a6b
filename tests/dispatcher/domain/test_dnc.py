"""The DNC list's request checks (domain/dnc.py): expiry forms, emergency numbers by region, and
hostile bodies that only ever end in a domain error or a contact's own failure."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from phonenumbers import PhoneMetadata
from phonenumbers.shortnumberinfo import SUPPORTED_SHORT_REGIONS

from dispatcher.domain import clock, dnc, phones
from dispatcher.domain.errors import InvalidRequest
from tests.hostile import any_text, json_values, phone_like

NOW = clock.to_ms(datetime(2026, 12, 1, tzinfo=UTC))


@pytest.mark.parametrize(
    ("raw", "moment"),
    [
        ("2030-10-29 00:00:00 UTC", datetime(2030, 10, 29, tzinfo=UTC)),
        ("2030-10-29T00:00:00Z", datetime(2030, 10, 29, tzinfo=UTC)),
        ("2030-10-29T09:00:00+09:00", datetime(2030, 10, 29, tzinfo=UTC)),
        ("2030-10-29T00:00:00", datetime(2030, 10, 29, tzinfo=UTC)),  # no offset: UTC
        ("2030-10-29T00:00:00.250Z", datetime(2030, 10, 29, 0, 0, 0, 250_000, tzinfo=UTC)),
        ("2030-10-29 00:00:00 utc", None),
        ("2030-13-01 00:00:00 UTC", None),
        ("2030-10-29 00:00 UTC", None),
        ("29/10/2030", None),
        ("", None),
    ],
)
def test_expiry_forms(raw: str, moment: datetime | None) -> None:
    assert dnc.expiry(raw) == moment


@pytest.mark.parametrize(
    ("raw", "emergency"),
    [
        ("911", True),
        ("112", True),
        ("+1 911", True),
        ("+44 999", True),
        ("+44 112", True),
        ("+61 000", True),
        ("999", False),  # the UK's, not the default region's
        ("+1 415-555-0100", False),
        ("+1 911 555 0100", False),
        ("", False),
        ("+", False),
    ],
)
def test_emergency_numbers_by_region(raw: str, emergency: bool) -> None:
    assert dnc.is_emergency(raw) is emergency


def test_no_emergency_number_is_longer_than_the_shortcut_assumes() -> None:
    lengths = [
        max(metadata.emergency.possible_length or (0,))
        for region in SUPPORTED_SHORT_REGIONS
        if (metadata := PhoneMetadata.short_metadata_for_region(region)) and metadata.emergency
    ]
    assert max(lengths) == dnc.EMERGENCY_DIGITS


@given(json_values)
def test_any_body_is_contacts_or_a_domain_error(body: Any) -> None:
    for wrapped in ({"contacts": body}, {"contacts": [body]}, {"phone_numbers": body}):
        try:
            contacts = dnc.contacts_of(wrapped, NOW) if "contacts" in wrapped else None
            numbers = dnc.numbers_of(wrapped) if contacts is None else []
        except InvalidRequest:
            continue
        for contact in contacts or []:
            assert (contact.number is None) != (contact.error is None)
        for number in numbers:
            assert number.number is None or phones.normalize(number.number) == number.number


@given(st.one_of(phone_like, any_text), st.one_of(st.none(), any_text))
def test_a_contact_of_the_right_shape_is_answered_alone(number: str, expires: str | None) -> None:
    (contact,) = dnc.contacts_of(
        {"contacts": [{"phone_number": number, "expires_at": expires}]}, NOW
    )
    assert contact.sent == {"phone_number": number, "expires_at": expires}
    if contact.error is None:
        assert contact.number == phones.normalize(number)
        assert contact.expires_ms is None or contact.expires_ms > NOW
    else:
        assert contact.error in {
            dnc.INVALID_NUMBER,
            dnc.EMERGENCY_NUMBER,
            dnc.INVALID_EXPIRY,
            dnc.PAST_EXPIRY,
        }
