"""Alembic's environment: migrates the database at the URL schema.py puts in the config
(`config.attributes["url"]`, never an ini file), one process at a time."""

from __future__ import annotations

import asyncio

import asyncpg
from alembic import context
from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

# Taken in the migration's own transaction: a second process migrating at the same time waits
# here, then reads the version the first one committed and has nothing left to do.
LOCK = "SELECT pg_advisory_xact_lock(hashtext('dispatcher.history.schema'))"


def _migrate(connection: Connection) -> None:
    context.configure(connection=connection, transactional_ddl=True)
    with context.begin_transaction():
        context.execute(LOCK)
        context.run_migrations()


async def _migrate_online(url: str) -> None:
    # asyncpg reads the URL itself, as the service's pools do (sslmode and all): SQLAlchemy
    # only carries the connection.
    engine = create_async_engine(
        "postgresql+asyncpg://", async_creator=lambda: asyncpg.connect(url), poolclass=pool.NullPool
    )
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_migrate)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    raise RuntimeError("the history schema is migrated online only (schema.upgrade)")
asyncio.run(_migrate_online(context.config.attributes["url"]))
