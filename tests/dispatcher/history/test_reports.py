"""The report's two reckonings held to each other: PostgreSQL's statement and the Python of a
server without a database give the same rows for the same calls (buckets across the changes
of a zone's clocks, percentiles, the empty buckets), and the percentiles are Python's own."""

from __future__ import annotations

import random
import statistics
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dispatcher.directory.schema import TenantDoc
from dispatcher.directory.tenant import Tenant
from dispatcher.domain import clock
from dispatcher.history.archive import Facts
from dispatcher.history.reports import (
    PERCENTILES,
    ReportQuery,
    Row,
    Unit,
    bucket_of,
    computed,
    percentiles,
    reckoned,
)
from dispatcher.store.records import ListQuery, Visible

# Zones whose clocks change at 2 a.m. (New York), at midnight (Havana: a midnight skipped in
# March, one repeated in November), by half an hour (Lord Howe), never (Kolkata, half an hour
# off UTC), and UTC itself.
ZONES = ["America/New_York", "America/Havana", "Australia/Lord_Howe", "Asia/Kolkata", "UTC"]
# Around the changes of 2026: New York and Havana in March and November, Lord Howe in April and
# October.
AROUND = [
    datetime(2026, 3, 8, tzinfo=UTC),
    datetime(2026, 11, 1, tzinfo=UTC),
    datetime(2026, 4, 4, 12, tzinfo=UTC),
    datetime(2026, 10, 3, 12, tzinfo=UTC),
]
NOBODY = Visible(seq=0, moving=frozenset())


def _sweep() -> list[datetime]:
    """Every 7 minutes and 30 s over two days around each change, and the minutes either side
    of each whole hour and half hour."""
    moments = []
    for start in AROUND:
        moment = start - timedelta(days=1)
        while moment < start + timedelta(days=1):
            moments += [moment, moment + timedelta(seconds=30)]
            moment += timedelta(minutes=7)
        for half in range(96):
            edge = start - timedelta(days=1) + timedelta(minutes=30 * half)
            moments += [edge - timedelta(milliseconds=1), edge]
    return moments


@pytest.mark.parametrize("zone", ZONES)
@pytest.mark.parametrize("unit", ["hour", "day"])
async def test_buckets_are_postgresqls_date_trunc(pg: asyncpg.Pool, zone: str, unit: Unit) -> None:
    moments = _sweep()
    rows = await pg.fetch(
        "SELECT date_trunc($1::text, t, $2::text) AS bucket FROM unnest($3::timestamptz[]) AS t",
        unit,
        zone,
        moments,
    )
    assert [bucket_of(moment, unit, ZoneInfo(zone)) for moment in moments] == [
        row["bucket"] for row in rows
    ]


def _calls(seed: int, since: datetime, span: timedelta, count: int) -> list[Facts]:
    """`count` calls made at random over since..since + span, of every kind of outcome."""
    draw = random.Random(seed)
    calls = []
    for _ in range(count):
        status = draw.choice(["finished", "failed", "queued", "connected", "scheduled"])
        ended = status in ("finished", "failed")
        calls.append(
            Facts(
                created_at=since + span * draw.random(),
                ended_at=None,
                status=status,
                kind=draw.choice(["Voice Inbound (API)", "Voice Outbound (API)"]),
                menu_id=draw.choice([9, 51, None]),
                agent_id=draw.choice([1, 2, 3, None]),
                fail_reason=draw.choice(["eu_abandoned", "expired"])
                if status == "failed"
                else "nothing",
                wait_s=float(draw.randrange(0, 600)) if ended or status == "connected" else None,
                duration_s=float(draw.randrange(0, 900)) if status == "finished" else None,
            )
        )
    return calls


def _tenant(zone: str) -> Tenant:
    return Tenant(doc=TenantDoc(subdomain="nobody", timezone=zone), token_hashes=[])


COLUMNS: tuple[str, ...] = ("scope", "facet", "bucket", "menu_id", "agent_id", "value", "calls")
COLUMNS += ("waits", "wait_mean", "wait_at", "talks", "talk_mean", "talk_at")


def _sorted(rows: Sequence[Row]) -> list[tuple[str, ...]]:
    """The rows in one order, each column as text (a column left out is a NULL)."""
    return sorted(tuple(str(row.get(name)) for name in COLUMNS) for row in rows)


@pytest.mark.parametrize("zone", ZONES)
@pytest.mark.parametrize("unit", ["hour", "day"])
async def test_python_reckons_the_statements_rows(pg: asyncpg.Pool, zone: str, unit: Unit) -> None:
    """Over calls sent as live ones to a tenant with no archived row: row for row the same."""
    for seed, start in enumerate(AROUND):
        since = start - timedelta(days=1, minutes=17)
        span = timedelta(days=2, hours=3)
        calls = _calls(seed, since, span, 300)
        filters = ListQuery(
            created_from_ms=clock.to_ms(since), created_to_ms=clock.to_ms(since + span)
        )
        query = ReportQuery(unit, filters)
        tenant = _tenant(zone)
        statement = await computed(pg, tenant, query, NOBODY, calls)
        assert _sorted(reckoned(calls, query, ZoneInfo(zone))) == _sorted(statement)


async def test_no_call_gives_the_empty_buckets_alone(pg: asyncpg.Pool) -> None:
    since = datetime(2026, 11, 1, 3, 30, tzinfo=UTC)
    filters = ListQuery(
        created_from_ms=clock.to_ms(since), created_to_ms=clock.to_ms(since + timedelta(hours=3))
    )
    query = ReportQuery("hour", filters)
    statement = await computed(pg, _tenant("America/New_York"), query, NOBODY, [])
    slots = sorted(row["bucket"] for row in statement if row["scope"] == "slot")
    assert sorted(row["scope"] for row in statement) == ["slot"] * 4 + ["totals"]
    assert slots == [since.replace(minute=0) + timedelta(hours=h) for h in range(4)]
    assert _sorted(reckoned([], query, ZoneInfo("America/New_York"))) == _sorted(statement)


@given(st.lists(st.integers(min_value=0, max_value=100_000), min_size=1, max_size=200))
def test_percentiles_are_pythons_inclusive_quantiles(values: list[int]) -> None:
    found = percentiles([float(value) for value in values])
    assert found is not None
    if len(values) == 1:
        assert found == [float(values[0])] * len(PERCENTILES)
        return
    cuts = statistics.quantiles(values, n=10, method="inclusive")
    assert found == pytest.approx([cuts[4], cuts[8]], abs=1e-9)


def test_no_value_has_no_percentile() -> None:
    assert percentiles([]) is None
