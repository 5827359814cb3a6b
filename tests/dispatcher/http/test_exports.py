"""GET /calls/export and /chats/export: exact headers and bodies in CSV and NDJSON, gzip that
decodes to the plain body, the lists' filters and sort, bad input, defused formulas, tenant
isolation, a failure mid-stream, memory that stays flat as the export grows, and the same
bytes once the records are archived in PostgreSQL (and while they move)."""

from __future__ import annotations

import asyncio
import copy
import csv
import gzip
import io
import time
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from dispatcher.app import create_app
from dispatcher.domain import clock
from dispatcher.domain.exports import CALL_COLUMNS, CHAT_COLUMNS, cell
from dispatcher.domain.statuses import FailReason
from dispatcher.history.archive import Archive
from dispatcher.metrics import Metrics
from dispatcher.settings import Settings
from dispatcher.store.archiving import HotRecords
from dispatcher.store.directory import DirectoryCache
from dispatcher.store.keys import TenantKeys
from dispatcher.store.scripts import Scripts
from dispatcher.store.stores import Stores, end_call
from tests.conftest import basic, demo_document, load_directory
from tests.dispatcher.http.test_openapi import conforming
from tests.ports import free_port
from tests.test_docs_api import API_MD, tokens
from workers.archiver import Archiver

API = "/apps/api/v1"
CALLS, CHATS = f"{API}/calls", f"{API}/chats"
INBOUND = {"call_type": "Voice Inbound (API)", "menu_id": 9, "end_user_number": "+1 205-123-4567"}
OUTBOUND = {
    "call_type": "Voice Outbound (API)",
    "agent_email": "admin@somedomain.com",
    "end_user_number": "+1 859-657-9625",
}
SCHEDULED = {**INBOUND, "call_type": "Voice Scheduled (API)", "scheduled_at": "2030-06-03T17:00Z"}
SMS = {
    "chat_type": "Messaging (SMS)",
    "end_user_number": "+1 415-555-0100",
    "outbound_number": "+1 628-555-0199",
    "message": "Your order has shipped.",
    "ticket_id": "5006x00000XXxxxXXX",
    "agentEmail": "agent@somedomain.com",
}
PLAIN = {"Accept-Encoding": "identity"}
CALL_HEADER = ",".join(name for name, _ in CALL_COLUMNS)
CHAT_HEADER = ",".join(name for name, _ in CHAT_COLUMNS)


def _settings(redis_url: str, batch: int, **more: Any) -> Settings:
    return Settings(redis_url=redis_url, export_batch_size=batch, **more)


@pytest.fixture
async def client(redis_url: str, redis: Redis) -> AsyncIterator[TestClient[Any, Any]]:
    """The API with exports two records a batch, so that every export here spans batches."""
    async with TestClient(TestServer(create_app(_settings(redis_url, 2)))) as test_client:
        yield test_client


@pytest.fixture
async def acme(redis: Redis) -> dict[str, Any]:
    """The demo tenant and a second one, acme, with the same directory and its own token."""
    document = demo_document()
    other = copy.deepcopy(document["tenants"][0])
    other.update(subdomain="acme", api_tokens=["acme-token"])
    document["tenants"].append(other)
    await load_directory(redis, document)
    return document


async def _create(client: TestClient[Any, Any], path: str, body: Any, **auth: str) -> Any:
    response = await client.post(path, json=body, headers=basic(**auth))
    assert response.status in (200, 201), await response.text()
    return await response.json()


async def _calls(client: TestClient[Any, Any]) -> list[dict[str, Any]]:
    """Calls 1-3: inbound (queued), outbound (assigned), scheduled."""
    return [await _create(client, CALLS, body) for body in (INBOUND, OUTBOUND, SCHEDULED)]


def _since(record: dict[str, Any]) -> str:
    return str(record["created_at"])


async def _export(
    client: TestClient[Any, Any], path: str, query: dict[str, str], **auth: str
) -> aiohttp.ClientResponse:
    return await client.get(f"{path}/export", params=query, headers={**basic(**auth), **PLAIN})


async def test_csv_export_headers_and_body(client: TestClient[Any, Any], demo: Any) -> None:
    inbound, outbound, scheduled = await _calls(client)
    until = clock.iso(clock.now())
    query = {"created_at[from]": _since(inbound), "created_at[to]": until}
    response = await _export(client, CALLS, query)
    assert response.status == 200
    stamps = [moment.replace("-", "").replace(":", "") for moment in (_since(inbound), until)]
    assert {name: response.headers.get(name) for name in EXPORT_HEADERS} == {
        "Content-Type": "text/csv; charset=utf-8",
        "Content-Disposition": f'attachment; filename="calls_{stamps[0]}_{stamps[1]}.csv"',
        "Cache-Control": "no-store",
        "Vary": "Accept-Encoding",
        "Content-Encoding": None,
        "Transfer-Encoding": "chunked",
    }
    assert len(response.headers["X-Request-Id"]) == 32
    created = [call["created_at"] for call in (inbound, outbound, scheduled)]
    assert (await response.read()).decode().split("\r\n") == [
        CALL_HEADER,
        f"3,,Voice Scheduled (API),scheduled,en,{created[2]},,,,,2030-06-03T17:00:00.000Z,"
        "0,0,0,nothing,,disconnected_by_unknown,9,Lock Star,,,88,,,,'+13392195276,not_asked,"
        "cascade",
        f"2,,Voice Outbound (API),assigned,en,{created[1]},,{created[1]},,,,0,0,0,nothing,,"
        "disconnected_by_unknown,,,1,Admin UJET,,,,,'+13392195276,not_asked,",
        f"1,,Voice Inbound (API),queued,en,{created[0]},{created[0]},,,,,0,0,0,nothing,,"
        "disconnected_by_unknown,9,Lock Star,,,88,,,,'+13392195276,not_asked,cascade",
        "",
    ]


EXPORT_HEADERS = (
    "Content-Type",
    "Content-Disposition",
    "Cache-Control",
    "Vary",
    "Content-Encoding",
    "Transfer-Encoding",
)


async def test_ndjson_lines_are_the_stored_objects(client: TestClient[Any, Any], demo: Any) -> None:
    calls = await _calls(client)
    response = await _export(
        client, CALLS, {"created_at[from]": _since(calls[0]), "format": "ndjson"}
    )
    assert response.status == 200
    assert response.headers["Content-Type"] == "application/x-ndjson"
    assert response.headers["Content-Disposition"].endswith('.ndjson"')
    stored = [await (await client.get(f"{CALLS}/{n}", headers=basic())).read() for n in (3, 2, 1)]
    assert await response.read() == b"".join(doc + b"\n" for doc in stored)


async def test_an_empty_export_is_the_header_alone(client: TestClient[Any, Any], demo: Any) -> None:
    since = {"created_at[from]": "2020-01-01T00:00:00Z", "created_at[to]": "2020-12-31T00:00Z"}
    empty = await _export(client, CALLS, since)
    assert (empty.status, await empty.read()) == (200, CALL_HEADER.encode() + b"\r\n")
    nothing = await _export(client, CHATS, {**since, "format": "ndjson"})
    assert (nothing.status, await nothing.read()) == (200, b"")


async def test_chats_export(client: TestClient[Any, Any], demo: Any) -> None:
    chat = await _create(client, f"{API}/sms", SMS)
    other = await _create(client, f"{API}/sms", {**SMS, "end_user_number": "+1 415-555-0101"})
    response = await _export(client, CHATS, {"created_at[from]": _since(chat)})
    assert response.status == 200
    assert response.headers["Content-Disposition"].startswith('attachment; filename="chats_')
    rows = (await response.read()).decode().split("\r\n")
    assert rows[0] == CHAT_HEADER
    assert rows[2] == (
        f"1,Messaging (SMS),assigned,en,{chat['created_at']},,{chat['assigned_at']},,0,0,,"
        "disconnected_by_unknown,,,2,Agent Smith,agent@somedomain.com,87,,,5006x00000XXxxxXXX,"
        "'+16285550199"
    )
    assert [row.split(",")[0] for row in rows[1:-1]] == [str(other["id"]), "1"]
    ndjson = await _export(client, CHATS, {"created_at[from]": _since(chat), "format": "ndjson"})
    stored = [await (await client.get(f"{CHATS}/{n}", headers=basic())).read() for n in (2, 1)]
    assert await ndjson.read() == b"".join(doc + b"\n" for doc in stored)


async def test_answers_conform_to_the_openapi_document(
    client: TestClient[Any, Any], demo: Any
) -> None:
    calls = await _calls(client)
    chat = await _create(client, f"{API}/sms", SMS)
    for path, since in ((CALLS, _since(calls[0])), (CHATS, _since(chat))):
        template = f"{path}/export"
        zipped = await client.get(template, params={"created_at[from]": since}, headers=basic())
        assert zipped.headers["Content-Encoding"] == "gzip"
        await conforming(zipped, template)
        refused = await client.get(template, params={"format": "xml"}, headers=basic())
        assert await conforming(refused, template) == {"message": "format must be csv or ndjson"}


@pytest.mark.parametrize("format_name", ["csv", "ndjson"])
async def test_gzip_decodes_to_the_plain_body(
    client: TestClient[Any, Any], demo: Any, format_name: str
) -> None:
    calls = await _calls(client)
    query = {"created_at[from]": _since(calls[0]), "format": format_name}
    plain = await (await _export(client, CALLS, query)).read()
    zipped = await client.get(
        f"{CALLS}/export",
        params=query,
        headers={**basic(), "Accept-Encoding": "gzip, deflate"},
        auto_decompress=False,
    )
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(await zipped.read()) == plain
    for refused in ("gzip;q=0, deflate", "br", "identity;q=1, *;q=0"):
        unzipped = await client.get(
            f"{CALLS}/export",
            params=query,
            headers={**basic(), "Accept-Encoding": refused},
            auto_decompress=False,
        )
        assert "Content-Encoding" not in unzipped.headers
        assert await unzipped.read() == plain
    anything = await client.get(
        f"{CALLS}/export",
        params=query,
        headers={**basic(), "Accept-Encoding": "*"},
        auto_decompress=False,
    )
    assert gzip.decompress(await anything.read()) == plain


@pytest.mark.parametrize(
    "query",
    [
        {},
        {"status": "queued"},
        {"status": "failed"},
        {"call_type": "IncomingCall"},
        {"call_type": "Voice Outbound (API)", "status": "assigned"},
        {"sort_direction": "asc"},
        {"sort_column": "created_at", "sort_direction": "ASC"},
        {"sort_column": "id", "sort_direction": "desc"},
    ],
)
async def test_filters_and_sort_are_the_lists(
    client: TestClient[Any, Any], demo: Any, query: dict[str, str]
) -> None:
    calls = await _calls(client)
    finished = await client.post(f"{CALLS}/2/finish", headers=basic())  # frees the agent
    assert (await finished.json())["status"] == "failed"
    calls += await _calls(client)
    windows = [
        {"created_at[from]": _since(calls[0])},
        {"created_at[from]": _since(calls[2])},
        {"created_at[from]": _since(calls[0]), "created_at[to]": _since(calls[3])},
    ]
    for window in windows:
        listed = await client.get(CALLS, params={**query, **window, "per": "1000"}, headers=basic())
        expected = [call["id"] for call in await listed.json()]
        exported = await _export(client, CALLS, {**query, **window, "format": "ndjson"})
        lines = (await exported.read()).splitlines()
        assert [orjson.loads(line)["id"] for line in lines] == expected, window
        as_csv = await _export(client, CALLS, {**query, **window})
        rows = list(csv.reader(io.StringIO((await as_csv.read()).decode())))[1:]
        assert [int(row[0]) for row in rows] == expected


LONG_AGO = "2020-01-01T00:00:00Z"


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"page": "1"}, "page and per are not export parameters"),
        ({"per": "1000", "created_at[from]": LONG_AGO}, "page and per are not export parameters"),
        ({"format": "xlsx", "created_at[from]": LONG_AGO}, "format must be csv or ndjson"),
        ({"format": "CSV", "created_at[from]": LONG_AGO}, "format must be csv or ndjson"),
        ({}, "created_at[from] is required"),
        ({"created_at[to]": "2020-02-01T00:00:00Z"}, "created_at[from] is required"),
        ({"created_at[from]": "yesterday"}, "created_at[from] is not well formed"),
        (
            {"created_at[from]": LONG_AGO, "created_at[to]": "2020-13-01"},
            "created_at[to] is not well formed",
        ),
        (
            {"created_at[from]": "2020-02-01T00:00:00Z", "created_at[to]": LONG_AGO},
            "created_at[to] must not be before created_at[from]",
        ),
        (
            {"created_at[from]": "2999-01-01T00:00:00Z"},
            "created_at[to] must not be before created_at[from]",
        ),
        (
            {"created_at[from]": LONG_AGO},
            "created_at[from] and created_at[to] must be at most 366 days apart",
        ),
        (
            {"created_at[from]": LONG_AGO, "created_at[to]": "2021-01-01T00:00:00.001Z"},
            "created_at[from] and created_at[to] must be at most 366 days apart",
        ),
        ({"created_at[from]": LONG_AGO, "status": "dancing"}, "status is not valid"),
        ({"created_at[from]": LONG_AGO, "call_type": "Fax"}, "call_type is not valid"),
        (
            {"created_at[from]": LONG_AGO, "sort_column": "rating"},
            "sort_column must be one of id, created_at",
        ),
    ],
)
async def test_bad_input_is_400(
    client: TestClient[Any, Any], demo: Any, query: dict[str, str], message: str
) -> None:
    response = await _export(client, CALLS, query)
    assert response.status == 400
    assert response.headers["Content-Type"] == "application/json"
    assert await response.json() == {"message": message}


async def test_a_range_of_366_days_is_taken(client: TestClient[Any, Any], demo: Any) -> None:
    # 2020 is a leap year: 366 days to the millisecond.
    query = {"created_at[from]": LONG_AGO, "created_at[to]": "2021-01-01T00:00:00Z"}
    assert (await _export(client, CALLS, query)).status == 200
    chat_type = await _export(client, CHATS, {**query, "chat_type": "Fax"})
    assert await chat_type.json() == {"message": "chat_type is not valid"}


async def test_credentials_are_the_tenants(client: TestClient[Any, Any], demo: Any) -> None:
    query = {"created_at[from]": LONG_AGO, "created_at[to]": "2020-02-01T00:00:00Z"}
    for path in (CALLS, CHATS):
        wrong = await _export(client, path, query, token="wrong")
        assert (wrong.status, await wrong.json()) == (401, {"message": "Unauthorized"})
        agent = await _export(client, path, query, subdomain="demo/1", token="demo-agent-1")
        assert (agent.status, await agent.json()) == (
            403,
            {"message": "This route needs the tenant's API token, not an agent's"},
        )


async def test_another_tenants_token_sees_none_of_these_records(
    client: TestClient[Any, Any], acme: Any
) -> None:
    calls = await _calls(client)
    chat = await _create(client, f"{API}/sms", SMS)
    theirs = await _create(client, CALLS, INBOUND, subdomain="acme", token="acme-token")
    query = {"created_at[from]": _since(calls[0]), "format": "ndjson"}
    acme_calls = await _export(client, CALLS, query, subdomain="acme", token="acme-token")
    acme_docs = [orjson.loads(line) for line in (await acme_calls.read()).splitlines()]
    assert acme_docs == [theirs]
    acme_chats = await _export(client, CHATS, query, subdomain="acme", token="acme-token")
    assert await acme_chats.read() == b""
    demo_calls = await _export(client, CALLS, query)
    assert [orjson.loads(line)["id"] for line in (await demo_calls.read()).splitlines()] == [
        3,
        2,
        1,
    ]
    demo_chats = await _export(client, CHATS, query)
    assert [orjson.loads(line) for line in (await demo_chats.read()).splitlines()] == [chat]
    # acme's token under demo's name is no credential of demo's.
    crossed = await _export(client, CALLS, query, subdomain="demo", token="acme-token")
    assert crossed.status == 401


async def test_cells_that_would_be_formulas_are_defused(
    client: TestClient[Any, Any], redis: Redis
) -> None:
    document = demo_document()
    menu = next(m for m in document["tenants"][0]["menus"] if m["id"] == 9)
    menu["name"] = '=HYPERLINK("http://evil.example","Lock Star")'
    await load_directory(redis, document)
    tickets = ["=1+2", "+1", "-1", "@SUM(1)", 'say "hi",\nthen go', "plain"]
    created = [await _create(client, CALLS, {**INBOUND, "ticket_id": t}) for t in tickets]
    response = await _export(client, CALLS, {"created_at[from]": _since(created[0])})
    rows = list(csv.DictReader(io.StringIO((await response.read()).decode(), newline="")))
    assert [row["out_ticket_id"] for row in reversed(rows)] == [
        "'=1+2",
        "'+1",
        "'-1",
        "'@SUM(1)",
        'say "hi",\nthen go',
        "plain",
    ]
    assert {row["menu_name"] for row in rows} == {"'" + menu["name"]}
    assert {row["outbound_number"] for row in rows} == {"'+13392195276"}


@pytest.mark.parametrize(
    ("value", "written"),
    [
        (None, ""),
        (True, "true"),
        (False, "false"),
        (0, "0"),
        (42, "42"),
        ("=cmd", "'=cmd"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("@x", "'@x"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("a=b", "a=b"),
        ("", ""),
        ("'quoted", "'quoted"),
    ],
)
def test_cell(value: Any, written: str) -> None:
    assert cell(value) == written


async def test_a_failure_mid_stream_cuts_the_body_short(
    redis_url: str, redis: Redis, demo: Any
) -> None:
    """After the 200 went out, a record that cannot be read ends the connection before the
    body's last chunk: what was sent arrives, and the client's read fails rather than the
    export looking whole."""
    async with TestClient(TestServer(create_app(_settings(redis_url, 1)))) as one_a_batch:
        calls = await _calls(one_a_batch)
        await redis.hset(TenantKeys("demo").call(2), "doc", "not json")
        query = {"created_at[from]": _since(calls[0])}
        head, chunks, ended = await _raw_get(one_a_batch, f"{CALLS}/export", query)
        assert head.startswith(b"HTTP/1.1 200 OK\r\n")
        assert b"\r\nTransfer-Encoding: chunked\r\n" in head
        assert not ended
        rows = b"".join(chunks).decode().split("\r\n")
        assert (rows[0], rows[1].split(",")[:2], rows[2:]) == (CALL_HEADER, ["3", ""], [""])
        zipped = await one_a_batch.get(
            f"{CALLS}/export", params=query, headers={**basic(), "Accept-Encoding": "gzip"}
        )
        assert zipped.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            await zipped.read()
        still = await _export(one_a_batch, CALLS, {"created_at[from]": _since(calls[2])})
        assert still.status == 200
    async with TestClient(TestServer(create_app(_settings(redis_url, 2)))) as two_a_batch:
        # The first batch (calls 3 and 2) is read before the status: an error answer still.
        failed = await _export(two_a_batch, CALLS, query)
        assert (failed.status, await failed.json()) == (500, {"message": "Internal server error"})


async def _raw_get(
    client: TestClient[Any, Any], path: str, query: dict[str, str]
) -> tuple[bytes, list[bytes], bool]:
    """A GET over a bare socket, read to its end: the status line and headers, the chunks of
    the body, and whether the body's last (empty) chunk came."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    target = str(client.make_url(path).with_query(query).relative())
    lines = [f"GET {target} HTTP/1.1", f"Host: {client.host}", "Accept-Encoding: identity"]
    lines += [f"{name}: {value}" for name, value in basic().items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    raw = await reader.read()
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    chunks: list[bytes] = []
    while body:
        size_line, _, body = body.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            return head, chunks, True
        chunks.append(body[:size])
        body = body[size + 2 :]
    return head, chunks, False


async def test_postgresql_down_before_the_first_batch_is_503(redis_url: str, demo: Any) -> None:
    """The archive is read for the first batch before the status goes out: with PostgreSQL
    away (nothing listens) the export is the usual 503, not a 200 with nothing in it."""
    database_url = f"postgresql://dispatcher@127.0.0.1:{free_port()}/dispatcher"
    settings = _settings(redis_url, 2, database_url=database_url)
    async with TestClient(TestServer(create_app(settings))) as api:
        response = await _export(
            api, CALLS, {"created_at[from]": LONG_AGO, "created_at[to]": "2020-02-01T00:00Z"}
        )
        assert response.status == 503
        assert response.headers["Retry-After"] == "1"
        assert await response.json() == {"message": "Service unavailable"}


async def test_memory_stays_flat_as_the_export_grows(redis_url: str, demo: Any) -> None:
    """Peak memory of an export of 4N rows is not much above that of N: the handler holds one
    batch (50 here), never the whole export."""
    settings = _settings(redis_url, 50, rate_limit_per_s=0)
    async with TestClient(TestServer(create_app(settings))) as api:
        small, large = await _peaks(api, settle=None)
    assert large < 1.5 * small, (small, large)


async def test_memory_stays_flat_as_an_archived_export_grows(
    redis_url: str, database_url: str, redis: Redis, pg: asyncpg.Pool, demo: Any
) -> None:
    """The same, every record ended and read back from PostgreSQL, a batch at a time."""
    settings = _settings(
        redis_url, 50, rate_limit_per_s=0, database_url=database_url, hot_retention_s=0
    )
    archiver = Archiver(redis, Scripts.register(redis), Archive(pg), settings, Metrics())
    tenant = await DirectoryCache(redis, 0).tenant("demo")
    assert tenant is not None
    stores = Stores.of(redis, Scripts.register(redis), tenant)

    async def end_and_archive(ids: range) -> None:
        for call_id in ids:
            assert await end_call(stores, call_id, FailReason.AG_CANCELED) is not None
        await archiver.tick(deadline=time.monotonic() + 30)
        assert await pg.fetchval("SELECT count(*) FROM calls") == ids.stop - 1

    async with TestClient(TestServer(create_app(settings))) as api:
        small, large = await _peaks(api, settle=end_and_archive)
    assert large < 1.5 * small, (small, large)


async def _peaks(
    api: TestClient[Any, Any], settle: Callable[[range], Awaitable[None]] | None
) -> tuple[int, int]:
    """The peaks of traced memory over an export of 200 calls and over one of 800, each read
    and dropped a chunk at a time as a client writing it to a file would; `settle` is given
    the ids of each lot of new calls before the exports."""
    since = clock.iso(clock.now() - timedelta(seconds=1))

    async def add(first: int, count: int) -> None:
        batch = await api.post(f"{CALLS}/batch", json={"calls": [INBOUND] * count}, headers=basic())
        assert (await batch.json())["created"] == count
        if settle is not None:
            await settle(range(first, first + count))

    async def peak(rows: int) -> int:
        tracemalloc.start()
        try:
            response = await _export(api, CALLS, {"created_at[from]": since})
            lines = 0
            async for chunk in response.content.iter_chunked(1 << 16):
                lines += chunk.count(b"\r\n")
            assert (response.status, lines) == (200, 1 + rows)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    await add(1, 200)
    await peak(200)  # warm up: the first export's imports and caches
    small = await peak(200)
    await add(201, 600)
    return small, await peak(800)


def test_the_documented_csv_columns_are_the_codes() -> None:
    """docs/api.md's table under "CSV columns": each column's place in the calls' and the
    chats' CSV, and the field of the object it comes from."""
    toks = tokens(API_MD)
    start = next(i for i, tok in enumerate(toks) if tok.content == "CSV columns")
    end = next(i for i, tok in enumerate(toks) if i > start and tok.type == "tbody_close")
    rows: list[list[str]] = []
    for tok in toks[start:end]:
        if tok.type == "tr_open":
            rows.append([])
        elif tok.type == "inline" and rows:
            rows[-1].append(tok.content.strip("`"))
    documented: dict[str, list[tuple[int, str, str]]] = {"calls": [], "chats": []}
    for call_place, chat_place, name, field in rows[1:]:
        for kind, place in (("calls", call_place), ("chats", chat_place)):
            if place:
                documented[kind].append((int(place), name, field))
    for kind, columns in (("calls", CALL_COLUMNS), ("chats", CHAT_COLUMNS)):
        assert documented[kind] == [(n + 1, *column) for n, column in enumerate(columns)]


# -- archived records ---------------------------------------------------------------------------


@pytest.fixture
def history(redis_url: str, database_url: str) -> Settings:
    """Exports two records a batch, over the test's own PostgreSQL; a record is due for
    archiving as soon as it ends."""
    return _settings(redis_url, 2, database_url=database_url, hot_retention_s=0)


@pytest.fixture
async def archiving(history: Settings, redis: Redis) -> AsyncIterator[TestClient[Any, Any]]:
    async with TestClient(TestServer(create_app(history))) as test_client:
        yield test_client


@pytest.fixture
def archiver(redis: Redis, pg: asyncpg.Pool, history: Settings) -> Archiver:
    return Archiver(redis, Scripts.register(redis), Archive(pg), history, Metrics())


async def _finish(client: TestClient[Any, Any], path: str, **auth: str) -> None:
    finished = await client.post(f"{path}/finish", headers=basic(**auth))
    assert finished.status == 200, await finished.text()


ARCHIVE_QUERIES = [
    (CALLS, {}),
    (CALLS, {"sort_direction": "asc"}),
    (CALLS, {"status": "failed"}),
    (CALLS, {"status": "queued", "format": "ndjson"}),
    (CALLS, {"call_type": "IncomingCall", "format": "ndjson", "sort_column": "created_at"}),
    (CHATS, {}),
    (CHATS, {"format": "ndjson", "sort_direction": "asc"}),
    (CHATS, {"status": "finished"}),
]


async def _exports(client: TestClient[Any, Any], window: dict[str, str]) -> list[Any]:
    """Each of ARCHIVE_QUERIES' answers: status, file name and body."""
    found = []
    for path, query in ARCHIVE_QUERIES:
        response = await _export(client, path, {**query, **window})
        found.append(
            (response.status, response.headers["Content-Disposition"], await response.read())
        )
    return found


async def test_archived_records_export_the_same_bytes(
    archiving: TestClient[Any, Any],
    acme: Any,
    redis: Redis,
    archiver: Archiver,
    pg: asyncpg.Pool,
) -> None:
    """Calls 1, 3 and 4 and chat 1 end and move to PostgreSQL, calls 2 and 5 and chat 2 stay
    live: every export reads as it did, live and archived merged in order across batches,
    also while a move is half-done; acme's token still sees only acme's record."""
    calls = [await _create(archiving, CALLS, body) for body in (INBOUND, INBOUND)]
    calls += [await _create(archiving, CALLS, body) for body in (INBOUND, OUTBOUND, SCHEDULED)]
    for call_id in (1, 3, 4):
        await _finish(archiving, f"{CALLS}/{call_id}")
    await _create(archiving, f"{API}/sms", SMS)
    await _create(archiving, f"{API}/sms", {**SMS, "end_user_number": "+1 415-555-0101"})
    await _finish(archiving, f"{CHATS}/1")
    theirs = await _create(archiving, CALLS, INBOUND, subdomain="acme", token="acme-token")
    await _finish(archiving, f"{CALLS}/{theirs['id']}", subdomain="acme", token="acme-token")
    window = {"created_at[from]": _since(calls[0]), "created_at[to]": clock.iso(clock.now())}
    live = await _exports(archiving, window)

    # Half-moved: copied to PostgreSQL, still in Redis; each record is exported once.
    hot = HotRecords(redis, Scripts.register(redis), "demo")
    seq, records = await hot.begin("call", [1, 3, 4], cutoff_ms=2**62)
    await archiver._archive.store("call", "demo", seq, records)
    assert await _exports(archiving, window) == live

    done = await archiver.tick(deadline=time.monotonic() + 30)
    assert done.released == 5
    rows = await pg.fetch("SELECT tenant, id FROM calls ORDER BY tenant, id")
    assert [tuple(row) for row in rows] == [("acme", 1), ("demo", 1), ("demo", 3), ("demo", 4)]
    assert await pg.fetchval("SELECT count(*) FROM chats WHERE tenant = 'demo'") == 1
    for key in (TenantKeys("demo").call(1), TenantKeys("demo").chat(1)):
        assert await redis.exists(key) == 0
    assert await _exports(archiving, window) == live
    failed = await _export(archiving, CALLS, {**window, "status": "failed", "format": "ndjson"})
    assert [orjson.loads(line)["id"] for line in (await failed.read()).splitlines()] == [4, 3, 1]

    acme_window = {**window, "format": "ndjson"}
    acme_calls = await _export(archiving, CALLS, acme_window, subdomain="acme", token="acme-token")
    [acme_call] = [orjson.loads(line) for line in (await acme_calls.read()).splitlines()]
    assert (acme_call["id"], acme_call["status"]) == (theirs["id"], "failed")
    acme_chats = await _export(archiving, CHATS, acme_window, subdomain="acme", token="acme-token")
    assert await acme_chats.read() == b""
