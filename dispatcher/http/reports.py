"""GET /apps/api/v1/reports/calls: a tenant's calls counted and measured by hour or by day in
its zone, by menu and by agent (dispatcher/history/reports.py computes it); and the dashboard's
last seven days, which are the same report."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, time, timedelta
from typing import Any, cast, get_args
from zoneinfo import ZoneInfo

import asyncpg
from aiohttp import web

from dispatcher.directory.tenant import Tenant
from dispatcher.domain import clock
from dispatcher.domain.errors import InvalidRequest, ServiceUnavailable
from dispatcher.history.reports import LONGEST, ReportQuery, Unit, call_report
from dispatcher.http import exports, listing
from dispatcher.http.appkeys import DATABASE, stores_of
from dispatcher.http.auth import tenant_of
from dispatcher.http.responses import json_response
from dispatcher.store.records import ListQuery

routes = web.RouteTableDef()
BASE = "/apps/api/v1/reports"
# The range when created_at[from] is not given: this long before created_at[to] (or now).
DEFAULT_RANGE = timedelta(days=7)
GROUP_BY_MISSING = "group_by is required"
GROUP_BY_INVALID = "group_by must be hour or day"
_MS = timedelta(milliseconds=1)
# PostgreSQL gone, starting, or too slow (its statement timeout): the usual 503, as a refused
# connection is (http/errors.py), rather than a 500.
_UNAVAILABLE = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.QueryCanceledError,
)


@routes.get(BASE + "/calls")
async def calls_report(request: web.Request) -> web.Response:
    tenant = await tenant_of(request)
    query = report_query(request.query, clock.now())
    return json_response(await report(request, tenant, query))


def report_query(query: Mapping[str, str], now: datetime) -> ReportQuery:
    """The report's unit, filters and range from its query string (400 on any bad one). The
    range is the lists' created_at[from] / created_at[to], by default the 7 days up to now."""
    raw = query.get("group_by")
    if raw is None:
        raise InvalidRequest(GROUP_BY_MISSING)
    if raw not in get_args(Unit):
        raise InvalidRequest(GROUP_BY_INVALID)
    unit = cast(Unit, raw)
    filters = listing.filters(query, "call")
    to_ms = filters.created_to_ms
    if to_ms is None:
        to_ms = clock.to_ms(now)
    from_ms = filters.created_from_ms
    if from_ms is None:
        from_ms = max(to_ms - DEFAULT_RANGE // _MS, clock.to_ms(clock.EARLIEST))
    if to_ms < from_ms:
        raise InvalidRequest(exports.TO_BEFORE_FROM)  # the same words for the same range
    days = LONGEST[unit].days
    if to_ms - from_ms > LONGEST[unit] // _MS:
        raise InvalidRequest(
            f"created_at[from] and created_at[to] must be at most {days} days apart by {unit}"
        )
    return ReportQuery(unit, replace(filters, created_from_ms=from_ms, created_to_ms=to_ms))


def last_days(tenant: Tenant, now: datetime, days: int = 7) -> ReportQuery:
    """By day, from the start of the day `days - 1` days before today (in the tenant's zone)
    up to now: the dashboard's chart, today's bar growing through the day."""
    zone = ZoneInfo(tenant.doc.timezone)
    first = now.astimezone(zone).date() - timedelta(days=days - 1)
    since = datetime.combine(first, time(), tzinfo=zone)
    filters = ListQuery(created_from_ms=clock.to_ms(since), created_to_ms=clock.to_ms(now))
    return ReportQuery("day", filters)


async def report(request: web.Request, tenant: Tenant, query: ReportQuery) -> dict[str, Any]:
    """The report, from the history database and Redis (from Redis alone without a database:
    every call is there then)."""
    calls = stores_of(request, tenant).calls
    try:
        return await call_report(request.app[DATABASE], calls, tenant, query)
    except _UNAVAILABLE as exc:
        raise HistoryUnavailable("Service unavailable") from exc


class HistoryUnavailable(ServiceUnavailable):
    """The history database does not answer: retry, as when Redis does not."""

    headers = {"Retry-After": "1"}
