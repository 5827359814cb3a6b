"""Hostile HTTP input against the real app: bodies over the limit (declared, chunked, gzipped),
deep JSON, huge strings and odd unicode in every field, odd bytes in headers, paths and queries.
Every answer is a 4xx with a `{"message"}` or a correct 2xx, never a 5xx; nothing big is stored."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import io
import json
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import structlog
from aiohttp.test_utils import TestClient, TestServer
from pydantic import SecretStr
from redis.asyncio import Redis

from dispatcher.app import create_app
from dispatcher.http import docs
from dispatcher.settings import Settings
from dispatcher.store import operator_sessions
from dispatcher.store.directory import DirectoryCache
from tests.conftest import ADMIN_TOKEN, basic, demo_document, load_directory
from tests.dispatcher.http.test_twilio import settings_for

API = "/apps/api/v1"
LIMIT = 1024 * 1024
TOO_LARGE = {"message": f"Request body is too large (limit {LIMIT} bytes)"}
NOT_JSON = {"message": "Request body is not valid JSON"}
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
OUTBOUND = {
    "call_type": "Voice Outbound (API)",
    "agent_email": "agent@somedomain.com",
    "end_user_number": "+1 628-555-0142",
}
INBOUND = {"call_type": "Voice Inbound (API)", "menu_id": 9, "end_user_number": "+1 205-123-4567"}
SCHEDULED = {
    **INBOUND,
    "call_type": "Voice Scheduled (API)",
    "scheduled_at": "2099-06-03T17:00:00Z",
}
SMS = {
    "chat_type": "Messaging (SMS)",
    "end_user_number": "+1 415-555-0100",
    "outbound_number": "+1 628-555-0199",
    "message": "Your order has shipped.",
}
VALID_BODIES: dict[str, dict[str, Any]] = {
    "outbound": OUTBOUND,
    "inbound": INBOUND,
    "scheduled": SCHEDULED,
    "sms": SMS,
}
# The API's credentials with the only body type its JSON routes take.
JSON_BASIC = {**basic(), "Content-Type": "application/json"}
# Every route that reads a body, with the headers it needs: (method, path, headers).
BODY_ROUTES = [
    ("POST", f"{API}/calls", JSON_BASIC),
    ("POST", f"{API}/sms", JSON_BASIC),
    ("PATCH", f"{API}/calls/1/customer_flag", JSON_BASIC),
    ("PUT", f"{API}/agents/1/status", JSON_BASIC),
    ("PUT", "/manager/api/v1/config", ADMIN),
]
BODY_ROUTE_IDS = ["calls", "sms", "customer_flag", "agent_status", "config"]


@pytest.fixture
async def http(settings: Settings, demo: dict[str, Any]) -> AsyncIterator[TestClient[Any, Any]]:
    """The app with the demo directory and no rate limit: these tests send many requests."""
    unlimited = settings.model_copy(update={"rate_limit_per_s": 0})
    async with TestClient(TestServer(create_app(unlimited))) as test_client:
        yield test_client


async def exchange(http: TestClient[Any, Any], request: bytes) -> tuple[int, bytes, bytes]:
    """One raw HTTP/1.1 exchange on a fresh connection: (status, head, body)."""
    assert http.server.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", http.server.port)
    try:
        writer.write(request)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        body = await reader.readexactly(_length(head))
    finally:
        writer.close()
    return int(head.split(b" ")[1]), head, body


def _length(head: bytes) -> int:
    """The Content-Length of a response head; 0 without one (a 204 or 304)."""
    _, found, rest = head.lower().partition(b"\r\ncontent-length: ")
    return int(rest.split(b"\r\n")[0]) if found else 0


class _Collector(logging.Handler):
    def __init__(self, level: int) -> None:
        super().__init__(level)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def no_error_logged() -> Iterator[None]:
    """Nothing at error level or with a traceback is logged meanwhile: neither ours (structlog)
    nor the libraries' (aiohttp.server, aiohttp.web_protocol, asyncio: the stdlib's)."""
    collector = _Collector(logging.WARNING)
    logging.getLogger().addHandler(collector)
    try:
        with structlog.testing.capture_logs() as events:
            yield
    finally:
        logging.getLogger().removeHandler(collector)
    bad = [r.getMessage() for r in collector.records if r.exc_info or r.levelno >= logging.ERROR]
    assert bad == []
    assert [e for e in events if e.get("exc_info") or e["log_level"] in ("error", "critical")] == []


def _head(method: str, path: str, headers: dict[str, str], **more: str) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: test", *(f"{k}: {v}" for k, v in headers.items())]
    lines += [f"{k.replace('_', '-')}: {v}" for k, v in more.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def _answer(response: Any) -> tuple[int, Any]:
    return response.status, await response.json()


# --- bodies over the limit ------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "headers"), BODY_ROUTES, ids=BODY_ROUTE_IDS)
async def test_a_declared_oversize_body_is_413_before_it_is_sent(
    http: TestClient[Any, Any], method: str, path: str, headers: dict[str, str]
) -> None:
    # Only the headers go out: the answer must not wait for the 1 MiB + 1 announced.
    head = _head(method, path, headers, Content_Length=str(LIMIT + 1))
    status, _, body = await exchange(http, head)
    assert (status, json.loads(body)) == (413, TOO_LARGE)


@pytest.mark.parametrize(("method", "path", "headers"), BODY_ROUTES, ids=BODY_ROUTE_IDS)
async def test_a_chunked_oversize_body_is_413(
    http: TestClient[Any, Any], method: str, path: str, headers: dict[str, str]
) -> None:
    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: sent chunked
        yield b'{"message": "'
        for _ in range(20):
            yield b"x" * 64 * 1024
        yield b'"}'

    response = await http.request(method, path, data=chunks(), headers=headers)
    assert response.request_info.headers.get("Transfer-Encoding") == "chunked"
    assert await _answer(response) == (413, TOO_LARGE)


async def test_a_gzip_bomb_is_413(http: TestClient[Any, Any]) -> None:
    bomb = gzip.compress(b'{"message": "' + b" " * (64 * LIMIT) + b'"}')  # 64 MiB in 64 kB
    assert len(bomb) < LIMIT // 10
    headers = {**basic(), "Content-Encoding": "gzip", "Content-Type": "application/json"}
    response = await http.post(f"{API}/sms", data=bomb, headers=headers)
    assert await _answer(response) == (413, TOO_LARGE)


async def test_a_body_at_the_limit_is_read(http: TestClient[Any, Any]) -> None:
    padding = LIMIT - len(json.dumps({**SMS, "padding": ""}).encode())
    body = json.dumps({**SMS, "padding": "p" * padding}).encode()
    assert len(body) == LIMIT
    response = await http.post(f"{API}/sms", data=io.BytesIO(body), headers=JSON_BASIC)
    assert response.status == 200


async def test_a_broken_gzip_body_is_400(http: TestClient[Any, Any]) -> None:
    # Found while probing: ContentEncodingError escaped the body reader, a 500.
    headers = {**basic(), "Content-Encoding": "gzip"}
    response = await http.post(f"{API}/calls", data=b"not gzip at all", headers=headers)
    assert await _answer(response) == (400, {"message": "Request body could not be read"})


# --- deep JSON ------------------------------------------------------------------------------------

DEEP = {
    "arrays": b"[" * 100_000 + b"]" * 100_000,
    "objects": b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
    "in-a-field": b'{"call_type": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
}


@pytest.mark.parametrize(("method", "path", "headers"), BODY_ROUTES[:4], ids=BODY_ROUTE_IDS[:4])
@pytest.mark.parametrize("deep", DEEP.values(), ids=DEEP.keys())
async def test_deep_json_is_400(
    http: TestClient[Any, Any], method: str, path: str, headers: dict[str, str], deep: bytes
) -> None:
    response = await http.request(method, path, data=io.BytesIO(deep), headers=headers)
    assert await _answer(response) == (400, NOT_JSON)


@pytest.mark.parametrize("deep", DEEP.values(), ids=DEEP.keys())
async def test_deep_json_is_400_for_the_operator_api_too(
    http: TestClient[Any, Any], deep: bytes
) -> None:
    # Found by the directory's property tests: RecursionError in the YAML/JSON loader, a 500.
    response = await http.put("/manager/api/v1/config", data=io.BytesIO(deep), headers=ADMIN)
    message = "document: is nested too deeply"
    assert await _answer(response) == (400, {"message": message, "errors": [message]})


async def test_json_as_deep_as_the_parser_takes_is_still_answered(
    http: TestClient[Any, Any],
) -> None:
    for depth in (100, 500, 1000, 1023, 1024, 1025):
        body = b'{"call_type": "OutboundCall", "lang": ' + b"[" * depth + b"]" * depth + b"}"
        response = await http.post(f"{API}/calls", data=body, headers=JSON_BASIC)
        assert response.status == 400, depth
        assert set(await response.json()) == {"message"}


# --- huge strings, odd unicode, any JSON in every field -------------------------------------------

HUGE = "\U0001f600" * 200_000  # 800 kB of 4-byte UTF-8 in one string, under the 1 MiB limit
ODD = [
    "a\u0000b",  # NUL
    "\u202eevil\u202c",  # RTL override
    "\u200f\u05e9\u05dc\u05d5\u05dd",  # RTL mark and Hebrew
    "\U0001f469\u200d\U0001f4bb",  # emoji with a joiner
    "e\u0301\u0338\u20dd",  # combining marks
    "\ufeff",  # a BOM
    "\u00a0",  # no-break space only
    "\uff0b\uff11 \uff16\uff12\uff18-\uff15\uff15\uff15-\uff10\uff11\uff14\uff12",  # fullwidth
    "\u0663\u0663\u0669\u0662\u0661\u0669\u0665\u0662\u0667\u0666",  # Arabic-Indic digits
]
FIELDS = {
    "outbound": ["call_type", "agent_email", "ticket_id", "end_user_number", "outbound_number",
                 "lang"],
    "inbound": ["call_type", "menu_id", "end_user_number", "lang", "ticket_id", "outbound_number",
                "recording_permission"],
    "scheduled": ["call_type", "menu_id", "call_id", "end_user_number", "scheduled_at", "lang",
                  "ticket_id", "recording_permission"],
    "sms": ["chat_type", "end_user_number", "outbound_number", "message", "ticket_id", "agentId",
            "agentEmail"],
}  # fmt: skip
CASES = [(kind, field) for kind, fields in FIELDS.items() for field in fields]


async def _post(http: TestClient[Any, Any], kind: str, body: dict[str, Any]) -> tuple[int, Any]:
    path = f"{API}/sms" if kind == "sms" else f"{API}/calls"
    raw = json.dumps(body, ensure_ascii=False).encode()
    response = await http.post(path, data=io.BytesIO(raw), headers=JSON_BASIC)
    assert response.status < 500, (body, response.status)
    return await _answer(response)


@pytest.mark.parametrize(("kind", "field"), CASES, ids=[f"{k}-{f}" for k, f in CASES])
async def test_huge_and_odd_values_in_every_field_are_4xx_or_stored_as_sent(
    http: TestClient[Any, Any], redis: Redis, kind: str, field: str
) -> None:
    for value in [HUGE, *ODD, " " * 100_000, -(2**63), 2**64 - 1, 1e308, [HUGE], {"a": ODD}]:
        await redis.delete("dsp:t:{demo}:agent:2")  # free the agent's voice slot again
        status, answer = await _post(http, kind, {**VALID_BODIES[kind], field: value})
        if status >= 400:
            assert status == 400 and set(answer) == {"message"}, answer
            assert len(answer["message"]) <= len(json.dumps(value)) + 100
        elif field in ("ticket_id", "message"):
            stored = answer["out_ticket_id"] if field == "ticket_id" else None
            assert stored in (None, str(value).strip()), stored
    await _nothing_big_is_stored(redis)


async def _nothing_big_is_stored(redis: Redis, limit: int = 16 * 1024) -> None:
    """Every value in Redis is small: no request smuggled a huge string into storage."""
    async for key in redis.scan_iter(count=1000):
        kind = (await redis.type(key)).decode()
        if kind == "string":
            size = await redis.strlen(key)
        elif kind == "hash":
            size = max([len(v) for v in (await redis.hgetall(key)).values()] or [0])
        else:
            continue
        assert size <= limit, (key, size)


async def test_an_inbound_sms_is_bounded_like_an_outbound_one(
    http: TestClient[Any, Any], redis: Redis
) -> None:
    # Found here: the simulated carrier's inbound text was kept whole with the chat, 1 MiB each.
    status, chat = await _post(http, "sms", SMS)
    assert status == 200
    inbound = {"from": SMS["end_user_number"], "to": SMS["outbound_number"]}
    for text, expected in [
        ("\U0001f600" * 1600, 200),
        ("\U0001f600" * 1601, 400),
        (HUGE, 400),
        ("a\u0000\u202e", 200),
    ]:
        body = json.dumps({**inbound, "text": text}, ensure_ascii=False).encode()
        response = await http.post(
            "/carrier/simulated/sms", data=io.BytesIO(body), headers=JSON_BASIC
        )
        assert response.status == expected
        if expected == 400:
            message = "text is too long (at most 1600 characters)"
            assert await response.json() == {"message": message}
    await _nothing_big_is_stored(redis)


async def test_unicode_is_stored_and_answered_exactly(http: TestClient[Any, Any]) -> None:
    for text in ODD[:6]:
        message = f"{text} {text}"
        status, chat = await _post(
            http, "sms", {**SMS, "end_user_number": "+1 415-555-0199", "message": message,
                          "ticket_id": text}
        )  # fmt: skip
        assert status == 200, chat
        stored = await (await http.get(f"{API}/chats/{chat['id']}", headers=basic())).json()
        assert stored["out_ticket_id"] == text.strip()
        await http.post(f"{API}/chats/{chat['id']}/finish", headers=basic())


async def test_numbers_in_other_scripts_normalize_to_e164(http: TestClient[Any, Any]) -> None:
    fullwidth, arabic_indic = ODD[7], ODD[8]
    status, call = await _post(http, "inbound", {**INBOUND, "end_user_number": fullwidth})
    assert (status, call["end_user"]["id"]) == (201, 88)
    status, call = await _post(http, "inbound", {**INBOUND, "end_user_number": arabic_indic})
    assert status == 201


@pytest.mark.parametrize(("method", "path", "headers"), BODY_ROUTES, ids=BODY_ROUTE_IDS)
@pytest.mark.parametrize(
    "body",
    [
        b'{"message": "\\ud800"}',  # a lone surrogate, escaped
        b'{"message": "\\udfff\\ud800"}',  # reversed pair
        b'{"\\ud800": 1}',  # in a key
        b'{"message": "\xff\xfe"}',  # not UTF-8
        b'{"message": "\xed\xa0\x80"}',  # a surrogate encoded in UTF-8 (CESU)
        b"\xef\xbb\xbf{}",  # a UTF-8 BOM before the object
    ],
    ids=["lone-surrogate", "reversed-pair", "surrogate-key", "not-utf8", "cesu", "bom"],
)
async def test_text_that_is_not_unicode_is_400(
    http: TestClient[Any, Any], method: str, path: str, headers: dict[str, str], body: bytes
) -> None:
    response = await http.request(method, path, data=body, headers=headers)
    assert response.status == 400
    answer = await response.json()
    if path.startswith("/manager"):
        # The operator API reads YAML, where "\ud800" is an escape like any other: refused by
        # the loader, with its path when pydantic would have choked on it.
        assert "message" in answer and set(answer) <= {"message", "errors"}, answer
    else:
        assert answer == NOT_JSON


# --- headers, paths and queries -------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [b"\xc3\xa9t\xc3\xa9", b"\xd9\xa3\xd9\xa3", b"\xff\xfe", b"a" * 65, b"a b", b"<script>"],
    ids=["accented", "arabic-digits", "not-utf8", "too-long", "space", "markup"],
)
async def test_an_odd_request_id_is_replaced_not_echoed(
    http: TestClient[Any, Any], value: bytes
) -> None:
    request = b"GET /healthz HTTP/1.1\r\nHost: test\r\nX-Request-Id: " + value + b"\r\n\r\n"
    status, head, _ = await exchange(http, request)
    echoed = head.split(b"X-Request-Id: ")[1].split(b"\r\n")[0]
    assert status == 200
    assert echoed != value and echoed.isascii() and len(echoed) == 32, echoed


@pytest.mark.parametrize(
    "header",
    [
        b"Idempotency-Key: \xff\xfe",
        b"Idempotency-Key: " + "\u00e9\U0001f600".encode(),
        b"Idempotency-Key: " + b"k" * 8000,
        b"Content-Type: application/json; charset=\xff",
        b"Content-Type: text/plain",
        b"X-Forwarded-For: \xff",
    ],
    ids=["key-bytes", "key-unicode", "key-8k", "charset-bytes", "text-plain", "xff"],
)
async def test_odd_bytes_in_other_headers_are_never_5xx(
    http: TestClient[Any, Any], header: bytes
) -> None:
    body = json.dumps(SMS).encode()
    auth = basic()["Authorization"].encode()
    request = (
        b"POST " + f"{API}/sms".encode() + b" HTTP/1.1\r\nHost: test\r\nAuthorization: " + auth
        + b"\r\n" + header + b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )  # fmt: skip
    status, _, answer = await exchange(http, request)
    assert status < 500, answer
    assert status == 200 or set(json.loads(answer)) == {"message"}


@pytest.mark.parametrize("header", [b"Accept: \x01\x02", b"X-A: a\x00b", b"X-" + b"a" * 9000])
async def test_headers_aiohttp_cannot_parse_are_its_own_400(
    http: TestClient[Any, Any], header: bytes
) -> None:
    # aiohttp's parser refuses control characters and over-long lines before any handler runs;
    # its answer is text/plain, and it closes the connection.
    status, head, _ = await exchange(
        http, b"GET /healthz HTTP/1.1\r\nHost: t\r\n" + header + b"\r\n\r\n"
    )
    assert status == 400
    assert b"Content-Type: text/plain" in head


@pytest.mark.parametrize(
    "value", [b"Basic \xc3\xbc", b"Basic \xff\xfe", b"Basic ZGVtbzpkZW1vLXRva2Vu\xc3\xa9"]
)
async def test_non_ascii_credentials_are_401(http: TestClient[Any, Any], value: bytes) -> None:
    request = b"GET " + f"{API}/calls".encode() + b" HTTP/1.1\r\nHost: test\r\n"
    status, _, body = await exchange(http, request + b"Authorization: " + value + b"\r\n\r\n")
    assert (status, json.loads(body)) == (401, {"message": "Unauthorized"})


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        (f"{API}/calls/%ff%00", 404, "Call not found"),
        (f"{API}/calls/%D9%A3", 404, "Call not found"),  # an Arabic-Indic 3
        (f"{API}/calls/99999999999999999999999", 404, "Call not found"),
        (f"{API}/chats/-1", 404, "Chat not found"),
        (f"{API}/agents/%00/offers", 404, "Agent not found"),
        (f"{API}/calls?page=%00", 400, "page must be a positive integer"),
        (f"{API}/calls?per=1e3", 400, "per must be a positive integer"),
        (f"{API}/calls?status=%ff", 400, "status is not valid"),
        (f"{API}/calls?created_at%5Bfrom%5D=%ff", 400, "created_at[from] is not well formed"),
        # Found by the clock's property tests: OverflowError, a 500, before the fix.
        (
            f"{API}/calls?created_at%5Bfrom%5D=0001-01-01T00:00:00%2B01:00",
            400,
            "created_at[from] is not well formed",
        ),
        (
            f"{API}/chats?created_at%5Bto%5D=9999-12-31T23:59:59-01:00",
            400,
            "created_at[to] is not well formed",
        ),
        (
            f"{API}/calls?created_at%5Bto%5D=2030-01-01T00:00:00Z%00anything",
            400,
            "created_at[to] is not well formed",
        ),
    ],
)
async def test_odd_paths_and_queries_are_4xx(
    http: TestClient[Any, Any], path: str, status: int, message: str
) -> None:
    response = await http.get(path, headers=basic())
    assert await _answer(response) == (status, {"message": message})


@pytest.mark.parametrize(
    ("scheduled_at", "message"),
    [
        # Found by the clock's property tests: OverflowError, a 500, before the fix.
        ("0001-01-01T00:00:00+01:00", "scheduled_at is not well formed"),
        ("9999-12-31T23:59:59-01:00", "scheduled_at is not well formed"),
        ("2099-06-03T17:00:00Z\u0000garbage", "scheduled_at is not well formed"),
        ("\uff12\uff10\uff19\uff19-06-03T17:00:00Z", "scheduled_at is not well formed"),
        ("9999-12-30T23:59:59.999Z", None),
    ],
)
async def test_scheduled_at_at_the_edges_of_time(
    http: TestClient[Any, Any], scheduled_at: str, message: str | None
) -> None:
    status, answer = await _post(http, "scheduled", {**SCHEDULED, "scheduled_at": scheduled_at})
    if message is None:
        assert (status, answer["scheduled_at"]) == (201, scheduled_at)
    else:
        assert (status, answer) == (400, {"message": message})


# --- credentials, cookies and the Host in bytes that are not ASCII --------------------------------

UNAUTHORIZED = {"message": "Unauthorized"}
BAD_HOST = {"message": "Host header is not valid"}
EXPECTATION_FAILED = {"message": "Expect header is not valid: only 100-continue is supported"}
METRICS_TOKEN = "metrics-secret-token"
NOT_A_SESSION = b"dispatcher_session=demo.not-a-session"


@pytest.fixture
async def guarded(settings: Settings, demo: dict[str, Any]) -> AsyncIterator[TestClient[Any, Any]]:
    """`http` with a metrics token too."""
    update = {"rate_limit_per_s": 0, "metrics_token": SecretStr(METRICS_TOKEN)}
    async with TestClient(TestServer(create_app(settings.model_copy(update=update)))) as client:
        yield client


@pytest.mark.parametrize(
    ("method", "path", "header", "status", "answer"),
    [
        # Found by the hardening review: hmac.compare_digest, str.encode and Redis raised on the
        # lone surrogates aiohttp decodes such bytes into, each a 500 and a logged traceback.
        ("GET", "/manager/api/v1/config", b"Authorization: Bearer \xff", 401, UNAUTHORIZED),
        ("PUT", "/manager/api/v1/config", b"Authorization: Bearer \xc3\xa9", 401, UNAUTHORIZED),
        ("GET", "/metrics", b"Authorization: Bearer \xff", 401, UNAUTHORIZED),
        ("GET", "/metrics", b"Authorization: bearer \xed\xa0\x80", 401, UNAUTHORIZED),
        ("GET", "/dashboard/session", b"Cookie: dispatcher_session=demo.\xff", 401, UNAUTHORIZED),
        ("GET", "/dashboard/api/snapshot", b"Cookie: dispatcher_session=demo.\xff", 401,
         UNAUTHORIZED),
        ("GET", "/dashboard/api/calls/1", b"Cookie: dispatcher_session=d\xffmo.x", 401,
         UNAUTHORIZED),
        ("GET", "/dashboard/events", b"Cookie: dispatcher_session=demo.\xc3\xa9", 401,
         UNAUTHORIZED),
        ("POST", "/dashboard/logout", b"Cookie: dispatcher_session=\xff.secret", 204, None),
        # yarl raised building the Link header on the Host: a 500 on every list route.
        ("GET", f"{API}/calls", b"Host: \xff", 400, BAD_HOST),
        ("GET", f"{API}/calls", b"Host: x:99999999", 400, BAD_HOST),
        ("GET", f"{API}/chats", b"Host: x:-1", 400, BAD_HOST),
        ("GET", f"{API}/agents", b"Host: \xc3\xa9", 400, BAD_HOST),
        ("GET", f"{API}/campaigns", b"Host: [::1", 400, BAD_HOST),
        ("GET", f"{API}/calls", b"Host: a b", 400, BAD_HOST),
        ("GET", f"{API}/calls", b"Host: ", 400, BAD_HOST),
        # aiohttp's Expect handler put the value in its text/plain 417, and failed to encode it.
        ("GET", "/healthz", b"Expect: \xff", 417, EXPECTATION_FAILED),
        # and on a path no route matches, or a method the route has not (aiohttp's own routes)
        ("GET", "/no/such/path", b"Expect: \xff", 417, EXPECTATION_FAILED),
        ("DELETE", "/healthz", b"Expect: \xff", 417, EXPECTATION_FAILED),
    ],
)  # fmt: skip
async def test_odd_bytes_in_credentials_cookies_and_host_are_4xx(
    guarded: TestClient[Any, Any],
    method: str,
    path: str,
    header: bytes,
    status: int,
    answer: dict[str, str] | None,
) -> None:
    lines = [f"{method} {path} HTTP/1.1".encode(), header, b"Content-Length: 0"]
    if not header.startswith(b"Host:"):
        lines.append(b"Host: test")
    if not header.startswith(b"Authorization:"):
        lines.append(b"Authorization: " + basic()["Authorization"].encode())
    request = b"\r\n".join(lines) + b"\r\n\r\n"
    with no_error_logged():
        got, _, body = await exchange(guarded, request)
    assert (got, json.loads(body) if body else None) == (status, answer)


@pytest.mark.parametrize(
    ("host", "base"),
    [
        (b"test", "http://test"),
        (b"127.0.0.1:8080", "http://127.0.0.1:8080"),
        (b"[::1]:8080", "http://[::1]:8080"),
        (b"xn--9ca.example", "http://xn--9ca.example"),
    ],
)
async def test_links_are_built_on_a_valid_host(
    http: TestClient[Any, Any], host: bytes, base: str
) -> None:
    request = f"GET {API}/calls?per=5 HTTP/1.1\r\nAuthorization: ".encode()
    request += basic()["Authorization"].encode() + b"\r\nHost: " + host + b"\r\n\r\n"
    status, head, _ = await exchange(http, request)
    link = head.split(b"Link: ")[1].split(b"\r\n")[0].decode()
    first = f'<{base}{API}/calls?per=5&page=1>; rel="first"'
    assert (status, link) == (200, f"{first}, {first.replace('first', 'last')}")


async def test_links_are_built_on_the_public_url_when_it_is_set(
    settings: Settings, demo: dict[str, Any]
) -> None:
    # Behind a proxy the Host this process sees is not the one the client called.
    public = settings.model_copy(update={"public_url": "https://dispatch.example.com/prefix"})
    async with TestClient(TestServer(create_app(public))) as client:
        request = f"GET {API}/agents?per=3 HTTP/1.1\r\nAuthorization: ".encode()
        request += basic()["Authorization"].encode() + b"\r\nHost: \xff\r\n\r\n"
        status, head, _ = await exchange(client, request)
    link = head.split(b"Link: ")[1].split(b", ")[0].decode()
    first = f'<https://dispatch.example.com/prefix{API}/agents?per=3&page=1>; rel="first"'
    assert (status, link) == (200, first)


# --- every header the app reads, on every route family --------------------------------------------

# What the app (or aiohttp for it) reads: credentials, the session cookie, the Host links are
# built on, ids and keys, body encodings, proxy headers, the signature of Twilio's callbacks,
# and the conditions and ranges of the files it serves.
READ_HEADERS = [
    "Host", "Authorization", "Cookie", "X-Request-Id", "Idempotency-Key", "Content-Type",
    "Content-Encoding", "X-Forwarded-Proto", "X-Forwarded-For", "X-Forwarded-Host", "Forwarded",
    "X-Twilio-Signature", "Range", "If-Range", "If-Modified-Since", "If-Unmodified-Since",
    "If-None-Match", "If-Match", "Accept-Encoding", "Accept", "Origin", "Referer", "Expect",
]  # fmt: skip
SESSION = "dispatcher_session={session}"  # an open session's cookie, filled in per test
BEARER_ADMIN = f"Bearer {ADMIN_TOKEN}"
LOGIN = json.dumps({"subdomain": "demo", "token": "demo-token"}).encode()
TWILIO_FORM = {"X-Twilio-Signature": "x", "Content-Type": "application/x-www-form-urlencoded"}
# One route of each family, with the headers (and body) of a request it would answer with 2xx.
ROUTE_FAMILIES: dict[str, tuple[str, str, dict[str, str], bytes]] = {
    "health": ("GET", "/healthz", {}, b""),
    "list": ("GET", f"{API}/calls?per=2", basic(), b""),
    "create": ("POST", f"{API}/sms", basic(), json.dumps(SMS).encode()),
    "manager": ("GET", "/manager/api/v1/config", {"Authorization": BEARER_ADMIN}, b""),
    "metrics": ("GET", "/metrics", {"Authorization": f"Bearer {METRICS_TOKEN}"}, b""),
    "dashboard": ("GET", "/dashboard/api/snapshot", {"Cookie": SESSION}, b""),
    "login": ("POST", "/dashboard/login", {}, LOGIN),
    "stream": ("GET", "/dashboard/events", {"Cookie": "dispatcher_session=demo.closed"}, b""),
    "page": ("GET", "/static/app.css", {}, b""),
    "docs": ("GET", f"/docs/static/{docs.VERSION}/swagger-ui.css", {}, b""),
    "twilio": ("POST", "/carrier/twilio/demo/sms", TWILIO_FORM, b"From=1&Body=hi"),
}
HOSTILE_VALUES = [
    b"\xff", b"\xc3\xa9", b"\xed\xa0\x80", b"Basic \xff", b"Bearer \xff", b"x:99999999",
    b"dispatcher_session=demo.\xff", b"bytes=\xff-", b"a" * 4000, b"",
]  # fmt: skip


def raw_request(family: str, session: str, name: str | None = None, value: bytes = b"") -> bytes:
    """The family's request with header `name` set to `value`, in place of its own."""
    method, path, own, body = ROUTE_FAMILIES[family]
    headers = {"Host": b"test", "Content-Type": b"application/json" if body else b""}
    headers |= {k: v.format(session=session).encode() for k, v in own.items()}
    if name is not None:
        headers[name] = value
    lines = [
        f"{method} {path} HTTP/1.1".encode(),
        *(k.encode() + b": " + v for k, v in headers.items()),
    ]
    lines.append(f"Content-Length: {len(body)}".encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def assert_answered(status: int, body: bytes, sent: object) -> None:
    """The route's own answer, or a 4xx with a JSON `{"message"}`: never a 5xx."""
    assert status < 500, (sent, body)
    if status in (412, 416) and not body:
        return  # a file's answers to an If-Match or a Range it cannot serve (RFC 9110)
    if status >= 400:
        assert body.startswith(b"{"), (sent, status, body)
        answer = json.loads(body)
        assert "message" in answer and set(answer) <= {"message", "errors"}, answer


async def _session(redis: Redis) -> str:
    tenant = await DirectoryCache(redis).tenant("demo")
    assert tenant is not None
    return f"demo.{await operator_sessions.open_session(redis, tenant, 3600)}"


@pytest.fixture
async def twilio_ingress(redis_url: str, redis: Redis) -> AsyncIterator[TestClient[Any, Any]]:
    """The app with a Twilio account and its public URL: what Twilio's signatures need."""
    document = demo_document()
    document["tenants"][0]["settings"]["carrier"] = "twilio"
    await load_directory(redis, document)
    app = create_app(settings_for(redis_url, rate_limit_per_s=0))
    async with TestClient(TestServer(app)) as client:
        yield client


@pytest.mark.parametrize("family", [family for family in ROUTE_FAMILIES if family != "twilio"])
async def test_hostile_bytes_in_every_header_read_are_never_5xx(
    guarded: TestClient[Any, Any], redis: Redis, family: str
) -> None:
    await _fuzz_headers(guarded, redis, family)


async def test_hostile_bytes_in_every_header_of_a_twilio_callback_are_never_5xx(
    twilio_ingress: TestClient[Any, Any], redis: Redis
) -> None:
    await _fuzz_headers(twilio_ingress, redis, "twilio")


async def _fuzz_headers(client: TestClient[Any, Any], redis: Redis, family: str) -> None:
    """Every read header in turn, with every hostile value, on the family's route."""
    session = await _session(redis)
    status, _, body = await exchange(client, raw_request(family, session))
    assert status < 300 or family in ("stream", "twilio"), body  # the baseline is answered
    with no_error_logged():
        for name in READ_HEADERS:
            for value in HOSTILE_VALUES:
                status, _, body = await exchange(client, raw_request(family, session, name, value))
                assert_answered(status, body, (name, value))


async def test_a_body_sent_after_100_continue_is_read(http: TestClient[Any, Any]) -> None:
    response = await http.post(f"{API}/sms", json=SMS, headers=basic(), expect100=True)
    assert response.status == 200
