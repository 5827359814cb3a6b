"""GET /apps/api/v1/reports/calls against a real Redis and a real PostgreSQL: the exact answer
for a known set of calls, the same while they are live, while they move and once archived (and
from Redis alone on a server without a database); another tenant's calls, of the same ids,
never counted; buckets of a tenant's zone across a change of its clocks; and every bad input's
exact 400."""

from __future__ import annotations

import asyncio
import copy
import statistics
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from dispatcher.app import create_app
from dispatcher.directory.tenant import Tenant
from dispatcher.domain import clock, lifecycle
from dispatcher.domain.objects import CallObject
from dispatcher.domain.statuses import FailReason
from dispatcher.history.archive import Archive
from dispatcher.http.dashboard import WEEKS
from dispatcher.metrics import Metrics
from dispatcher.settings import Settings
from dispatcher.store.archiving import HotRecords, Moving
from dispatcher.store.calls import Change, Snapshot
from dispatcher.store.directory import DirectoryCache
from dispatcher.store.scripts import Scripts
from dispatcher.store.stores import Stores
from tests.conftest import ADMIN_TOKEN, basic, demo_document, load_directory
from tests.dispatcher.http.test_dashboard import login
from tests.dispatcher.http.test_openapi import conforming
from workers.archiver import Archiver

API = "/apps/api/v1"
REPORT = f"{API}/reports/calls"
LOCK_STAR, PHONE_SALES = 9, 51
ADMIN, SMITH = 1, 2
DEMO = ("demo", "demo-token")
OTHER = ("other", "other-token")
LOS_ANGELES = ZoneInfo("America/Los_Angeles")  # the demo tenant's zone
TO_BEFORE_FROM = "created_at[to] must not be before created_at[from]"
BY_HOUR = "created_at[from] and created_at[to] must be at most 31 days apart by hour"
BY_DAY = "created_at[from] and created_at[to] must be at most 366 days apart by day"
NONE = {"calls": 0, "mean": None, "p50": None, "p90": None}


def _spread(calls: int, mean: float, p50: float, p90: float) -> dict[str, Any]:
    return {"calls": calls, "mean": mean, "p50": p50, "p90": p90}


def _figures(
    calls: int,
    statuses: dict[str, int],
    reasons: dict[str, int] | None = None,
    wait: dict[str, Any] = NONE,
    talk: dict[str, Any] = NONE,
) -> dict[str, Any]:
    return {
        "calls": calls,
        "statuses": statuses,
        "fail_reasons": reasons or {},
        "wait_duration": wait,
        "call_duration": talk,
    }


EMPTY = _figures(0, {})
# The known set (`_known_calls`): c1 and c2 queued at Lock Star, taken by Admin after 10 s and
# by Smith after 30 s, talked 60 s and 120 s; c3 queued at Phone Sales, abandoned after 40 s;
# c4 an outbound call of Admin's, talked 30 s; c5 still queued at Lock Star; c6 scheduled there.
TOTALS = _figures(
    6,
    {"failed": 1, "finished": 3, "queued": 1, "scheduled": 1},
    {"eu_abandoned": 1},
    _spread(3, 26.667, 30.0, 38.0),
    _spread(3, 70.0, 60.0, 108.0),
)
MENUS = [
    {
        "menu_id": LOCK_STAR,
        "name": "Lock Star",
        **_figures(
            4,
            {"finished": 2, "queued": 1, "scheduled": 1},
            wait=_spread(2, 20.0, 20.0, 28.0),
            talk=_spread(2, 90.0, 90.0, 114.0),
        ),
    },
    {
        "menu_id": PHONE_SALES,
        "name": "Phone Sales",
        **_figures(1, {"failed": 1}, {"eu_abandoned": 1}, _spread(1, 40.0, 40.0, 40.0)),
    },
    {"menu_id": None, "name": None, **_figures(1, {"finished": 1}, talk=_spread(1, 30, 30, 30))},
]
AGENTS = [
    {
        "agent_id": ADMIN,
        "name": "Admin UJET",
        **_figures(
            2,
            {"finished": 2},
            wait=_spread(1, 10.0, 10.0, 10.0),
            talk=_spread(2, 45.0, 45.0, 57.0),
        ),
    },
    {
        "agent_id": SMITH,
        "name": "Agent Smith",
        **_figures(
            1,
            {"finished": 1},
            wait=_spread(1, 30.0, 30.0, 30.0),
            talk=_spread(1, 120.0, 120.0, 120.0),
        ),
    },
    {
        "agent_id": None,
        "name": None,
        **_figures(
            3,
            {"failed": 1, "queued": 1, "scheduled": 1},
            {"eu_abandoned": 1},
            _spread(1, 40.0, 40.0, 40.0),
        ),
    },
]


@pytest.fixture
async def tenants(redis: Redis) -> None:
    """The demo tenant, and `other`: the same directory, in New York's zone."""
    document = demo_document()
    other = copy.deepcopy(document["tenants"][0])
    other.update(subdomain=OTHER[0], api_tokens=[OTHER[1]], timezone="America/New_York")
    document["tenants"].append(other)
    await load_directory(redis, document)


@pytest.fixture
async def client(
    redis_url: str, database_url: str, redis: Redis, tenants: None
) -> AsyncIterator[TestClient[Any, Any]]:
    """The API with its history database."""
    settings = Settings(redis_url=redis_url, database_url=database_url, admin_token=ADMIN_TOKEN)  # type: ignore[arg-type]
    async with TestClient(TestServer(create_app(settings))) as test_client:
        yield test_client


@pytest.fixture
async def redis_only(
    redis_url: str, redis: Redis, tenants: None
) -> AsyncIterator[TestClient[Any, Any]]:
    """The API of a server run without a history database (Redis holds every call)."""
    settings = Settings(redis_url=redis_url, admin_token=ADMIN_TOKEN)  # type: ignore[arg-type]
    async with TestClient(TestServer(create_app(settings))) as test_client:
        yield test_client


async def _tenant(redis: Redis, subdomain: str = "demo") -> Tenant:
    tenant = await DirectoryCache(redis).tenant(subdomain)
    assert tenant is not None
    return tenant


async def _create(client: TestClient[Any, Any], body: dict[str, Any], who: tuple[str, str]) -> int:
    response = await client.post(f"{API}/calls", json=body, headers=basic(*who))
    assert response.status == 201, await response.text()
    return int((await response.json())["id"])


async def _move(
    redis: Redis, tenant: Tenant, call_id: int, *steps: Callable[[CallObject], CallObject]
) -> None:
    """The call taken through `steps` (the workers' transitions, at the times they name)."""
    calls = Stores.of(redis, Scripts.register(redis), tenant).calls
    for step in steps:

        def decide(current: Snapshot, step: Callable[[CallObject], CallObject] = step) -> Change:
            return Change(step(current.call), announce=False)

        assert await calls.apply(call_id, decide) is not None


def _after(stamp: str | None, seconds: float) -> datetime:
    """`seconds` after one of a call's times: the step's wait or talk, whenever it runs."""
    moment = clock.parse_iso(stamp)
    assert moment is not None
    return moment + timedelta(seconds=seconds)


async def _known_calls(
    client: TestClient[Any, Any], redis: Redis, who: tuple[str, str] = DEMO
) -> list[int]:
    """The known set (see TOTALS), created through the API and moved on at chosen times (the
    waits and talks counted from the times each step names), in `who`'s tenant."""
    tenant = await _tenant(redis, who[0])
    admin, smith = tenant.agents_by_id[ADMIN], tenant.agents_by_id[SMITH]
    inbound = {"call_type": "Voice Inbound (API)", "end_user_number": "+1 205-123-4567"}
    outbound = {
        "call_type": "Voice Outbound (API)",
        "agent_email": admin.email,
        "end_user_number": "+1 628-555-0142",
    }
    due = clock.iso(clock.now() + timedelta(days=1))
    scheduled = {**inbound, "call_type": "Voice Scheduled (API)", "scheduled_at": due}
    ids = [
        await _create(client, {**inbound, "menu_id": LOCK_STAR}, who),
        await _create(client, {**inbound, "menu_id": LOCK_STAR}, who),
        await _create(client, {**inbound, "menu_id": PHONE_SALES}, who),
        await _create(client, outbound, who),
        await _create(client, {**inbound, "menu_id": LOCK_STAR}, who),
        await _create(client, {**scheduled, "menu_id": LOCK_STAR}, who),
    ]
    c1, c2, c3, c4 = ids[:4]
    await _move(
        redis,
        tenant,
        c1,
        lambda c: lifecycle.assigned(c, admin, 900, _after(c.queued_at, 10)),
        lifecycle.connecting,
        lambda c: lifecycle.connected(c, _after(c.assigned_at, 2)),
        lambda c: lifecycle.finished(c, _after(c.connected_at, 60), "disconnected_by_agent"),
    )
    await _move(
        redis,
        tenant,
        c2,
        lambda c: lifecycle.assigned(c, smith, 901, _after(c.queued_at, 30)),
        lifecycle.connecting,
        lambda c: lifecycle.connected(c, _after(c.assigned_at, 0)),
        lambda c: lifecycle.finished(c, _after(c.connected_at, 120), "disconnected_by_end_user"),
    )
    abandoned = FailReason.EU_ABANDONED
    await _move(
        redis, tenant, c3, lambda c: lifecycle.failed(c, _after(c.queued_at, 40), abandoned)
    )
    await _move(
        redis,
        tenant,
        c4,
        lifecycle.connecting,
        lambda c: lifecycle.connected(c, _after(c.created_at, 5)),
        lambda c: lifecycle.finished(c, _after(c.connected_at, 30), "disconnected_by_agent"),
    )
    return ids


async def _archive(redis: Redis, pool: asyncpg.Pool) -> int:
    """One tick of the archiver with no hot retention: every ended call leaves Redis."""
    settings = Settings(hot_retention_s=0)
    archiver = Archiver(redis, Scripts.register(redis), Archive(pool), settings, Metrics())
    return (await archiver.tick(asyncio.get_running_loop().time() + 30)).released


async def _clear_of_an_hour_end() -> None:
    """Waits out the last seconds of an hour: the known set is then made within one hour."""
    left = 3600 - clock.now().timestamp() % 3600
    if left < 10:
        await asyncio.sleep(left + 0.1)


def _hour(moment: datetime) -> datetime:
    """The start of `moment`'s hour (in UTC, as in any zone of whole hours: the demo's)."""
    return moment.replace(minute=0, second=0, microsecond=0)


async def _report(client: TestClient[Any, Any], **query: str) -> Any:
    """The demo tenant's report (its answer conforming to openapi.yaml)."""
    return await _report_of(client, DEMO, query)


async def _report_of(
    client: TestClient[Any, Any], who: tuple[str, str], query: dict[str, str]
) -> Any:
    response = await client.get(REPORT, params=query, headers=basic(*who))
    assert response.status == 200, await response.text()
    return await conforming(response, "/apps/api/v1/reports/calls")


def _expected(since: datetime, until: datetime, made: datetime) -> dict[str, Any]:
    """The known set's report by hour over since..until (two hours: the calls in `made`'s)."""
    hours = [_hour(since), _hour(since) + timedelta(hours=1)]
    return {
        "group_by": "hour",
        "time_zone": "America/Los_Angeles",
        "from": clock.iso(since),
        "to": clock.iso(until),
        "totals": TOTALS,
        "buckets": [
            {"start": clock.iso(hour), **(TOTALS if hour == _hour(made) else EMPTY)}
            for hour in hours
        ],
        "menus": MENUS,
        "agents": AGENTS,
    }


async def test_the_same_report_live_moving_and_archived(
    client: TestClient[Any, Any],
    redis_only: TestClient[Any, Any],
    redis: Redis,
    pg: asyncpg.Pool,
) -> None:
    await _clear_of_an_hour_end()
    made = clock.now()
    await _known_calls(client, redis)
    since, until = made - timedelta(minutes=30), made + timedelta(minutes=30)
    query = {
        "group_by": "hour",
        "created_at[from]": clock.iso(since),
        "created_at[to]": clock.iso(until),
    }
    expected = _expected(since, until, made)
    assert await _report(client, **query) == expected
    # A server without its database reckons the same from Redis alone.
    assert await _report(redis_only, **query) == expected

    # Moving: copied into PostgreSQL, not yet out of Redis (the archiving set names them).
    hot = HotRecords(redis, Scripts.register(redis), "demo")
    cutoff = clock.to_ms(clock.now())
    seq, copied = await hot.begin("call", await hot.due("call", cutoff, 100), cutoff)
    assert len(copied) == 4
    await Archive(pg).store("call", "demo", seq, copied)
    assert await _report(client, **query) == expected
    assert await hot.release("call", copied) == 4

    assert await pg.fetchval("SELECT count(*) FROM calls WHERE tenant = 'demo'") == 4
    assert await _report(client, **query) == expected
    assert await _archive(redis, pg) == 0  # nothing else had ended


async def test_the_archiver_moves_them_and_the_report_stays(
    client: TestClient[Any, Any], redis: Redis, pg: asyncpg.Pool
) -> None:
    await _clear_of_an_hour_end()
    made = clock.now()
    ids = await _known_calls(client, redis)
    since, until = made - timedelta(minutes=30), made + timedelta(minutes=30)
    query = {
        "group_by": "hour",
        "created_at[from]": clock.iso(since),
        "created_at[to]": clock.iso(until),
    }
    before = await _report(client, **query)
    assert await _archive(redis, pg) == 4
    archived = await pg.fetch("SELECT id FROM calls WHERE tenant = 'demo' ORDER BY id")
    assert [row["id"] for row in archived] == ids[:4]
    assert await _report(client, **query) == before == _expected(since, until, made)


async def test_another_tenants_calls_of_the_same_ids_never_count(
    client: TestClient[Any, Any], redis: Redis, pg: asyncpg.Pool
) -> None:
    await _clear_of_an_hour_end()
    made = clock.now()
    demo = await _known_calls(client, redis)
    # The other tenant: the same ids, live and archived, calls the demo tenant never made.
    other = await _known_calls(client, redis, OTHER)
    assert other == demo
    tenant = await _tenant(redis, OTHER[0])
    extra = await _create(
        client,
        {
            "call_type": "Voice Inbound (API)",
            "menu_id": LOCK_STAR,
            "end_user_number": "+1 205-555-0100",
        },
        OTHER,
    )
    expired = FailReason.EXPIRED
    await _move(
        redis, tenant, extra, lambda c: lifecycle.failed(c, _after(c.queued_at, 500), expired)
    )
    since, until = made - timedelta(minutes=30), made + timedelta(minutes=30)
    query = {
        "group_by": "hour",
        "created_at[from]": clock.iso(since),
        "created_at[to]": clock.iso(until),
    }
    expected = _expected(since, until, made)
    assert await _report(client, **query) == expected
    assert await _archive(redis, pg) == 9
    assert await _report(client, **query) == expected
    theirs = await _report_of(client, OTHER, query)
    assert theirs["time_zone"] == "America/New_York"
    assert theirs["totals"]["calls"] == 7
    assert theirs["totals"]["fail_reasons"] == {"eu_abandoned": 1, "expired": 1}


async def test_the_filters_are_the_lists(
    client: TestClient[Any, Any], redis: Redis, pg: asyncpg.Pool
) -> None:
    await _known_calls(client, redis)
    await _archive(redis, pg)
    finished = await _report(client, group_by="day", status="finished")
    assert finished["totals"] == _figures(
        3, {"finished": 3}, wait=_spread(2, 20.0, 20.0, 28.0), talk=_spread(3, 70.0, 60.0, 108.0)
    )
    outbound = await _report(client, group_by="day", call_type="OutboundCall")
    assert outbound["totals"] == _figures(1, {"finished": 1}, talk=_spread(1, 30, 30, 30))
    assert [menu["menu_id"] for menu in outbound["menus"]] == [None]
    queued = await _report(client, group_by="day", status="queued", call_type="IncomingCall")
    assert queued["totals"] == _figures(1, {"queued": 1})
    # The lists count the same calls.
    for status, total in (("finished", "3"), ("queued", "1")):
        listed = await client.get(f"{API}/calls", params={"status": status}, headers=basic())
        assert listed.headers["Total"] == total


async def test_the_percentiles_are_pythons(
    client: TestClient[Any, Any], redis_only: TestClient[Any, Any], redis: Redis, pg: asyncpg.Pool
) -> None:
    waits = [3, 7, 8, 12, 15, 21, 22, 30, 41, 55, 60, 61, 90, 120, 300, 301]
    made = clock.now()
    query = {
        "group_by": "day",
        "created_at[from]": clock.iso(made - timedelta(hours=1)),
        "created_at[to]": clock.iso(made + timedelta(hours=1)),
    }
    tenant = await _tenant(redis)
    admin = tenant.agents_by_id[ADMIN]
    inbound = {
        "call_type": "Voice Inbound (API)",
        "menu_id": LOCK_STAR,
        "end_user_number": "+1 205-123-4567",
    }
    for wait in waits:
        call_id = await _create(client, inbound, DEMO)
        await _move(
            redis,
            tenant,
            call_id,
            lambda c, w=wait: lifecycle.failed(c, _after(c.queued_at, w), FailReason.EU_ABANDONED),
        )
    # One more, taken by Admin: waits of the assigned and of the failed count alike.
    call_id = await _create(client, inbound, DEMO)
    await _move(
        redis, tenant, call_id, lambda c: lifecycle.assigned(c, admin, 900, _after(c.queued_at, 17))
    )
    waits.append(17)
    deciles = [round(cut, 3) for cut in statistics.quantiles(waits, n=10, method="inclusive")]
    wanted = _spread(len(waits), round(statistics.fmean(waits), 3), deciles[4], deciles[8])
    assert wanted == _spread(17, 68.412, 30.0, 192.0)
    live = await _report(client, **query)
    assert live["totals"]["wait_duration"] == wanted
    assert await _report(redis_only, **query) == live
    assert await _archive(redis, pg) == len(waits) - 1  # the assigned one is under way
    mixed = await _report(client, **query)
    assert mixed["totals"]["wait_duration"] == wanted
    assert mixed == live


def _archived(call_id: int, created: str, status: str = "finished") -> Moving:
    """An ended call as the archiver reads it, created at `created` (no time the API allows)."""
    call = CallObject(
        id=call_id,
        call_type="Voice Inbound (API)",
        status=status,
        created_at=created,
        queued_at=created,
        ends_at=created,
        fail_reason="eu_abandoned" if status == "failed" else "nothing",
    )
    doc = call.model_dump_json()
    return Moving("call", call_id, 1, doc, orjson.loads(doc), "{}", {}, [], {})


async def test_buckets_follow_the_tenants_clocks_across_their_change(
    client: TestClient[Any, Any], pg: asyncpg.Pool
) -> None:
    """New York's clocks went back at 2 a.m. (06:00Z) on 1 November 2026: that day lasts 25
    hours, and the hour from 1 a.m. comes twice (05:00Z and 06:00Z), two buckets."""
    created = [
        "2026-11-01T03:59:59.999Z",  # 23:59:59 EDT on 31 October
        "2026-11-01T04:00:00.000Z",  # midnight EDT: 1 November begins
        "2026-11-01T05:30:00.000Z",  # 1:30 EDT
        "2026-11-01T06:30:00.000Z",  # 1:30 EST, the second 1:30
        "2026-11-02T04:59:59.999Z",  # 23:59:59 EST: still 1 November
        "2026-11-02T05:00:00.000Z",  # midnight EST: 2 November begins
    ]
    rows = [_archived(i + 1, at, "failed" if i % 2 else "finished") for i, at in enumerate(created)]
    await Archive(pg).store("call", OTHER[0], 0, rows)
    two_days = {
        "created_at[from]": "2026-10-31T12:00:00Z",
        "created_at[to]": "2026-11-02T12:00:00Z",
    }
    days = await _report_of(client, OTHER, {"group_by": "day", **two_days})
    assert [(b["start"], b["calls"]) for b in days["buckets"]] == [
        ("2026-10-31T04:00:00.000Z", 1),
        ("2026-11-01T04:00:00.000Z", 4),
        ("2026-11-02T05:00:00.000Z", 1),
    ]
    assert days["buckets"][1]["statuses"] == {"failed": 2, "finished": 2}
    night = {"created_at[from]": "2026-11-01T04:30:00Z", "created_at[to]": "2026-11-01T07:00:00Z"}
    hours = await _report_of(client, OTHER, {"group_by": "hour", **night})
    assert [(b["start"], b["calls"]) for b in hours["buckets"]] == [
        ("2026-11-01T04:00:00.000Z", 0),
        ("2026-11-01T05:00:00.000Z", 1),
        ("2026-11-01T06:00:00.000Z", 1),
        ("2026-11-01T07:00:00.000Z", 0),
    ]
    # The demo tenant (Los Angeles) has none of them.
    assert (await _report(client, group_by="day", **two_days))["totals"]["calls"] == 0


async def test_the_range_defaults_to_the_last_seven_days(client: TestClient[Any, Any]) -> None:
    before = clock.now()
    answer = await _report(client, group_by="day")
    to = clock.parse_iso(answer["to"])
    assert to is not None and before - timedelta(seconds=1) <= to <= clock.now()
    assert clock.parse_iso(answer["from"]) == to - timedelta(days=7)
    assert len(answer["buckets"]) == 8  # today's, and the 7 days before
    assert answer["totals"] == EMPTY and answer["menus"] == [] and answer["agents"] == []
    given = await _report(client, group_by="day", **{"created_at[to]": "2026-06-08T10:00:00Z"})
    assert (given["from"], given["to"]) == ("2026-06-01T10:00:00.000Z", "2026-06-08T10:00:00.000Z")
    since = await _report(client, group_by="hour", **{"created_at[from]": clock.iso(before)})
    assert since["from"] == clock.iso(before)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({}, "group_by is required"),
        ({"group_by": ""}, "group_by must be hour or day"),
        ({"group_by": "week"}, "group_by must be hour or day"),
        ({"group_by": "DAY"}, "group_by must be hour or day"),
        (
            {"group_by": "day", "created_at[from]": "yesterday"},
            "created_at[from] is not well formed",
        ),
        ({"group_by": "day", "created_at[to]": "2026-13-01"}, "created_at[to] is not well formed"),
        (
            {
                "group_by": "day",
                "created_at[from]": "2026-06-02T00:00:00Z",
                "created_at[to]": "2026-06-01T00:00:00Z",
            },
            TO_BEFORE_FROM,
        ),
        (
            {"group_by": "day", "created_at[from]": "2999-01-01T00:00:00Z"},
            TO_BEFORE_FROM,
        ),
        (
            {
                "group_by": "hour",
                "created_at[from]": "2026-01-01T00:00:00Z",
                "created_at[to]": "2026-02-01T00:00:00.001Z",
            },
            BY_HOUR,
        ),
        (
            {
                "group_by": "hour",
                "created_at[from]": "2025-01-01T00:00:00Z",
                "created_at[to]": "2026-01-01T00:00:00Z",
            },
            BY_HOUR,
        ),
        (
            {
                "group_by": "day",
                "created_at[from]": "2025-01-01T00:00:00Z",
                "created_at[to]": "2026-01-02T00:00:00.001Z",
            },
            BY_DAY,
        ),
        (
            {
                "group_by": "day",
                "created_at[from]": "0001-01-02T00:00:00Z",
                "created_at[to]": "9999-12-30T00:00:00Z",
            },
            BY_DAY,
        ),
        ({"group_by": "day", "status": "ringing"}, "status is not valid"),
        ({"group_by": "day", "call_type": "Voice"}, "call_type is not valid"),
    ],
)
async def test_bad_input_is_400_with_its_message(
    client: TestClient[Any, Any], query: dict[str, str], message: str
) -> None:
    response = await client.get(REPORT, params=query, headers=basic())
    assert response.status == 400
    assert await conforming(response, "/apps/api/v1/reports/calls") == {"message": message}


async def test_the_longest_ranges_are_answered(client: TestClient[Any, Any]) -> None:
    hours = await _report(
        client,
        group_by="hour",
        **{"created_at[from]": "2026-01-01T00:00:00Z", "created_at[to]": "2026-02-01T00:00:00Z"},
    )
    assert len(hours["buckets"]) == 31 * 24 + 1
    days = await _report(
        client,
        group_by="day",
        **{"created_at[from]": "2025-01-01T08:00:00Z", "created_at[to]": "2026-01-02T08:00:00Z"},
    )
    assert len(days["buckets"]) == 367
    # As early as a time may be, the default range stops there.
    first = await _report(client, group_by="day", **{"created_at[to]": "0001-01-03T00:00:00Z"})
    assert first["from"] == "0001-01-02T00:00:00.000Z"


async def test_an_agents_token_is_refused(client: TestClient[Any, Any]) -> None:
    agent = basic("demo/2", "demo-agent-2")
    response = await client.get(REPORT, params={"group_by": "day"}, headers=agent)
    assert response.status == 403
    assert await response.json() == {
        "message": "This route needs the tenant's API token, not an agent's"
    }


async def test_the_dashboard_reads_the_last_seven_days(
    client: TestClient[Any, Any], redis: Redis, pg: asyncpg.Pool
) -> None:
    await _known_calls(client, redis)
    await _archive(redis, pg)
    await login(client, {"subdomain": "demo", "token": "demo-token"})
    response = await client.get("/dashboard/api/week")
    assert response.status == 200
    week = await response.json()
    assert week["group_by"] == "day" and len(week["buckets"]) == 7
    assert week["totals"] == TOTALS
    assert week["buckets"][-1] == {"start": week["buckets"][-1]["start"], **TOTALS}
    today = datetime.now(LOS_ANGELES).replace(hour=0, minute=0, second=0, microsecond=0)
    assert week["buckets"][-1]["start"] == clock.iso(today)
    assert week["from"] == clock.iso(today - timedelta(days=6))


async def test_the_dashboards_of_a_tenant_share_one_read_of_the_week_a_minute(
    client: TestClient[Any, Any], redis: Redis, pg: asyncpg.Pool
) -> None:
    await _known_calls(client, redis)
    await login(client, {"subdomain": "demo", "token": "demo-token"})
    first = await client.get("/dashboard/api/week")
    assert first.status == 200
    inbound = {
        "call_type": "Voice Inbound (API)",
        "menu_id": 51,
        "end_user_number": "+1 205-555-0100",
    }
    created = await client.post("/apps/api/v1/calls", json=inbound, headers=basic())
    assert created.status == 201  # one call more: a fresh read would count it
    again = await asyncio.gather(*(client.get("/dashboard/api/week") for _ in range(3)))
    assert [await response.json() for response in again] == [await first.json()] * 3
    client.app[WEEKS].max_age_s = 0  # the minute has passed
    later = await (await client.get("/dashboard/api/week")).json()
    assert later["totals"]["calls"] == (await first.json())["totals"]["calls"] + 1


async def test_a_database_that_does_not_answer_is_503(
    redis_url: str, redis: Redis, tenants: None
) -> None:
    nowhere = "postgresql://nobody@127.0.0.1:9/none"  # a closed port
    settings = Settings(redis_url=redis_url, database_url=nowhere)
    async with TestClient(TestServer(create_app(settings))) as test_client:
        response = await test_client.get(REPORT, params={"group_by": "day"}, headers=basic())
        assert response.status == 503
        assert await conforming(response, "/apps/api/v1/reports/calls") == {
            "message": "Service unavailable"
        }
