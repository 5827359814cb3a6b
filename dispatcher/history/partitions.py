"""The history tables' monthly partitions: made on demand before rows of a month are written,
and whole months dropped once older than the retention (DISPATCHER_ARCHIVE_RETENTION_DAYS).

A month's partition is `<table>_yYYYYmMM` and holds the rows whose created_at falls in that
calendar month in UTC (the function dispatcher_month_partition, migration 0001, makes them)."""

from __future__ import annotations

import re
from datetime import date

import asyncpg

_TABLE = re.compile(r"[a-z_][a-z0-9_]*")
# The partitions this process made or found, by table and month: a process talks to one
# database; forget() is for those that change it (the tests' database per test).
_known: set[tuple[str, date]] = set()

_PARTITIONS = """
SELECT c.relname AS name, i.inhdetachpending AS detach_pending
FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
WHERE i.inhparent = $1::regclass AND c.relkind = 'r'
ORDER BY c.relname
"""


def month_of(day: date) -> date:
    return day.replace(day=1)


def next_month(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


async def ensure_months(
    conn: asyncpg.Connection | asyncpg.pool.PoolConnectionProxy, table: str, months: set[date]
) -> None:
    """Makes sure `table` has a partition for each of `months` (any day of each month), one
    statement per month not yet known to this process. Call it before the transaction that
    writes the rows, not inside it: making a partition locks its parent table, which a
    transaction that has written to it would hold against a second one doing the same."""
    _check(table)
    for month in sorted({month_of(day) for day in months}):
        if (table, month) in _known:
            continue
        await conn.fetchval("SELECT dispatcher_month_partition($1::regclass, $2)", table, month)
        _known.add((table, month))


async def drop_before(pool: asyncpg.Pool, table: str, cutoff: date) -> list[str]:
    """Detaches and drops the partitions of `table` whose whole month lies before `cutoff`
    (the month ends on or before it); returns their names. DETACH ... CONCURRENTLY lets reads
    and writes of the table go on meanwhile; one interrupted (a timeout, a crash) is finished
    the next time. Processes doing this at once take turns."""
    _check(table)
    dropped = []
    async with pool.acquire() as conn:
        await conn.execute("SELECT pg_advisory_lock(hashtext($1))", f"drop_before:{table}")
        try:
            for row in await conn.fetch(_PARTITIONS, table):
                month = _month_in(table, row["name"])
                if month is None or next_month(month) > cutoff:
                    continue
                how = "FINALIZE" if row["detach_pending"] else "CONCURRENTLY"
                await conn.execute(f'ALTER TABLE "{table}" DETACH PARTITION "{row["name"]}" {how}')
                await conn.execute(f'DROP TABLE "{row["name"]}"')
                _known.discard((table, month))
                dropped.append(str(row["name"]))
        finally:
            await conn.execute("SELECT pg_advisory_unlock(hashtext($1))", f"drop_before:{table}")
    return dropped


def forget() -> None:
    """Forgets the partitions this process knows of: the next ensure_months checks them in the
    database again."""
    _known.clear()


def _month_in(table: str, name: str) -> date | None:
    """The month a partition's name stands for; None for a table not named by this module."""
    found = re.fullmatch(rf"{re.escape(table)}_y(\d{{4}})m(\d{{2}})", name)
    if found is None or not 1 <= int(found[2]) <= 12:
        return None
    return date(int(found[1]), int(found[2]), 1)


def _check(table: str) -> None:
    if _TABLE.fullmatch(table) is None:
        raise ValueError(f"not a table name: {table!r}")
