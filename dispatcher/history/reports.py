"""Call reports: how many calls a tenant had over a range and how they went (statuses, fail
reasons, wait and talk), by hour or day in the tenant's zone, by menu and by agent.

Computed in PostgreSQL, in one statement: the archived rows a list would show (`list_where`,
the Visible rule) UNION ALL the live calls of the range, read from Redis and sent as one set
of arrays, so that every call of the range counts once whether it is live, archived or moving
between the two while the report is read. A server without its history database keeps every
call in Redis: there the statement's rows are reckoned in Python from the live calls alone
(`reckoned`, held to the statement's answers by the tests)."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

import asyncpg
import orjson

from dispatcher.directory.tenant import Tenant
from dispatcher.domain import clock
from dispatcher.history.archive import Facts, facts_of, list_where
from dispatcher.store.calls import CallStore
from dispatcher.store.records import ListQuery, Visible

Row = Mapping[str, Any]  # one row of the statement's answer
Unit = Literal["hour", "day"]
# The longest range a report of each unit covers, and the step that meets every one of its
# buckets (an hour can last 30 minutes where a zone moves its clocks by half an hour; a day
# lasts 23 hours at least).
LONGEST: dict[Unit, timedelta] = {"hour": timedelta(days=31), "day": timedelta(days=366)}
_STEP: dict[Unit, timedelta] = {"hour": timedelta(minutes=15), "day": timedelta(hours=1)}
PERCENTILES = (0.5, 0.9)

# The counted calls (archived, then live), each tagged with its bucket: its creation time
# truncated in the tenant's zone (PostgreSQL's date_trunc with a zone keeps each instant's own
# offset below a day, so the two 1 a.m. hours of a night the clocks go back stay two buckets).
# A fail reason is counted for failed calls only (the others say "nothing").
_TAGGED = """
WITH counted AS (
    SELECT created_at, status, fail_reason, menu_id, agent_id, wait_s, duration_s
    FROM calls {where}
    UNION ALL
    SELECT * FROM unnest({live})
        AS live (created_at, status, fail_reason, menu_id, agent_id, wait_s, duration_s)
), tagged AS (
    SELECT date_trunc({unit}, created_at, {zone}) AS bucket, menu_id, agent_id, status,
        CASE WHEN status = 'failed' THEN fail_reason END AS reason, wait_s, duration_s
    FROM counted
)
"""
_SCOPE = """CASE WHEN GROUPING(bucket) = 0 THEN 'bucket' WHEN GROUPING(menu_id) = 0 THEN 'menu'
    WHEN GROUPING(agent_id) = 0 THEN 'agent' ELSE 'totals' END"""
# Per scope (the whole range, a bucket, a menu, an agent): its figures, then its counts by
# status and by fail reason; and the buckets of the range, those without a call among them.
_REPORT = (
    _TAGGED
    + f"""
SELECT {_SCOPE} AS scope, NULL::text AS facet, bucket, menu_id, agent_id, NULL::text AS value,
    count(*) AS calls,
    count(wait_s) AS waits, avg(wait_s) AS wait_mean,
    percentile_cont({{percentiles}}::float8[]) WITHIN GROUP (ORDER BY wait_s) AS wait_at,
    count(duration_s) AS talks, avg(duration_s) AS talk_mean,
    percentile_cont({{percentiles}}::float8[]) WITHIN GROUP (ORDER BY duration_s) AS talk_at
FROM tagged GROUP BY GROUPING SETS ((), (bucket), (menu_id), (agent_id))
UNION ALL
SELECT {_SCOPE}, CASE WHEN GROUPING(status) = 0 THEN 'status' ELSE 'reason' END,
    bucket, menu_id, agent_id, coalesce(status, reason), count(*),
    NULL, NULL, NULL, NULL, NULL, NULL
FROM tagged GROUP BY GROUPING SETS (
    (status), (reason), (bucket, status), (bucket, reason), (menu_id, status),
    (menu_id, reason), (agent_id, status), (agent_id, reason))
HAVING GROUPING(reason) = 1 OR reason IS NOT NULL
UNION ALL
SELECT 'slot', NULL, slot, NULL, NULL, NULL, 0, NULL, NULL, NULL, NULL, NULL, NULL
FROM (
    SELECT DISTINCT date_trunc({{unit}}, t, {{zone}}) AS slot
    FROM (SELECT generate_series({{since}}, {{until}}, {{step}}) UNION SELECT {{until}}) AS s (t)
) AS slots
"""
)


@dataclass(frozen=True)
class ReportQuery:
    """A report's question: by what unit, over which calls (`filters`: status, call type and
    the creation range, both its ends given)."""

    group_by: Unit
    filters: ListQuery

    @property
    def since(self) -> datetime:
        assert self.filters.created_from_ms is not None
        return clock.from_ms(self.filters.created_from_ms)

    @property
    def until(self) -> datetime:
        assert self.filters.created_to_ms is not None
        return clock.from_ms(self.filters.created_to_ms)


async def call_report(
    pool: asyncpg.Pool | None, calls: CallStore, tenant: Tenant, query: ReportQuery
) -> dict[str, Any]:
    """The report's answer (docs/api.md, "Reports"); `pool` None: no history database."""
    visible, live = await calls.live(query.filters, _picker(query.filters))
    if pool is None:
        rows = reckoned(live, query, ZoneInfo(tenant.doc.timezone))
    else:
        rows = await computed(pool, tenant, query, visible, live)
    return _answer(tenant, query, rows)


async def computed(
    pool: asyncpg.Pool, tenant: Tenant, query: ReportQuery, visible: Visible, live: list[Facts]
) -> list[Row]:
    """The statement's rows, from PostgreSQL: the archived calls `visible` lets through
    and the `live` ones."""
    where, args = list_where(tenant.subdomain, query.filters, visible)

    def param(value: Any, cast: str = "") -> str:
        args.append(value)
        return f"${len(args)}{cast}"

    casts = ("timestamptz", "text", "text", "bigint", "bigint", "float8", "float8")
    arrays = zip(_columns(live), casts, strict=True)
    sql = _REPORT.format(
        where=where,
        live=", ".join(param(values, f"::{cast}[]") for values, cast in arrays),
        unit=param(query.group_by, "::text"),
        zone=param(tenant.doc.timezone, "::text"),
        percentiles=param(list(PERCENTILES)),
        since=param(query.since, "::timestamptz"),
        until=param(query.until, "::timestamptz"),
        step=param(_STEP[query.group_by], "::interval"),
    )
    return [dict(row) for row in await pool.fetch(sql, *args)]


def reckoned(live: Sequence[Facts], query: ReportQuery, zone: ZoneInfo) -> list[Row]:
    """The statement's rows reckoned in Python over `live`, the same rows with the same values
    (date_trunc's buckets, percentile_cont's interpolation)."""
    scopes: dict[tuple[str, Any], list[Facts]] = defaultdict(list)
    scopes["totals", None] = []  # as the statement's (): a row over no call at all
    for facts in live:
        scopes["totals", None].append(facts)
        scopes["bucket", bucket_of(facts.created_at, query.group_by, zone)].append(facts)
        scopes["menu", facts.menu_id].append(facts)
        scopes["agent", facts.agent_id].append(facts)
    rows: list[Row] = []
    for (scope, key), members in scopes.items():
        waits = [facts.wait_s for facts in members if facts.wait_s is not None]
        talks = [facts.duration_s for facts in members if facts.duration_s is not None]
        rows.append(
            {
                **_keyed(scope, key, None, None),
                "calls": len(members),
                "waits": len(waits),
                "wait_mean": sum(waits) / len(waits) if waits else None,
                "wait_at": percentiles(waits),
                "talks": len(talks),
                "talk_mean": sum(talks) / len(talks) if talks else None,
                "talk_at": percentiles(talks),
            }
        )
        statuses = Counter(facts.status for facts in members)
        reasons = Counter(facts.fail_reason for facts in members if facts.status == "failed")
        for facet, counts in (("status", statuses), ("reason", reasons)):
            rows += [
                {**_keyed(scope, key, facet, value), "calls": n} for value, n in counts.items()
            ]
    slots = {bucket_of(moment, query.group_by, zone) for moment in _steps(query)}
    rows += [{**_keyed("slot", slot, None, None), "calls": 0} for slot in slots]
    return rows


def _keyed(scope: str, key: Any, facet: str | None, value: str | None) -> dict[str, Any]:
    return {
        "scope": scope,
        "facet": facet,
        "bucket": key if scope in ("bucket", "slot") else None,
        "menu_id": key if scope == "menu" else None,
        "agent_id": key if scope == "agent" else None,
        "value": value,
    }


def _steps(query: ReportQuery) -> Iterator[datetime]:
    """The range's instants a step apart, and its end: one in each of its buckets."""
    moment, step = query.since, _STEP[query.group_by]
    while moment < query.until:
        yield moment
        moment += step
    yield query.until


def bucket_of(moment: datetime, unit: Unit, zone: ZoneInfo) -> datetime:
    """When `moment`'s hour or day began in `zone`, as PostgreSQL's date_trunc(unit, moment,
    zone) says: an hour keeps the moment's own offset; a day's local midnight is read again in
    the zone, where a midnight the clocks skip takes the offset before the change, and one they
    repeat the offset after it."""
    local = moment.astimezone(zone)
    if unit == "hour":
        return moment - timedelta(
            minutes=local.minute, seconds=local.second, microseconds=local.microsecond
        )
    midnight = datetime.combine(local.date(), datetime.min.time(), tzinfo=zone)
    skipped = midnight.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != midnight.replace(
        tzinfo=None
    )
    return midnight.replace(fold=0 if skipped else 1).astimezone(UTC)


def percentiles(values: Sequence[float]) -> list[float] | None:
    """PERCENTILES of `values` as percentile_cont takes them: between the two nearest of the
    sorted values, in proportion (None of no value)."""
    if not values:
        return None
    ordered = sorted(values)
    found = []
    for share in PERCENTILES:
        at = share * (len(ordered) - 1)
        low, high = ordered[math.floor(at)], ordered[math.ceil(at)]
        found.append(low + (high - low) * (at - math.floor(at)))
    return found


def _picker(filters: ListQuery) -> Callable[[bytes], Facts | None]:
    """What a report keeps of a live call's object: its facts, if it passes the filters."""

    def pick(doc: bytes) -> Facts | None:
        facts = facts_of("call", orjson.loads(doc))
        if filters.status is not None and facts.status != filters.status:
            return None
        if filters.type is not None and facts.kind != filters.type:
            return None
        return facts

    return pick


def _columns(live: Sequence[Facts]) -> list[list[Any]]:
    """The live calls' facts as the columns of the report's arrays."""
    return [
        [facts.created_at for facts in live],
        [facts.status for facts in live],
        [facts.fail_reason for facts in live],
        [facts.menu_id for facts in live],
        [facts.agent_id for facts in live],
        [facts.wait_s for facts in live],
        [facts.duration_s for facts in live],
    ]


@dataclass
class Figures:
    """One scope's figures as they are read from the statement's rows."""

    calls: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    fail_reasons: dict[str, int] = field(default_factory=dict)
    wait: dict[str, Any] = field(default_factory=lambda: _spread(0, None, None))
    talk: dict[str, Any] = field(default_factory=lambda: _spread(0, None, None))

    def read(self, row: Row) -> None:
        if row["facet"] == "status":
            self.statuses[row["value"]] = row["calls"]
        elif row["facet"] == "reason":
            self.fail_reasons[row["value"]] = row["calls"]
        else:
            self.calls = row["calls"]
            self.wait = _spread(row["waits"], row["wait_mean"], row["wait_at"])
            self.talk = _spread(row["talks"], row["talk_mean"], row["talk_at"])

    def as_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "statuses": dict(sorted(self.statuses.items())),
            "fail_reasons": dict(sorted(self.fail_reasons.items())),
            "wait_duration": self.wait,
            "call_duration": self.talk,
        }


def _spread(count: int, mean: float | None, at: list[float] | None) -> dict[str, Any]:
    """Mean and percentiles of a duration, in seconds to the millisecond (null: no call)."""
    p50, p90 = at if at is not None else (None, None)
    return {"calls": count, "mean": _ms(mean), "p50": _ms(p50), "p90": _ms(p90)}


def _ms(seconds: float | None) -> float | None:
    return round(seconds, 3) if seconds is not None else None


def _answer(tenant: Tenant, query: ReportQuery, rows: Sequence[Row]) -> dict[str, Any]:
    totals = Figures()
    buckets: dict[datetime, Figures] = {}
    menus: dict[int | None, Figures] = {}
    agents: dict[int | None, Figures] = {}
    for row in rows:
        scope = row["scope"]
        if scope == "slot":
            buckets.setdefault(row["bucket"], Figures())
        elif scope == "bucket":
            buckets.setdefault(row["bucket"], Figures()).read(row)
        elif scope == "menu":
            menus.setdefault(row["menu_id"], Figures()).read(row)
        elif scope == "agent":
            agents.setdefault(row["agent_id"], Figures()).read(row)
        else:
            totals.read(row)
    return {
        "group_by": query.group_by,
        "time_zone": tenant.doc.timezone,
        "from": clock.iso(query.since),
        "to": clock.iso(query.until),
        "totals": totals.as_dict(),
        "buckets": [
            {"start": clock.iso(start), **figures.as_dict()}
            for start, figures in sorted(buckets.items())
        ],
        "menus": [
            {"menu_id": menu_id, "name": _menu_name(tenant, menu_id), **figures.as_dict()}
            for menu_id, figures in sorted(menus.items(), key=_nulls_last)
        ],
        "agents": [
            {"agent_id": agent_id, "name": _agent_name(tenant, agent_id), **figures.as_dict()}
            for agent_id, figures in sorted(agents.items(), key=_nulls_last)
        ],
    }


def _nulls_last(item: tuple[int | None, Figures]) -> tuple[bool, int]:
    return item[0] is None, item[0] or 0


def _menu_name(tenant: Tenant, menu_id: int | None) -> str | None:
    menu = tenant.menus_by_id.get(menu_id) if menu_id is not None else None
    return menu.name if menu is not None else None


def _agent_name(tenant: Tenant, agent_id: int | None) -> str | None:
    agent = tenant.agents_by_id.get(agent_id) if agent_id is not None else None
    return agent.name if agent is not None else None
