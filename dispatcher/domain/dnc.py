"""The company do-not-call list's requests: the add and remove bodies checked, each contact's
number in E.164 and its expiry, with the platform's texts for a contact that fails.

A body whose shape is wrong (no `contacts` array, a contact that is no object, a number that is
no string) is refused whole with a 400, as the OpenAPI schema says; a contact of the right
shape whose number or expiry is not acceptable fails alone, in its entry of the answer."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import phonenumbers
from phonenumbers import shortnumberinfo

from dispatcher.domain import clock, phones
from dispatcher.domain.errors import InvalidRequest

MAX_CONTACTS = 10_000  # a request's contacts (add) or numbers (remove)
# A request of n contacts or numbers takes ceil(n / 100) tokens of the tenant's request bucket
# (10,000: 100 tokens, half a second of the default rate). An entry is two sorted-set members
# and no job, far cheaper than a call of a batch (10 a token).
ENTRIES_PER_TOKEN = 100

# The platform's texts for a contact that fails, exact.
INVALID_NUMBER = "phone_number is invalid"
EMERGENCY_NUMBER = "emergency phone number is not allowed"
PAST_EXPIRY = "expires_at cannot be past date/time"
INVALID_EXPIRY = "expires_at is invalid"

MAX_NUMBER_CHARS = 64  # longer is no number (phones.parse reads no more either)
# The most digits of an emergency number in libphonenumber's short-number data (a test checks),
# after a calling code of up to 3 when written with a '+'.
EMERGENCY_DIGITS = 6
ECHOED = ("phone_number", "expires_at")  # a contact's answer repeats them as sent
NOT_ON_THE_LIST = "Phone number is not on the DNC list"

# The platform's own way of writing a time: "2030-10-29 00:00:00 UTC".
_PLATFORM_TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC")


@dataclass(frozen=True)
class Contact:
    """One contact of an add: what it sent (echoed in its answer), and either its number in
    E.164 with its expiry (ms, None: never) or the text it fails with."""

    sent: dict[str, Any]
    number: str | None = None
    expires_ms: int | None = None
    error: str | None = None


@dataclass(frozen=True)
class Number:
    """One number of a remove: as sent, and in E.164 (None: it is no number)."""

    sent: str
    number: str | None


def contacts_of(body: dict[str, Any], now_ms: int) -> list[Contact]:
    """The contacts of `{"contacts": [{"phone_number", "expires_at"?}, ...]}`, in order."""
    items = _array(body, "contacts")
    return [_contact(_shaped(raw, index), now_ms) for index, raw in enumerate(items)]


def numbers_of(body: dict[str, Any]) -> list[Number]:
    """The numbers of `{"phone_numbers": ["+1 415-555-0100", ...]}`, in order."""
    items = _array(body, "phone_numbers")
    for index, raw in enumerate(items):
        if not isinstance(raw, str):
            raise InvalidRequest(f"phone_numbers[{index}] must be a string")
    return [Number(raw, phones.normalize(raw)) for raw in items]


def tokens_for(entries: int) -> int:
    """The rate-limit tokens a request of `entries` contacts or numbers takes."""
    return max(1, math.ceil(entries / ENTRIES_PER_TOKEN))


def _array(body: dict[str, Any], name: str) -> list[Any]:
    if name not in body:
        raise InvalidRequest(f"{name} is required")
    items = body[name]
    if not isinstance(items, list):
        raise InvalidRequest(f"{name} must be an array")
    if not items:
        raise InvalidRequest(f"{name} must not be empty")
    if len(items) > MAX_CONTACTS:
        raise InvalidRequest(f"{name} must hold at most {MAX_CONTACTS} entries a request")
    return items


def _shaped(raw: object, index: int) -> dict[str, Any]:
    """A contact of the schema's shape: an object, its phone_number a string, its expires_at
    a string or null when given."""
    if not isinstance(raw, dict):
        raise InvalidRequest(f"contacts[{index}] must be an object")
    if raw.get("phone_number") is None:
        raise InvalidRequest(f"contacts[{index}].phone_number is required")
    if not isinstance(raw["phone_number"], str):
        raise InvalidRequest(f"contacts[{index}].phone_number must be a string")
    if not isinstance(raw.get("expires_at"), str | None):
        raise InvalidRequest(f"contacts[{index}].expires_at must be a string or null")
    return raw


def _contact(raw: dict[str, Any], now_ms: int) -> Contact:
    sent: dict[str, Any] = {name: raw[name] for name in ECHOED if name in raw}
    number = raw["phone_number"]
    if is_emergency(number):
        return Contact(sent, error=EMERGENCY_NUMBER)
    e164 = phones.normalize(number)
    if e164 is None:
        return Contact(sent, error=INVALID_NUMBER)
    if raw.get("expires_at") is None:
        return Contact(sent, e164)
    moment = expiry(raw["expires_at"])
    if moment is None:
        return Contact(sent, error=INVALID_EXPIRY)
    expires_ms = clock.to_ms(moment)
    if expires_ms <= now_ms:  # off the list from expires_at on: already gone
        return Contact(sent, error=PAST_EXPIRY)
    return Contact(sent, e164, expires_ms)


def is_emergency(raw: str) -> bool:
    """An emergency number (libphonenumber's short-number data): in the default region, or
    written with a '+', in any region of its calling code (+1 911 is the US's and Canada's)."""
    written_plus = raw.lstrip().startswith("+")
    digits = sum(map(str.isdigit, raw))  # any script's digits, as libphonenumber reads them
    if len(raw) > MAX_NUMBER_CHARS or digits > EMERGENCY_DIGITS + (3 if written_plus else 0):
        return False  # the common case, judged without the short-number data (slow to ask)
    if not written_plus:
        return bool(shortnumberinfo.is_emergency_number(raw, phones.DEFAULT_REGION))
    try:
        parsed = phonenumbers.parse(raw, None)
    except phonenumbers.NumberParseException:
        return False
    national = phonenumbers.national_significant_number(parsed)
    regions = phonenumbers.region_codes_for_country_code(parsed.country_code or 0)
    return any(shortnumberinfo.is_emergency_number(national, region) for region in regions)


def expiry(raw: str) -> datetime | None:
    """`expires_at` as the platform writes it ("2030-10-29 00:00:00 UTC") or in ISO 8601 (one
    without an offset is UTC); None for anything else."""
    if _PLATFORM_TIME.fullmatch(raw):
        try:
            return datetime.strptime(raw, "%Y-%m-%d %H:%M:%S UTC").replace(tzinfo=UTC)
        except ValueError:  # a 13th month, a 30th of February
            return None
    return clock.parse_iso(raw)
