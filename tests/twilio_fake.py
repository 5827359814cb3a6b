"""A local fake of Twilio for the tests: the REST API's Calls and Messages resources (Basic
auth checked, every request recorded, failures on demand) and Twilio's side of the webhooks:
status callbacks, answering-machine detection results and inbound messages POSTed form-encoded
and signed as Twilio signs them.

The signature is computed here from Twilio's documented algorithm, not with the validator the
product uses: the full URL Twilio called, then every POST field's name and value appended,
sorted by name; HMAC-SHA1 keyed with the account's auth token; base64
(https://www.twilio.com/docs/usage/security#validating-requests)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer
from multidict import MultiDict

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "fake-auth-token-0001"
# A second account, for tenants with `twilio.account: acme`.
ACME_SID = "AC" + "fedcba9876543210" * 2
ACME_TOKEN = "fake-auth-token-acme"
API = "/2010-04-01/Accounts/{account}"

Form = Sequence[tuple[str, str]]


def signature(auth_token: str, url: str, form: Form) -> str:
    """X-Twilio-Signature of a POST of `form` to `url`."""
    signed = url + "".join(name + value for name, value in sorted(form))
    digest = hmac.new(auth_token.encode(), signed.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


@dataclass
class Failure:
    status: int
    code: int | None
    retry_after: str | None = None


@dataclass
class Request:
    """One request the fake received: its account (from the path), and its form."""

    account: str
    form: MultiDict[str]

    def one(self, name: str) -> str:
        return self.form[name]


@dataclass
class FakeTwilio:
    """Twilio's REST API on 127.0.0.1; `proxy` maps the public URL callbacks name to where the
    ingress really listens (as a reverse proxy would), and Twilio signs the public one."""

    accounts: dict[str, str] = field(
        default_factory=lambda: {ACCOUNT_SID: AUTH_TOKEN, ACME_SID: ACME_TOKEN}
    )
    calls: dict[str, Request] = field(default_factory=dict)
    messages: dict[str, Request] = field(default_factory=dict)
    hangups: list[tuple[str, Request]] = field(default_factory=list)  # Status=completed
    updates: list[tuple[str, Request]] = field(default_factory=list)  # any other (new Twiml)
    failures: list[Failure] = field(default_factory=list)
    stall_s: float = 0.0  # the next call is created, but answered this late
    proxy: tuple[str, str] = ("", "")
    api_url: str = ""  # where it listens, once started
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _server: TestServer | None = None
    _session: ClientSession | None = None

    async def start(self) -> str:
        app = web.Application()
        base = API.format(account="{account}")
        app.router.add_post(base + "/Calls.json", self._create_call)
        app.router.add_post(base + "/Calls/{sid}.json", self._update_call)
        app.router.add_post(base + "/Messages.json", self._create_message)
        self._server = TestServer(app, host="127.0.0.1")
        await self._server.start_server()
        self._session = ClientSession()
        return str(self._server.make_url("")).rstrip("/")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
        if self._server is not None:
            await self._server.close()

    def fail_next(
        self, status: int, code: int | None = None, times: int = 1, retry_after: str | None = None
    ) -> None:
        self.failures += [Failure(status, code, retry_after)] * times

    # The REST API ----------------------------------------------------------------------------

    async def _create_call(self, request: web.Request) -> web.Response:
        refused = await self._refusal(request)
        if refused is not None:
            return refused
        sid = self._sid("CA")
        self.calls[sid] = Request(request.match_info["account"], await self._form(request))
        if self.stall_s:
            stall, self.stall_s = self.stall_s, 0.0
            await asyncio.sleep(stall)
        return web.json_response({"sid": sid, "status": "queued"}, status=201)

    async def _update_call(self, request: web.Request) -> web.Response:
        refused = await self._refusal(request)
        if refused is not None:
            return refused
        sid = request.match_info["sid"]
        if sid not in self.calls:
            return _error(404, 20404, "The requested resource was not found")
        update = Request(request.match_info["account"], await self._form(request))
        hung_up = update.form.get("Status") == "completed"
        (self.hangups if hung_up else self.updates).append((sid, update))
        return web.json_response({"sid": sid, "status": "completed" if hung_up else "in-progress"})

    async def _create_message(self, request: web.Request) -> web.Response:
        refused = await self._refusal(request)
        if refused is not None:
            return refused
        sid = self._sid("SM")
        self.messages[sid] = Request(request.match_info["account"], await self._form(request))
        return web.json_response({"sid": sid, "status": "queued"}, status=201)

    async def _refusal(self, request: web.Request) -> web.Response | None:
        """Twilio's 401 for wrong credentials (Basic: account sid and auth token, and the
        account of the path), or the next failure asked for."""
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        try:
            sid, _, token = base64.b64decode(encoded).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            sid, token = "", ""
        account = request.match_info["account"]
        if scheme != "Basic" or sid != account or self.accounts.get(sid) != token:
            return _error(401, 20003, "Authenticate")
        if self.failures:
            failure = self.failures.pop(0)
            headers = {"Retry-After": failure.retry_after} if failure.retry_after else None
            return _error(failure.status, failure.code, "refused by the fake", headers)
        return None

    async def _form(self, request: web.Request) -> MultiDict[str]:
        return MultiDict((await request.post()).items())  # type: ignore[arg-type]

    def _sid(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):032x}"

    # Twilio's webhooks -----------------------------------------------------------------------

    async def call_status(self, sid: str, status: str, **extra: str) -> tuple[int, str]:
        """Twilio's status callback of call `sid`, to the StatusCallback it was given."""
        call = self.calls[sid]
        form = [
            ("AccountSid", call.account),
            ("ApiVersion", "2010-04-01"),
            ("CallSid", sid),
            ("CallStatus", status),
            ("Called", call.one("To")),
            ("Caller", call.one("From")),
            ("Direction", "outbound-api"),
            ("From", call.one("From")),
            ("To", call.one("To")),
            *extra.items(),
        ]
        return await self.post(call.one("StatusCallback"), form, self.accounts[call.account])

    async def machine_detected(self, sid: str, answered_by: str) -> tuple[int, str]:
        """Twilio's asynchronous answering-machine detection result of call `sid`, to the
        AsyncAmdStatusCallback it was given."""
        call = self.calls[sid]
        form = [
            ("AccountSid", call.account),
            ("AnsweredBy", answered_by),
            ("CallSid", sid),
            ("MachineDetectionDuration", "2150"),
        ]
        return await self.post(
            call.one("AsyncAmdStatusCallback"), form, self.accounts[call.account]
        )

    async def message_status(self, sid: str, status: str, **extra: str) -> tuple[int, str]:
        message = self.messages[sid]
        form = [
            ("AccountSid", message.account),
            ("MessageSid", sid),
            ("MessageStatus", status),
            ("SmsSid", sid),
            ("SmsStatus", status),
            ("From", message.one("From")),
            ("To", message.one("To")),
            *extra.items(),
        ]
        return await self.post(message.one("StatusCallback"), form, self.accounts[message.account])

    async def post(
        self,
        url: str,
        form: Form,
        auth_token: str,
        *,
        signed_url: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, str]:
        """POSTs `form` to public `url` as Twilio does, signed over `signed_url` (default:
        `url`) with `auth_token`; `headers` replace the signature header when given."""
        assert self._session is not None
        public, actual = self.proxy
        assert url.startswith(public), url
        sent = (
            headers
            if headers is not None
            else {"X-Twilio-Signature": signature(auth_token, signed_url or url, form)}
        )
        async with self._session.post(
            actual + url.removeprefix(public), data=list(form), headers=sent
        ) as response:
            return response.status, await response.text()


def _error(
    status: int, code: int | None, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    body: dict[str, Any] = {"code": code, "message": message, "status": status}
    return web.json_response(body, status=status, headers=headers)
