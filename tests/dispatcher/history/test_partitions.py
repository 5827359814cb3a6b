"""Monthly partitions on a real PostgreSQL: made on demand, UTC months whatever the session's
time zone, race-safe, and whole months dropped past a cutoff."""

from __future__ import annotations

import asyncio
from datetime import date, datetime

import asyncpg
import pytest

from dispatcher.history import partitions

PARTITIONS = """
SELECT c.relname AS name, pg_get_expr(c.relpartbound, c.oid) AS bounds
FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = $1::regclass AND c.relkind = 'r' ORDER BY c.relname
"""
INSERT = """
INSERT INTO calls (tenant, id, created_at, status, kind, rev, seq, doc, meta)
VALUES ('demo', $1, $2::timestamptz, 'finished', 'voice_inbound', 1, 1, '{}', '{}')
"""


async def _partitions(pool: asyncpg.Pool, table: str = "calls") -> list[tuple[str, str]]:
    async with pool.acquire() as conn:
        await conn.execute("SET TimeZone = 'UTC'")
        return [(row["name"], row["bounds"]) for row in await conn.fetch(PARTITIONS, table)]


def _bounds(start: str, end: str) -> str:
    return f"FOR VALUES FROM ('{start} 00:00:00+00') TO ('{end} 00:00:00+00')"


async def test_months_are_made_once_as_utc_calendar_months(pg: asyncpg.Pool) -> None:
    async with pg.acquire() as conn:
        await conn.execute("SET TimeZone = 'Pacific/Kiritimati'")  # UTC+14: bounds stay UTC
        months = {date(2026, 1, 15), date(2026, 1, 3), date(2025, 12, 31), date(2026, 2, 1)}
        await partitions.ensure_months(conn, "calls", months)
        await partitions.ensure_months(conn, "calls", months)  # known: nothing to do
    assert await _partitions(pg) == [
        ("calls_y2025m12", _bounds("2025-12-01", "2026-01-01")),
        ("calls_y2026m01", _bounds("2026-01-01", "2026-02-01")),
        ("calls_y2026m02", _bounds("2026-02-01", "2026-03-01")),
    ]
    assert await _partitions(pg, "chats") == []
    async with pg.acquire() as conn:
        for call_id, created_at in ((1, "2026-01-31T23:59:59.999Z"), (2, "2026-02-01T00:00:00Z")):
            await conn.execute(INSERT, call_id, datetime.fromisoformat(created_at))
        placed = await conn.fetch(
            "SELECT id, tableoid::regclass::text AS part FROM calls ORDER BY id"
        )
    assert [tuple(row) for row in placed] == [(1, "calls_y2026m01"), (2, "calls_y2026m02")]


async def test_known_months_are_not_asked_again_until_forgotten(pg: asyncpg.Pool) -> None:
    async with pg.acquire() as conn:
        await partitions.ensure_months(conn, "chats", {date(2026, 3, 9)})
        await conn.execute("DROP TABLE chats_y2026m03")  # behind this process's back
        await partitions.ensure_months(conn, "chats", {date(2026, 3, 20)})
        assert await _partitions(pg, "chats") == []
        partitions.forget()
        await partitions.ensure_months(conn, "chats", {date(2026, 3, 20)})
    assert await _partitions(pg, "chats") == [
        ("chats_y2026m03", _bounds("2026-03-01", "2026-04-01"))
    ]


async def test_callers_racing_for_a_month_take_turns(pg: asyncpg.Pool) -> None:
    """The first caller's transaction holds the month; the second waits for it to commit, then
    finds the partition rather than failing on it."""
    make = "SELECT dispatcher_month_partition('calls', '2026-05-17')"
    async with pg.acquire() as first, pg.acquire() as second:
        transaction = first.transaction()
        await transaction.start()
        assert await first.fetchval(make) == "calls_y2026m05"
        racing = asyncio.create_task(second.fetchval(make))
        await asyncio.sleep(0.2)
        assert not racing.done()  # waiting on the month's lock
        await transaction.commit()
        assert await racing == "calls_y2026m05"
    assert [name for name, _ in await _partitions(pg)] == ["calls_y2026m05"]


async def test_drop_before_drops_whole_months_older_than_the_cutoff(pg: asyncpg.Pool) -> None:
    async with pg.acquire() as conn:
        months = {date(2026, 1, 1), date(2026, 2, 1), date(2026, 3, 1), date(2026, 4, 1)}
        await partitions.ensure_months(conn, "calls", months)
        await partitions.ensure_months(conn, "chats", {date(2026, 1, 1)})
        await conn.execute(INSERT, 7, datetime.fromisoformat("2026-03-02T10:00:00Z"))
        # A partition this module did not name is never dropped.
        await conn.execute(
            "CREATE TABLE calls_legacy PARTITION OF calls"
            " FOR VALUES FROM ('2020-01-01 00:00:00+00') TO ('2021-01-01 00:00:00+00')"
        )
    # March 15: January and February have ended before it, March has not.
    assert await partitions.drop_before(pg, "calls", date(2026, 3, 15)) == [
        "calls_y2026m01",
        "calls_y2026m02",
    ]
    assert [name for name, _ in await _partitions(pg)] == [
        "calls_legacy",
        "calls_y2026m03",
        "calls_y2026m04",
    ]
    assert await pg.fetchval("SELECT count(*) FROM calls") == 1
    assert await pg.fetchval("SELECT to_regclass('calls_y2026m01')") is None  # dropped, not kept
    assert [name for name, _ in await _partitions(pg, "chats")] == ["chats_y2026m01"]
    assert await partitions.drop_before(pg, "calls", date(2026, 3, 15)) == []
    # The first of a month: the month before it has ended.
    assert await partitions.drop_before(pg, "calls", date(2026, 4, 1)) == ["calls_y2026m03"]
    async with pg.acquire() as conn:  # a dropped month is made again when asked for
        await partitions.ensure_months(conn, "calls", {date(2026, 1, 20)})
    assert "calls_y2026m01" in [name for name, _ in await _partitions(pg)]


async def test_an_interrupted_detach_is_finished_by_the_next_drop(pg: asyncpg.Pool) -> None:
    async with pg.acquire() as conn:
        await partitions.ensure_months(conn, "calls", {date(2026, 1, 1)})
    async with pg.acquire() as reader, pg.acquire() as detacher:
        reading = reader.transaction(isolation="repeatable_read")
        await reading.start()
        await reader.fetchval("SELECT count(*) FROM calls")  # an old snapshot holds the detach
        await detacher.execute("SET statement_timeout = '300ms'")
        with pytest.raises(asyncpg.QueryCanceledError):
            await detacher.execute("ALTER TABLE calls DETACH PARTITION calls_y2026m01 CONCURRENTLY")
        await reading.rollback()
    pending = "SELECT inhdetachpending FROM pg_inherits WHERE inhrelid = 'calls_y2026m01'::regclass"
    assert await pg.fetchval(pending) is True
    assert await partitions.drop_before(pg, "calls", date(2026, 2, 1)) == ["calls_y2026m01"]
    assert await _partitions(pg) == []


async def test_a_table_name_is_checked(pg: asyncpg.Pool) -> None:
    async with pg.acquire() as conn:
        with pytest.raises(ValueError, match="not a table name: 'calls; DROP'"):
            await partitions.ensure_months(conn, "calls; DROP", {date(2026, 1, 1)})
    with pytest.raises(ValueError, match="not a table name"):
        await partitions.drop_before(pg, 'calls"', date(2026, 1, 1))


def test_month_arithmetic() -> None:
    assert partitions.next_month(date(2026, 12, 1)) == date(2027, 1, 1)
    assert partitions.next_month(date(2026, 1, 1)) == date(2026, 2, 1)
    assert partitions.month_of(date(2026, 2, 28)) == date(2026, 2, 1)
