"""Properties of the time parser and formatter: total, round-tripping, order-preserving."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from dispatcher.domain import clock
from tests.hostile import any_text, json_values

SPEC_FORMAT = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")

offsets = st.builds(
    lambda minutes: timezone(timedelta(minutes=minutes)),
    st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1),
)
# Every instant the parser accepts, in any offset.
instants = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)).map(
    lambda naive: naive.replace(tzinfo=UTC)
)
iso_like = st.builds(
    "{:04d}-{:02d}-{:02d}T{:02d}:{:02d}:{:02d}{}".format,
    st.integers(0, 10_000),
    st.integers(0, 13),
    st.integers(0, 32),
    st.integers(0, 25),
    st.integers(0, 61),
    st.integers(0, 61),
    st.sampled_from(["", "Z", "+00:00", "+14:00", "-12:00", "+23:59", ".999999Z", ".5-01:00"]),
)


def _to_ms(moment: datetime) -> int:
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


@given(st.one_of(json_values, any_text, iso_like))
@example("0001-01-01T00:00:00+01:00")
@example("9999-12-31T23:59:59-01:00")
@example("9999-12-31T23:59:59Z")
@example("２０３０-06-03T17:00:00Z")
def test_parse_is_total_and_answers_utc(raw: object) -> None:
    moment = clock.parse_iso(raw)
    if moment is not None:
        assert moment.utcoffset() == timedelta(0)
        assert SPEC_FORMAT.match(clock.iso(moment))
        clock.to_ms(moment)


@given(instants)
@example(datetime(999, 1, 1, tzinfo=UTC))
@example(datetime(1969, 12, 31, 23, 59, 59, 999_500, tzinfo=UTC))
def test_a_formatted_time_parses_back_to_the_same_millisecond(moment: datetime) -> None:
    shown = clock.iso(moment)
    assert SPEC_FORMAT.match(shown), shown
    again = clock.parse_iso(shown)
    assert again == moment.replace(microsecond=moment.microsecond // 1000 * 1000)
    assert clock.iso(again) == shown
    # Stored milliseconds agree with the millisecond shown.
    assert clock.to_ms(moment) == clock.to_ms(again) == _to_ms(again)
    assert clock.from_ms(clock.to_ms(moment)) == again


@given(instants, offsets)
def test_an_offset_names_the_same_instant(moment: datetime, offset: timezone) -> None:
    local = moment.astimezone(offset)
    assert clock.parse_iso(local.isoformat()) == moment
    assert clock.parse_iso(local.replace(tzinfo=None).isoformat()) == local.replace(tzinfo=UTC)


@given(instants, instants)
def test_formatting_and_milliseconds_keep_order(first: datetime, second: datetime) -> None:
    if first <= second:
        assert clock.iso(first) <= clock.iso(second)
        assert clock.to_ms(first) <= clock.to_ms(second)


@pytest.mark.parametrize(
    "raw",
    [
        # Found by test_parse_is_total_and_answers_utc: OverflowError (a 500) before the fix.
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:59:59-01:00",
        # Instants that some time zone cannot show (menu hours are judged in the menu's zone).
        "9999-12-31T23:00:00Z",
        "0001-01-01T00:00:00Z",
        "２０３０-06-03T17:00:00Z",
        "2030-06-03T17:00:00Z\x00",
        "",
        "x" * 65,
    ],
)
def test_unshowable_or_odd_times_are_not_well_formed(raw: str) -> None:
    assert clock.parse_iso(raw) is None
