"""The connection pool to PostgreSQL each process holds, and the readiness check on it."""

from __future__ import annotations

import asyncio

import asyncpg

from dispatcher.settings import Settings

APPLICATION_NAME = "dispatcher"
# A server that does not answer (a firewall dropping packets) holds a new connection this long.
CONNECT_TIMEOUT_S = 10.0


async def connect_pool(settings: Settings) -> asyncpg.Pool:
    """A pool that opens connections on demand (min_size=0): a process starts while PostgreSQL
    is down, and reconnects by itself once it is back. Every connection carries the statement
    timeout and application name as startup parameters, which RESET ALL (asyncpg's reset on
    release) returns to."""
    if settings.database_url is None:
        raise ValueError("no database URL: set DATABASE_URL")
    timeout_ms = round(settings.pg_statement_timeout_s * 1000)
    return await asyncpg.create_pool(
        settings.database_url,
        min_size=0,
        max_size=settings.pg_pool_max,
        timeout=CONNECT_TIMEOUT_S,
        server_settings={
            "application_name": APPLICATION_NAME,
            "statement_timeout": str(timeout_ms),
        },
    )


async def ping(pool: asyncpg.Pool, timeout_s: float) -> bool:
    """Whether PostgreSQL answers a query within `timeout_s`."""
    try:
        async with asyncio.timeout(timeout_s), pool.acquire() as connection:
            await connection.fetchval("SELECT 1")
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
        return False
    return True


async def close_pool(pool: asyncpg.Pool, timeout_s: float = 5.0) -> None:
    """Closes `pool`, giving the connections in use `timeout_s` to come back, then cutting them."""
    try:
        await asyncio.wait_for(pool.close(), timeout_s)
    except TimeoutError:
        pool.terminate()
