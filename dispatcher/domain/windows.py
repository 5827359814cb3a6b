"""Calling windows: whether a call may be placed now in the end user's local time, and when next.

The end user's time is the wall clock of every zone their number may be in (libphonenumber's
time zone data), and the window must hold in all of them. Being open is a property of an instant
read on each zone's wall clock, so the clocks' changes need no special case there: a wall time
that does not exist (the hour skipped as clocks go forward) is never shown, one that happens twice
(as they go back) is inside a window both times. Finding the next opening is where the changes
matter: see `_starts`.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as number_zones
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from dispatcher.directory.schema import (
    MAX_RESTRICTED_DATES,
    MAX_WINDOWS_PER_DAY,
    WEEKDAYS,
    CallingWindow,
)
from dispatcher.domain import clock
from dispatcher.domain.errors import InvalidRequest

# How far ahead `opening` looks: a window that does not open within it never will, as far as the
# caller is concerned (more than a year, so that a yearly holiday cannot close a window for good).
HORIZON = timedelta(days=400)
# `opening` looks a day ahead first (the next opening is usually hours away), then twice as far
# each time, up to a month at a time.
_FIRST_LOOK = timedelta(days=1)
_LONGEST_LOOK = timedelta(days=32)
# Offsets are sampled this often, and a change found between two samples pinned to the second.
# A zone's changes of offset are days apart (in the tz database of 2026, four days at the least:
# Freetown in 1939), so two never fall between samples and cancel out.
_SAMPLE = timedelta(hours=6)
_SECOND = timedelta(seconds=1)
_DAY = timedelta(days=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@functools.lru_cache(maxsize=65_536)
def zones_of(number: str, fallback: str) -> tuple[str, ...]:
    """The IANA zones an E.164 number may be in, by libphonenumber (several for some mobile
    ranges, +7 9xx spans Russia, and for toll-free numbers, +1 800 spans Guam to Newfoundland);
    `(fallback,)` (the tenant's zone) when it knows none. Cached: every outbound call asks, and
    a lookup costs some 20 microseconds, mostly libphonenumber telling the number's type."""
    try:
        parsed = phonenumbers.parse(number)
    except phonenumbers.NumberParseException:
        return (fallback,)
    return _usable(number_zones.time_zones_for_number(parsed)) or (fallback,)


@functools.lru_cache(maxsize=4096)
def _usable(found: tuple[str, ...]) -> tuple[str, ...]:
    """libphonenumber's zones but its "unknown" one, as one tuple shared by every number of
    the same zones: the cache of `zones_of` holds no 65,536 copies of the 42 of +1 800."""
    return tuple(name for name in found if name != number_zones.UNKNOWN_TIMEZONE and _known(name))


def _known(name: str) -> bool:
    """Whether the installed tz database has the zone: libphonenumber's data and the tz
    database are released apart, and a zone one names may be new to the other."""
    try:
        _zone(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


@functools.lru_cache(maxsize=1024)
def _zone(name: str) -> ZoneInfo:
    """ZoneInfo keeps only the last 8 zones it made alive: the 16 of a +7 mobile number would
    be read from disk again at every check."""
    return ZoneInfo(name)


def is_open(window: CallingWindow, zones: Sequence[str], at: datetime) -> bool:
    """Whether a call may be placed at `at` (aware, within clock.EARLIEST..LATEST): in every zone,
    the local date is not restricted and the local time is inside one of that weekday's
    windows."""
    return all(_open_locally(window, at.astimezone(_zone(name))) for name in zones)


def _open_locally(window: CallingWindow, local: datetime) -> bool:
    if window.restricted_dates and local.date() in window.restricted:
        return False
    minute = local.hour * 60 + local.minute
    return any(start <= minute < end for start, end in window.spans[local.weekday()])


def opening(window: CallingWindow, zones: Sequence[str], at: datetime) -> datetime | None:
    """`at` when the window is open then; else the earliest instant after it at which the
    window is open in every zone (in UTC); None when that is more than HORIZON away (or past
    clock.LATEST): a window that never opens, which the caller refuses or fails the call for."""
    if is_open(window, zones, at):
        return at
    low, look = at.astimezone(UTC), _FIRST_LOOK
    until = low + HORIZON if low < clock.LATEST - HORIZON else clock.LATEST
    while low < until:
        high = min(low + look, until)
        found = _first_open(window, zones, low, high)
        if found is not None:
            return found
        low, look = high, min(look * 2, _LONGEST_LOOK)
    return None


def _first_open(
    window: CallingWindow, zones: Sequence[str], low: datetime, high: datetime
) -> datetime | None:
    """The first instant in (low, high] at which the window is open in every zone, it being
    closed at `low`. The open instants form half-open spans, so that one starts a span of one
    zone's: it is among that zone's `_starts`, and open in the others too."""
    clocks = _clocks(zones, low, high)
    names = [name for name, _ in clocks]
    candidates = {
        instant for name, changes in clocks for instant in _starts(window, name, changes, low, high)
    }
    return next((c for c in sorted(candidates) if is_open(window, names, c)), None)


def _clocks(
    zones: Sequence[str], low: datetime, high: datetime
) -> list[tuple[str, tuple[datetime, ...]]]:
    """One zone of each set whose wall clocks agree from a day before `low` to `high` (the 42
    zones of a +1 800 number are some 14 clocks under other names), with its offset changes in
    that time."""
    since = max(low - _DAY, clock.EARLIEST)
    clocks: dict[object, tuple[str, tuple[datetime, ...]]] = {}
    for name in zones:
        zone = _zone(name)
        changes = _offset_changes(name, since, high)
        offsets = tuple(moment.astimezone(zone).utcoffset() for moment in (since, *changes))
        clocks.setdefault((offsets, changes), (name, changes))
    return list(clocks.values())


def _starts(
    window: CallingWindow,
    name: str,
    changes: tuple[datetime, ...],
    low: datetime,
    high: datetime,
) -> Iterator[datetime]:
    """The instants in (low, high] at which the window may open in one zone: each window start
    of each day that is not restricted, at every instant that wall time is shown, and every
    change of the zone's offset (`changes`, from a day before `low`), since the first wall time
    after a change may be inside a window: clocks going forward into one, or back into one
    after it closed. Some are not openings; the caller checks each."""
    zone = _zone(name)
    # A wall time is shown twice only after clocks go back, within a day of the change.
    folds = (0, 1) if changes else (0,)
    # Clocks going back may show the day before `low`'s local date again.
    first = max(low.astimezone(zone).date().toordinal() - 1, 1)
    last = high.astimezone(zone).date().toordinal()
    for day in map(date.fromordinal, range(first, last + 1)):
        if window.restricted_dates and day in window.restricted:
            continue
        for start, _ in window.spans[day.weekday()]:
            for fold in folds:
                instant = _instant(day, start, fold, zone)
                if instant is not None and low < instant <= high:
                    yield instant
    yield from (change for change in changes if change > low)


def _instant(day: date, minute: int, fold: int, zone: ZoneInfo) -> datetime | None:
    """The instant a wall time names, in UTC; with fold=1 the second of a repeated wall time.
    (A skipped wall time maps to an instant on one side of the gap.) None for a day at the very
    end of datetime's range, where the instant is outside it."""
    wall = datetime.combine(day, time(minute // 60, minute % 60, fold=fold), zone)
    try:
        return wall.astimezone(UTC)
    except OverflowError:
        return None


def _offset_changes(name: str, low: datetime, high: datetime) -> tuple[datetime, ...]:
    """The instants in (low, high] (UTC) at which the zone's UTC offset changes."""
    return tuple(
        change
        for year in range(low.year, high.year + 1)
        for change in _yearly_changes(name, year)
        if low < change <= high
    )


@functools.lru_cache(maxsize=8192)
def _yearly_changes(name: str, year: int) -> tuple[datetime, ...]:
    """The instants of a UTC year at which the zone's offset changes, to the second as the tz
    database has them: sampled, then pinned by bisection. Cached: the +1 800 number's zones
    would take 40 ms for each search through a year."""
    zone = _zone(name)
    low = max(datetime(year, 1, 1, tzinfo=UTC), clock.EARLIEST)
    high = datetime(year + 1, 1, 1, tzinfo=UTC) if year < clock.LATEST.year else clock.LATEST
    count = -(-(high - low) // _SAMPLE)
    samples = [*(low + step * _SAMPLE for step in range(count)), high]
    offsets = [sample.astimezone(zone).utcoffset() for sample in samples]
    return tuple(
        _change_between(zone, samples[step], samples[step + 1], offsets[step])
        for step in range(count)
        if offsets[step] != offsets[step + 1]
    )


def _change_between(
    zone: ZoneInfo, low: datetime, high: datetime, before: timedelta | None
) -> datetime:
    """The first whole second in (low, high] with an offset other than `before`."""
    # In whole seconds since the epoch: the offset is `before` at `lower`, not at `upper`.
    lower, upper = (low - _EPOCH) // _SECOND, -((_EPOCH - high) // _SECOND)
    while upper - lower > 1:
        middle = (lower + upper) // 2
        if (_EPOCH + middle * _SECOND).astimezone(zone).utcoffset() == before:
            lower = middle
        else:
            upper = middle
    return _EPOCH + upper * _SECOND


def parse_window(raw: object, field: str = "calling_window") -> CallingWindow:
    """A window sent in an API body (a campaign's own): any JSON value is a window or an
    InvalidRequest whose message names the first problem's place under `field`."""
    try:
        return CallingWindow.model_validate(raw)
    except ValidationError as exc:
        problem = _problem(exc.errors()[0], field)  # its forms: docs/api.md, Campaigns
        raise InvalidRequest(problem) from exc
    except UnicodeEncodeError as exc:  # pydantic reads text as UTF-8: a lone surrogate
        raise InvalidRequest(f"{field} holds text that is not unicode") from exc


def _problem(error: ErrorDetails, field: str) -> str:
    loc = error["loc"]
    if loc[-1:] == ("[key]",):  # a key of `weekly` that names no weekday
        days = ", ".join(WEEKDAYS)
        return f"{_path(field, loc[:-2])} has {loc[-2]!r}, not a weekday ({days})"
    kind = error["type"]
    if kind == "too_long":
        most = (
            f"{MAX_WINDOWS_PER_DAY} windows"
            if loc[:1] == ("weekly",)
            else f"{MAX_RESTRICTED_DATES} dates"
        )
        return f"{_path(field, loc)} may hold at most {most}"
    problem = _PROBLEMS.get(kind) or error["msg"].removeprefix("Value error, ")
    return f"{_path(field, loc)} {problem}"


_PROBLEMS = {
    "missing": "is required",
    "model_type": 'must be an object like {"weekly": {"mon": ["09:00-17:00"]}}',
    "dict_type": "must be an object of weekdays",
    "list_type": "must be a list",
    "string_type": "must be a window like 09:00-17:00",
}


def _path(field: str, loc: tuple[int | str, ...]) -> str:
    return field + "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc)
