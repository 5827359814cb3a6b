"""Phone numbers: parsing with libphonenumber, E.164 output, regions and masking for logs."""

from __future__ import annotations

import re

import phonenumbers

DEFAULT_REGION = "US"
DEFAULT_COUNTRY_CODE = phonenumbers.country_code_for_region(DEFAULT_REGION)
_NON_DIGITS = re.compile(r"\D")


def parse(raw: object) -> phonenumbers.PhoneNumber | None:
    """A possible number (the spec's "well-formed"), or None; non-strings are never numbers.
    A number must also survive its own E.164 form: libphonenumber takes the zeros of
    "+82 00 11111" for a trunk prefix, keeps one and writes +82011111, which parses back as
    +8211111. Such numbers (possible, never valid) are refused, so that every number stored
    normalizes to itself and compares equal to the same number sent again."""
    number = _possible(raw)
    if number is None or not isinstance(raw, str):
        return None
    written = e164(number)
    # Written as "+" and the same digits with separators only ("+1 859-657-9625"): it parsed
    # as its E.164 form would, so there is nothing to re-read (the common case, kept cheap).
    as_written = raw.lstrip().startswith("+") and _NON_DIGITS.sub("", raw) == written[1:]
    if not as_written:
        again = _possible(written)
        if again is None or e164(again) != written:
            return None
    return number


def _possible(raw: object) -> phonenumbers.PhoneNumber | None:
    if not isinstance(raw, str) or not raw.strip() or len(raw) > 64:
        return None
    try:
        number = phonenumbers.parse(raw, DEFAULT_REGION)
    except phonenumbers.NumberParseException:
        return None
    return number if phonenumbers.is_possible_number(number) else None


def e164(number: phonenumbers.PhoneNumber) -> str:
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize(raw: object) -> str | None:
    number = parse(raw)
    return e164(number) if number is not None else None


def region(number: phonenumbers.PhoneNumber) -> str:
    """The number's country; for numbers libphonenumber cannot place (fictional 555 ranges,
    say) the main country of its calling code, so +1 numbers count as US."""
    found: str | None = phonenumbers.region_code_for_number(number)
    return found or phonenumbers.region_code_for_country_code(number.country_code or 0)


def country_code(raw: object) -> int | None:
    """The calling code of a number written with a leading '+', judged before validity."""
    if not isinstance(raw, str):
        return None
    digits = _NON_DIGITS.sub("", raw)
    if not raw.strip().startswith("+") or not digits:
        return DEFAULT_COUNTRY_CODE if digits else None
    for length in (1, 2, 3):
        code = int(digits[:length])
        if code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            return code
    return None


def mask(text: str) -> str:
    """Hide all but the last two digits of anything that looks like a phone number: an
    international number written with '+', or a bare run of 10 to 15 digits."""
    return _PHONE_LIKE.sub(_mask_match, text)


_PHONE_LIKE = re.compile(r"\+\d[\d\s().-]{5,}\d|(?<![\w.])\d{10,15}(?![\w.])")


def _mask_match(match: re.Match[str]) -> str:
    return mask_number(match.group(0))


def mask_number(text: str) -> str:
    """A text known to be a phone number, however written ("415-111-3333"), with all but its
    last two digits hidden, as `mask` writes it; one of under 7 digits is kept."""
    digits = _NON_DIGITS.sub("", text)
    if len(digits) < 7:
        return text
    return "+" + "*" * (len(digits) - 2) + digits[-2:]
