"""Which groups of a queue are offered a waiting call, and when the next change is due."""

from __future__ import annotations

from datetime import datetime, timedelta

from dispatcher.directory.schema import Menu


def group_name(index: int) -> str:
    return f"Group {index + 1}"


def non_empty_groups(menu: Menu) -> list[int]:
    return [index for index, group in enumerate(menu.groups) if group]


def unlocked_groups(menu: Menu, queued_at: datetime, now: datetime) -> list[int]:
    """multicast: every non-empty group at once; cascade: one more non-empty group per
    `cascade_interval_s` waited, Group 1 first."""
    groups = non_empty_groups(menu)
    if menu.routing == "multicast" or menu.cascade_interval_s <= 0:
        return groups
    steps = int((now - queued_at).total_seconds() // menu.cascade_interval_s)
    return groups[: steps + 1]


def next_unlock(menu: Menu, queued_at: datetime, now: datetime) -> datetime | None:
    unlocked = len(unlocked_groups(menu, queued_at, now))
    if unlocked >= len(non_empty_groups(menu)) or menu.routing == "multicast":
        return None
    return queued_at + timedelta(seconds=menu.cascade_interval_s * unlocked)


def deadline(menu: Menu, queued_at: datetime) -> datetime:
    return queued_at + timedelta(seconds=menu.max_wait_s)
