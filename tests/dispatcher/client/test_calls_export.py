"""`dispatcher calls export` against a live service: the API's export body to a file or
standard output, the list's filters, gzip on the wire, the rows counted on a terminal, the
API's messages, and no file left behind by a transfer cut short."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from click.testing import CliRunner, Result

from dispatcher.app import redis_client
from dispatcher.cli import main
from dispatcher.client.exports import RowCounter
from dispatcher.settings import Settings
from dispatcher.store.keys import TenantKeys
from tests.live import LiveService, live_service
from tests.terminal import drain, frames, pseudo_terminal

BIN = Path(sys.executable).parent / "dispatcher"
TOKEN = "demo-token"
API = "/apps/api/v1"
OUTBOUND = {
    "call_type": "Voice Outbound (API)",
    "agent_email": "admin@somedomain.com",
    "end_user_number": "+1 628-555-0142",
}
INBOUND = {"call_type": "Voice Inbound (API)", "menu_id": 9, "end_user_number": "+1 205-123-4567"}
SCHEDULED = {**INBOUND, "call_type": "Voice Scheduled (API)", "scheduled_at": "2030-06-03T17:00Z"}


@pytest.fixture(scope="module")
def service(redis_url: str) -> Iterator[LiveService]:
    """The API with exports one record a batch: every export here is streamed in pieces."""
    with live_service(Settings(redis_url=redis_url, export_batch_size=1)) as live:
        yield live


def _request(url: str, method: str = "GET", body: Any = None) -> bytes:
    credentials = base64.b64encode(f"demo:{TOKEN}".encode()).decode()
    request = urllib.request.Request(
        url,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Basic {credentials}", "Content-Type": "application/json"},
        method=method,
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        raw: bytes = answer.read()
        return raw


@pytest.fixture
def calls(service: LiveService) -> list[dict[str, Any]]:
    """Calls 1-3 (outbound, inbound, scheduled), as created; no worker runs."""
    service.reset()
    return [
        json.loads(_request(f"{service.url}{API}/calls", "POST", body))
        for body in (OUTBOUND, INBOUND, SCHEDULED)
    ]


def _api_export(service: LiveService, query: str) -> bytes:
    """The API's own export (urllib asks for no compression)."""
    return _request(f"{service.url}{API}/calls/export?{query}")


def _cli(service: LiveService, *args: str, url: str = "") -> Result:
    command = ["calls", "export", *args, "--url", url or service.url]
    command += ["--tenant", "demo", "--token", TOKEN]
    return CliRunner().invoke(main, command, catch_exceptions=False)


def _since(calls: list[dict[str, Any]]) -> str:
    return str(calls[0]["created_at"])


def test_a_csv_file_is_the_apis_export(
    service: LiveService, calls: list[dict[str, Any]], tmp_path: Path
) -> None:
    until = calls[-1]["created_at"]
    target = tmp_path / "calls.csv"
    result = _cli(service, "--since", _since(calls), "--until", until, "--output", str(target))
    assert result.exit_code == 0, result.output
    assert (result.stdout, result.stderr) == (f"3 calls written to {target}\n", "")
    query = f"created_at%5Bfrom%5D={_since(calls)}&created_at%5Bto%5D={until}&format=csv"
    assert target.read_bytes() == _api_export(service, query)
    assert target.read_bytes().count(b"\r\n") == 4
    assert os.listdir(tmp_path) == ["calls.csv"]


def test_ndjson_to_standard_output_with_the_lists_filters(
    service: LiveService, calls: list[dict[str, Any]]
) -> None:
    def ids(*args: str) -> list[int]:
        result = _cli(service, "--since", _since(calls), "--format", "ndjson", *args)
        assert (result.exit_code, result.stderr) == (0, ""), result.output
        return [json.loads(line)["id"] for line in result.stdout_bytes.splitlines()]

    assert ids() == [3, 2, 1]
    assert ids("--oldest-first") == [1, 2, 3]
    assert ids("--type", "inbound") == [2]
    assert ids("--call-type", "scheduled", "--oldest-first") == [3]
    assert ids("--status", "assigned") == [1]
    assert ids("--until", calls[1]["created_at"]) == [2, 1]
    assert ids("--status", "finished") == []
    whole = _cli(service, "--since", _since(calls), "--format", "ndjson")
    query = f"created_at%5Bfrom%5D={_since(calls)}&format=ndjson"
    assert whole.stdout_bytes == _api_export(service, query)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--since", "yesterday"],
            "Error: created_at[from] is not well formed (HTTP 400)",
        ),
        (
            ["--since", "2020-01-01T00:00:00Z", "--until", "2021-06-01T00:00:00Z"],
            "Error: created_at[from] and created_at[to] must be at most 366 days apart (HTTP 400)",
        ),
        (
            ["--since", "2020-02-01T00:00:00Z", "--until", "2020-01-01T00:00:00Z"],
            "Error: created_at[to] must not be before created_at[from] (HTTP 400)",
        ),
    ],
)
def test_api_errors_are_the_apis_message_and_leave_no_file(
    service: LiveService, calls: list[dict[str, Any]], tmp_path: Path, args: list[str], message: str
) -> None:
    result = _cli(service, *args, "--output", str(tmp_path / "calls.csv"))
    assert (result.exit_code, result.stdout, result.stderr) == (1, "", message + "\n")
    assert os.listdir(tmp_path) == []


def test_a_transfer_cut_short_exits_1_and_leaves_no_file(
    service: LiveService, calls: list[dict[str, Any]], tmp_path: Path
) -> None:
    async def spoil() -> None:
        redis = redis_client(service.redis_url)
        await redis.hset(TenantKeys("demo").call(2), "doc", "not json")
        await redis.aclose()

    service.run_in_loop(spoil())
    result = _cli(service, "--since", _since(calls), "--output", str(tmp_path / "calls.csv"))
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == "Error: the export was cut short (ClientPayloadError)\n"
    assert os.listdir(tmp_path) == []


def test_missing_since_is_a_usage_error(service: LiveService) -> None:
    result = _cli(service)
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == "Error: Missing option '--since'."


@pytest.fixture
def gzip_server() -> Iterator[tuple[str, list[dict[str, str]]]]:
    """A stand-in for the API that answers an export gzip-compressed when the request allows
    it, as the service does: its URL, and each request's headers with the answer's
    Content-Encoding (`answered`)."""
    seen: list[dict[str, str]] = []
    ready = threading.Event()
    where: list[str] = []
    stop: list[asyncio.Event] = []

    async def export(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/csv; charset=utf-8"})
        if "gzip" in request.headers.get("Accept-Encoding", ""):
            response.enable_compression(web.ContentCoding.gzip)
        await response.prepare(request)
        seen.append({**request.headers, "answered": response.headers.get("Content-Encoding", "")})
        for line in (b"id,status\r\n", b'1,"two\r\nlines"\r\n', b"2,queued\r\n"):
            await response.write(line)
        return response

    async def serve() -> None:
        app = web.Application()
        app.router.add_get(f"{API}/calls/export", export)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        where.append(f"http://{host}:{port}")
        stop.append(asyncio.Event())
        ready.set()
        await stop[0].wait()
        await runner.cleanup()

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    ready.wait(timeout=10)
    yield where[0], seen
    loop.call_soon_threadsafe(stop[0].set)
    thread.join(timeout=10)
    loop.close()


def test_gzip_on_the_wire_is_decoded_into_the_file(
    gzip_server: tuple[str, list[dict[str, str]]], tmp_path: Path
) -> None:
    url, seen = gzip_server
    target = tmp_path / "calls.csv"
    result = CliRunner().invoke(
        main,
        ["calls", "export", "--since", "2026-11-21T00:00:00Z", "-o", str(target), "--url", url]
        + ["--tenant", "demo", "--token", TOKEN],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == f"2 calls written to {target}\n"
    assert target.read_bytes() == b'id,status\r\n1,"two\r\nlines"\r\n2,queued\r\n'
    assert "gzip" in seen[0]["Accept-Encoding"]
    assert seen[0]["answered"] == "gzip"


def _counted(format_name: str, chunks: list[bytes]) -> tuple[list[int], int]:
    counter = RowCounter(format_name)  # type: ignore[arg-type]
    return [counter.feed(chunk) for chunk in chunks], counter.total


def test_rows_are_counted_across_chunks_and_quoted_line_breaks() -> None:
    body = b'id,note\r\n1,"a ""quoted""\r\nline"\r\n2,plain\r\n3,"x\ny"\r\n'
    assert _counted("csv", [body]) == ([3], 3)
    for cut in range(1, len(body)):
        assert _counted("csv", [body[:cut], body[cut:]])[1] == 3, cut
    assert _counted("csv", [bytes([b]) for b in body])[1] == 3
    assert _counted("csv", [b"id,note\r\n"]) == ([0], 0)
    assert _counted("ndjson", [b'{"id":3,"x":"a\\"b"}\n{"id":2}', b"\n"]) == ([1, 1], 2)


def _environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISPATCHER_")}
    return {**env, "DISPATCHER_TENANT": "demo", "DISPATCHER_API_TOKEN": TOKEN, **extra}


@pytest.mark.subprocess
def test_a_terminal_gets_a_bar_counting_the_rows(
    service: LiveService, calls: list[dict[str, Any]], tmp_path: Path
) -> None:
    target = tmp_path / "calls.ndjson"
    with pseudo_terminal() as (terminal, reading):
        process = subprocess.Popen(
            [str(BIN), "calls", "export", "--since", _since(calls), "--format", "ndjson"]
            + ["--output", str(target)],
            env=_environment(DISPATCHER_URL=service.url),
            stdout=subprocess.DEVNULL,
            stderr=terminal,
        )
        drawn = ""
        while process.poll() is None:
            drawn += drain(reading, 0.05)
        drawn += drain(reading)
    assert process.returncode == 0
    assert re.fullmatch(r"export: 3row \[00:00, +[\d.]+row/s\]", frames(drawn)[-1]), drawn
    assert len(target.read_bytes().splitlines()) == 3
