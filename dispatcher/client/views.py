"""Call objects as an operator reads them on a terminal: a table of many, the fields of one."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from dispatcher.domain.statuses import CallType

SHORT_TYPES = {
    CallType.OUTBOUND: "outbound",
    CallType.INBOUND: "inbound",
    CallType.SCHEDULED: "scheduled",
}
NONE = "-"

# The fields `calls show` prints, in this order, when they are set; --json has every field.
DETAIL_FIELDS = (
    "id", "call_type", "status", "fail_reason", "parent_id", "lang",
    "created_at", "scheduled_at", "queued_at", "assigned_at", "connected_at", "ends_at",
    "wait_duration", "call_duration", "hold_duration",
    "selected_menu", "agent_info", "end_user", "out_ticket_id", "outbound_number",
    "voip_provider", "recording_permission", "offer_type", "offer_events", "participants",
)  # fmt: skip


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Left-aligned columns two spaces apart, without trailing spaces."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    return [
        "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in (header, *rows)
    ]


def calls_table(calls: Sequence[dict[str, Any]]) -> list[str]:
    header = ("ID", "TYPE", "STATUS", "CREATED", "AGENT", "MENU", "WAIT", "TALK")
    return table(header, [_call_row(call) for call in calls])


def _call_row(call: dict[str, Any]) -> tuple[str, ...]:
    agent, menu = call.get("agent_info"), call.get("selected_menu")
    connected = call.get("connected_at") is not None
    return (
        str(call["id"]),
        SHORT_TYPES.get(call["call_type"], call["call_type"]),
        _status(call),
        call["created_at"],
        agent["name"] if agent else NONE,
        menu["name"] if menu else NONE,
        f"{call['wait_duration']} s" if call.get("assigned_at") else NONE,
        f"{call['call_duration']} s" if connected else NONE,
    )


def _status(call: dict[str, Any]) -> str:
    reason = call.get("fail_reason")
    return f"{call['status']} ({reason})" if reason not in (None, "nothing") else call["status"]


def page_line(page: int, per: int, total: int, shown: int, noun: str = "calls") -> str:
    """Where this page sits in the whole list, e.g. `page 1 of 3 (calls 1-20 of 57)`."""
    if total == 0:
        return f"no {noun}"
    pages = -(-total // per)
    if shown == 0:
        return f"page {page} of {pages}: no {noun} on this page ({total} in all)"
    first = (page - 1) * per + 1
    return f"page {page} of {pages} ({noun} {first}-{first + shown - 1} of {total})"


def page_text(
    items: Sequence[dict[str, Any]],
    rows: Callable[[Sequence[dict[str, Any]]], list[str]],
    page: int,
    per: int,
    total: int,
    noun: str,
) -> str:
    """A page of a list as a table (when it has items) above its `page_line`."""
    return "\n".join(
        [*(rows(items) if items else []), page_line(page, per, total, len(items), noun)]
    )


def campaigns_table(campaigns: Sequence[dict[str, Any]]) -> list[str]:
    header = ("ID", "NAME", "STATE", "MENU", "PACE", "CALLS", "FIRED", "OVERDUE", "CREATED")
    return table(header, [_campaign_row(campaign) for campaign in campaigns])


def _campaign_row(campaign: dict[str, Any]) -> tuple[str, ...]:
    progress = campaign["progress"]
    return (
        str(campaign["id"]),
        campaign["name"],
        campaign["state"],
        str(campaign["menu_id"]),
        f"{campaign['pacing']['calls_per_second']:g}/s",
        str(campaign["total"]),
        f"{progress['fired']} ({progress['fired_percent']:g} %)",
        str(progress["overdue"]),
        campaign["created_at"],
    )


def campaign_detail(campaign: dict[str, Any]) -> list[str]:
    """The campaign's fields as the API names them, nested ones as `parent.field`."""
    rows: list[tuple[str, str]] = []
    for field, value in campaign.items():
        if isinstance(value, dict):
            rows += [(f"{field}.{key}", _scalar(inner)) for key, inner in value.items()]
        elif value is not None:
            rows.append((field, _scalar(value)))
    width = max(len(field) for field, _ in rows)
    return [f"{field.ljust(width)}  {text}".rstrip() for field, text in rows]


def _scalar(value: Any) -> str:
    return NONE if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def call_detail(call: dict[str, Any]) -> list[str]:
    """One line per field that is set, named as in the API; lists take a line per item."""
    rows: list[tuple[str, str]] = []
    for field in DETAIL_FIELDS:
        if not _happened(field, call):
            continue
        for i, text in enumerate(_field_lines(field, call.get(field))):
            rows.append((field if i == 0 else "", text))
    width = max(len(field) for field, _ in rows)
    return [f"{field.ljust(width)}  {text}".rstrip() for field, text in rows]


def _happened(field: str, call: dict[str, Any]) -> bool:
    """A duration is shown once its span began: waiting ends at assignment, talk at connect."""
    if field == "wait_duration":
        return call.get("assigned_at") is not None
    if field == "call_duration":
        return call.get("connected_at") is not None
    if field == "hold_duration":
        return bool(call.get("hold_duration"))
    return True


def _field_lines(field: str, value: Any) -> list[str]:
    if value is None or value == [] or (field == "fail_reason" and value == "nothing"):
        return []
    if field in ("wait_duration", "call_duration", "hold_duration"):
        return [f"{value} s"]
    if field == "selected_menu":
        return [f"{value['name']} (id {value['id']}, {value['menu_type']})"]
    if field == "agent_info":
        return [f"{value['name']} (id {value['id']})"]
    if field == "end_user":
        contact = value.get("out_contact_id")
        return [f"id {value['id']}" + (f", CRM contact {contact}" if contact else "")]
    if field == "offer_events":
        return [f"{event['group']} at {event['casting_time']}" for event in value]
    if field == "participants":
        return [_participant(participant) for participant in value]
    return [str(value)]


def _participant(participant: dict[str, Any]) -> str:
    who = participant.get("user_id") or participant.get("end_user_id")
    line = f"{participant['type']}" + (f" {who}" if who is not None else "")
    line += f": {participant['status']}"
    if participant.get("connected_at"):
        line += f", connected {participant['connected_at']}"
    if participant.get("ended_at"):
        line += f", ended {participant['ended_at']}"
    return line
