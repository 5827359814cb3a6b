"""Properties of the list endpoints' query parser: any query string is a query or a 400 with a
message; created_at ranges keep the instants and their order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import example, given
from hypothesis import strategies as st

from dispatcher.domain import clock
from dispatcher.domain.errors import InvalidRequest
from dispatcher.http import listing
from dispatcher.store.records import ListQuery
from tests.hostile import any_text

PARAMETERS = ["page", "per", "status", "call_type", "created_at[from]", "created_at[to]",
              "sort_column", "sort_direction"]  # fmt: skip
MESSAGES = {
    "page must be a positive integer",
    "per must be a positive integer",
    "status is not valid",
    "call_type is not valid",
    "sort_column must be one of id, created_at",
    "sort_direction must be asc or desc",
    "created_at[from] is not well formed",
    "created_at[to] is not well formed",
}
instants = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)).map(
    lambda naive: naive.replace(tzinfo=UTC)
)


def _parse(query: dict[str, str]) -> ListQuery:
    return listing.parse_query(query, "call")


@given(
    st.dictionaries(
        st.one_of(st.sampled_from(PARAMETERS), any_text),
        st.one_of(any_text, st.integers().map(str), st.sampled_from(["asc", "DESC", "id"])),
    )
)
@example({"created_at[from]": "0001-01-01T00:00:00+01:00"})
@example({"created_at[to]": "9999-12-31T23:59:59-01:00"})
@example({"page": "1" * 19, "per": "0"})
def test_any_query_is_a_query_or_a_400(query: dict[str, str]) -> None:
    try:
        parsed = _parse(query)
    except InvalidRequest as refused:
        assert refused.message in MESSAGES
    else:
        assert 1 <= parsed.per <= listing.MAX_PER
        assert 1 <= parsed.page <= 1_000_000_000


@given(instants, instants, st.integers(-(24 * 60 - 1), 24 * 60 - 1))
def test_created_at_range_keeps_instants_and_order(
    first: datetime, second: datetime, offset_minutes: int
) -> None:
    zone = timezone(timedelta(minutes=offset_minutes))
    low, high = sorted([first, second])
    query = {
        "created_at[from]": clock.iso(low),
        "created_at[to]": high.astimezone(zone).isoformat(),
    }
    parsed = _parse(query)
    assert parsed.created_from_ms == clock.to_ms(low)
    assert parsed.created_to_ms == clock.to_ms(high)
    assert parsed.created_from_ms is not None and parsed.created_to_ms is not None
    assert parsed.created_from_ms <= parsed.created_to_ms
