"""The history schema, migrated by Alembic (migrations/): `dispatcher migrate` and
`dispatcher up` bring a database to HEAD; the tests start from an empty one."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import asyncpg
from alembic import command
from alembic.config import Config
from alembic.util.exc import CommandError

# The revision this release's code reads and writes.
HEAD = "0001"
# Alembic's `context` and `op` are module-wide proxies: one command at a time in a process
# (processes take turns on a lock in the database, migrations/env.py).
_ONE_AT_A_TIME = threading.Lock()


class SchemaError(Exception):
    """The database's schema cannot be brought to this release's (a newer release's revision,
    for one): the message says why."""


def _config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", "dispatcher.history:migrations")
    config.attributes["url"] = url  # not a main option: it holds a password, and % in it
    return config


async def upgrade(url: str, revision: str = "head") -> str:
    """Applies the revisions the database lacks (none: a no-op) and returns the one it is at.
    Safe from several processes at once (migrations/env.py takes a lock)."""
    await _run(command.upgrade, url, revision)
    reached = await current(url)
    assert reached is not None
    return reached


async def downgrade(url: str, revision: str = "base") -> str | None:
    """Takes the schema back to `revision` (base: nothing of it left)."""
    await _run(command.downgrade, url, revision)
    return await current(url)


async def current(url: str) -> str | None:
    """The revision the database is at; None when the schema was never applied."""
    connection = await asyncpg.connect(url)
    try:
        if await connection.fetchval("SELECT to_regclass('alembic_version')") is None:
            return None
        found = await connection.fetchval("SELECT version_num FROM alembic_version")
        return str(found) if found is not None else None
    finally:
        await connection.close()


async def _run(step: Callable[[Config, str], None], url: str, revision: str) -> None:
    """Alembic's command in a thread: env.py runs an event loop of its own."""

    def run() -> None:
        with _ONE_AT_A_TIME:
            step(_config(url), revision)

    try:
        await asyncio.to_thread(run)
    except CommandError as exc:
        raise SchemaError(f"the history schema cannot be migrated: {exc}") from exc
