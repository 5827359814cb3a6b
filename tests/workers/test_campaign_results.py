"""A campaign's results with real workers, Redis and PostgreSQL: its calls carry its id and are
listed by it (live, archived, both), its report counts each contact's final outcome, its
export has one row a contact, the same after the calls moved to PostgreSQL, and it reads
`completed` once every call has ended.

The redials are the workers' own (workers/redials.py); a machine's answer is written as
answering machine detection records it (`eu_no_answer`, `meta.answered_by` machine)."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import asyncpg
import orjson
import pytest
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from dispatcher.directory.tenant import Tenant
from dispatcher.domain import clock, lifecycle
from dispatcher.domain.campaigns import CANCELLED_DETAILS
from dispatcher.domain.compliance import ON_DNC_LIST
from dispatcher.domain.statuses import FailReason
from dispatcher.history.archive import Archive
from dispatcher.metrics import Metrics
from dispatcher.settings import Settings
from dispatcher.store import jobs
from dispatcher.store.calls import Change, Snapshot
from dispatcher.store.campaigns import REDIAL_LEASE_MS
from dispatcher.store.directory import DirectoryCache
from dispatcher.store.scripts import Scripts
from dispatcher.store.stores import Stores
from tests.conftest import ADMIN_TOKEN, basic
from tests.dispatcher.http.test_openapi import conforming
from tests.polling import eventually
from tests.workers.conftest import (
    API,
    CALLS,
    TENANT,
    get_call,
    get_json,
    inbound_call,
    load_tenant,
    offers_of,
    post_json,
    wait_for_job,
)
from workers.archiver import Archiver
from workers.redials import redial_call

CAMPAIGNS = f"{API}/campaigns"
LOCK_STAR = 9  # mobile menu, groups [[1, 2], [4]]
PATIENT = {"cascade_interval_s": 0.2, "offer_timeout_s": 5, "max_wait_s": 60}
STILL = {"cascade_interval_s": 10, "offer_timeout_s": 10, "max_wait_s": 60}
# The simulated carrier's answers by number (the default: answered).
RULES = [
    {"prefix": "+120555502", "outcome": "busy"},
    {"prefix": "+120555503", "outcome": "no_answer"},
    {"prefix": "+120555504", "outcome": "wrong_number"},
    {"prefix": "+120555509", "outcome": "failed"},
    {"prefix": "+120555508", "outcome": "machine"},
]
# A carrier's failure is redialled an hour later, a machine a second later, twice at most; a
# busy or unanswered call is not.
POLICY = {"max_attempts": 2, "after_s": {"voip_conn_general": 3600, "machine": 1}}
AN_HOUR_LATER = {"max_attempts": 2, "after_s": {"machine": 3600}}
REPORT, EXPORT = CAMPAIGNS + "/{id}/report", CAMPAIGNS + "/{id}/export"
HANG_UP = {"action": "hang_up"}
NOT_FOUND = {"message": "Campaign not found"}
INVALID = {"message": "campaign_id is not valid"}


@pytest.fixture
def settings(redis_url: str, database_url: str) -> Settings:
    """The app reads archived calls from the test's own database; calls are due for
    archiving as soon as they end (the test's archiver moves them when told)."""
    return Settings(
        redis_url=redis_url,
        admin_token=ADMIN_TOKEN,  # type: ignore[arg-type]
        database_url=database_url,
        hot_retention_s=0,
    )


@pytest.fixture
async def archiver(redis: Redis, pg: asyncpg.Pool, settings: Settings) -> Archiver:
    return Archiver(redis, Scripts.register(redis), Archive(pg), settings, Metrics())


def due_in(seconds: float) -> str:
    return clock.iso(clock.now() + timedelta(seconds=seconds))


async def create_campaign(
    client: TestClient[Any, Any], name: str = "results", policy: Any = None, **options: Any
) -> int:
    """A campaign on Lock Star at 100 calls a second; `policy` its redial policy."""
    body = {"name": name, "menu_id": LOCK_STAR, "pacing": {"calls_per_second": 100}}
    created = await post_json(client, CAMPAIGNS, {**body, "redial": policy, **options}, status=201)
    return int(created["id"])


async def join(
    client: TestClient[Any, Any], campaign_id: int, calls: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    path = f"{CAMPAIGNS}/{campaign_id}/calls/batch"
    answer = await post_json(client, path, {"calls": calls})
    assert [r["status"] for r in answer["results"]] == [201] * len(calls), answer
    return [r["body"] for r in answer["results"]]


def callback(number: str, at: str, **more: Any) -> dict[str, Any]:
    return {"end_user_number": number, "scheduled_at": at, **more}


async def stores_of(redis: Redis, pg: asyncpg.Pool | None = None) -> Stores:
    tenant: Tenant | None = await DirectoryCache(redis, 0).tenant("demo")
    assert tenant is not None
    return Stores.of(redis, Scripts.register(redis), tenant, Archive(pg) if pg else None)


async def fail_as(
    stores: Stores, call_id: int, reason: FailReason, answered_by: str | None = None
) -> None:
    """Ends a call failed with `reason`, as the carrier's result does (`answered_by`: as
    answering machine detection records who answered)."""

    def decide(current: Snapshot) -> Change:
        meta = current.meta.model_copy(update={"answered_by": answered_by})
        return Change(lifecycle.failed(current.call, clock.now(), reason), meta=meta)

    assert await stores.calls.apply(call_id, decide) is not None


async def redialled(
    client: TestClient[Any, Any], redis: Redis, call_id: int, child: bool = True
) -> dict[str, Any] | None:
    """Once the workers' redial of a failed call has run: its child (None with `child`
    False: the redial was refused, the call stays failed)."""
    await wait_for_job(redis, jobs.JobSpec(jobs.REDIAL_CALL, "demo", call_id, 0).job_id)
    parent = await get_call(client, call_id)
    assert parent["status"] == ("recovered" if child else "failed"), parent
    children, _ = await listed(client, "status=scheduled&per=1000")
    found = [await get_call(client, i) for i in children]
    mine = [call for call in found if call["parent_id"] == call_id]
    assert len(mine) == (1 if child else 0), mine
    return mine[0] if mine else None


@contextlib.asynccontextmanager
async def accepting(client: TestClient[Any, Any]) -> AsyncIterator[None]:
    """Lock Star's agents take every offer they get, until stopped."""

    async def accept_forever() -> None:
        while True:
            for agent_id in (1, 2, 4):
                for offer in await offers_of(client, agent_id):
                    accept = f"{API}/offers/{offer['id']}/accept"
                    (await client.post(accept, headers=basic())).release()
            await asyncio.sleep(0.02)

    task = asyncio.create_task(accept_forever())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def ended(client: TestClient[Any, Any], call_id: int, timeout: float = 15) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        call = await get_call(client, call_id)
        return call if call["ends_at"] is not None else None

    return await eventually(probe, f"call {call_id} ended", timeout)


async def listed(client: TestClient[Any, Any], query: str) -> tuple[list[int], dict[str, str]]:
    response = await client.get(f"{CALLS}?{query}", headers=basic())
    assert response.status == 200, await response.text()
    headers = {name: response.headers[name] for name in ("Total", "Per-Page")}
    return [call["id"] for call in await response.json()], headers


async def test_campaign_calls_carry_their_campaign_id_and_other_calls_do_not(
    client: TestClient[Any, Any], redis: Redis
) -> None:
    await load_tenant(redis, menus={LOCK_STAR: STILL})
    campaign_id = await create_campaign(client)
    [joined] = await join(client, campaign_id, [callback("+1 205-555-0100", due_in(3600))])
    assert joined["campaign_id"] == campaign_id
    assert (await get_call(client, joined["id"]))["campaign_id"] == campaign_id
    scheduled = {
        "call_type": "Voice Scheduled (API)",
        "menu_id": LOCK_STAR,
        "end_user_number": "+1 205-555-0101",
        "scheduled_at": due_in(3600),
    }
    alone = await post_json(client, CALLS, scheduled, status=201)
    inbound = await inbound_call(client, LOCK_STAR)
    for call in (alone, inbound, await get_call(client, alone["id"])):
        assert "campaign_id" not in call
    finished = await post_json(client, f"{CALLS}/{joined['id']}/finish")
    assert (finished["status"], finished["campaign_id"]) == ("failed", campaign_id)


async def test_the_list_filters_by_campaign_live_archived_and_both(
    client: TestClient[Any, Any], redis: Redis, archiver: Archiver
) -> None:
    await load_tenant(redis, menus={LOCK_STAR: STILL})
    first = await create_campaign(client, "first")
    second = await create_campaign(client, "second")
    later = due_in(3600)
    mine = [
        c["id"]
        for c in await join(
            client, first, [callback(f"+1 205-555-01{i:02d}", later) for i in range(4)]
        )
    ]
    theirs = [c["id"] for c in await join(client, second, [callback("+1 205-555-0200", later)])]
    other = (await inbound_call(client, LOCK_STAR))["id"]
    for call_id in mine[:2]:
        await post_json(client, f"{CALLS}/{call_id}/finish")
    everything = [*mine, *theirs, other]

    async def lists() -> dict[str, Any]:
        return {
            query: await listed(client, query)
            for query in (
                f"campaign_id={first}",
                f"campaign_id={first}&sort_direction=asc",
                f"campaign_id={first}&status=failed",
                f"campaign_id={first}&status=scheduled&call_type=ScheduledCall",
                f"campaign_id={first}&per=3&page=2",
                f"campaign_id={second}",
                "campaign_id=99",
                "per=100",
            )
        }

    live = await lists()
    report = f"{API}/reports/calls?group_by=day&campaign_id={first}"
    totals = (await get_json(client, report))["totals"]
    assert (totals["calls"], totals["statuses"]) == (4, {"failed": 2, "scheduled": 2})
    assert live == {
        f"campaign_id={first}": (mine[::-1], {"Total": "4", "Per-Page": "100"}),
        f"campaign_id={first}&sort_direction=asc": (mine, {"Total": "4", "Per-Page": "100"}),
        f"campaign_id={first}&status=failed": (mine[1::-1], {"Total": "2", "Per-Page": "100"}),
        f"campaign_id={first}&status=scheduled&call_type=ScheduledCall": (
            mine[:1:-1],
            {"Total": "2", "Per-Page": "100"},
        ),
        f"campaign_id={first}&per=3&page=2": ([mine[0]], {"Total": "4", "Per-Page": "3"}),
        f"campaign_id={second}": (theirs, {"Total": "1", "Per-Page": "100"}),
        "campaign_id=99": ([], {"Total": "0", "Per-Page": "100"}),
        "per=100": (everything[::-1], {"Total": "6", "Per-Page": "100"}),
    }
    done = await archiver.tick(deadline=asyncio.get_running_loop().time() + 30)
    assert done.moved == 2  # the two ended calls: the others live on in Redis
    assert await redis.zrange(TENANT.campaign_calls(first), 0, -1) == [
        f"{call_id:015d}".encode() for call_id in mine[2:]
    ]
    assert await lists() == live  # half archived, half live: listed the same
    assert (await get_json(client, report))["totals"] == totals  # and reported the same
    for bad in ("x", "0", "-1", "1.5", "", "9" * 19):
        response = await client.get(f"{CALLS}?campaign_id={bad}", headers=basic())
        assert (response.status, await conforming(response, CALLS)) == (400, INVALID)
        export = f"{CALLS}/export?created_at[from]=2026-01-01T00:00:00Z&campaign_id={bad}"
        response = await client.get(export, headers=basic())
        assert (response.status, await response.json()) == (400, INVALID)
    exported = await client.get(
        f"{CALLS}/export?format=ndjson&created_at[from]=2026-01-01T00:00:00Z&campaign_id={first}",
        headers=basic(),
    )
    assert [orjson.loads(line)["id"] for line in (await exported.read()).splitlines()] == mine[::-1]


async def test_the_report_and_export_say_each_contacts_outcome_live_and_archived(
    client: TestClient[Any, Any], redis: Redis, worker: Any, archiver: Archiver, pg: asyncpg.Pool
) -> None:
    await load_tenant(
        redis,
        settings={"simulator": {"answer_after_s": 0.05, "talk_time_s": 0.1, "rules": RULES}},
        menus={LOCK_STAR: PATIENT},
    )
    stores = await stores_of(redis)
    campaign_id = await create_campaign(client, policy=POLICY, answering_machine=HANG_UP)
    soon, later = due_in(0.3), due_in(3600)
    numbers = {
        "answered": "+12055550100",
        "busy": "+12055550200",
        "not_picked_up": "+12055550300",
        "failed": "+12055550400",  # a wrong number: never redialled
        "dnc": "+12055550500",
        "redial_scheduled": "+12055550900",  # the carrier fails it: redialled in an hour
        "max_attempts_reached": "+12055550800",  # a machine, then a machine again
        "pending": "+12055550600",
        "cancelled": "+12055550700",
        "machine": "+12055550801",
    }
    placed = ["answered", "busy", "not_picked_up", "failed", "dnc", "redial_scheduled"]
    placed += ["max_attempts_reached"]
    waiting = ["pending", "cancelled", "machine"]
    calls = [callback(numbers[name], soon) for name in placed]
    calls += [callback(numbers[name], later) for name in waiting]
    first = dict(zip([*placed, *waiting], await join(client, campaign_id, calls), strict=True))
    listed_on_dnc = [{"phone_number": numbers[name]} for name in ("dnc", "machine")]
    dnc = await post_json(client, f"{API}/outbound_dialer/dnc", {"contacts": listed_on_dnc})
    assert [entry["status"] for entry in dnc] == ["created", "created"]
    async with accepting(client):
        for name in placed:
            first[name] = await ended(client, first[name]["id"])
        # A machine twice: redialled once (a second later), then no more (two attempts at most).
        last = await redialled(client, redis, first["max_attempts_reached"]["id"])
        assert last is not None
        last = await ended(client, last["id"])
    assert (last["fail_reason"], last["answered_by"]) == ("eu_no_answer", "machine")
    assert first["answered"]["status"] == "finished"
    dnc_failure = (first["dnc"]["fail_reason"], first["dnc"]["fail_details"])
    assert dnc_failure == ("ag_canceled", ON_DNC_LIST)
    scheduled = await redialled(client, redis, first["redial_scheduled"]["id"])
    cancelled = await post_json(client, f"{CALLS}/{first['cancelled']['id']}/finish")
    assert (cancelled["fail_reason"], cancelled["fail_details"]) == ("ag_canceled", None)
    # A machine (as detection records it), its number now on the DNC list: not redialled.
    await fail_as(stores, first["machine"]["id"], FailReason.EU_NO_ANSWER, answered_by="machine")
    assert await redialled(client, redis, first["machine"]["id"], child=False) is None
    assert scheduled is not None

    path = f"{CAMPAIGNS}/{campaign_id}/report"
    report = await conforming(await client.get(path, headers=basic()), REPORT)
    answered = first["answered"]
    wait = clock.parse_iso(answered["assigned_at"]) - clock.parse_iso(answered["queued_at"])  # type: ignore[operator]
    talk = clock.parse_iso(answered["ends_at"]) - clock.parse_iso(answered["connected_at"])  # type: ignore[operator]
    assert report == {
        "campaign_id": campaign_id,
        "contacts": 10,
        "calls": 12,
        "redials": 2,
        "held": 0,
        "outcomes": {
            "answered": 1,
            "not_picked_up": 1,
            "busy": 1,
            "machine": 1,
            "dnc": 1,
            "failed": 1,
            "redial_scheduled": 1,
            "max_attempts_reached": 1,
            "pending": 1,
            "cancelled": 1,
        },
        "attempts": {"distribution": {"1": 8, "2": 2}, "mean": 1.2},
        "contact_rate": 0.1,
        "wait_duration": {"calls": 1, "mean": round(wait.total_seconds(), 3)},
        "call_duration": {"calls": 1, "mean": round(talk.total_seconds(), 3)},
    }

    latest = {name: await get_call(client, call["id"]) for name, call in first.items()}
    latest["redial_scheduled"] = await get_call(client, scheduled["id"])
    latest["max_attempts_reached"] = await get_call(client, last["id"])
    attempts = {"redial_scheduled": 2, "max_attempts_reached": 2}
    recorded = {"machine": "machine"}  # in its meta: fail_as writes no object key
    rows = [
        [
            str(first[name]["id"]),
            "'" + numbers[name],  # a leading + would start a spreadsheet's formula
            str(first[name]["end_user"]["id"]),
            "",
            str(latest[name]["id"]),
            name,
            str(attempts.get(name, 1)),
            latest[name]["status"],
            latest[name]["fail_reason"],
            latest[name]["fail_details"] or "",
            latest[name].get("answered_by") or recorded.get(name, ""),
            first[name]["created_at"],
            latest[name]["scheduled_at"],
            latest[name]["queued_at"] or "",
            latest[name]["connected_at"] or "",
            latest[name]["ends_at"] or "",
        ]
        for name in sorted(first, key=lambda name: first[name]["id"])
    ]
    header = [
        "first_call_id", "end_user_number", "end_user_id", "out_contact_id", "latest_call_id",
        "outcome", "attempts", "latest_status", "fail_reason", "fail_details", "answered_by",
        "first_created_at", "latest_scheduled_at", "latest_queued_at", "latest_connected_at",
        "latest_ended_at",
    ]  # fmt: skip
    text = io.StringIO()
    csv.writer(text).writerows([header, *rows])
    export = await client.get(f"{CAMPAIGNS}/{campaign_id}/export", headers=basic())
    assert export.status == 200
    await conforming(export, EXPORT)
    assert export.headers["Content-Type"] == "text/csv; charset=utf-8"
    disposition = export.headers["Content-Disposition"]
    assert disposition == f'attachment; filename="campaign_{campaign_id}.csv"'
    assert export.headers["Cache-Control"] == "no-store"
    assert await export.text() == text.getvalue()
    assert latest["dnc"]["fail_details"] == ON_DNC_LIST != CANCELLED_DETAILS

    done = await archiver.tick(deadline=asyncio.get_running_loop().time() + 30)
    assert done.moved == 10  # all but the redial still scheduled and the pending first call
    assert await pg.fetchval("SELECT count(*) FROM calls WHERE campaign_id = $1", campaign_id) == 10
    assert await redis.zcard(TENANT.campaign_calls(campaign_id)) == 2
    assert await get_json(client, f"{CAMPAIGNS}/{campaign_id}/report") == report
    again = await client.get(f"{CAMPAIGNS}/{campaign_id}/export", headers=basic())
    assert (again.status, await again.text()) == (200, text.getvalue())
    every = sorted({call["id"] for call in [*first.values(), *latest.values()]}, reverse=True)
    assert len(every) == 12
    ids, headers = await listed(client, f"campaign_id={campaign_id}&per=5&page=3")
    assert (ids, headers) == (every[10:], {"Total": "12", "Per-Page": "5"})  # live and archived


async def test_a_campaign_completes_once_every_call_has_ended_and_not_while_a_redial_is_due(
    client: TestClient[Any, Any], redis: Redis, worker: Any
) -> None:
    await load_tenant(redis, menus={LOCK_STAR: STILL})
    stores = await stores_of(redis)
    campaign_id = await create_campaign(client, policy=AN_HOUR_LATER)
    path = f"{CAMPAIGNS}/{campaign_id}"
    assert (await get_json(client, path))["state"] == "running"  # no call yet
    calls = await join(
        client, campaign_id, [callback(f"+1 205-555-01{i:02d}", due_in(0.2)) for i in range(2)]
    )

    async def fired() -> dict[str, Any] | None:
        read = await get_json(client, path)
        return read if read["progress"]["fired"] == 2 else None

    read = await eventually(fired, "both calls fired")
    assert (read["state"], read["counts"]) == ("running", {"queued": 2})  # nobody took them yet
    await post_json(client, f"{CALLS}/{calls[0]['id']}/finish")
    assert (await get_json(client, path))["state"] == "running"
    await post_json(client, f"{CALLS}/{calls[1]['id']}/finish")
    completed = await get_json(client, path)
    assert (completed["state"], completed["counts"]) == ("completed", {"failed": 2})
    assert [c["state"] for c in await get_json(client, CAMPAIGNS)] == ["completed"]

    # A later call fails as a machine: its redial, due in an hour, keeps the campaign running.
    [late] = await join(client, campaign_id, [callback("+1 205-555-0199", due_in(3600))])
    await fail_as(stores, late["id"], FailReason.EU_NO_ANSWER, answered_by="machine")
    child = await redialled(client, redis, late["id"])
    assert child is not None
    due = await get_json(client, path)
    assert (due["state"], due["counts"]) == (
        "running",
        {"failed": 2, "recovered": 1, "scheduled": 1},
    )
    await fail_as(stores, child["id"], FailReason.EU_NO_ANSWER, answered_by="machine")
    assert (await get_json(client, path))["state"] == "completed"  # two attempts: no more
    assert (await post_json(client, f"{path}/pause"))["state"] == "paused"  # says so, ended or not
    assert (await post_json(client, f"{path}/resume"))["state"] == "completed"


async def test_a_failed_call_whose_redial_is_being_made_keeps_its_campaign_running(
    client: TestClient[Any, Any], redis: Redis, job_context: dict[str, Any]
) -> None:
    """Between the failure and its redial's job (run here by hand) the campaign has no live
    call, and still reads running: the failure's own write noted the redial being made. One
    whose job never ends counts for REDIAL_LEASE_MS at most."""
    await load_tenant(redis, menus={LOCK_STAR: STILL})
    stores = await stores_of(redis)
    campaign_id = await create_campaign(client, policy=AN_HOUR_LATER)
    path, redialling = f"{CAMPAIGNS}/{campaign_id}", TENANT.campaign_redialling(campaign_id)
    [call] = await join(client, campaign_id, [callback("+1 205-555-0199", due_in(3600))])
    await fail_as(stores, call["id"], FailReason.EU_NO_ANSWER, answered_by="machine")
    read = await get_json(client, path)
    assert (read["state"], read["counts"]) == ("running", {"failed": 1})
    assert (
        await redial_call(job_context, "demo", call["id"]) == f"redial {call['id'] + 1} in 3600 s"
    )
    read = await get_json(client, path)
    assert (read["state"], read["counts"]) == ("running", {"recovered": 1, "scheduled": 1})
    assert await redis.zcard(redialling) == 0
    await fail_as(stores, call["id"] + 1, FailReason.EU_NO_ANSWER, answered_by="machine")
    assert (await get_json(client, path))["state"] == "completed"  # its last attempt: no redial
    assert await redis.zcard(redialling) == 0

    [other] = await join(client, campaign_id, [callback("+1 205-555-0198", due_in(3600))])
    await fail_as(stores, other["id"], FailReason.EU_NO_ANSWER, answered_by="machine")
    assert (await get_json(client, path))["state"] == "running"
    abandoned = clock.to_ms(clock.now()) - REDIAL_LEASE_MS - 1
    await redis.zadd(redialling, {str(other["id"]): abandoned})
    assert (await get_json(client, path))["state"] == "completed"


async def test_unknown_campaigns_answer_404_on_the_results_routes(
    client: TestClient[Any, Any], redis: Redis
) -> None:
    await load_tenant(redis)
    for path in ("99", "x", "-1"):
        for route in ("report", "export"):
            response = await client.get(f"{CAMPAIGNS}/{path}/{route}", headers=basic())
            template = REPORT if route == "report" else EXPORT
            assert (response.status, await conforming(response, template)) == (404, NOT_FOUND)
    campaign_id = await create_campaign(client)
    read = await client.get(f"{CAMPAIGNS}/{campaign_id}/report", headers=basic())
    report = await conforming(read, REPORT)
    assert report == {
        "campaign_id": campaign_id,
        "contacts": 0,
        "calls": 0,
        "redials": 0,
        "held": 0,
        "outcomes": {
            "answered": 0,
            "not_picked_up": 0,
            "busy": 0,
            "machine": 0,
            "dnc": 0,
            "failed": 0,
            "redial_scheduled": 0,
            "max_attempts_reached": 0,
            "pending": 0,
            "cancelled": 0,
        },
        "attempts": {"distribution": {}, "mean": None},
        "contact_rate": None,
        "wait_duration": {"calls": 0, "mean": None},
        "call_duration": {"calls": 0, "mean": None},
    }
    export = await client.get(f"{CAMPAIGNS}/{campaign_id}/export", headers=basic())
    assert export.status == 200
    assert (await export.text()).startswith("first_call_id,end_user_number,")
    assert (await export.text()).count("\r\n") == 1
