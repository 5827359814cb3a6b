"""Twilio: calls and SMS through its REST API (Calls and Messages resources). Results come
back through Twilio's status callbacks (dispatcher/http/twilio.py), which queue carrier_result
jobs. Requests go through the worker's one aiohttp session rather than the twilio SDK's client:
that client opens a session of its own per account, reaches only twilio.com hosts, and logs
request parameters (phone numbers) unmasked through the standard logger."""

from __future__ import annotations

import base64
import math
from typing import Any

import aiohttp
import orjson
import structlog
from twilio.twiml.voice_response import VoiceResponse

from dispatcher import twilio
from dispatcher.directory.tenant import Tenant
from dispatcher.domain import phones
from dispatcher.domain.statuses import FailReason
from dispatcher.settings import Settings, TwilioAccount
from workers.carriers.base import Carrier, CarrierError, Dial, Sms

log = structlog.get_logger("workers.carriers.twilio")

API_VERSION = "2010-04-01"
CALL_EVENTS = ("initiated", "ringing", "answered", "completed")
# Twilio error codes (https://www.twilio.com/docs/api/errors) that say the number is wrong.
WRONG_NUMBER_CODES = frozenset({13223, 13224, 21211, 21214, 21217, 21401, 21407, 21614})
# A hang-up of a call that has ended already: 21220 "Call is not in-progress", or 404.
ALREADY_ENDED_CODES = frozenset({21220})
# Busy or failing on Twilio's side: worth another try, after a pause.
RETRIED_STATUSES = frozenset({429, 500, 502, 503, 504})
DEFAULT_RETRY_AFTER_S = 1.0
MAX_RETRY_AFTER_S = 10.0


class TwilioRefusal(CarrierError):
    """Twilio answered with an error: its HTTP status and Twilio error code."""

    def __init__(
        self, message: str, fail_reason: str, status: int, code: int | None, retry: float | None
    ) -> None:
        super().__init__(message, fail_reason, retry_after_s=retry)
        self.status = status
        self.code = code


class TwilioCarrier(Carrier):
    name = "twilio"

    def __init__(self, session: aiohttp.ClientSession, settings: Settings) -> None:
        self._session = session
        self._settings = settings
        self._timeout = aiohttp.ClientTimeout(total=settings.twilio_timeout_s)

    async def dial(self, request: Dial) -> str:
        account = self._account(request.tenant)
        if request.from_ is None:
            raise CarrierError("no outbound number to call from")
        callback = twilio.call_status_url(
            self._public_url(), request.tenant.subdomain, request.call_id
        )
        form = [
            ("To", request.to),
            ("From", request.from_),
            ("Twiml", answer_twiml(request)),
            ("Timeout", str(request.tenant.doc.settings.twilio.ring_timeout_s)),
            ("StatusCallback", callback),
            *(("StatusCallbackEvent", event) for event in CALL_EVENTS),
            ("StatusCallbackMethod", "POST"),
        ]
        return _sid(await self._post(account, "Calls.json", form, "call"))

    async def hangup(self, tenant: Tenant, call_id: int, carrier_call_id: str) -> None:
        """Ends the call whatever its state (Status=completed also cancels one still ringing);
        one that has ended already counts as hung up."""
        if not twilio.SID.fullmatch(carrier_call_id):
            raise CarrierError("not a Twilio call sid")
        account = self._account(tenant)
        try:
            await self._post(
                account, f"Calls/{carrier_call_id}.json", [("Status", "completed")], "hang-up"
            )
        except TwilioRefusal as exc:
            if exc.status != 404 and exc.code not in ALREADY_ENDED_CODES:
                raise

    async def send_sms(self, request: Sms) -> str:
        account = self._account(request.tenant)
        callback = twilio.message_status_url(
            self._public_url(), request.tenant.subdomain, request.chat_id
        )
        form = [
            ("To", request.to),
            ("From", request.from_),
            ("Body", request.text),
            ("StatusCallback", callback),
        ]
        return _sid(await self._post(account, "Messages.json", form, "message"))

    def _account(self, tenant: Tenant) -> TwilioAccount:
        account = twilio.account_of(self._settings, tenant)
        if account is None:
            names = twilio.credential_names(tenant)
            log.error("no twilio credentials for the tenant", tenant=tenant.subdomain, env=names)
            raise CarrierError(f"no Twilio credentials for this tenant ({names} are not set)")
        return account

    def _public_url(self) -> str:
        if self._settings.public_url is None:
            log.error("DISPATCHER_PUBLIC_URL is not set: Twilio has no callback URL")
            raise CarrierError("no callback URL for Twilio (DISPATCHER_PUBLIC_URL is not set)")
        return self._settings.public_url

    async def _post(
        self, account: TwilioAccount, resource: str, form: list[tuple[str, str]], what: str
    ) -> dict[str, Any]:
        url = f"{self._settings.twilio_api_url}/{API_VERSION}/Accounts/{account.sid}/{resource}"
        headers = {"Authorization": _basic(account)}
        try:
            async with self._session.post(
                url, data=form, headers=headers, timeout=self._timeout, allow_redirects=False
            ) as response:
                body = await response.read()
                status, retry_after = response.status, response.headers.get("Retry-After")
        except TimeoutError as exc:
            raise CarrierError(
                f"Twilio did not answer the {what} request in time",
                FailReason.VOIP_CONN_TIMEOUT,
                retry_after_s=DEFAULT_RETRY_AFTER_S,
            ) from exc
        except aiohttp.ClientError as exc:
            raise CarrierError(
                f"Twilio could not be reached ({type(exc).__name__})",
                retry_after_s=DEFAULT_RETRY_AFTER_S,
            ) from exc
        answer = _json(body)
        if 200 <= status < 300:
            return answer
        raise _refusal(what, status, answer, retry_after)


def answer_twiml(request: Dial) -> str:
    """What the end user gets on answering: the call's agent, when the directory gives them a
    phone number (an agent_number written as an international number, +...); otherwise the
    tenant's answer message, and the call ends (this product has no softphone of its own)."""
    settings = request.tenant.doc.settings.twilio
    agent = request.tenant.agents_by_id.get(request.agent_id or 0)
    raw = agent.agent_number if agent is not None else None
    number = phones.normalize(raw) if raw is not None and raw.startswith("+") else None
    if number is not None:
        response = VoiceResponse()
        response.dial(number, caller_id=request.from_, timeout=settings.ring_timeout_s)
        return str(response.to_xml(xml_declaration=False))
    return twilio.say_twiml(settings.answer_message)


def _basic(account: TwilioAccount) -> str:
    """HTTP Basic credentials (aiohttp's BasicAuth is deprecated from 3.14 on)."""
    pair = f"{account.sid}:{account.auth_token.get_secret_value()}"
    return "Basic " + base64.b64encode(pair.encode()).decode()


def _json(body: bytes) -> dict[str, Any]:
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _sid(answer: dict[str, Any]) -> str:
    sid = answer.get("sid")
    if not isinstance(sid, str) or not twilio.SID.fullmatch(sid):
        raise CarrierError("Twilio's answer has no valid sid")
    return sid


def _refusal(
    what: str, status: int, answer: dict[str, Any], retry_after: str | None
) -> CarrierError:
    """Twilio's error as a CarrierError. Its message may hold the number, so only the status
    and code reach the call's fail_details; the message is logged (masked)."""
    code = answer.get("code") if isinstance(answer.get("code"), int) else None
    log.warning(
        "twilio refused a request",
        request=what,
        status=status,
        code=code,
        twilio_message=str(answer.get("message", ""))[:300],
    )
    if status in {401, 403}:
        log.error("twilio refused the credentials", request=what, status=status)
    reason = (
        FailReason.EU_WRONG_NUMBER if code in WRONG_NUMBER_CODES else FailReason.VOIP_CONN_GENERAL
    )
    retry = _retry_after_s(retry_after) if status in RETRIED_STATUSES else None
    details = f"Twilio refused the {what}: HTTP {status}" + (f", error {code}" if code else "")
    return TwilioRefusal(details, reason, status, code, retry)


def _retry_after_s(header: str | None) -> float:
    try:
        seconds = float(header) if header is not None else DEFAULT_RETRY_AFTER_S
    except ValueError:
        seconds = DEFAULT_RETRY_AFTER_S
    if not math.isfinite(seconds):
        seconds = DEFAULT_RETRY_AFTER_S
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)
