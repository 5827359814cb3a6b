"""Every log line of a request carries its request id, tenant and call id; every line of a
job its job id, function, tenant and call id (a real `dispatcher up`, JSON lines at debug)."""

from __future__ import annotations

import asyncio
import base64
import time
from pathlib import Path

import aiohttp
import orjson
import pytest

from tests.conftest import demo_document
from tests.scrape import value
from tests.up import dispatcher_up
from workers.settings import CRON_JOBS

pytestmark = pytest.mark.subprocess

CALLS = "/apps/api/v1/calls"
AUTH = {"Authorization": "Basic " + base64.b64encode(b"demo:demo-token").decode()}
REQUEST_ID = "trace-create-1"


async def _run_one_call(base: str) -> int:
    """Creates an outbound call (the simulated carrier answers it, then it hangs up) and waits
    until it has finished; returns its id."""
    body = {
        "call_type": "Voice Outbound (API)",
        "agent_email": "admin@somedomain.com",
        "end_user_number": "+1 859-657-9625",
    }
    async with aiohttp.ClientSession() as http:
        headers = {**AUTH, "X-Request-Id": REQUEST_ID}
        async with http.post(base + CALLS, json=body, headers=headers) as created:
            assert created.status == 201, await created.text()
            assert created.headers["X-Request-Id"] == REQUEST_ID
            call_id = int((await created.json())["id"])
        deadline = time.monotonic() + 20
        while True:
            async with http.get(f"{base}{CALLS}/{call_id}", headers=AUTH) as answer:
                if (await answer.json())["status"] == "finished":
                    return call_id
            assert time.monotonic() < deadline, "the call did not finish"
            await asyncio.sleep(0.05)


async def _scrape(base: str) -> str:
    async with aiohttp.ClientSession() as http, http.get(base + "/metrics") as answer:
        assert answer.status == 200
        return await answer.text()


async def test_every_line_of_a_request_and_of_its_jobs_names_them(tmp_path: Path) -> None:
    document = demo_document()
    document["tenants"][0]["settings"]["simulator"] = {"answer_after_s": 0.05, "talk_time_s": 0.1}
    async with dispatcher_up(tmp_path, document) as (base, log_file):
        call_id = await _run_one_call(base)
        text = await _scrape(base)  # `up`: the worker's metrics are on the API port

    jobs = "dispatcher_worker_jobs_total"
    assert value(text, jobs, function="dial_outbound", result="ok") == 1
    assert value(text, jobs, function="carrier_result", result="ok") == 2
    assert value(text, "dispatcher_workers_alive") == 1
    requests = "dispatcher_http_requests_total"
    assert value(text, requests, route=CALLS, method="POST", status="201") == 1

    lines = log_file.read_text().splitlines()
    events = [orjson.loads(line) for line in lines if line.startswith("{")]
    created = [e for e in events if e.get("request_id") == REQUEST_ID]
    assert [e["event"] for e in created] == ["request"]
    for event in (e for e in events if "request_id" in e and e.get("path", "").startswith(CALLS)):
        assert (event["tenant"], event["call_id"]) == ("demo", call_id), event
    # The cron jobs (the archiver's tick, the DNC list's sweep at second 30, ids
    # `<name>:<ms>`) are about no call: their lines name the job alone.
    crons = {job.name for job in CRON_JOBS}
    of_jobs = [e for e in events if "job_id" in e and e["job_id"].split(":")[0] not in crons]
    for event in of_jobs:
        assert (event["function"], event["tenant"], event["call_id"]) == (
            event["job_id"].split(":")[0],
            "demo",
            call_id,
        ), event
    # ARQ's own lines of each job (debug level) are bound too: a start and an end per job.
    assert sorted(e["function"] for e in of_jobs if " → " in e["event"]) == [
        "carrier_result",
        "carrier_result",
        "dial_outbound",
    ]
    assert len([e for e in of_jobs if " ← " in e["event"]]) == 3
    # The rest are the process's own lines (start, stop), about no request and no job.
    rest = [e for e in events if "request_id" not in e and "job_id" not in e]
    assert not [e for e in rest if {"call_id", "chat_id", "tenant"} & e.keys()], rest
    assert not [e for e in rest if f":demo:{call_id}" in e["event"]], rest
