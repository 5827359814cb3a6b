"""The logs of a full run (`dispatcher up` at debug level: API, worker, webhooks, carrier,
admin API, refused credentials, a dashboard login and its stream) hold no token or secret, no
session cookie and no full phone number."""

from __future__ import annotations

import asyncio
import base64
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from dispatcher import logs
from dispatcher.domain import clock
from tests.conftest import demo_document
from tests.polling import eventually
from tests.ports import free_port
from tests.up import dispatcher_up

BIN = Path(sys.executable).parent / "dispatcher"
API = "/apps/api/v1"
TOKEN = "demo-token-0f3c9a"
ADMIN_TOKEN = "admin-token-7d21be"
WEBHOOK_SECRET = "webhook-secret-5e88aa"
SECRETS = [
    TOKEN,
    ADMIN_TOKEN,
    WEBHOOK_SECRET,
    base64.b64encode(f"demo:{TOKEN}".encode()).decode(),
]
# Numbers used below, each as people write it; none may appear in a log line in any form.
NUMBERS = {
    "+1 859-657-9625": ["8596579625", "859-657-9625", "859 657 9625", "(859) 657-9625"],
    "+1 205-123-4567": ["2051234567", "205-123-4567", "205 123 4567", "(205) 123-4567"],
    "+1 415-555-0100": ["4155550100", "415-555-0100", "415 555 0100", "(415) 555-0100"],
    "(650) 253-0000": ["6502530000", "650-253-0000", "650 253 0000", "(650) 253-0000"],
}


def _auth() -> dict[str, str]:
    encoded = base64.b64encode(f"demo:{TOKEN}".encode()).decode()
    return {"Authorization": f"Basic {encoded}"}


def _document(webhook_url: str) -> dict[str, Any]:
    document = demo_document()
    tenant = document["tenants"][0]
    tenant["api_tokens"] = [TOKEN]
    tenant["settings"].update(webhook_url=webhook_url, webhook_secret=WEBHOOK_SECRET)
    tenant["settings"]["simulator"] = {"answer_after_s": 0.05, "talk_time_s": 0.1}
    for menu in tenant["menus"]:
        menu.update(cascade_interval_s=0.3, offer_timeout_s=2, max_wait_s=5)
    return document


@pytest.fixture
async def webhook_url() -> AsyncIterator[str]:
    """A receiver that refuses every third event, so failed deliveries are logged too."""
    seen = 0

    async def receive(request: web.Request) -> web.Response:
        nonlocal seen
        seen += 1
        await request.read()
        return web.Response(status=500 if seen % 3 == 0 else 204)

    app = web.Application()
    app.router.add_post("/hook", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}/hook"
    await runner.cleanup()


async def _exercise(http: aiohttp.ClientSession, base: str) -> list[int]:
    """Every kind of request, good and bad; returns the ids of the calls that must end."""
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with http.get(f"{base}/manager/api/v1/config", headers=admin) as answer:
        assert answer.status == 200
    wrong = {"Authorization": "Bearer not-the-admin-token"}
    async with http.get(f"{base}/manager/api/v1/config", headers=wrong) as answer:
        assert answer.status == 401
    bad_basic = {"Authorization": "Basic " + base64.b64encode(b"demo:guess").decode()}
    async with http.get(f"{base}{API}/calls", headers=bad_basic) as answer:
        assert answer.status == 401

    bodies: list[tuple[dict[str, Any], int]] = [
        ({"call_type": "Voice Outbound (API)", "agent_email": "admin@somedomain.com",
          "end_user_number": "+1 859-657-9625"}, 201),
        ({"call_type": "Voice Inbound (API)", "menu_id": 9,
          "end_user_number": "+1 205-123-4567"}, 201),
        ({"call_type": "Voice Scheduled (API)", "menu_id": 9, "end_user_number": "(650) 253-0000",
          "scheduled_at": clock.iso(clock.now() + timedelta(seconds=1))}, 201),
        ({"call_type": "Voice Inbound (API)", "menu_id": 9, "end_user_number": "+1 205-12"},
         400),
    ]  # fmt: skip
    call_ids: list[int] = []
    for body, status in bodies:
        headers = {**_auth(), "Idempotency-Key": f"log-test-{len(call_ids)}"}
        async with http.post(f"{base}{API}/calls", json=body, headers=headers) as answer:
            assert answer.status == status, await answer.text()
            if status == 201:
                call_ids.append((await answer.json())["id"])
    sms = {
        "chat_type": "Messaging (SMS)",
        "end_user_number": "+1 415-555-0100",
        "outbound_number": "+1 628-555-0199",
        "message": "hello",
    }
    async with http.post(f"{base}{API}/sms", json=sms, headers=_auth()) as answer:
        assert answer.status == 200
    stop = {"from": "(415) 555-0100", "to": "+1 628-555-0199", "text": "STOP"}
    async with http.post(f"{base}/carrier/simulated/sms", json=stop, headers=_auth()) as answer:
        assert answer.status == 200
    return call_ids


async def _operator(http: aiohttp.ClientSession, base: str) -> str:
    """A dashboard login (and a refused one), its live stream read once; returns the session
    cookie's value, which must not be logged either."""
    wrong = {"subdomain": "demo", "token": "guess"}
    async with http.post(f"{base}/dashboard/login", json=wrong) as answer:
        assert answer.status == 401
    good = {"subdomain": "demo", "token": TOKEN}
    async with http.post(f"{base}/dashboard/login", json=good) as answer:
        assert answer.status == 200
        cookie = answer.cookies["dispatcher_session"].value
    # (aiohttp's default cookie jar keeps no cookie of an IP address: sent by hand)
    session = {"Cookie": f"dispatcher_session={cookie}"}
    async with http.get(f"{base}/dashboard/events", headers=session) as stream:
        assert stream.status == 200
        await asyncio.wait_for(stream.content.readuntil(b"event: snapshot"), 10)
    return cookie


async def _until_ended(http: aiohttp.ClientSession, base: str, call_ids: list[int]) -> None:
    """Agent 1 takes every offer; returns once every call has ended."""
    statuses: list[str] = []

    async def ended() -> bool:
        async with http.get(f"{base}{API}/agents/1/offers", headers=_auth()) as answer:
            offers = await answer.json()
        for offer in offers:
            async with http.post(f"{base}{API}/offers/{offer['id']}/accept", headers=_auth()):
                pass
        statuses.clear()
        for call_id in call_ids:
            async with http.get(f"{base}{API}/calls/{call_id}", headers=_auth()) as answer:
                statuses.append((await answer.json())["status"])
        return all(status in {"finished", "failed"} for status in statuses)

    await eventually(ended, lambda: f"the calls to end: {statuses}", 30)


@pytest.mark.subprocess
async def test_a_full_run_logs_no_secret_and_no_full_phone_number(
    tmp_path: Path, webhook_url: str
) -> None:
    admin = {"DISPATCHER_ADMIN_TOKEN": ADMIN_TOKEN}
    async with (
        dispatcher_up(tmp_path, _document(webhook_url), admin) as (base, log_file),
        aiohttp.ClientSession() as http,
    ):
        call_ids = await _exercise(http, base)
        cookie = await _operator(http, base)
        await _until_ended(http, base, call_ids)
        await asyncio.sleep(1.5)  # the last webhook deliveries and their retries

    lines = log_file.read_text().splitlines()
    events = [orjson.loads(line) for line in lines if line.startswith("{")]
    assert len(events) > 40, lines  # the run did log: requests, jobs, webhooks, debug lines
    assert {"request_id", "tenant"} <= set().union(*(e.keys() for e in events))
    assert any("call_id" in e for e in events)
    assert any(e.get("event") == "webhook failed" for e in events)
    forbidden = [*SECRETS, cookie, cookie.partition(".")[2]]
    forbidden += [form for forms in NUMBERS.values() for form in forms]
    forbidden += ["+1" + forms[0] for forms in NUMBERS.values()]
    for line in lines:
        for text in forbidden:
            assert text not in line, f"{text!r} logged: {line}"


SESSION_SECRET = "k2Vq9sessionSecretT0ken"
OVERSIZE = "x" * 9000  # one header line over aiohttp's 8,190 bytes


async def _send_raw(base: str, header: str) -> bytes:
    """One request with `header`, over a raw socket (aiohttp's client would refuse the line)."""
    host, port = base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(f"GET /healthz HTTP/1.1\r\nHost: test\r\n{header}\r\n\r\n".encode())
    try:
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


@pytest.mark.subprocess
async def test_an_oversize_header_line_logs_no_credential(tmp_path: Path) -> None:
    # Found by the hardening review: aiohttp logs the refused line at error level with the
    # first ~100 bytes of its value, and a session cookie and a Basic credential were in them.
    basic_credential = base64.b64encode(f"demo:{TOKEN}".encode()).decode()
    headers = [
        f"Cookie: dispatcher_session=demo.{SESSION_SECRET}{OVERSIZE}",
        f"Cookie: theme=dark; dispatcher_session=demo.{SESSION_SECRET}; x={OVERSIZE}",
        f"Authorization: Basic {basic_credential}{OVERSIZE}",
        f"Authorization: Bearer {ADMIN_TOKEN}{OVERSIZE}",
        f"X-Anything: {OVERSIZE}",
    ]
    admin = {"DISPATCHER_ADMIN_TOKEN": ADMIN_TOKEN}
    async with dispatcher_up(tmp_path, _document("http://127.0.0.1:9/hook"), admin) as (
        base,
        log_file,
    ):
        for header in headers:
            answer = await _send_raw(base, header)
            assert answer.split(b"\r\n")[0].endswith(b" 400 Bad Request"), answer[:200]
    text = log_file.read_text()
    assert "Bad Request" in text or "400" in text  # the refusals were logged
    for secret in [SESSION_SECRET, basic_credential[:12], TOKEN, ADMIN_TOKEN]:
        assert secret not in text, f"{secret!r} logged"


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        ("Cookie: dispatcher_session=demo.abc; theme=dark", "Cookie: [redacted]"),
        ("b'a=b; dispatcher_session=demo.abc; x=1'", "b'a=b; dispatcher_session=[redacted]; x=1'"),
        ("Authorization: Basic ZGVtbzp0", "Authorization: [redacted]"),
        ("got b'Bearer s3cret.tok-en' here", "got b'Bearer [redacted]' here"),
        ("Set-Cookie: dispatcher_session=x; Path=/", "Set-Cookie: [redacted]"),
        (f"KeyError: '{ADMIN_TOKEN}'", "KeyError: '[redacted]'"),
        ("request /apps/api/v1/calls status=200", "request /apps/api/v1/calls status=200"),
    ],
)  # fmt: skip
def test_credentials_and_known_secrets_are_redacted_from_any_text(
    monkeypatch: pytest.MonkeyPatch, text: str, redacted: str
) -> None:
    monkeypatch.setattr(logs, "_known_secrets", (ADMIN_TOKEN,))  # as configure() sets them
    assert logs.redact(text) == redacted
