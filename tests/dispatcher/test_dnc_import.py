"""`dispatcher dnc import`, end to end: the command in its own process against the app on a real
port, a CSV with good and bad rows, the progress bar, the errors file, and runs that add
nothing twice."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from dispatcher.app import create_app
from dispatcher.settings import Settings
from dispatcher.store.keys import TenantKeys
from tests.conftest import ROOT
from tests.ports import free_port

pytestmark = pytest.mark.subprocess

DEMO = TenantKeys("demo")
HEADER = "phone_number,expires_at"
LATER = "2030-10-29 00:00:00 UTC"
GOOD = [f"+1-7187309219,{LATER}", "+1-(358)-213-1634,", '"+1 415-555-0100",2031-01-02T10:30:00Z']
BAD = ["911,", "12,", "+1 415-555-0101,2001-01-01 00:00:00 UTC", "+1 415-555-0102,tomorrow"]
AGAIN = "+1 718 730 9219,"  # the first row's number: updated, and no longer expiring


async def run_import(
    client: TestClient[Any, Any], csv_file: Path, *extra: str, url: str | None = None
) -> tuple[int, str, str]:
    env = {**os.environ, "DISPATCHER_TENANT": "demo", "DISPATCHER_API_TOKEN": "demo-token"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "dispatcher.cli", "dnc", "import", str(csv_file),
        "--url", url or str(client.make_url("")), *extra,
        cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_an_import_adds_the_good_rows_reports_the_bad_and_never_twice(
    client: TestClient[Any, Any], redis: Redis, demo: dict[str, Any], tmp_path: Path
) -> None:
    csv_file = tmp_path / "numbers.csv"
    csv_file.write_text("\n".join([HEADER, *GOOD, *BAD, AGAIN]) + "\n")
    errors = tmp_path / "numbers.errors.csv"

    code, out, err = await run_import(client, csv_file, "--batch-size", "3", "--progress")
    assert code == 1, err
    assert out == f"created 3, updated 1, failed 4 (of 8 rows); failed rows in {errors}\n"
    assert "8/8" in err and "row/s" in err  # tqdm's bar, with its rate
    assert errors.read_bytes().decode() == (  # csv writes CRLF line ends (RFC 4180)
        "row,phone_number,expires_at,error\r\n"
        "5,911,,emergency phone number is not allowed\r\n"
        "6,12,,phone_number is invalid\r\n"
        "7,+1 415-555-0101,2001-01-01 00:00:00 UTC,expires_at cannot be past date/time\r\n"
        "8,+1 415-555-0102,tomorrow,expires_at is invalid\r\n"
    )
    assert await redis.zrange(DEMO.dnc, 0, -1) == [
        b"+13582131634",
        b"+14155550100",
        b"+17187309219",
    ]
    assert await redis.zrange(DEMO.dnc_expiring, 0, -1) == [b"+14155550100"]

    code, out, err = await run_import(client, csv_file)
    assert code == 1
    assert out.startswith("created 0, updated 4, failed 4 (of 8 rows)")
    assert "row/s" not in err  # no bar off a terminal unless asked (CI output, logs)

    # The bad rows dropped: nothing fails, nothing is added twice, no errors file is left.
    csv_file.write_text("\n".join([HEADER, *GOOD]) + "\n")
    code, out, _ = await run_import(client, csv_file)
    assert (code, out) == (0, "created 0, updated 3, failed 0 (of 3 rows)\n")
    assert not errors.exists()
    assert await redis.zcard(DEMO.dnc) == 3


@pytest.fixture
async def small_bodies(redis_url: str, redis: Redis) -> AsyncIterator[TestClient[Any, Any]]:
    """The app with the smallest body limit it takes (4096 bytes)."""
    settings = Settings(redis_url=redis_url, max_body_bytes=4096)
    async with TestClient(TestServer(create_app(settings))) as test_client:
        yield test_client


async def test_a_request_over_the_body_limit_is_sent_again_in_halves(
    small_bodies: TestClient[Any, Any], redis: Redis, demo: dict[str, Any], tmp_path: Path
) -> None:
    """Six rows in one request are over the limit, and so is the 5,000-character row alone: it
    fails with the API's 413 message, the others go in."""
    rows = [f"+1 415-555-010{n}," for n in range(5)]
    rows.insert(2, "+1" + "5" * 5000 + ",")
    csv_file = tmp_path / "numbers.csv"
    csv_file.write_text("\n".join([HEADER, *rows]) + "\n")
    code, out, err = await run_import(small_bodies, csv_file)
    assert code == 1, err
    assert out.startswith("created 5, updated 0, failed 1 (of 6 rows)")
    errors = (tmp_path / "numbers.errors.csv").read_text().splitlines()
    assert errors[1].endswith(",,Request body is too large (limit 4096 bytes)")
    assert errors[1].startswith("4,+1555")
    assert await redis.zcard(DEMO.dnc) == 5


async def test_a_file_without_the_phone_number_column_sends_nothing(
    client: TestClient[Any, Any], redis: Redis, demo: dict[str, Any], tmp_path: Path
) -> None:
    csv_file = tmp_path / "numbers.csv"
    csv_file.write_text("number,expires_at\n+14155550100,\n")
    code, out, err = await run_import(client, csv_file)
    assert (code, out) == (2, "")
    assert err.endswith(f"Error: {csv_file}: no column phone_number in the header\n")
    assert await redis.exists(DEMO.dnc) == 0


async def test_an_unreachable_api_stops_the_import_with_a_clear_message(
    client: TestClient[Any, Any], tmp_path: Path
) -> None:
    csv_file = tmp_path / "numbers.csv"
    csv_file.write_text("\n".join([HEADER, *GOOD]) + "\n")
    port = free_port()  # nobody listens there
    code, out, err = await run_import(client, csv_file, url=f"http://127.0.0.1:{port}")
    assert code == 3
    assert f"error: cannot reach http://127.0.0.1:{port}/apps/api/v1: " in err
    assert "Run the same command again to resume" in err
    assert out == "created 0, updated 0, failed 0 (of 3 rows)\n"
