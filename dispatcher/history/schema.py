"""The history schema, migrated by Alembic (migrations/): `dispatcher migrate` and
`dispatcher up` bring a database to HEAD; the tests start from an empty one.

Alembic (and SQLAlchemy under it) is imported only when there is something to migrate: it takes
a quarter of a second, which every other command would pay."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

import asyncpg
import structlog

if TYPE_CHECKING:
    from alembic.config import Config

log = structlog.get_logger("dispatcher.history")

# The revision this release's code reads and writes.
HEAD = "0003"
# Alembic's `context` and `op` are module-wide proxies: one command at a time in a process
# (processes take turns on a lock in the database, migrations/env.py).
_ONE_AT_A_TIME = threading.Lock()


class SchemaError(Exception):
    """The database's schema cannot be brought to this release's (a newer release's revision,
    for one): the message says why."""


async def upgrade(url: str, revision: str = "head") -> str:
    """Applies the revisions the database lacks (none: a no-op) and returns the one it is at.
    Safe from several processes at once (migrations/env.py takes a lock)."""
    before = await current(url)
    if before == HEAD and revision == "head":
        return HEAD
    from alembic import command

    await _run(command.upgrade, url, revision)
    reached = await current(url)
    assert reached is not None
    if reached != before:
        log.info("history schema migrated", revision=reached, previous=before)
    return reached


async def downgrade(url: str, revision: str = "base") -> str | None:
    """Takes the schema back to `revision` (base: nothing of it left)."""
    from alembic import command

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


def alembic_config(url: str) -> Config:
    """Alembic's configuration for the database at `url`, without an ini file."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", "dispatcher.history:migrations")
    config.attributes["url"] = url  # not a main option: it holds a password, and % in it
    return config


async def _run(step: Callable[[Config, str], None], url: str, revision: str) -> None:
    """Alembic's command in a thread: env.py runs an event loop of its own."""
    from alembic.util.exc import CommandError

    def run() -> None:
        with _ONE_AT_A_TIME:
            step(alembic_config(url), revision)

    try:
        await asyncio.to_thread(run)
    except CommandError as exc:
        raise SchemaError(f"the history schema cannot be migrated: {exc}") from exc
