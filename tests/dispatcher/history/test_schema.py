"""The history schema's migrations on a real PostgreSQL: from an empty database to HEAD and back,
a second run a no-op, two processes migrating at once."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import Any

import asyncpg
import pytest
from alembic.script import ScriptDirectory

from dispatcher.history import schema

COLUMNS = [
    ("tenant", "text", "NO", None),
    ("id", "bigint", "NO", None),
    ("created_at", "timestamp with time zone", "NO", None),
    ("ended_at", "timestamp with time zone", "YES", None),
    ("status", "text", "NO", None),
    ("kind", "text", "NO", None),
    ("menu_id", "bigint", "YES", None),
    ("agent_id", "bigint", "YES", None),
    ("campaign_id", "bigint", "YES", None),
    ("fail_reason", "text", "YES", None),
    ("wait_s", "double precision", "YES", None),
    ("duration_s", "double precision", "YES", None),
    ("rev", "bigint", "NO", None),
    ("seq", "bigint", "NO", None),
    ("doc", "text", "NO", None),
    ("meta", "jsonb", "NO", None),
    ("history", "jsonb", "NO", "'[]'::jsonb"),
    ("flags", "jsonb", "NO", "'{}'::jsonb"),
    ("archived_at", "timestamp with time zone", "NO", "now()"),
]
# Every object of the schema, as the catalog describes it: equal before and after a no-op run.
CATALOG = """
SELECT array_agg(c.relname || ':' || c.relkind::text || ':' || coalesce(pg_get_expr(c.relpartbound,
       c.oid), '') ORDER BY c.relname)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'public'
"""


async def _fetch(url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(url)
    try:
        return await connection.fetch(sql, *args)
    finally:
        await connection.close()


async def _tables(url: str) -> list[tuple[str, str]]:
    rows = await _fetch(
        url,
        "SELECT relname, relkind::text FROM pg_class c"
        " JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE nspname = 'public' AND relkind IN ('r', 'p') ORDER BY relname",
    )
    return [(row["relname"], row["relkind"]) for row in rows]


def test_head_is_the_last_revision_of_the_script_directory() -> None:
    scripts = ScriptDirectory.from_config(schema.alembic_config("postgresql://unused"))
    assert scripts.get_current_head() == schema.HEAD


async def test_an_empty_database_migrates_to_head_and_back_to_base(empty_database_url: str) -> None:
    url = empty_database_url
    assert await schema.current(url) is None
    assert await schema.upgrade(url) == schema.HEAD == "0003"
    assert await schema.current(url) == "0003"
    assert await _tables(url) == [
        ("alembic_version", "r"),
        ("calls", "p"),
        ("chats", "p"),
    ]
    for table in ("calls", "chats"):
        columns = await _fetch(
            url,
            "SELECT column_name, data_type, is_nullable, column_default"
            " FROM information_schema.columns WHERE table_name = $1 ORDER BY ordinal_position",
            table,
        )
        assert [tuple(row) for row in columns] == COLUMNS
        indexes = await _fetch(
            url,
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = $1 ORDER BY indexname",
            table,
        )
        by_campaign = [
            (f"{table}_tenant_campaign_id", f"CREATE INDEX {table}_tenant_campaign_id ON ONLY"
             f" public.{table} USING btree (tenant, campaign_id, id)"),
        ] if table == "calls" else []  # fmt: skip
        assert [tuple(row) for row in indexes] == [
            (f"{table}_pkey", f"CREATE UNIQUE INDEX {table}_pkey ON ONLY public.{table} USING"
             " btree (tenant, id, created_at)"),
            *by_campaign,
            (f"{table}_tenant_created", f"CREATE INDEX {table}_tenant_created ON ONLY"
             f" public.{table} USING btree (tenant, created_at)"),
            (f"{table}_tenant_ended", f"CREATE INDEX {table}_tenant_ended ON ONLY public.{table}"
             " USING btree (tenant, ended_at)"),
            (f"{table}_tenant_kind_id", f"CREATE INDEX {table}_tenant_kind_id ON ONLY"
             f" public.{table} USING btree (tenant, kind, id)"),
            (f"{table}_tenant_status_id", f"CREATE INDEX {table}_tenant_status_id ON ONLY"
             f" public.{table} USING btree (tenant, status, id)"),
        ]  # fmt: skip
        [key] = await _fetch(url, "SELECT pg_get_partkeydef($1::regclass) AS key", table)
        assert key["key"] == "RANGE (created_at)"
    assert await schema.downgrade(url) is None
    assert await _tables(url) == [("alembic_version", "r")]  # Alembic's own, empty
    functions = await _fetch(url, "SELECT proname FROM pg_proc WHERE proname LIKE 'dispatcher%'")
    assert functions == []
    assert await schema.upgrade(url) == "0003"  # and up again from base


async def test_a_second_upgrade_changes_nothing(empty_database_url: str) -> None:
    url = empty_database_url
    await schema.upgrade(url)
    await _fetch(url, "SELECT dispatcher_month_partition('calls', '2026-11-05')")
    before = await _fetch(url, CATALOG)
    assert await schema.upgrade(url) == "0003"  # at HEAD: Alembic is not even started
    assert await schema.upgrade(url, "0003") == "0003"  # Alembic, with nothing to do
    assert await _fetch(url, CATALOG) == before
    assert [tuple(row) for row in await _fetch(url, "TABLE alembic_version")] == [("0003",)]


UPGRADE = "import asyncio, logging, sys; from dispatcher.history import schema; logging.basicConfig(level=logging.INFO); print(asyncio.run(schema.upgrade(sys.argv[1])))"  # noqa: E501


@pytest.mark.subprocess
async def test_two_processes_upgrading_at_once_take_turns(empty_database_url: str) -> None:
    """Both wait on the migration lock, held here; let go, one migrates and the other finds
    the schema at HEAD."""
    url = empty_database_url
    holder = await asyncpg.connect(url)
    try:
        await holder.execute("SELECT pg_advisory_lock(hashtext('dispatcher.history.schema'))")
        processes = [
            subprocess.Popen(
                [sys.executable, "-c", UPGRADE, url],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        waiting = 0
        for _ in range(300):  # up to 30 s: each process imports Alembic and SQLAlchemy first
            waiting = await holder.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            )
            if waiting == 2:
                break
            await asyncio.sleep(0.1)
        assert waiting == 2
        await holder.execute("SELECT pg_advisory_unlock_all()")
        outcomes = [
            await asyncio.to_thread(process.communicate, timeout=60) for process in processes
        ]
    finally:
        await holder.close()
    assert [process.returncode for process in processes] == [0, 0], outcomes
    assert [stdout.splitlines()[-1] for stdout, _ in outcomes] == ["0003", "0003"]
    assert sum("Running upgrade  -> 0001" in stderr for _, stderr in outcomes) == 1
    assert sum("Running upgrade 0001 -> 0002" in stderr for _, stderr in outcomes) == 1
    assert [tuple(row) for row in await _fetch(url, "TABLE alembic_version")] == [("0003",)]


async def test_a_database_ahead_of_this_release_is_refused(empty_database_url: str) -> None:
    url = empty_database_url
    await schema.upgrade(url)
    await _fetch(url, "UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(schema.SchemaError, match="Can't locate revision identified by '9999'"):
        await schema.upgrade(url)
