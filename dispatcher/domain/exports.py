"""Calls and chats as the lines of an export: NDJSON (each stored object, byte for byte) or
CSV (a fixed set of columns a CRM imports, RFC 4180, with cells a spreadsheet would run as a
formula defused)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any, Literal, Protocol

import orjson

FormatName = Literal["csv", "ndjson"]
# A column: its header, and the dotted path of its value in the object (agent_info.id).
Column = tuple[str, str]

CALL_COLUMNS: tuple[Column, ...] = (
    ("id", "id"),
    ("parent_id", "parent_id"),
    ("call_type", "call_type"),
    ("status", "status"),
    ("lang", "lang"),
    ("created_at", "created_at"),
    ("queued_at", "queued_at"),
    ("assigned_at", "assigned_at"),
    ("connected_at", "connected_at"),
    ("ends_at", "ends_at"),
    ("scheduled_at", "scheduled_at"),
    ("wait_duration", "wait_duration"),
    ("call_duration", "call_duration"),
    ("hold_duration", "hold_duration"),
    ("fail_reason", "fail_reason"),
    ("fail_details", "fail_details"),
    ("disconnected_by", "disconnected_by"),
    ("menu_id", "selected_menu.id"),
    ("menu_name", "selected_menu.name"),
    ("agent_id", "agent_info.id"),
    ("agent_name", "agent_info.name"),
    ("end_user_id", "end_user.id"),
    ("end_user_identifier", "end_user.identifier"),
    ("out_contact_id", "end_user.out_contact_id"),
    ("out_ticket_id", "out_ticket_id"),
    ("outbound_number", "outbound_number"),
    ("recording_permission", "recording_permission"),
    ("offer_type", "offer_type"),
)
CHAT_COLUMNS: tuple[Column, ...] = (
    ("id", "id"),
    ("chat_type", "chat_type"),
    ("status", "status"),
    ("lang", "lang"),
    ("created_at", "created_at"),
    ("queued_at", "queued_at"),
    ("assigned_at", "assigned_at"),
    ("ends_at", "ends_at"),
    ("wait_duration", "wait_duration"),
    ("chat_duration", "chat_duration"),
    ("fail_reason", "fail_reason"),
    ("disconnected_by", "disconnected_by"),
    ("menu_id", "selected_menu.id"),
    ("menu_name", "selected_menu.name"),
    ("agent_id", "agent_info.id"),
    ("agent_name", "agent_info.name"),
    ("agent_email", "agent_info.email"),
    ("end_user_id", "end_user.id"),
    ("end_user_identifier", "end_user.identifier"),
    ("out_contact_id", "end_user.out_contact_id"),
    ("out_ticket_id", "out_ticket_id"),
    ("outbound_number", "outbound_number"),
)
# What a spreadsheet reads as the start of a formula (OWASP's list): such a cell gets a `'`
# in front, which the spreadsheet shows as text and does not run.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class Lines(Protocol):
    """An export's encoding: what comes before the first record, and a batch of records."""

    def head(self) -> bytes: ...

    def encode(self, docs: Sequence[bytes]) -> bytes: ...


class Ndjson:
    """One stored object a line, as GET /calls/:id answers it."""

    def head(self) -> bytes:
        return b""

    def encode(self, docs: Sequence[bytes]) -> bytes:
        return b"".join(doc + b"\n" for doc in docs)


class Csv:
    """A header line, then a line a record (CRLF, quoted where needed: the csv module's
    excel dialect, which is RFC 4180)."""

    def __init__(self, columns: tuple[Column, ...]) -> None:
        self._names = [name for name, _ in columns]
        self._paths = [path.split(".") for _, path in columns]

    def head(self) -> bytes:
        return self._lines([self._names])

    def encode(self, docs: Sequence[bytes]) -> bytes:
        return self._lines([self._row(orjson.loads(doc)) for doc in docs])

    def _row(self, record: dict[str, Any]) -> list[str]:
        return [cell(value_at(record, path)) for path in self._paths]

    @staticmethod
    def _lines(rows: list[list[str]]) -> bytes:
        text = io.StringIO()
        csv.writer(text).writerows(rows)
        return text.getvalue().encode()


def csv_lines(rows: Sequence[Sequence[Any]]) -> bytes:
    """Rows of values as CSV lines, each value a `cell` (an export of rows built elsewhere:
    a campaign's contacts)."""
    return Csv._lines([[cell(value) for value in row] for row in rows])


def lines(format_name: FormatName, kind: Literal["call", "chat"]) -> Lines:
    if format_name == "ndjson":
        return Ndjson()
    return Csv(CALL_COLUMNS if kind == "call" else CHAT_COLUMNS)


def value_at(record: dict[str, Any], path: Sequence[str]) -> Any:
    """The value at `path` (agent_info, id); None where a step is missing or null."""
    value: Any = record
    for step in path:
        if not isinstance(value, dict):
            return None
        value = value.get(step)
    return value


def cell(value: Any) -> str:
    """A CSV cell: empty for null, true/false, numbers as JSON writes them, and text with a
    leading `'` when it would start a formula."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text
