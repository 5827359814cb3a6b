"""Carrier failover with real workers and Redis: a tenant listing Twilio (the local fake) then the
simulated carrier. A dial Twilio fails at its own end (a 5xx, a timeout, a refused connection)
moves the call to switching and the simulated carrier places it; an end user's busy or no answer,
or a refusal the request caused, does not switch."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient
from arq import Worker
from redis.asyncio import Redis

from tests.polling import eventually
from tests.ports import free_port
from tests.scrape import value
from tests.twilio_fake import FakeTwilio
from tests.workers.carriers.conftest import StartWorker, dialled, twilio_settings
from tests.workers.carriers.test_twilio import NO_CONTENT, queued_jobs
from tests.workers.conftest import (
    TENANT,
    CallEvents,
    get_call,
    held_calls,
    load_tenant,
    outbound_call,
    wait_for_status,
)
from workers.connecting import carrier_result, connect_call, hangup_call
from workers.settings import shutdown, startup

TWILIO_FIRST = {"carrier": "twilio", "carriers": ["twilio", "simulated"]}
SIMULATED_FIRST = {"carrier": "simulated", "carriers": ["simulated", "twilio"]}
# outbound_call()'s number, which the simulated carrier cannot reach under this rule.
UNREACHABLE = {"prefix": "+1859", "outcome": "unreachable"}
RESULTS = "dispatcher_carrier_results_total"
SWITCHED = ["connecting", "switching", "connecting", "connected", "finished"]


def simulator(*rules: dict[str, str]) -> dict[str, Any]:
    return {"answer_after_s": 0.05, "talk_time_s": 0.1, "rules": list(rules)}


async def meta_of(redis: Redis, call_id: int) -> dict[str, Any]:
    raw = await redis.hget(TENANT.call(call_id), "meta")
    assert raw is not None
    meta: dict[str, Any] = orjson.loads(raw)
    return meta


async def status_moves(redis: Redis, call_id: int) -> list[tuple[str, str]]:
    """The status changes of the call's history, in order."""
    entries = [orjson.loads(raw) for raw in await redis.lrange(TENANT.call_history(call_id), 0, -1)]
    return [(e["from"], e["to"]) for e in entries if e["event"] == "status"]


async def switched_and_placed(client: TestClient[Any, Any], redis: Redis) -> int:
    """An outbound call that Twilio failed, placed through the simulated carrier instead."""
    async with CallEvents(redis) as events:
        created = await outbound_call(client)
        call_id = created["id"]
        assert created["voip_provider"] == "voip_provider_twilio"
        finished = await wait_for_status(client, call_id, "finished")
        assert await events.wait_until(call_id, "finished") == SWITCHED
    assert finished["voip_provider"] == "voip_provider_simulated"
    assert (finished["fail_reason"], finished["fail_details"]) == ("nothing", None)
    assert await status_moves(redis, call_id) == [
        ("assigned", "connecting"),
        ("connecting", "switching"),
        ("switching", "connecting"),
        ("connecting", "connected"),
        ("connected", "finished"),
    ]
    meta = await meta_of(redis, call_id)
    assert (meta["carrier"], meta["switches"]) == ("simulated", 1)
    assert meta["carrier_call_id"] == f"sim-demo-{call_id}"
    assert await held_calls(redis, 1) == 0
    return int(call_id)


@pytest.mark.parametrize("fault", ["http-500", "http-503", "refused"])
async def test_a_carrier_at_fault_switches_the_call_to_the_next_carrier(
    ingress: TestClient[Any, Any],
    redis: Redis,
    fake: FakeTwilio,
    start_worker: StartWorker,
    fault: str,
) -> None:
    """Switched at once, without trying the failing carrier again first; the results are
    counted under the carrier that placed the call."""
    if fault == "refused":
        worker = await start_worker(twilio_api_url=f"http://127.0.0.1:{free_port()}")
    else:
        worker = await start_worker()
        fake.fail_next(int(fault.removeprefix("http-")), None, times=3, retry_after="0")
    await load_tenant(redis, settings={**TWILIO_FIRST, "simulator": simulator()})
    await switched_and_placed(ingress, redis)
    assert fake.calls == {}
    if fault != "refused":
        assert len(fake.failures) == 2  # one try at Twilio
    text = worker.ctx["metrics"].render().decode()
    assert value(text, RESULTS, carrier="simulated", outcome="answer") == 1
    assert value(text, RESULTS, carrier="twilio", outcome="answer") is None


async def test_a_dial_that_timed_out_switches_and_twilios_late_call_is_hung_up(
    ingress: TestClient[Any, Any], redis: Redis, fake: FakeTwilio, start_worker: StartWorker
) -> None:
    """Twilio placed the call but did not answer in time: the call switches, and the carrier
    call Twilio then reports is not the call's; being alive it is hung up at Twilio."""
    await start_worker(twilio_timeout_s=0.3)
    await load_tenant(redis, settings={**TWILIO_FIRST, "simulator": simulator()})
    fake.stall_s = 1.0
    call_id = await switched_and_placed(ingress, redis)
    late = await dialled(fake)
    assert await fake.call_status(late, "ringing") == NO_CONTENT

    async def hung_up() -> list[str] | None:
        return [sid for sid, _ in fake.hangups] or None

    assert await eventually(hung_up, "Twilio's late call hung up") == [late]
    assert await fake.call_status(late, "completed") == NO_CONTENT  # ignored
    after = await get_call(ingress, call_id)
    assert (after["status"], after["voip_provider"]) == ("finished", "voip_provider_simulated")
    assert (await meta_of(redis, call_id))["carrier_call_id"] == f"sim-demo-{call_id}"


@pytest.mark.parametrize(
    ("status", "fail_reason"), [("busy", "eu_busy"), ("no-answer", "eu_no_answer")]
)
async def test_a_busy_or_unanswered_end_user_does_not_switch(
    ingress: TestClient[Any, Any],
    redis: Redis,
    fake: FakeTwilio,
    twilio_worker: Worker,
    status: str,
    fail_reason: str,
) -> None:
    await load_tenant(redis, settings={**TWILIO_FIRST, "simulator": simulator()})
    async with CallEvents(redis) as events:
        call_id = (await outbound_call(ingress))["id"]
        sid = await dialled(fake)
        assert await fake.call_status(sid, "ringing") == NO_CONTENT
        assert await fake.call_status(sid, status) == NO_CONTENT
        failed = await wait_for_status(ingress, call_id, "failed")
        assert await events.wait_until(call_id, "failed") == ["connecting", "failed"]
    assert (failed["fail_reason"], failed["voip_provider"]) == (fail_reason, "voip_provider_twilio")
    meta = await meta_of(redis, call_id)
    assert (meta["carrier"], meta["switches"]) == ("twilio", 0)


@pytest.mark.parametrize(
    ("status", "code", "fail_reason", "tries"),
    [(400, 21211, "eu_wrong_number", 1), (429, 20429, "voip_conn_general", 3)],
)
async def test_a_refusal_the_request_caused_does_not_switch(
    ingress: TestClient[Any, Any],
    redis: Redis,
    fake: FakeTwilio,
    twilio_worker: Worker,
    status: int,
    code: int,
    fail_reason: str,
    tries: int,
) -> None:
    """A 4xx is the request's (a 429 Twilio's pace, tried again as before): the call fails
    at Twilio as it did with one carrier."""
    await load_tenant(redis, settings={**TWILIO_FIRST, "simulator": simulator()})
    fake.fail_next(status, code, times=3, retry_after="0")
    async with CallEvents(redis) as events:
        call_id = (await outbound_call(ingress))["id"]
        failed = await wait_for_status(ingress, call_id, "failed")
        assert await events.wait_until(call_id, "failed") == ["connecting", "failed"]
    assert (failed["fail_reason"], failed["voip_provider"]) == (fail_reason, "voip_provider_twilio")
    assert failed["fail_details"] == f"Twilio refused the call: HTTP {status}, error {code}"
    assert len(fake.failures) == 3 - tries


async def test_the_last_carrier_failing_fails_the_call(
    ingress: TestClient[Any, Any], redis: Redis, fake: FakeTwilio, twilio_worker: Worker
) -> None:
    """The last carrier is tried DIAL_TRIES times (it has no next one), then the call fails
    as it did with one carrier, and the agent is free."""
    await load_tenant(redis, settings={**TWILIO_FIRST, "simulator": simulator(UNREACHABLE)})
    fake.fail_next(500, None, times=1, retry_after="0")
    async with CallEvents(redis) as events:
        call_id = (await outbound_call(ingress))["id"]
        failed = await wait_for_status(ingress, call_id, "failed")
        assert await events.wait_until(call_id, "failed") == [
            "connecting",
            "switching",
            "connecting",
            "failed",
        ]
    assert (failed["fail_reason"], failed["fail_details"]) == (
        "voip_conn_general",
        "the simulated carrier could not be reached",
    )
    assert failed["voip_provider"] == "voip_provider_simulated"
    assert await held_calls(redis, 1) == 0
    assert (fake.calls, fake.failures) == ({}, [])


@pytest.fixture
async def twilio_job_context(
    redis_url: str, redis: Redis, fake: FakeTwilio
) -> AsyncIterator[dict[str, Any]]:
    """The ctx a job gets in a worker with the Twilio settings (jobs run here by hand)."""
    ctx: dict[str, Any] = {
        "redis": redis,
        "job_try": 1,
        "settings": twilio_settings(redis_url, fake.api_url),
    }
    await startup(ctx)
    yield ctx
    await shutdown(ctx)


async def test_jobs_run_again_after_a_switch_dial_once(
    ingress: TestClient[Any, Any],
    redis: Redis,
    fake: FakeTwilio,
    twilio_job_context: dict[str, Any],
) -> None:
    """The simulated carrier (first) cannot be reached; Twilio (next) places the call. The
    first attempt's job run again, and the switch's job run twice at once and again, keep
    one Twilio call: the second job dials nothing when both read the call before either
    moved it, and when it read the call moved but not yet dialled, its own carrier call is
    hung up as it is recorded (docs/decisions.md, Carriers)."""
    ctx = twilio_job_context
    await load_tenant(redis, settings={**SIMULATED_FIRST, "simulator": simulator(UNREACHABLE)})
    call_id = (await outbound_call(ingress))["id"]
    assert await connect_call(ctx, "demo", call_id) == "switching to twilio"
    switching = await get_call(ingress, call_id)
    assert (switching["status"], switching["voip_provider"]) == (
        "switching",
        "voip_provider_twilio",
    )
    assert f"connect_call:demo:{call_id}:switch1" in await queued_jobs(redis)
    assert await connect_call(ctx, "demo", call_id) == "not connecting"

    both = await asyncio.gather(
        connect_call(ctx, "demo", call_id, 1), connect_call(ctx, "demo", call_id, 1)
    )
    assert sorted(both) in (["dialled", "not connecting"], ["dialled", "dialled twice, hung up"])
    assert await connect_call(ctx, "demo", call_id, 1) == "dialled already"
    assert await connect_call(ctx, "demo", call_id) == "switched already"
    meta = await meta_of(redis, call_id)
    sid = meta["carrier_call_id"]
    assert (meta["carrier"], meta["switches"], sid in fake.calls) == ("twilio", 1, True)
    others = [other for other in fake.calls if other != sid]
    assert len(others) == (1 if "dialled twice, hung up" in both else 0)
    hangups = {job for job in await queued_jobs(redis) if job.startswith("hangup_call:")}
    assert hangups == {f"hangup_call:demo:{call_id}:{other}" for other in others}
    assert (await get_call(ingress, call_id))["status"] == "connecting"
    assert await status_moves(redis, call_id) == [
        ("assigned", "connecting"),
        ("connecting", "switching"),
        ("switching", "connecting"),
    ]


async def test_the_failed_carriers_reports_after_the_switch_are_not_the_calls(
    ingress: TestClient[Any, Any],
    redis: Redis,
    fake: FakeTwilio,
    twilio_job_context: dict[str, Any],
) -> None:
    """While the call is switching, a Twilio call reported alive (a dial that was placed
    after all) is not adopted but hung up at Twilio, and Twilio's other results change
    nothing; the next carrier then places the call."""
    ctx = twilio_job_context
    await load_tenant(redis, settings={**TWILIO_FIRST, "simulator": simulator()})
    fake.fail_next(500, None, times=1, retry_after="0")
    call_id = (await outbound_call(ingress))["id"]
    assert await connect_call(ctx, "demo", call_id) == "switching to simulated"
    sid = "CA" + "ab" * 16
    assert await carrier_result(ctx, "demo", call_id, "ringing", sid, "twilio") == (
        "another carrier call, hung up"
    )
    assert f"hangup_call:demo:{call_id}:{sid}" in await queued_jobs(redis)
    # Twilio no longer knows it (404): hung up all the same.
    assert await hangup_call(ctx, "demo", call_id, sid, "twilio") == "hung up"
    for outcome in ("busy", "failed", "completed"):
        assert await carrier_result(ctx, "demo", call_id, outcome, sid, "twilio") == "ignored"
    assert (await meta_of(redis, call_id))["carrier_call_id"] is None
    assert (await get_call(ingress, call_id))["status"] == "switching"

    assert await connect_call(ctx, "demo", call_id, 1) == "dialled"
    assert await carrier_result(ctx, "demo", call_id, "answer", None, "twilio") == "ignored"
    assert await carrier_result(ctx, "demo", call_id, "answer", None, "simulated") == "connected"
    connected = await get_call(ingress, call_id)
    assert (connected["status"], connected["voip_provider"]) == (
        "connected",
        "voip_provider_simulated",
    )
