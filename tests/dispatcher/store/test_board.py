"""The dashboard's call rows: a queued call's wait runs on, a scheduled one shows when due."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from dispatcher.store.board import summary

AT_MS = 1_796_000_000_000  # any moment
BASE: dict[str, Any] = {
    "id": 7,
    "call_type": "Voice Inbound (API)",
    "created_at": "2026-11-30T00:00:00.000Z",
    "selected_menu": {"name": "Phone Sales"},
    "agent_info": None,
    "wait_duration": 0,
    "call_duration": 0,
    "fail_reason": "nothing",
    "scheduled_at": None,
}


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


def test_a_queued_call_has_waited_since_it_was_queued() -> None:
    call = {**BASE, "status": "queued", "queued_at": _iso(AT_MS - 16_400)}
    assert summary(call, AT_MS)["wait_duration"] == 16


def test_an_assigned_call_keeps_its_stored_wait() -> None:
    call = {**BASE, "status": "assigned", "queued_at": _iso(AT_MS - 90_000), "wait_duration": 12}
    assert summary(call, AT_MS)["wait_duration"] == 12


def test_a_scheduled_call_shows_when_it_is_due() -> None:
    due = "2030-06-03T17:00:00Z"
    call = {**BASE, "status": "scheduled", "queued_at": None, "scheduled_at": due}
    row = summary(call, AT_MS)
    assert (row["wait_duration"], row["scheduled_at"]) == (0, due)
