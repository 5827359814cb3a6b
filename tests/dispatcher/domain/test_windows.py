"""Calling windows: the zones of a number, open or closed at an instant across clock changes and
zones, the next opening (against a definition by brute force), and windows sent in API bodies."""

from __future__ import annotations

import functools
import time as time_module
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from dispatcher.directory.schema import WEEKDAYS, CallingWindow
from dispatcher.domain import clock
from dispatcher.domain.errors import InvalidRequest
from dispatcher.domain.windows import HORIZON, is_open, opening, parse_window, zones_of
from tests.hostile import json_values

EVERY_DAY = {day: ["08:00-21:00"] for day in WEEKDAYS}  # the TCPA's hours
TCPA = CallingWindow.model_validate({"weekly": EVERY_DAY})
NEW_YORK = ("America/New_York",)
MINUTE = timedelta(minutes=1)
TICK = timedelta(microseconds=1)

# Real numbers and the zones libphonenumber gives them: one zone, several, or none.
NUMBERS = [
    "+12125551234",  # New York
    "+13105551234",  # Los Angeles
    "+12083201234",  # Boise and Los Angeles
    "+19075551234",  # Adak and Anchorage
    "+18005551234",  # toll-free: 42 zones, Guam to Newfoundland
    "+79161234567",  # a Russian mobile: 16 zones, Bucharest to Kamchatka
    "+61412345678",  # an Australian mobile: 8 zones, Lord Howe's half-hour change among them
    "+351912345678",  # a Portuguese mobile: Lisbon and the Azores
    "+97699112233",  # Mongolia: 3 zones
    "+5372345678",  # Havana, whose clocks change at midnight
    "+56221234567",  # Santiago, southern summer, clocks back at 24:00
    "+6433051234",  # the Chatham Islands, +12:45
    "+97714212345",  # Kathmandu, +5:45
    "+9611123456",  # Beirut, clocks change at midnight
    "+6221234567",  # no zone known: the tenant's
]
FALLBACKS = ["UTC", "America/St_Johns", "Europe/Dublin"]
# Zones whose clock changes the instants below crowd around.
CHANGING = [
    "America/New_York", "America/Los_Angeles", "America/Anchorage", "America/St_Johns",
    "America/Havana", "America/Santiago", "Europe/Bucharest", "Europe/Lisbon", "Atlantic/Azores",
    "Europe/Dublin", "Australia/Sydney", "Australia/Lord_Howe", "Pacific/Chatham", "Asia/Beirut",
]  # fmt: skip


@functools.cache
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def open_by_definition(window: CallingWindow, zones: tuple[str, ...], at: datetime) -> bool:
    """The window's own text read against each zone's wall clock, as docs/config.md puts it."""
    restricted = {day.isoformat() for day in window.restricted_dates}
    for name in zones:
        local = at.astimezone(_zone(name))
        if local.date().isoformat() in restricted:
            return False
        wall = local.strftime("%H:%M")
        windows = window.weekly.get(WEEKDAYS[local.weekday()], [])  # type: ignore[call-overload]
        if not any(text[:5] <= wall < text[6:] for text in windows):
            return False
    return True


@functools.lru_cache(maxsize=1)
def _clock_changes() -> list[datetime]:
    """For each change of offset of CHANGING's zones in 2020-2035, an instant within 36 hours
    of it: noon (UTC) of the first day whose midnight has the new offset."""
    days = [datetime(2020, 1, 1, tzinfo=UTC) + timedelta(days=n) for n in range(16 * 366)]
    found = set()
    for name in CHANGING:
        offsets = [day.astimezone(_zone(name)).utcoffset() for day in days]
        found |= {
            days[n] + timedelta(hours=12)
            for n in range(1, len(days))
            if offsets[n] != offsets[n - 1]
        }
    return sorted(found)


def _wall(name: str, year: int, month: int, day: int, *clock: int, fold: int = 0) -> datetime:
    """A wall time in a zone, with as much of its time (hour, minute...) as needed."""
    hour, minute, second, microsecond = (*clock, 0, 0, 0, 0)[:4]
    wall = time(hour, minute, second, microsecond, fold=fold)
    return datetime.combine(date(year, month, day), wall, _zone(name))


def _utc(year: int, month: int, day: int, *clock: int) -> datetime:
    return _wall("UTC", year, month, day, *clock)


def _window(weekly: dict[str, list[str]], restricted: list[str] | None = None) -> CallingWindow:
    return CallingWindow.model_validate({"weekly": weekly, "restricted_dates": restricted or []})


def _minute_marks(low: datetime, high: datetime) -> Iterator[datetime]:
    """`low` and every whole UTC minute in (low, high): every zone's wall clock, whose offsets
    are whole minutes, changes its minute only on them."""
    yield low
    mark = low.replace(second=0, microsecond=0) + MINUTE
    while mark < high:
        yield mark
        mark += MINUTE


# Zones -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "zones"),
    [
        ("+12125551234", NEW_YORK),
        ("+12083201234", ("America/Boise", "America/Los_Angeles")),
        ("+351912345678", ("Atlantic/Azores", "Europe/Lisbon")),
        ("+6221234567", ("Asia/Tokyo",)),  # libphonenumber knows no zone for it
        ("+15555555555", ("Asia/Tokyo",)),  # nor for fictional numbers
        ("not a number", ("Asia/Tokyo",)),
    ],
)
def test_the_zones_of_a_number(number: str, zones: tuple[str, ...]) -> None:
    assert zones_of(number, "Asia/Tokyo") == zones


def test_a_number_of_several_regions_has_all_their_zones() -> None:
    russian = zones_of("+79161234567", "UTC")
    assert len(russian) == 16 and {"Europe/Moscow", "Asia/Kamchatka"} <= set(russian)
    toll_free = zones_of("+18005551234", "UTC")
    assert len(toll_free) == 42 and {"Pacific/Guam", "America/St_Johns"} <= set(toll_free)


def test_the_zones_of_a_number_are_looked_up_once() -> None:
    zones_of("+13105551234", "UTC")
    hits = zones_of.cache_info().hits
    assert zones_of("+13105551234", "UTC") == ("America/Los_Angeles",)
    assert zones_of.cache_info().hits == hits + 1


# Open or closed, and the next opening: cases worked by hand ---------------------------------


def test_the_tcpa_hours_in_new_york() -> None:
    assert not is_open(TCPA, NEW_YORK, _wall("America/New_York", 2026, 12, 1, 7, 59, 59, 999_999))
    assert is_open(TCPA, NEW_YORK, _wall("America/New_York", 2026, 12, 1, 8))
    assert is_open(TCPA, NEW_YORK, _wall("America/New_York", 2026, 12, 1, 20, 59, 59, 999_999))
    assert not is_open(TCPA, NEW_YORK, _wall("America/New_York", 2026, 12, 1, 21))
    # At 21:00 on Tuesday the next opening is 08:00 on Wednesday, 13:00 UTC.
    assert opening(TCPA, NEW_YORK, _utc(2026, 12, 2, 2)) == _utc(2026, 12, 2, 13)


def test_an_open_window_opens_at_the_instant_asked() -> None:
    at = datetime(2026, 12, 1, 23, tzinfo=ZoneInfo("Asia/Tokyo"))  # 09:00 in New York
    assert opening(TCPA, NEW_YORK, at) is at


# America/New_York, 2026: clocks go forward at 02:00 on 8 March (07:00 UTC), and back at 02:00
# on 1 November (06:00 UTC), so that 01:00-01:59 happens twice.
@pytest.mark.parametrize(
    ("window", "at", "expected"),
    [
        # Forward: the window opens at 01:00 EST and closes at 03:00 EDT, an hour later.
        ("01:00-03:00", _utc(2026, 3, 8, 5), _utc(2026, 3, 8, 6)),
        ("01:00-03:00", _utc(2026, 3, 8, 7), _utc(2026, 3, 15, 5)),
        # A window starting in the skipped hour opens as the clocks reach 03:00.
        ("02:30-04:00", _utc(2026, 3, 8, 5), _utc(2026, 3, 8, 7)),
        # One inside it never shows that day: the next Sunday.
        ("02:00-02:30", _utc(2026, 3, 8, 5), _utc(2026, 3, 15, 6)),
        # Back: 01:00 EDT, open through the repeated hour until 03:00 EST.
        ("01:00-03:00", _utc(2026, 11, 1, 4), _utc(2026, 11, 1, 5)),
        # The repeated hour holds the window twice: 01:30 EDT, then 01:30 EST.
        ("01:30-02:00", _utc(2026, 11, 1, 4), _utc(2026, 11, 1, 5, 30)),
        ("01:30-02:00", _utc(2026, 11, 1, 6), _utc(2026, 11, 1, 6, 30)),
        # Closed at 01:30 EDT, open again as the clocks go back to 01:00: at the change itself.
        ("00:30-01:30", _utc(2026, 11, 1, 5, 45), _utc(2026, 11, 1, 6)),
    ],
)
def test_the_opening_across_new_yorks_clock_changes(
    window: str, at: datetime, expected: datetime
) -> None:
    sundays = _window({"sun": [window]})
    assert not is_open(sundays, NEW_YORK, at)
    assert opening(sundays, NEW_YORK, at) == expected
    assert is_open(sundays, NEW_YORK, expected)
    assert not is_open(sundays, NEW_YORK, expected - TICK)


def test_a_window_is_open_through_a_repeated_hour_and_not_a_skipped_one() -> None:
    night = _window({"sun": ["01:00-03:00"]})
    # Forward: 06:00-07:00 UTC, one hour.
    assert is_open(night, NEW_YORK, _utc(2026, 3, 8, 6, 59, 59))
    assert not is_open(night, NEW_YORK, _utc(2026, 3, 8, 7))
    # Back: 05:00-08:00 UTC, three hours, 01:30 open both times it is shown.
    assert is_open(night, NEW_YORK, _wall("America/New_York", 2026, 11, 1, 1, 30, fold=0))
    assert is_open(night, NEW_YORK, _wall("America/New_York", 2026, 11, 1, 1, 30, fold=1))
    assert is_open(night, NEW_YORK, _utc(2026, 11, 1, 7, 59, 59, 999_999))
    assert not is_open(night, NEW_YORK, _utc(2026, 11, 1, 8))


def test_clocks_that_change_at_midnight() -> None:
    havana = ("America/Havana",)
    # 8 March 2026: from 23:59:59 on Saturday straight to 01:00 on Sunday (05:00 UTC).
    early = _window({"sun": ["00:30-08:00"]})
    assert opening(early, havana, _utc(2026, 3, 7, 17)) == _utc(2026, 3, 8, 5)
    # Santiago, 4 April 2026: Saturday's 24:00 (03:00 UTC) is 23:00 again, an hour more of it.
    santiago = ("America/Santiago",)
    late = _window({"sat": ["23:30-24:00"]})
    assert opening(late, santiago, _utc(2026, 4, 5, 2, 15)) == _utc(2026, 4, 5, 2, 30)
    assert opening(late, santiago, _utc(2026, 4, 5, 3)) == _utc(2026, 4, 5, 3, 30)
    # Closed at 23:15, open again as the clocks go back into the window.
    evening = _window({"sat": ["22:30-23:15"]})
    assert opening(evening, santiago, _utc(2026, 4, 5, 2, 30)) == _utc(2026, 4, 5, 3)
    assert not is_open(evening, santiago, _utc(2026, 4, 5, 3) - TICK)


def test_clocks_going_back_past_midnight_show_the_day_before_again() -> None:
    # St John's, 7 November 2010: at 00:01 NDT (02:31 UTC) clocks went back to 23:01 NST on
    # Saturday 6 November, so that from Sunday, Saturday's window opens once more.
    st_johns = ("America/St_Johns",)
    late = _window({"sat": ["23:30-24:00"]})
    sunday = _wall("America/St_Johns", 2010, 11, 7, 0, 0, 30)
    assert not is_open(late, st_johns, sunday)
    assert opening(late, st_johns, sunday) == _utc(2010, 11, 7, 3)


def test_a_window_ending_at_midnight_runs_on_into_one_starting_there() -> None:
    window = _window({"mon": ["22:00-24:00"], "tue": ["00:00-02:00"]})
    utc = ("UTC",)
    start, end = _utc(2026, 11, 30, 22), _utc(2026, 12, 1, 2)
    assert all(is_open(window, utc, mark) for mark in _minute_marks(start, end))
    assert is_open(window, utc, _utc(2026, 11, 30, 23, 59, 59, 999_999))
    assert opening(window, utc, _utc(2026, 11, 30, 21)) == start
    assert opening(window, utc, end) == start + timedelta(days=7)


def test_a_number_of_several_zones_is_called_when_all_of_them_are_open() -> None:
    russian = zones_of("+79161234567", "UTC")
    # Winter: open from 08:00 in Bucharest (06:00 UTC) to 21:00 in Anadyr (09:00 UTC).
    assert opening(TCPA, russian, _utc(2026, 12, 1, 3)) == _utc(2026, 12, 1, 6)
    assert is_open(TCPA, russian, _utc(2026, 12, 1, 8, 59, 59))
    assert not is_open(TCPA, russian, _utc(2026, 12, 1, 9))
    # Summer time in Bucharest opens it an hour earlier.
    assert opening(TCPA, russian, _utc(2026, 7, 1, 0)) == _utc(2026, 7, 1, 5)
    toll_free = zones_of("+18005551234", "UTC")
    # From 08:00 on Guam (22:00 UTC) to 21:00 in Newfoundland, 00:30 UTC in winter...
    assert opening(TCPA, toll_free, _utc(2026, 12, 1, 3)) == _utc(2026, 12, 1, 22)
    assert is_open(TCPA, toll_free, _utc(2026, 12, 2, 0, 29))
    assert not is_open(TCPA, toll_free, _utc(2026, 12, 2, 0, 30))
    # ...and 23:30 UTC in summer.
    assert opening(TCPA, toll_free, _utc(2026, 7, 1, 3)) == _utc(2026, 7, 1, 22)
    assert is_open(TCPA, toll_free, _utc(2026, 7, 1, 23, 29))
    assert not is_open(TCPA, toll_free, _utc(2026, 7, 1, 23, 30))
    # A window shorter than the zones' spread never opens for all of them.
    hour = _window({day: ["09:00-10:00"] for day in WEEKDAYS})
    assert opening(hour, russian, _utc(2026, 12, 1)) is None
    assert opening(hour, toll_free, _utc(2026, 12, 1)) is None


def test_zones_of_the_same_offsets_changing_at_other_instants_are_each_checked() -> None:
    # 8 March 2026: Havana goes to -4 at 05:00 UTC, New York at 07:00 UTC. 01:00-02:00 is
    # 05:00-06:00 UTC in Havana and 06:00-07:00 UTC in New York: never both that Sunday.
    both = ("America/New_York", "America/Havana")
    night = _window({"sun": ["01:00-02:00"]})
    assert opening(night, both, _utc(2026, 3, 8)) == _utc(2026, 3, 15, 5)
    assert opening(night, NEW_YORK, _utc(2026, 3, 8)) == _utc(2026, 3, 8, 6)


def test_a_restricted_date_is_each_zones_own_local_day() -> None:
    christmas = _window(EVERY_DAY, ["2026-12-25"])
    assert not is_open(christmas, NEW_YORK, _wall("America/New_York", 2026, 12, 25, 12))
    assert opening(christmas, NEW_YORK, _utc(2026, 12, 25, 5)) == _utc(2026, 12, 26, 13)
    # 24 December, 23:00 UTC: Christmas in Tokyo already, not yet in New York.
    at = _utc(2026, 12, 24, 23)
    assert not is_open(christmas, ("Asia/Tokyo",), at)
    assert is_open(christmas, NEW_YORK, at)
    # A Russian mobile: 2 December is a local day somewhere from 10:00 on the 1st (UTC) on.
    russian = zones_of("+79161234567", "UTC")
    second = _window(EVERY_DAY, ["2026-12-02"])
    assert opening(second, russian, _utc(2026, 12, 1, 10)) == _utc(2026, 12, 3, 6)


def test_the_opening_is_looked_for_400_days_ahead() -> None:
    at = _utc(2026, 11, 30, 12)  # a Monday
    mondays = [(date(2026, 12, 7) + timedelta(weeks=n)).isoformat() for n in range(57)]
    last_chance = _window({"mon": ["09:00-10:00"]}, mondays[:56])
    assert opening(last_chance, ("UTC",), at) == _utc(2028, 1, 3, 9)  # 399 days on
    assert opening(_window({"mon": ["09:00-10:00"]}, mondays), ("UTC",), at) is None
    assert at + HORIZON < _utc(2028, 1, 10, 9)
    assert opening(_window({}), NEW_YORK, at) is None


@pytest.mark.parametrize("zone", ["Pacific/Niue", "Pacific/Kiritimati", "UTC"])
def test_every_instant_a_client_may_send_can_be_judged(zone: str) -> None:
    late = _window({day: ["23:00-23:30"] for day in WEEKDAYS})
    for at in (clock.EARLIEST, clock.LATEST, clock.LATEST - timedelta(days=2)):
        found = opening(late, (zone,), at)
        assert found is None or (at <= found <= clock.LATEST and is_open(late, (zone,), found))
    assert opening(late, (zone,), clock.EARLIEST) is not None


def test_a_check_costs_microseconds() -> None:
    # On the path of every outbound call: some 2 microseconds a check on this machine; the
    # bound leaves room for a loaded one.
    zones = zones_of("+12125551234", "UTC")
    at = _utc(2026, 12, 1, 15)
    started = time_module.perf_counter()
    for _ in range(10_000):
        is_open(TCPA, zones_of("+12125551234", "UTC"), at)
    assert (time_module.perf_counter() - started) / 10_000 < 50e-6
    assert zones == NEW_YORK


# Against the definition, over instants, windows and numbers ---------------------------------

# How far either side of a window's opening every minute is checked.
SCANNED = timedelta(hours=30)


def _text(start: int, length: int) -> str:
    end = min(start + length, 24 * 60)
    return "{:02d}:{:02d}-{:02d}:{:02d}".format(*divmod(start, 60), *divmod(end, 60))


windows = st.one_of(
    st.builds(_text, st.integers(0, 24 * 60 - 1), st.integers(1, 24 * 60)),
    # Around the hours clocks change in, with a change of the minute hand too.
    st.builds(_text, st.integers(0, 4 * 60), st.integers(1, 3 * 60)),
    st.builds(
        _text, st.sampled_from([0, 60, 90, 120, 150, 180, 23 * 60]), st.sampled_from([30, 60, 120])
    ),
)
# Some windows on some days (a window that never opens is a case of its own above).
weekly = st.one_of(
    st.dictionaries(
        st.sampled_from(WEEKDAYS), st.lists(windows, min_size=1, max_size=3), min_size=1
    ),
    st.lists(windows, min_size=1, max_size=3).map(lambda every: {day: every for day in WEEKDAYS}),
)
instants = st.one_of(
    st.datetimes(datetime(2020, 1, 1), datetime(2035, 12, 31), timezones=st.just(UTC)),
    st.builds(
        lambda change, shift: change + timedelta(seconds=shift),
        st.sampled_from(_clock_changes()),
        st.integers(-36 * 3600, 36 * 3600),
    ),
)


@st.composite
def cases(
    draw: Callable[[st.SearchStrategy[Any]], Any],
) -> tuple[CallingWindow, tuple[str, ...], datetime]:
    at: datetime = draw(instants)
    days_off = draw(st.lists(st.integers(-2, 9), max_size=3))
    restricted = [(at.date() + timedelta(days=n)).isoformat() for n in days_off]
    window = _window(draw(weekly), restricted)
    zones = draw(
        st.one_of(
            st.builds(zones_of, st.sampled_from(NUMBERS), st.sampled_from(FALLBACKS)),
            # Zones no number has together, whose clocks change on the same days.
            st.lists(st.sampled_from(CHANGING), min_size=2, max_size=3, unique=True).map(tuple),
        )
    )
    return window, zones, at


@settings(max_examples=200)
@given(cases())
@example((_window({"sun": ["00:30-01:30"]}), NEW_YORK, _utc(2026, 11, 1, 5, 45)))
@example((_window({"sat": ["23:30-24:00"]}), ("America/Santiago",), _utc(2026, 4, 5, 2, 45)))
def test_is_open_is_the_definition(case: tuple[CallingWindow, tuple[str, ...], datetime]) -> None:
    window, zones, at = case
    for moment in (at, at - TICK, at.replace(second=0, microsecond=0)):
        assert is_open(window, zones, moment) is open_by_definition(window, zones, moment)


@given(cases())
@example((_window({"sun": ["00:30-01:30"]}), NEW_YORK, _utc(2026, 11, 1, 5, 45)))
@example((_window({"sun": ["02:30-04:00"]}), NEW_YORK, _utc(2026, 3, 8, 5)))
@example((_window({"sun": ["01:30-02:00"]}), NEW_YORK, _utc(2026, 11, 1, 6)))
@example((_window({"sun": ["00:30-08:00"]}), ("America/Havana",), _utc(2026, 3, 7, 17)))
def test_the_opening_is_the_first_open_instant(
    case: tuple[CallingWindow, tuple[str, ...], datetime],
) -> None:
    window, zones, at = case
    found = opening(window, zones, at)
    if found is None:
        assert not any(
            open_by_definition(window, zones, m) for m in _minute_marks(at, at + SCANNED)
        )
        return
    assert at <= found <= at + HORIZON
    assert is_open(window, zones, found) and open_by_definition(window, zones, found)
    if found == at:
        return
    # Closed from `at` to the opening: each minute for a while after `at` and before the
    # opening, and the instants just before it.
    closed = [
        *_minute_marks(at, min(found, at + SCANNED)),
        *_minute_marks(max(at, found - SCANNED), found),
        found - TICK,
        max(at, found - timedelta(seconds=1)),
    ]
    assert not any(open_by_definition(window, zones, moment) for moment in closed)


# Windows sent in API bodies --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (None, 'calling_window must be an object like {"weekly": {"mon": ["09:00-17:00"]}}'),
        ([], 'calling_window must be an object like {"weekly": {"mon": ["09:00-17:00"]}}'),
        ({}, "calling_window.weekly is required"),
        ({"weekly": []}, "calling_window.weekly must be an object of weekdays"),
        (
            {"weekly": {"monday": []}},
            "calling_window.weekly has 'monday', not a weekday (mon, tue, wed, thu, fri, sat, sun)",
        ),
        ({"weekly": {"mon": "09:00-17:00"}}, "calling_window.weekly.mon must be a list"),
        (
            {"weekly": {"mon": [900]}},
            "calling_window.weekly.mon[0] must be a window like 09:00-17:00",
        ),
        (
            {"weekly": {"mon": ["09:00-17:00", "25:00-26:00"]}},
            "calling_window.weekly.mon[1] '25:00-26:00' is not a window like 09:00-17:00",
        ),
        (
            {"weekly": {"mon": ["17:00-09:00"]}},
            "calling_window.weekly.mon[0] '17:00-09:00' is not a window like 09:00-17:00",
        ),
        (
            {"weekly": {"mon": ["09:00-09:30"] * 49}},
            "calling_window.weekly.mon may hold at most 48 windows",
        ),
        (
            {"weekly": {}, "restricted_dates": "2026-12-25"},
            "calling_window.restricted_dates must be a list",
        ),
        (
            {"weekly": {}, "restricted_dates": ["2026-12-25", "2026-02-30"]},
            "calling_window.restricted_dates[1] must be a date like 2026-12-25",
        ),
        (
            {"weekly": {}, "restricted_dates": ["2026-12-25T00:00:00Z"]},
            "calling_window.restricted_dates[0] must be a date like 2026-12-25",
        ),
        (
            {"weekly": {}, "restricted_dates": [1798156800]},
            "calling_window.restricted_dates[0] must be a date like 2026-12-25",
        ),
        (
            {"weekly": {}, "restricted_dates": ["2026-12-25"] * 1001},
            "calling_window.restricted_dates may hold at most 1000 dates",
        ),
        ({"weekly": {"mon": ["\ud800"]}}, "calling_window holds text that is not unicode"),
    ],
)  # fmt: skip
def test_a_bad_window_in_a_body_is_refused_naming_its_place(raw: Any, message: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        parse_window(raw)
    assert refused.value.message == message
    assert refused.value.status == 400


def test_a_window_in_a_body_is_read_as_in_the_directory() -> None:
    raw = {"weekly": {"mon": ["08:00-12:00", "13:00-21:00"]}, "restricted_dates": ["2026-12-25"]}
    window = parse_window(raw, "campaign.calling_window")
    assert window == _window(raw["weekly"], ["2026-12-25"])  # type: ignore[arg-type]
    assert window.restricted_dates == [date(2026, 12, 25)]
    with pytest.raises(InvalidRequest, match=r"^campaign\.calling_window\.weekly is required$"):
        parse_window({}, "campaign.calling_window")


@given(json_values)
@example({"weekly": {"mon": [None]}, "restricted_dates": [[]]})
def test_any_json_value_is_a_window_or_a_message(raw: Any) -> None:
    try:
        parse_window(raw)
    except InvalidRequest as refused:
        assert refused.message.startswith("calling_window")
        refused.message.encode()
