"""The history's pool: it opens while PostgreSQL is down, and each connection carries the
statement timeout and application name, also after the pool's reset."""

from __future__ import annotations

import time

import asyncpg
import pytest

from dispatcher.history.database import connect_pool, ping
from dispatcher.settings import Settings
from tests.ports import free_port


def _settings(url: str, **fields: object) -> Settings:
    return Settings(database_url=url, **fields)  # type: ignore[arg-type]


async def test_each_connection_has_the_timeout_and_name_after_a_reset(database_url: str) -> None:
    pool = await connect_pool(_settings(database_url, pg_statement_timeout_s=0.25, pg_pool_max=1))
    try:
        for _ in range(2):  # the second acquire gets the connection back after RESET ALL
            async with pool.acquire() as conn:
                assert await conn.fetchval("SHOW statement_timeout") == "250ms"
                assert await conn.fetchval("SHOW application_name") == "dispatcher"
                await conn.execute("SET statement_timeout = 0; SET application_name = 'other'")
        with pytest.raises(asyncpg.QueryCanceledError):
            await pool.fetchval("SELECT pg_sleep(2)")
        assert await ping(pool, 0.8) is True
    finally:
        await pool.close()


async def test_the_pool_opens_without_postgres_and_ping_says_so(tmp_path: object) -> None:
    started = time.monotonic()
    pool = await connect_pool(_settings(f"postgresql://dispatcher@127.0.0.1:{free_port()}/x"))
    try:
        assert await ping(pool, 0.8) is False
        assert time.monotonic() - started < 0.8
    finally:
        await pool.close()


async def test_a_pool_needs_a_url() -> None:
    with pytest.raises(ValueError, match="no database URL: set DATABASE_URL"):
        await connect_pool(Settings())
