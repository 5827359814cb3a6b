"""`dispatcher campaign import`, end to end: the command in its own process against the app on
a real port, a CSV with good and bad rows, the errors file, and runs that create nothing twice."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from dispatcher.app import create_app
from dispatcher.campaign_import import Api
from dispatcher.domain import clock
from dispatcher.settings import Settings
from dispatcher.store.keys import TenantKeys
from tests.conftest import ROOT, basic, demo_document, load_directory
from tests.ports import free_port

DEMO = TenantKeys("demo")
LATER = clock.iso(clock.now() + timedelta(days=2))
HEADER = "end_user_number,scheduled_at,menu_id,lang,ticket_id"
GOOD = [
    f"+1 205-555-0100,{LATER},9,en,",
    f"+1 205-555-0101,{LATER},9,,T-1",
]
BAD = [
    f"12,{LATER},9,,",
    "+1 205-555-0102,2001-01-01T00:00:00Z,9,,",
    f"+1 205-555-0103,{LATER},50,,",
]
AGAIN = f"+1 205-555-0100,{LATER},9,en,"  # the same as the first row: a second call


async def run_import(
    client: TestClient[Any, Any], csv_file: Path, *extra: str, url: str | None = None
) -> tuple[int, str, str]:
    env = {**os.environ, "DISPATCHER_TENANT": "demo", "DISPATCHER_API_TOKEN": "demo-token"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "dispatcher.cli", "campaign", "import", str(csv_file),
        "--campaign", "spring", "--url", url or str(client.make_url("")), *extra,
        cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@pytest.mark.subprocess
async def test_an_import_creates_the_good_rows_reports_the_bad_and_never_twice(
    client: TestClient[Any, Any], redis: Redis, demo: dict[str, Any], tmp_path: Path
) -> None:
    csv_file = tmp_path / "callbacks.csv"
    csv_file.write_text("\n".join([HEADER, *GOOD, *BAD, AGAIN]) + "\n")
    errors = tmp_path / "callbacks.errors.csv"

    code, out, err = await run_import(
        client, csv_file, "--batch-size", "2", "--calls-per-second", "5", "--progress"
    )
    assert code == 1, err
    assert out == f"created 3, already existed 0, failed 3 (of 6 rows); failed rows in {errors}\n"
    assert "campaign 1 'spring': menu 9, 5 calls/s, running, 0 calls so far" in err
    assert "6/6" in err and "row/s" in err  # tqdm's bar, with its rate
    assert errors.read_bytes().decode() == (  # csv writes CRLF line ends (RFC 4180)
        "row,end_user_number,scheduled_at,menu_id,lang,ticket_id,status,message\r\n"
        f"4,12,{LATER},9,,,400,end_user_number is not well formed\r\n"
        "5,+1 205-555-0102,2001-01-01T00:00:00Z,9,,,400,scheduled_at must be in the future\r\n"
        f"6,+1 205-555-0103,{LATER},50,,,400,menu_id must be the campaign's menu (9)\r\n"
    )
    assert await redis.zcard(DEMO.campaign_due(1)) == await redis.zcard(DEMO.calls) == 3

    code, out, err = await run_import(client, csv_file)
    assert code == 1
    assert out.startswith("created 0, already existed 3, failed 3 (of 6 rows)")
    assert "row/s" not in err  # no bar off a terminal unless asked (CI output, logs)
    assert await redis.zcard(DEMO.calls) == 3

    # The bad rows fixed (dropped) and the rest reordered: still nothing created twice.
    csv_file.write_text("\n".join([HEADER, AGAIN, *reversed(GOOD)]) + "\n")
    code, out, _ = await run_import(client, csv_file)
    assert (code, out) == (0, "created 0, already existed 3, failed 0 (of 3 rows)\n")
    assert not errors.exists()
    assert await redis.zcard(DEMO.calls) == 3
    campaign = await (await client.get("/apps/api/v1/campaigns/1", headers=basic())).json()
    assert (campaign["total"], campaign["pacing"]["calls_per_second"]) == (3, 5.0)


@pytest.fixture
async def small_bodies(redis_url: str, redis: Redis) -> AsyncIterator[TestClient[Any, Any]]:
    """The app with the smallest body limit it takes: 4 calls of 1,000-character ticket_ids
    are over it, and so is one call alone of a 5,000-character one."""
    settings = Settings(redis_url=redis_url, max_body_bytes=4096)
    async with TestClient(TestServer(create_app(settings))) as test_client:
        yield test_client


def callback(last_digits: int, ticket: str) -> str:
    return f"+1 205-555-{last_digits:04d},{LATER},9,,{ticket}"


@pytest.mark.subprocess
async def test_a_batch_over_the_body_limit_is_sent_again_in_halves(
    small_bodies: TestClient[Any, Any], redis: Redis, demo: dict[str, Any], tmp_path: Path
) -> None:
    """The 8 rows go as one batch (413), then 4 and 4 (413 and 200), 2 and 2 (200 and 413), 1
    and 1 (200 and 413): the row too large alone fails with the API's message; the others are
    answered one by one. The rows stay in the errors file run after run, as the 400s do."""
    long_ticket, huge_ticket = "T" * 1000, "H" * 5000
    rows = [
        callback(110, "T-110"),
        callback(120, long_ticket),
        callback(121, long_ticket),
        callback(130, huge_ticket),
        callback(122, long_ticket),
        callback(111, "T-111"),
        callback(123, long_ticket),
        callback(112, "T-112"),
    ]
    csv_file = tmp_path / "callbacks.csv"
    csv_file.write_text("\n".join([HEADER, *rows]) + "\n")
    errors = tmp_path / "callbacks.errors.csv"
    not_well_formed = f"{LATER},9,,{long_ticket},400,ticket_id is not well formed\r\n"
    expected_errors = (
        "row,end_user_number,scheduled_at,menu_id,lang,ticket_id,status,message\r\n"
        f"3,+1 205-555-0120,{not_well_formed}"
        f"4,+1 205-555-0121,{not_well_formed}"
        f"5,+1 205-555-0130,{LATER},9,,{huge_ticket},413,"
        "Request body is too large (limit 4096 bytes)\r\n"
        f"6,+1 205-555-0122,{not_well_formed}"
        f"8,+1 205-555-0123,{not_well_formed}"
    )
    for created, existed in [(3, 0), (0, 3)]:
        code, out, err = await run_import(small_bodies, csv_file)
        assert code == 1, err
        assert out == (
            f"created {created}, already existed {existed}, failed 5 (of 8 rows); "
            f"failed rows in {errors}\n"
        )
        assert errors.read_bytes().decode() == expected_errors
        assert await redis.zcard(DEMO.calls) == 3

    # The rows fixed: the long tickets cut short, the huge one left out. Only they are new.
    fixed = [row.replace(long_ticket, "T-2") for row in rows if huge_ticket not in row]
    csv_file.write_text("\n".join([HEADER, *fixed]) + "\n")
    code, out, _ = await run_import(small_bodies, csv_file)
    assert (code, out) == (0, "created 4, already existed 3, failed 0 (of 7 rows)\n")
    assert not errors.exists()
    assert await redis.zcard(DEMO.calls) == 7


@pytest.mark.subprocess
async def test_a_field_over_the_csv_limit_fails_its_row_and_the_rows_after_it_are_read(
    client: TestClient[Any, Any], redis: Redis, demo: dict[str, Any], tmp_path: Path
) -> None:
    """200,000 characters: over the csv module's default limit (131,072), which is kept as the
    longest field an import sends; the field is left out of the errors file."""
    rows = [callback(140, ""), callback(141, "X" * 200_000), BAD[0], callback(142, "")]
    csv_file = tmp_path / "callbacks.csv"
    csv_file.write_text("\n".join([HEADER, *rows]) + "\n")
    errors = tmp_path / "callbacks.errors.csv"
    code, out, err = await run_import(client, csv_file)
    assert code == 1, err
    assert out == f"created 2, already existed 0, failed 2 (of 4 rows); failed rows in {errors}\n"
    assert errors.read_bytes().decode() == (
        "row,end_user_number,scheduled_at,menu_id,lang,ticket_id,status,message\r\n"
        f"3,+1 205-555-0141,{LATER},9,,,,ticket_id is over 131072 characters (200000)\r\n"
        f"4,12,{LATER},9,,,400,end_user_number is not well formed\r\n"
    )
    assert await redis.zcard(DEMO.calls) == 2


@pytest.mark.subprocess
async def test_a_file_that_cannot_be_read_to_its_end_is_refused_before_anything_is_sent(
    client: TestClient[Any, Any], redis: Redis, demo: dict[str, Any], tmp_path: Path
) -> None:
    """An unclosed quote on line 3 takes the 25,000 rows after it into one field, over the
    1,048,576 characters the csv module is let hold: those rows cannot be told apart."""
    rows = [callback(150, ""), f'+1 205-555-0151,"{LATER},9,,']
    rows += [callback(i % 10_000, "") for i in range(25_000)]
    csv_file = tmp_path / "callbacks.csv"
    csv_file.write_text("\n".join([HEADER, *rows]) + "\n")
    code, out, err = await run_import(client, csv_file)
    assert (code, out) == (2, "")
    assert err.endswith(
        f"Error: {csv_file}: the row from line 3 has a field over 1,048,576 characters "
        "(an unclosed quote?); nothing was imported\n"
    )
    assert "Traceback" not in err
    assert await redis.zcard(DEMO.calls) == 0
    assert await redis.zcard(DEMO.campaigns) == 0


@pytest.mark.subprocess
async def test_a_file_not_in_utf_8_is_refused_before_anything_is_sent(
    client: TestClient[Any, Any], redis: Redis, demo: dict[str, Any], tmp_path: Path
) -> None:
    csv_file = tmp_path / "callbacks.csv"
    csv_file.write_bytes("\n".join([HEADER, callback(160, "Caf\xe9-1")]).encode("latin-1"))
    code, out, err = await run_import(client, csv_file)
    assert (code, out) == (2, "")
    assert err.endswith(f"Error: {csv_file}: is not UTF-8 text; nothing was imported\n")
    assert await redis.zcard(DEMO.campaigns) == 0


@pytest.mark.subprocess
async def test_an_unreachable_api_stops_the_import_with_a_clear_message(
    client: TestClient[Any, Any], tmp_path: Path
) -> None:
    csv_file = tmp_path / "callbacks.csv"
    csv_file.write_text("\n".join([HEADER, *GOOD]) + "\n")
    port = free_port()  # nobody listens there
    code, out, err = await run_import(client, csv_file, url=f"http://127.0.0.1:{port}")
    assert code == 3
    assert f"error: cannot reach http://127.0.0.1:{port}/apps/api/v1: " in err
    assert "Run the same command again to resume" in err
    assert out == "created 0, already existed 0, failed 0 (of 2 rows)\n"


@pytest.mark.subprocess
async def test_the_import_waits_out_the_rate_limit(
    client: TestClient[Any, Any], redis: Redis, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = demo_document()
    # Two requests at once, two a second: the campaign's GET and POST take both; the batches
    # are answered 429 and sent again after Retry-After.
    document["tenants"][0]["settings"].update(rate_limit_per_s=2, rate_limit_burst=2)
    await load_directory(redis, document)
    csv_file = tmp_path / "callbacks.csv"
    rows = [f"+1 205-555-01{i:02d},{LATER},9,," for i in range(4)]
    csv_file.write_text("\n".join([HEADER, *rows]) + "\n")
    code, out, _ = await run_import(client, csv_file, "--batch-size", "2", "--concurrency", "2")
    assert (code, out) == (0, "created 4, already existed 0, failed 0 (of 4 rows)\n")
    assert await redis.zcard(DEMO.calls) == 4
    assert "status=429" in capsys.readouterr().out  # the service's own log lines


async def test_a_503_is_sent_again_after_its_retry_after() -> None:
    """Against a small local server that is away once (503, Retry-After: 0), then answers."""
    hits: list[int] = []

    async def flaky(request: web.Request) -> web.Response:
        hits.append(1)
        if len(hits) == 1:
            return web.json_response(
                {"message": "Service unavailable"}, status=503, headers={"Retry-After": "0"}
            )
        return web.json_response([{"id": 1}])

    app = web.Application()
    app.router.add_get("/apps/api/v1/campaigns", flaky)
    async with TestServer(app) as server, aiohttp.ClientSession() as http:
        api = Api(http, str(server.make_url("")))
        assert await api.request("GET", "/campaigns") == (200, [{"id": 1}])
    assert len(hits) == 2
