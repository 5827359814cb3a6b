"""TEMPORARY stand-in until the windows branch merges."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import phonenumbers
from phonenumbers import timezone as _tz

from dispatcher.directory.schema import WEEKDAYS, CallingWindow


def zones_of(number: str, fallback: str) -> tuple[str, ...]:
    zones = tuple(
        z for z in _tz.time_zones_for_number(phonenumbers.parse(number)) if z != "Etc/Unknown"
    )
    return zones or (fallback,)


def is_open(window: CallingWindow, zones: Sequence[str], at: datetime) -> bool:
    for zone in zones:
        local = at.astimezone(ZoneInfo(zone))
        if local.date() in window.restricted_dates:
            return False
        clock = local.strftime("%H:%M")
        if not any(
            w[:5] <= clock < w[6:] for w in window.weekly.get(WEEKDAYS[local.weekday()], [])
        ):
            return False
    return True


def opening(window: CallingWindow, zones: Sequence[str], at: datetime) -> datetime | None:
    t = at
    for _ in range(400 * 24 * 60):
        if is_open(window, zones, t):
            return t
        t = (t + timedelta(minutes=1)).replace(second=0, microsecond=0)
    return None


def parse_window(raw: object, field: str = "calling_window") -> CallingWindow:
    from pydantic import ValidationError

    from dispatcher.domain.errors import InvalidRequest

    try:
        return CallingWindow.model_validate(raw)
    except ValidationError as e:
        raise InvalidRequest(f"{field} is not valid") from e
