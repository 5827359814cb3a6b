"""Readers for loosely typed JSON request fields, shared by every request validator."""

from __future__ import annotations

from collections.abc import Mapping

from dispatcher.domain.errors import InvalidRequest


def blank(raw: object) -> bool:
    """Missing, null or an empty string: what the spec calls "not given"."""
    return raw is None or (isinstance(raw, str) and not raw.strip())


def integer(raw: object) -> int | None:
    """An integer, or a string of digits; None for anything else (booleans included)."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.isascii() and raw.isdigit() and len(raw) <= 18:
        return int(raw)
    return None


# CRM ticket ids are short (Salesforce's are 18 characters); a longer one is refused rather
# than stored in every call object that names it.
MAX_TICKET_ID_CHARS = 255


def positive_param(query: Mapping[str, str], name: str) -> int | None:
    """A positive integer query parameter (None when absent), with the one message every
    query that takes one answers."""
    raw = query.get(name)
    if raw is None:
        return None
    value = integer(raw)
    if value is None or not 1 <= value <= 1_000_000_000:
        raise InvalidRequest(f"{name} must be a positive integer")
    return value


def ticket_id(raw: object) -> str | None:
    """A CRM ticket id when given; a given value of any other type is refused."""
    if blank(raw):
        return None
    ticket = text_id(raw)
    if ticket is None or len(ticket) > MAX_TICKET_ID_CHARS:
        raise InvalidRequest("ticket_id is not well formed")
    return ticket


def text_id(raw: object) -> str | None:
    """A CRM id sent as a string or an integer, stored as a string; None for other types."""
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        return None
    return str(raw).strip()
