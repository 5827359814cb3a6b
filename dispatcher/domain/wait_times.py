"""The estimated wait of a menu's queue (GET /wait_times): its query, and the estimator, from
what the queue shows now and how fast it has lately been served. No HTTP, no Redis."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import cast, get_args

from dispatcher.directory.schema import Menu, MenuType
from dispatcher.directory.tenant import Tenant
from dispatcher.domain import languages
from dispatcher.domain.errors import InvalidRequest
from dispatcher.domain.fields import positive_param

CHANNEL_TYPES = ("voice_call", "chat")
# Older assignments say little about the queue now: a rate is learnt from the last 15 minutes.
RECENT_MS = 15 * 60_000
LANG_REQUIRED = "lang is required"
WAIT_RANGE = "wait[to] must not be below wait[from]"


@dataclass(frozen=True)
class WaitQuery:
    lang: str
    menu_id: int | None = None
    channel_type: str | None = None
    menu_type: MenuType | None = None
    wait_from: int | None = None
    wait_to: int | None = None

    def menus(self, tenant: Tenant) -> list[Menu]:
        """The queues asked for, in the directory's order: the menu named and every menu
        under it (or all), of the menu type asked, offering the language."""
        return [
            menu
            for menu in tenant.doc.menus
            if (self.menu_id is None or self.menu_id in _lineage(tenant, menu))
            and (self.menu_type is None or menu.type == self.menu_type)
            and self.lang in menu.languages
        ]

    def keeps(self, wait_s: int | None) -> bool:
        """Within wait[from]..wait[to] (both inclusive); a queue without an estimate is kept
        only when no wait range is asked."""
        if self.wait_from is None and self.wait_to is None:
            return True
        if wait_s is None:
            return False
        return (self.wait_from or 0) <= wait_s <= (self.wait_to or wait_s)


def wait_query(query: Mapping[str, str], tenant: Tenant) -> WaitQuery:
    """The query string checked in its parameters' order, 400 on the first bad one."""
    lang = query.get("lang")
    if not lang:
        raise InvalidRequest(LANG_REQUIRED)
    if not languages.is_known(lang):
        raise InvalidRequest(f"Language '{lang}' is not found")
    menu_id = positive_param(query, "menu_id")
    if menu_id is not None and menu_id not in tenant.menus_by_id:
        raise InvalidRequest(f"menu_id {menu_id} is not found")
    channel_type = query.get("channel_type")
    if channel_type is not None and channel_type not in CHANNEL_TYPES:
        raise InvalidRequest("channel_type must be voice_call or chat")
    menu_type = query.get("menu_type")
    if menu_type is not None and menu_type not in get_args(MenuType):
        raise InvalidRequest("menu_type must be one of ivr_menu, mobile_menu, web_menu")
    wait_from, wait_to = positive_param(query, "wait[from]"), positive_param(query, "wait[to]")
    if wait_from is not None and wait_to is not None and wait_to < wait_from:
        raise InvalidRequest(WAIT_RANGE)
    return WaitQuery(
        lang, menu_id, channel_type, cast(MenuType | None, menu_type), wait_from, wait_to
    )


def _lineage(tenant: Tenant, menu: Menu) -> list[int]:
    return [int(part) for part in tenant.menu_path(menu).materialized_path.split("/")]


@dataclass(frozen=True)
class QueueNow:
    """A menu's queue as read at `at_ms`, its agents counted among those speaking the
    language asked (the only ones its calls in that language are offered to)."""

    at_ms: int
    waiting: int  # calls queued now, every language
    longest_wait_s: float  # the wait so far of the oldest of them (0 when none)
    logged_in: int  # agents not offline
    available: int  # agents available with a voice slot free
    free_slots: int  # voice slots free among them
    breakthrough: int  # logged-in agents of its later cascade groups only
    # The latest assignments, newest first: (assigned at ms, waited ms).
    recent: Sequence[tuple[int, int]]


def estimate(queue: QueueNow) -> int | None:
    """Seconds a call joining the queue now should wait until an agent takes it; None when
    no agent is logged in (nobody will). docs/api.md explains the formula and its limits."""
    if queue.logged_in == 0:
        return None
    ahead = queue.waiting - queue.free_slots  # calls still to be taken before a free agent
    if ahead < 0:
        return 0
    rate = service_rate(queue.recent, queue.at_ms)
    if rate is not None:
        return round((ahead + 1) / rate)
    waits = [waited for _, waited in queue.recent[:5]]
    typical = sum(waits) / len(waits) / 1000 if waits else 0.0
    return round(max(queue.longest_wait_s, typical))


def service_rate(recent: Sequence[tuple[int, int]], at_ms: int) -> float | None:
    """Calls taken a second while the queue had a backlog: over the recent gaps between two
    assignments in which the later call was waiting all along (it waited at least the gap),
    so that the gap measures the agents, not a lull in calls. None without such a gap."""
    newest_first = [entry for entry in recent if at_ms - entry[0] <= RECENT_MS]
    busy_ms, gaps = 0, 0
    for (later_at, later_waited), (earlier_at, _) in zip(
        newest_first, newest_first[1:], strict=False
    ):
        gap = later_at - earlier_at
        if 0 <= gap <= later_waited:
            busy_ms, gaps = busy_ms + gap, gaps + 1
    return gaps / (busy_ms / 1000) if busy_ms > 0 else None
