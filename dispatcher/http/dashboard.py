"""The dashboard's data, for an operator's session: the tenant's live picture, a call with its
history, and a stream that pushes the picture every second and soon after each call event."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable, Coroutine
from typing import Any

import orjson
import structlog
from aiohttp import web
from redis.exceptions import RedisError

from dispatcher.directory.tenant import Tenant
from dispatcher.domain import clock
from dispatcher.domain.campaigns import CAMPAIGN_NOT_FOUND
from dispatcher.domain.errors import NotFound
from dispatcher.domain.fields import integer
from dispatcher.http import campaigns, reports, sse
from dispatcher.http.appkeys import DIRECTORY, REDIS, SETTINGS, stores_of
from dispatcher.http.headers import cookie
from dispatcher.http.operators import COOKIE, COOKIE_PATH, operator_of, still_open
from dispatcher.http.responses import json_response
from dispatcher.store.board import open_sms_sessions, read_board, read_campaigns
from dispatcher.store.keys import TenantKeys
from dispatcher.store.stats import tenant_stats
from dispatcher.store.stream_leases import StreamCap

routes = web.RouteTableDef()
log = structlog.get_logger("dispatcher.http.dashboard")
CALL_NOT_FOUND = "Call not found"
TICK_S = 1.0  # a picture at least this often
SOONEST_S = 0.25  # and, after call events, no more often than this
MAX_CHANGED = 200  # call ids named as changed in one picture
SESSION_STREAMS = "Too many event streams open for this dashboard session (at most {})"


async def picture(request: web.Request, tenant: Tenant) -> dict[str, Any]:
    """The counts, the board, the newest campaigns and open SMS sessions, one read after the
    other: each is one pipelined round trip, and a picture then holds one pooled connection at
    a time, however many streams draw pictures (read side by side, four at once made the pool
    grow with the streams). `timezone` is the tenant's, the zone the page shows times in."""
    redis = request.app[REDIS]
    at_ms = clock.to_ms(clock.now())
    stats = await tenant_stats(redis, tenant, at_ms)
    board = await read_board(redis, tenant, at_ms)
    stores = stores_of(request, tenant)
    campaigns = await read_campaigns(stores)
    sessions = await open_sms_sessions(stores)
    return {
        **stats.as_dict(),
        **board.as_dict(),
        "timezone": tenant.doc.timezone,
        "campaigns": campaigns,
        "open_sms_sessions": sessions,
    }


@routes.get(COOKIE_PATH + "/api/snapshot")
async def snapshot(request: web.Request) -> web.Response:
    tenant = await operator_of(request)
    return json_response(await picture(request, tenant))


@routes.get(COOKIE_PATH + "/api/calls/{id}")
async def call_detail(request: web.Request) -> web.Response:
    tenant = await operator_of(request)
    call_id = integer(request.match_info["id"])
    calls = stores_of(request, tenant).calls
    found = await calls.detail(call_id) if call_id is not None else None
    if found is None:
        raise NotFound(CALL_NOT_FOUND)
    call, history = found
    return json_response({"call": call.model_dump(mode="json"), "history": history})


WEEK_MAX_AGE_S = 60.0  # the chart reloads every minute; its days change by the minute at most


class SharedReads:
    """A report each tenant's dashboards share: read at most once per `max_age_s` per tenant
    in this process (or per `per_read_time` times its last read's duration, if longer: a
    read's cost grows with what it reads), however many dashboards are open, and read once by
    concurrent askers (a week's report reads every live call of the week, a campaign's every
    call of the campaign)."""

    def __init__(self, max_age_s: float = WEEK_MAX_AGE_S, per_read_time: float = 0) -> None:
        self.max_age_s = max_age_s
        self.per_read_time = per_read_time
        # key -> (when the read started, the read, how long it took once done)
        self._read: dict[str, tuple[float, asyncio.Task[Any], list[float]]] = {}

    async def get(self, key: str, read: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
        now = time.monotonic()
        found = self._read.get(key)
        if found is None or self._stale(found, now) or _failed(found[1]):
            self._forget_stale(now)
            found = (now, asyncio.create_task(read()), [])
            found[1].add_done_callback(_timed(now, found[2]))
            self._read[key] = found
        return await asyncio.shield(found[1])

    def _stale(self, found: tuple[float, asyncio.Task[Any], list[float]], now: float) -> bool:
        at, task, took = found
        if not task.done() and self.per_read_time > 0:
            return False  # a slow read in flight is shared, however long it takes
        return now - at >= max(self.max_age_s, sum(took) * self.per_read_time)

    def _forget_stale(self, now: float) -> None:
        """Reads past their age that are done: the keys asked change (a dashboard shows the
        newest campaigns), and the old ones' answers would be kept for good."""
        for key, found in list(self._read.items()):
            if self._stale(found, now) and found[1].done():
                del self._read[key]


def _timed(started: float, took: list[float]) -> Callable[[asyncio.Task[Any]], None]:
    """Notes how long a read took; its error is retrieved (asked again, not logged as lost)."""

    def done(task: asyncio.Task[Any]) -> None:
        took.append(time.monotonic() - started)
        if not task.cancelled():
            task.exception()

    return done


def _failed(task: asyncio.Task[Any]) -> bool:
    return task.done() and (task.cancelled() or task.exception() is not None)


WEEKS: web.AppKey[SharedReads] = web.AppKey("weeks", SharedReads)
# A campaign's report reads every call of the campaign: the dashboards of a tenant share one
# read of it every few seconds, or every twenty times as long as it took (dashboards left open
# on a campaign of half a million calls spend at most a twentieth of the time reading it).
CAMPAIGN_REPORT_MAX_AGE_S = 5.0
CAMPAIGN_REPORT_PER_READ_TIME = 20.0
CAMPAIGN_REPORTS: web.AppKey[SharedReads] = web.AppKey("campaign_reports", SharedReads)


@routes.get(COOKIE_PATH + "/api/week")
async def week(request: web.Request) -> web.Response:
    """The chart of the last seven days: GET /reports/calls by day, from the start of the
    sixth day before today in the tenant's zone (http/reports.py), shared by the tenant's
    dashboards for a minute."""
    tenant = await operator_of(request)
    period = reports.last_days(tenant, clock.now())
    body = await request.app[WEEKS].get(
        tenant.subdomain, lambda: reports.report(request, tenant, period)
    )
    return json_response(body)


@routes.get(COOKIE_PATH + "/api/campaigns/{id}/report")
async def campaign_report(request: web.Request) -> web.Response:
    """A campaign row's outcomes, redials and held calls: GET /campaigns/:id/report, shared
    by the tenant's dashboards for a few seconds."""
    tenant = await operator_of(request)
    campaign_id = integer(request.match_info["id"])
    stores = stores_of(request, tenant)
    if campaign_id is None or await stores.campaigns.basics(campaign_id) is None:
        raise NotFound(CAMPAIGN_NOT_FOUND)
    size = request.app[SETTINGS].export_batch_size
    body = await request.app[CAMPAIGN_REPORTS].get(
        f"{tenant.subdomain}:{campaign_id}", lambda: campaigns.report(stores, campaign_id, size)
    )
    return json_response(body)


@routes.get(COOKIE_PATH + "/events")
async def events(request: web.Request) -> web.StreamResponse:
    """`snapshot` events: the picture plus `changed`, the ids of the calls announced since the
    last one (null: too many to name); `signed_out` when the session ends (logout, expiry, a
    new directory)."""
    tenant = await operator_of(request)
    keys = TenantKeys(tenant.subdomain)
    caps = [_session_cap(request, keys), sse.tenant_cap(request, keys)]
    async with sse.subscribe(request, [keys.events], caps) as stream:
        try:
            await _push_pictures(request, stream, tenant)
        except (RedisError, ConnectionError):  # the stream ends; the browser reconnects
            log.warning("dashboard stream ended: Redis is unavailable", exc_info=True)
    return stream.response


def _session_cap(request: web.Request, keys: TenantKeys) -> StreamCap:
    # Named by a digest of the cookie, as the session itself is (store/operator_sessions.py).
    session = hashlib.sha256(cookie(request, COOKIE).encode()).hexdigest()
    limit = request.app[SETTINGS].streams_per_session
    return StreamCap(keys.session_streams(session), limit, SESSION_STREAMS.format(limit))


async def _push_pictures(request: web.Request, stream: sse.EventStream, tenant: Tenant) -> None:
    loop = asyncio.get_running_loop()
    changed = Changed()
    last = -TICK_S
    while stream.open:
        due = last + (SOONEST_S if changed else TICK_S)
        message = await stream.receive(max(0.0, due - loop.time()))
        if message is not None:
            changed.note(message)
        if not stream.open or loop.time() < due:
            continue
        if not await still_open(request, tenant):
            await stream.send("signed_out", b"{}")
            return
        tenant = await request.app[DIRECTORY].tenant(tenant.subdomain) or tenant
        shown = {**await picture(request, tenant), "changed": changed.ids()}
        await stream.send("snapshot", orjson.dumps(shown))
        changed = Changed()
        last = loop.time()


class Changed:
    """What was announced since the last picture: the calls by id, and whether anything was
    (agents' statuses and offers are announced too)."""

    def __init__(self) -> None:
        self._ids: set[int] = set()
        self._overflow = False
        self._any = False

    def __bool__(self) -> bool:
        return self._any

    def note(self, message: bytes) -> None:
        self._any = True
        event = orjson.loads(message)
        call = event.get("call") if isinstance(event, dict) else None
        if isinstance(call, dict) and isinstance(call.get("id"), int):
            self._ids.add(call["id"])
            self._overflow |= len(self._ids) > MAX_CHANGED

    def ids(self) -> list[int] | None:
        return None if self._overflow else sorted(self._ids)
