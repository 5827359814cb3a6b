"""Ended calls and chats in PostgreSQL: their rows written by the archiver, and every read
of them (one record, a list page, an export's batches, flags, history).

Every query names its tenant: a row is only ever read or written with `tenant = $1`, and
the table's name comes from the record kind, never from a request. A list's rows are the
ones `Visible` lets through (store/archiving.py says why)."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, ParamSpec, TypeVar

import asyncpg
import orjson

from dispatcher.domain import clock
from dispatcher.domain.errors import ServiceUnavailable
from dispatcher.history import partitions
from dispatcher.store.archiving import Moving
from dispatcher.store.records import Kind, ListQuery, Visible

TABLES: dict[Kind, str] = {"call": "calls", "chat": "chats"}
Stored = tuple[bytes, bytes]  # a call's object and its meta, as stored (JSON each)
# The columns the archiver writes, in COPY's order (the table's others have defaults).
COLUMNS = (
    "tenant",
    "id",
    "created_at",
    "ended_at",
    "status",
    "kind",
    "menu_id",
    "agent_id",
    "campaign_id",
    "fail_reason",
    "wait_s",
    "duration_s",
    "rev",
    "seq",
    "doc",
    "meta",
    "history",
    "flags",
)
_UPDATED = ", ".join(f"{name} = EXCLUDED.{name}" for name in COLUMNS[3:])


@dataclass(frozen=True)
class Facts:
    """What a record's columns say of it beside its object: the lists filter on them and the
    reports count them, read the same from a live record's object as from an archived one's."""

    created_at: datetime
    ended_at: datetime | None
    status: str
    kind: str  # the call_type or chat_type
    menu_id: int | None
    agent_id: int | None
    fail_reason: str | None
    # A call's wait is known once it has left its queue (an agent took it, or it ended there),
    # its talk once it has ended connected: before, and for a call never queued (an outbound
    # one) or never connected, none. A mean of the zeros the object shows then would be a lie.
    wait_s: float | None
    duration_s: float | None


def facts_of(kind: Kind, fields: dict[str, Any], meta: dict[str, Any] | None = None) -> Facts:
    """The facts of a record's object (parsed), and of its meta when at hand."""
    agent = fields.get("agent_info") or {}
    menu = (meta or {}).get("menu_id")
    if menu is None and fields.get("selected_menu"):
        menu = fields["selected_menu"].get("id")
    if kind == "call":
        ended = fields.get("ends_at") is not None
        left_queue = fields.get("assigned_at") is not None or ended
        queued = fields.get("queued_at") is not None
        wait = fields.get("wait_duration") if queued and left_queue else None
        talked = fields.get("connected_at") is not None and ended
        duration = fields.get("call_duration") if talked else None
    else:
        wait, duration = fields.get("wait_duration"), fields.get("chat_duration")
    created = clock.parse_iso(fields["created_at"])
    assert created is not None  # every stored object has its creation time
    return Facts(
        created_at=created,
        ended_at=clock.parse_iso(fields.get("ends_at")),
        status=fields["status"],
        kind=fields["call_type" if kind == "call" else "chat_type"],
        menu_id=menu,
        agent_id=agent.get("id") if isinstance(agent, dict) else None,
        fail_reason=fields.get("fail_reason"),
        wait_s=wait,
        duration_s=duration,
    )


def row_of(tenant: str, seq: int, record: Moving) -> tuple[Any, ...]:
    """A record's row: its object as stored, and the columns lists and reports filter on."""
    meta = orjson.loads(record.meta)
    facts = facts_of(record.kind, record.fields, meta)
    return (
        tenant,
        record.id,
        facts.created_at,
        facts.ended_at,
        facts.status,
        facts.kind,
        facts.menu_id,
        facts.agent_id,
        meta.get("campaign_id"),
        facts.fail_reason,
        facts.wait_s,
        facts.duration_s,
        record.rev,
        seq,
        record.doc,
        record.meta,
        "[" + ",".join(record.history) + "]",
        orjson.dumps(record.flags).decode(),
    )


P = ParamSpec("P")
T = TypeVar("T")
# PostgreSQL away, restarting, out of connections, or a query past the statement timeout: a read
# that needs the history answers 503 (Retry-After), as one that needs Redis does.
UNAVAILABLE = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
)


def _served(read: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """A read the API serves: PostgreSQL unavailable is a 503, never a 500."""

    @functools.wraps(read)
    async def run(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await read(*args, **kwargs)
        except UNAVAILABLE as exc:
            unavailable = ServiceUnavailable("Service unavailable")
            unavailable.headers = {"Retry-After": "1"}
            raise unavailable from exc

    return run


@dataclass(frozen=True)
class Archive:
    """The history tables, through one connection pool."""

    pool: asyncpg.Pool

    async def store(self, kind: Kind, tenant: str, seq: int, records: Sequence[Moving]) -> int:
        """Step 2 of a move: upserts the records' rows in one transaction (COPY into a
        temporary table, then one INSERT ... ON CONFLICT), creating their months' partitions
        first. A row is never replaced by an older revision of itself. How many were given."""
        if not records:
            return 0
        rows = [row_of(tenant, seq, record) for record in records]
        table = TABLES[kind]
        months = {date(row[2].year, row[2].month, 1) for row in rows}
        incoming = f"incoming_{table}"
        names = ", ".join(COLUMNS)
        async with self.pool.acquire() as conn:
            for attempt in (1, 2):
                await partitions.ensure_months(conn, table, months)
                try:
                    async with conn.transaction():
                        await conn.execute(
                            f"CREATE TEMP TABLE IF NOT EXISTS {incoming} "
                            f"(LIKE {table} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
                        )
                        await conn.copy_records_to_table(incoming, records=rows, columns=COLUMNS)
                        await conn.execute(
                            f"INSERT INTO {table} ({names}) SELECT {names} FROM {incoming} "
                            "ON CONFLICT (tenant, id, created_at) DO UPDATE "
                            f"SET {_UPDATED}, archived_at = now() "
                            f"WHERE {table}.rev <= EXCLUDED.rev"
                        )
                    break
                except asyncpg.CheckViolationError:
                    # No partition for a month this process took for made: the database is
                    # not the one it made them in (restored, recreated). Check them again.
                    if attempt == 2:
                        raise
                    partitions.forget()
        return len(rows)

    @_served
    async def document(self, kind: Kind, tenant: str, record_id: int) -> bytes | None:
        doc = await self.pool.fetchval(
            f"SELECT doc FROM {TABLES[kind]} WHERE tenant = $1 AND id = $2", tenant, record_id
        )
        return doc.encode() if doc is not None else None

    @_served
    async def documents(self, kind: Kind, tenant: str, ids: Sequence[int]) -> dict[int, bytes]:
        if not ids:
            return {}
        rows = await self.pool.fetch(
            f"SELECT id, doc FROM {TABLES[kind]} WHERE tenant = $1 AND id = ANY($2::bigint[])",
            tenant,
            list(ids),
        )
        return {row["id"]: row["doc"].encode() for row in rows}

    @_served
    async def history(self, kind: Kind, tenant: str, record_id: int) -> list[Any] | None:
        """A call's history entries (a chat's messages), oldest first; None if no such row."""
        raw = await self.pool.fetchval(
            f"SELECT history FROM {TABLES[kind]} WHERE tenant = $1 AND id = $2",
            tenant,
            record_id,
        )
        return orjson.loads(raw) if raw is not None else None

    @_served
    async def flags(self, tenant: str, call_id: int) -> dict[str, bool] | None:
        raw = await self.pool.fetchval(
            "SELECT flags FROM calls WHERE tenant = $1 AND id = $2", tenant, call_id
        )
        return orjson.loads(raw) if raw is not None else None

    @_served
    async def set_flags(
        self, tenant: str, call_id: int, changes: dict[str, bool]
    ) -> dict[str, bool] | None:
        """Customer flags of an archived call (a CRM learns them after the call): merged into
        the row's, the revision counted on; None if there is no such row."""
        raw = await self.pool.fetchval(
            "UPDATE calls SET flags = flags || $3::jsonb, rev = rev + 1 "
            "WHERE tenant = $1 AND id = $2 RETURNING flags",
            tenant,
            call_id,
            orjson.dumps(changes).decode(),
        )
        return orjson.loads(raw) if raw is not None else None

    @_served
    async def menus(self, tenant: str, call_ids: Sequence[int]) -> dict[int, int | None]:
        """The menu of each archived call of `call_ids` (a new call's parent may be one)."""
        if not call_ids:
            return {}
        rows = await self.pool.fetch(
            "SELECT id, menu_id FROM calls WHERE tenant = $1 AND id = ANY($2::bigint[])",
            tenant,
            list(call_ids),
        )
        return {row["id"]: row["menu_id"] for row in rows}

    @_served
    async def count(self, kind: Kind, tenant: str, query: ListQuery, visible: Visible) -> int:
        where, args = list_where(tenant, query, visible)
        return int(await self.pool.fetchval(f"SELECT count(*) FROM {TABLES[kind]} {where}", *args))

    @_served
    async def ids(
        self,
        kind: Kind,
        tenant: str,
        query: ListQuery,
        visible: Visible,
        limit: int,
    ) -> list[int]:
        """The first `limit` ids of the list in its order."""
        rows = await self._ordered("id", kind, tenant, query, visible, limit, None)
        return [row["id"] for row in rows]

    @_served
    async def batch(
        self,
        kind: Kind,
        tenant: str,
        query: ListQuery,
        visible: Visible,
        limit: int,
        after: int | None = None,
    ) -> list[tuple[int, bytes]]:
        """The next `limit` (id, object) of the list in its order, past `after`: an export
        reads its rows in these pages (keyset, so that no snapshot is held open)."""
        rows = await self._ordered("id, doc", kind, tenant, query, visible, limit, after)
        return [(row["id"], row["doc"].encode()) for row in rows]

    @_served
    async def calls_batch(
        self, tenant: str, query: ListQuery, visible: Visible, limit: int, after: int | None
    ) -> list[tuple[int, Stored]]:
        """`batch` of calls with each one's meta beside its object (a campaign's results need
        its number, its contact and its attempt, which the object does not say)."""
        rows = await self._ordered("id, doc, meta", "call", tenant, query, visible, limit, after)
        return [(row["id"], (row["doc"].encode(), row["meta"].encode())) for row in rows]

    @_served
    async def calls_stored(self, tenant: str, ids: Sequence[int]) -> dict[int, Stored]:
        """The object and meta of each archived call of `ids`."""
        if not ids:
            return {}
        rows = await self.pool.fetch(
            "SELECT id, doc, meta FROM calls WHERE tenant = $1 AND id = ANY($2::bigint[])",
            tenant,
            list(ids),
        )
        return {row["id"]: (row["doc"].encode(), row["meta"].encode()) for row in rows}

    async def _ordered(
        self,
        columns: str,
        kind: Kind,
        tenant: str,
        query: ListQuery,
        visible: Visible,
        limit: int,
        after: int | None,
    ) -> list[asyncpg.Record]:
        where, args = list_where(tenant, query, visible, after)
        direction = "DESC" if query.descending else "ASC"
        args.append(limit)
        return await self.pool.fetch(
            f"SELECT {columns} FROM {TABLES[kind]} {where} "
            f"ORDER BY id {direction} LIMIT ${len(args)}",
            *args,
        )


def list_where(
    tenant: str, query: ListQuery, visible: Visible, after: int | None = None
) -> tuple[str, list[Any]]:
    """The WHERE clause of a list's query and its arguments (every value a parameter)."""
    args: list[Any] = [tenant, visible.seq]
    clauses = ["tenant = $1", "seq <= $2"]

    def param(value: Any, cast: str = "") -> str:
        args.append(value)
        return f"${len(args)}{cast}"

    if visible.moving:
        clauses.append(f"id <> ALL({param(sorted(visible.moving), '::bigint[]')})")
    if query.status is not None:
        clauses.append(f"status = {param(query.status)}")
    if query.type is not None:
        clauses.append(f"kind = {param(query.type)}")
    if query.campaign_id is not None:
        clauses.append(f"campaign_id = {param(query.campaign_id)}")
    if query.created_from_ms is not None:
        clauses.append(f"created_at >= {param(_moment(query.created_from_ms))}")
    if query.created_to_ms is not None:
        clauses.append(f"created_at <= {param(_moment(query.created_to_ms))}")
    if after is not None:
        clauses.append(f"id {'<' if query.descending else '>'} {param(after)}")
    return "WHERE " + " AND ".join(clauses), args


def _moment(ms: int) -> datetime:
    return clock.from_ms(ms)
