"""What a call's history records: one small entry per step (the dashboard's call detail).

Entries are JSON objects with `at` (ms) and `event`: `created`, `status` (`from`, `to`, and
`reason` or `by` when the call ended), `cascade` (`groups` added), and the offers' own
`offered`, `accepted`, `declined`, `expired`, `withdrawn` (`agent_id`, `offer_id`), which the
offer scripts write themselves.
"""

from __future__ import annotations

from typing import Any

from dispatcher.domain import clock
from dispatcher.domain.objects import CallObject
from dispatcher.domain.statuses import CallStatus


def created(call: CallObject) -> dict[str, Any]:
    """The first entry, read off the call itself (creation writes no history)."""
    at = clock.parse_iso(call.created_at)
    return {"at": clock.to_ms(at) if at else 0, "event": "created", "call_type": call.call_type}


def change(before: CallObject, after: CallObject, at_ms: int) -> dict[str, Any] | None:
    """The entry of a stored change, or None for one the history leaves out."""
    if after.status != before.status:
        entry: dict[str, Any] = {"at": at_ms, "event": "status", "from": before.status}
        entry["to"] = after.status
        if after.status == CallStatus.FAILED:
            entry["reason"] = after.fail_reason
        if after.status == CallStatus.FINISHED:
            entry["by"] = after.disconnected_by
        return entry
    added = after.offer_events[len(before.offer_events) :]
    if added:
        return {"at": at_ms, "event": "cascade", "groups": [event.group for event in added]}
    return None
