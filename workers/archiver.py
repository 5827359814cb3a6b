"""The archiver: ended calls and chats leave Redis for PostgreSQL once they have been ended
for DISPATCHER_HOT_RETENTION_S (store/archiving.py says how a move stays whole).

One `archive` job runs every few seconds on one worker of the fleet (an ARQ cron job: its id
names its tick, so two workers never run the same tick; its budget ends before the next). It
takes the tenants in turn, one batch each per round, so that one tenant's backlog never holds
another's archiving up, until nothing is due or its time is spent. While PostgreSQL is down it
reads nothing and waits for the next tick: the records stay whole in Redis, served from there."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import asyncpg
import structlog
from redis.asyncio import Redis

from dispatcher.domain import clock
from dispatcher.history import partitions
from dispatcher.history.archive import TABLES, Archive
from dispatcher.metrics import Metrics
from dispatcher.settings import Settings
from dispatcher.store import keys
from dispatcher.store.archiving import HotRecords
from dispatcher.store.records import Kind
from dispatcher.store.scripts import Scripts

log = structlog.get_logger("workers.archiver")

EVERY_S = 5  # a tick
BUDGET_S = 4.0  # a tick's archiving stops starting batches after this (or half the job timeout)
BATCH = 1000  # records per move (one script each way, one COPY)
PRUNE_EVERY_S = 3600  # old partitions are looked for once an hour, by one worker
KINDS: tuple[Kind, ...] = ("call", "chat")
PRUNED = keys.Key(f"{keys.ROOT}:archive:pruned")  # held for an hour by the worker that pruned


@dataclass
class Pass:
    """What one tick did."""

    moved: int = 0
    released: int = 0
    batches: int = 0


class PostgresDown(Exception):
    """PostgreSQL did not answer: archiving waits for the next tick."""


async def archive(ctx: dict[str, Any]) -> str:
    """The cron job: one tick of archiving, then (hourly) the retention's partition drops."""
    pool: asyncpg.Pool | None = ctx.get("database")
    if pool is None:
        return "no database"
    settings: Settings = ctx["settings"]
    metrics: Metrics = ctx["metrics"]
    archiver = Archiver(ctx["redis"], ctx["scripts"], Archive(pool), settings, metrics)
    # Within the job's timeout (the worker's), half of it at most: a batch under way when the
    # budget ends must finish before ARQ cancels the job (one cancelled is copied again).
    budget = min(BUDGET_S, settings.job_timeout_s / 2)
    try:
        done = await archiver.tick(time.monotonic() + budget)
        await archiver.prune()
    except PostgresDown:
        metrics.archive_failures.labels("postgres_unreachable").inc()
        log.warning("postgresql is unreachable: archiving waits")
        return "postgres unreachable"
    return f"archived {done.released} in {done.batches} batches"


class Archiver:
    def __init__(
        self,
        redis: Redis,
        scripts: Scripts,
        archive: Archive,
        settings: Settings,
        metrics: Metrics,
        batch: int = BATCH,
    ) -> None:
        self._batch = batch
        self._redis = redis
        self._scripts = scripts
        self._archive = archive
        self._settings = settings
        self._metrics = metrics

    async def tick(self, deadline: float, rounds: int | None = None) -> Pass:
        """Moves due records, a batch per tenant and kind per round, until none is due,
        `deadline` (monotonic) has passed or (when given) after `rounds` rounds."""
        done = Pass()
        await self._ping()
        cutoff_ms = clock.to_ms(clock.now()) - self._settings.hot_retention_s * 1000
        pending = [
            (HotRecords(self._redis, self._scripts, subdomain), kind)
            for subdomain in await self._subdomains()
            for kind in KINDS
        ]
        while pending and time.monotonic() < deadline and rounds != 0:
            rounds = rounds - 1 if rounds is not None else None
            still = []
            for hot, kind in pending:
                moved = await self.move(hot, kind, cutoff_ms, done)
                if moved == self._batch:
                    still.append((hot, kind))
                if time.monotonic() >= deadline:
                    break
            pending = still
        return done

    async def move(self, hot: HotRecords, kind: Kind, cutoff_ms: int, done: Pass) -> int:
        """One batch of one tenant's records of one kind, through the three steps; how many
        were due."""
        due = await hot.due(kind, cutoff_ms, self._batch)
        if not due:
            return 0
        seq, records = await hot.begin(kind, due, cutoff_ms)
        try:
            await self._archive.store(kind, hot.subdomain, seq, records)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            # The records stay in Redis, whole, in the ended and archiving sets: copied again
            # at the next tick.
            self._metrics.archive_failures.labels("store").inc()
            log.warning("archiving a batch failed", tenant=hot.subdomain, error=type(exc).__name__)
            raise PostgresDown from exc
        released = await hot.release(kind, records)
        self._metrics.archived.labels(kind).inc(released)
        done.moved += len(records)
        done.released += released
        done.batches += 1
        return len(due)

    async def prune(self) -> list[str]:
        """Drops the whole monthly partitions older than DISPATCHER_ARCHIVE_RETENTION_DAYS
        (never, when unset); one worker an hour looks."""
        days = self._settings.archive_retention_days
        if days is None or not await self._redis.set(PRUNED, 1, nx=True, ex=PRUNE_EVERY_S):
            return []
        cutoff = clock.now().date() - timedelta(days=days)
        dropped: list[str] = []
        for table in TABLES.values():
            dropped += await partitions.drop_before(self._archive.pool, table, _month(cutoff))
        if dropped:
            log.info("old history dropped", partitions=dropped)
        return dropped

    async def _ping(self) -> None:
        try:
            await self._archive.pool.fetchval("SELECT 1", timeout=2)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise PostgresDown from exc

    async def _subdomains(self) -> list[str]:
        names = await self._redis.hkeys(keys.TENANTS)  # type: ignore[misc]
        return sorted(raw.decode() for raw in names)


def _month(day: date) -> date:
    """The first day of `day`'s month: partitions wholly before it are older than the cutoff."""
    return day.replace(day=1)
