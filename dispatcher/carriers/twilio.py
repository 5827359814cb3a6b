"""Twilio: what goes out, calls and SMS through its REST API (Calls and Messages resources), and
what comes back, its signed callbacks (call status, answering-machine detection, message status,
inbound SMS) read into the product's outcomes. The paths of those callbacks are here too: the
workers build the URLs Twilio calls, the ingress (dispatcher/http/twilio.py) serves them.

Requests go through the worker's one aiohttp session rather than the twilio SDK's client: that
client opens a session of its own per account, reaches only twilio.com hosts, and logs request
parameters (phone numbers) unmasked through the standard logger."""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
import orjson
import structlog
from multidict import MultiDict
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse
from twilio.twiml.voice_response import VoiceResponse

from dispatcher.carriers.base import Carrier, CarrierError, Dial, InboundSms, Resources, Sms
from dispatcher.directory.schema import TenantSettings
from dispatcher.directory.tenant import Tenant
from dispatcher.domain import phones
from dispatcher.domain.errors import Forbidden, InvalidRequest
from dispatcher.domain.machines import AnsweredBy, AnsweringMachine, MachineAction
from dispatcher.domain.statuses import FailReason
from dispatcher.settings import TWILIO_SID_ENV, TWILIO_TOKEN_ENV, Settings, TwilioAccount

log = structlog.get_logger("dispatcher.carriers.twilio")

# Under /carrier/{adapter}/ as API.md says; the tenant and the record are in the path, so a
# callback finds both before reading its body.
CALL_STATUS_PATH = "/carrier/twilio/{subdomain}/calls/{call_id}/status"
MACHINE_PATH = "/carrier/twilio/{subdomain}/calls/{call_id}/machine"
MESSAGE_STATUS_PATH = "/carrier/twilio/{subdomain}/messages/{chat_id}/status"
INBOUND_SMS_PATH = "/carrier/twilio/{subdomain}/sms"

# Twilio's OpenAPI caps a call's `Twiml` parameter at 4,000 characters, counted as sent: once
# the text in it is XML-escaped (an `&` is 5 characters then).
MAX_TWIML_CHARS = 4000

# Twilio's ids: two letters of the resource (CA a call, SM or MM a message) and 32 hex digits.
SID = re.compile(r"^[A-Z]{2}[0-9a-fA-F]{32}$")

API_VERSION = "2010-04-01"
CALL_EVENTS = ("initiated", "ringing", "answered", "completed")
# Twilio error codes (https://www.twilio.com/docs/api/errors) that say the number is wrong.
WRONG_NUMBER_CODES = frozenset({13223, 13224, 21211, 21214, 21217, 21401, 21407, 21614})
# A hang-up of a call that has ended already: 21220 "Call is not in-progress", or 404.
ALREADY_ENDED_CODES = frozenset({21220})
# Busy or failing on Twilio's side: worth another try, after a pause.
RETRIED_STATUSES = frozenset({429, 500, 502, 503, 504})
# From this status on the error is Twilio's own (a 4xx is the request's, a 429 a pace to keep):
# a tenant's next carrier may place the call.
CARRIER_FAULT_STATUS = 500
DEFAULT_RETRY_AFTER_S = 1.0
MAX_RETRY_AFTER_S = 10.0

SIGNATURE_HEADER = "X-Twilio-Signature"
SIGNATURE_MISSING = "Twilio signature is missing"
SIGNATURE_INVALID = "Twilio signature is invalid"
# Twilio's callbacks carry a few dozen fields.
MAX_FORM_FIELDS = 200
# Twilio's CallStatus as the outcomes carrier_result knows. queued, initiated and ringing
# change nothing, but name the carrier call (a dial whose answer was lost is found by them).
CALL_OUTCOMES = {
    "queued": "ringing",
    "initiated": "ringing",
    "ringing": "ringing",
    "in-progress": "answer",
    "completed": "completed",
    "busy": "busy",
    "no-answer": "no_answer",
    "failed": "failed",
    "canceled": "canceled",
}
# Twilio's AnsweredBy (its asynchronous answering-machine detection) as who answered; a fax
# is no person to talk to, and is treated as a machine.
ANSWERED_BY = {
    "human": AnsweredBy.HUMAN,
    "machine_start": AnsweredBy.MACHINE,
    "machine_end_beep": AnsweredBy.MACHINE,
    "machine_end_silence": AnsweredBy.MACHINE,
    "machine_end_other": AnsweredBy.MACHINE,
    "fax": AnsweredBy.MACHINE,
    "unknown": AnsweredBy.UNKNOWN,
}
# A failed call whose SIP answer says the number does not exist.
WRONG_NUMBER_SIP_CODES = frozenset({"404", "410", "484", "604"})
MESSAGE_FAILURES = frozenset({"failed", "undelivered"})
# Twilio reads the answer to an inbound message as TwiML: empty, nothing is sent back.
EMPTY_TWIML = str(MessagingResponse())


def account_of(settings: Settings, tenant: Tenant) -> TwilioAccount | None:
    return settings.twilio_account(tenant.doc.settings.twilio.account)


def credential_names(tenant: Tenant) -> str:
    """The environment variables a tenant's credentials are read from, for error messages."""
    name = tenant.doc.settings.twilio.account
    suffix = f"_{name.upper()}" if name else ""
    return f"{TWILIO_SID_ENV}{suffix} and {TWILIO_TOKEN_ENV}{suffix}"


def call_status_url(base_url: str, subdomain: str, call_id: int) -> str:
    return base_url + CALL_STATUS_PATH.format(subdomain=subdomain, call_id=call_id)


def machine_url(base_url: str, subdomain: str, call_id: int) -> str:
    return base_url + MACHINE_PATH.format(subdomain=subdomain, call_id=call_id)


def message_status_url(base_url: str, subdomain: str, chat_id: int) -> str:
    return base_url + MESSAGE_STATUS_PATH.format(subdomain=subdomain, chat_id=chat_id)


def say_twiml(message: str) -> str:
    """The TwiML that says `message` to the end user, after which the call ends."""
    response = VoiceResponse()
    response.say(message)
    return str(response.to_xml(xml_declaration=False))


def message_twiml(machine: AnsweringMachine) -> str:
    """The TwiML that leaves a campaign's message on a machine (said, or a recording played),
    then hangs up."""
    response = VoiceResponse()
    if machine.play_url is not None:
        response.play(machine.play_url)
    else:
        response.say(machine.say or "")
    response.hangup()
    return str(response.to_xml(xml_declaration=False))


def detection_form(request: Dial, base_url: str) -> list[tuple[str, str]]:
    """Asynchronous answering-machine detection, when the call's campaign has a plan for
    machines: the call goes on as answered while Twilio listens, and the verdict comes to the
    machine callback. A message waits for the machine's greeting to end (DetectMessageEnd)."""
    if request.machine is None:
        return []
    mode = "DetectMessageEnd" if request.machine.action == MachineAction.MESSAGE else "Enable"
    callback = machine_url(base_url, request.tenant.subdomain, request.call_id)
    return [
        ("MachineDetection", mode),
        ("AsyncAmd", "true"),
        ("AsyncAmdStatusCallback", callback),
        ("AsyncAmdStatusCallbackMethod", "POST"),
    ]


class TwilioRefusal(CarrierError):
    """Twilio answered with an error: its HTTP status and Twilio error code."""

    def __init__(
        self, message: str, fail_reason: str, status: int, code: int | None, retry: float | None
    ) -> None:
        fault = status >= CARRIER_FAULT_STATUS
        super().__init__(message, fail_reason, retry_after_s=retry, carrier_fault=fault)
        self.status = status
        self.code = code


class TwilioCarrier(Carrier):
    name = "twilio"

    def __init__(self, session: aiohttp.ClientSession, settings: Settings) -> None:
        self._session = session
        self._settings = settings
        self._timeout = aiohttp.ClientTimeout(total=settings.twilio_timeout_s)

    @classmethod
    def create(cls, resources: Resources) -> TwilioCarrier | None:
        """Only when some Twilio credentials are set (a tenant on Twilio fails its calls with a
        clear reason otherwise)."""
        if not resources.settings.twilio_accounts:
            return None
        if resources.settings.public_url is None:
            log.error("Twilio credentials are set but DISPATCHER_PUBLIC_URL is not")
        return cls(resources.session, resources.settings)

    @classmethod
    def settings_problems(cls, at: str, settings: TenantSettings) -> Iterator[str]:
        """An answer message longer as TwiML than Twilio takes; checked for every tenant,
        whatever its carrier."""
        said = len(say_twiml(settings.twilio.answer_message))
        if said > MAX_TWIML_CHARS:
            yield (
                f"{at}.twilio.answer_message: is {said} characters as TwiML (XML-escaped), "
                f"over Twilio's {MAX_TWIML_CHARS}"
            )

    async def dial(self, request: Dial) -> str:
        account = self._account(request.tenant)
        if request.from_ is None:
            raise CarrierError("no outbound number to call from")
        base_url = self._public_url()
        callback = call_status_url(base_url, request.tenant.subdomain, request.call_id)
        form = [
            ("To", request.to),
            ("From", request.from_),
            ("Twiml", answer_twiml(request)),
            ("Timeout", str(request.tenant.doc.settings.twilio.ring_timeout_s)),
            ("StatusCallback", callback),
            *(("StatusCallbackEvent", event) for event in CALL_EVENTS),
            ("StatusCallbackMethod", "POST"),
            *detection_form(request, base_url),
        ]
        return _sid(await self._post(account, "Calls.json", form, "call"))

    async def hangup(self, tenant: Tenant, call_id: int, carrier_call_id: str) -> None:
        """Ends the call whatever its state (Status=completed also cancels one still ringing);
        one that has ended already counts as hung up."""
        await self._update(tenant, carrier_call_id, [("Status", "completed")], "hang-up")

    async def leave_message(
        self, tenant: Tenant, call_id: int, carrier_call_id: str, machine: AnsweringMachine
    ) -> None:
        """The live call's TwiML replaced by the message and a hang-up; a call that has ended
        meanwhile (the machine hung up) has nothing to leave it on."""
        form = [("Twiml", message_twiml(machine))]
        await self._update(tenant, carrier_call_id, form, "message")

    async def _update(
        self, tenant: Tenant, carrier_call_id: str, form: list[tuple[str, str]], what: str
    ) -> None:
        """A change to a live call; one that has ended already (404, 21220) needs none."""
        if not SID.fullmatch(carrier_call_id):
            raise CarrierError("not a Twilio call sid")
        account = self._account(tenant)
        try:
            await self._post(account, f"Calls/{carrier_call_id}.json", form, what)
        except TwilioRefusal as exc:
            if exc.status != 404 and exc.code not in ALREADY_ENDED_CODES:
                raise

    async def send_sms(self, request: Sms) -> str:
        account = self._account(request.tenant)
        callback = message_status_url(self._public_url(), request.tenant.subdomain, request.chat_id)
        form = [
            ("To", request.to),
            ("From", request.from_),
            ("Body", request.text),
            ("StatusCallback", callback),
        ]
        return _sid(await self._post(account, "Messages.json", form, "message"))

    # --- what comes back (read by the ingress, once CallbackCheck holds) -------------------

    @classmethod
    def call_report(cls, form: Mapping[str, str]) -> CallReport:
        """A call status callback as the outcome carrier_result applies."""
        status, sid = form.get("CallStatus", ""), form.get("CallSid", "")
        outcome = CALL_OUTCOMES.get(status)
        if outcome is None:
            raise InvalidRequest("CallStatus is invalid")
        if not SID.fullmatch(sid):
            raise InvalidRequest("CallSid is invalid")
        if outcome == "failed" and form.get("SipResponseCode") in WRONG_NUMBER_SIP_CODES:
            outcome = "wrong_number"
        return CallReport(status, outcome, sid)

    @classmethod
    def machine_report(cls, form: Mapping[str, str]) -> CallReport:
        """An answering-machine detection callback: who answered, as the outcome
        carrier_result applies (human, machine or unknown)."""
        answered_by, sid = form.get("AnsweredBy", ""), form.get("CallSid", "")
        who = ANSWERED_BY.get(answered_by)
        if who is None:
            raise InvalidRequest("AnsweredBy is invalid")
        if not SID.fullmatch(sid):
            raise InvalidRequest("CallSid is invalid")
        return CallReport(answered_by, who.value, sid)

    @classmethod
    def delivery_report(cls, form: Mapping[str, str]) -> DeliveryReport:
        """A message status callback: delivered so far, or failed for good."""
        status, sid = form.get("MessageStatus", ""), form.get("MessageSid", "")
        if not SID.fullmatch(sid):
            raise InvalidRequest("MessageSid is invalid")
        failed = status in MESSAGE_FAILURES
        return DeliveryReport(status, sid, failed, form.get("ErrorCode", "")[:16])

    @classmethod
    def inbound_sms(cls, fields: Mapping[str, object]) -> InboundSms:
        """Twilio's Messaging webhook of the tenant's numbers (From, To, Body)."""
        return InboundSms.parse(fields.get("From"), fields.get("Body"), ("From", "Body"))

    def _account(self, tenant: Tenant) -> TwilioAccount:
        account = account_of(self._settings, tenant)
        if account is None:
            names = credential_names(tenant)
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
                carrier_fault=True,
            ) from exc
        except aiohttp.ClientError as exc:
            raise CarrierError(
                f"Twilio could not be reached ({type(exc).__name__})",
                retry_after_s=DEFAULT_RETRY_AFTER_S,
                carrier_fault=True,
            ) from exc
        answer = _json(body)
        if 200 <= status < 300:
            return answer
        raise _refusal(what, status, answer, retry_after)


@dataclass(frozen=True)
class CallReport:
    status: str  # Twilio's CallStatus (AnsweredBy, for a detection)
    outcome: str  # as carrier_result knows it
    carrier_call_id: str


@dataclass(frozen=True)
class DeliveryReport:
    status: str  # Twilio's MessageStatus
    carrier_message_id: str
    failed: bool  # for good: failed or undelivered
    error_code: str


@dataclass(frozen=True)
class CallbackCheck:
    """How one tenant's callbacks are verified: Twilio signs each with the tenant's auth token
    over the public URL it called (X-Twilio-Signature)."""

    tenant: Tenant
    public_url: str
    validator: RequestValidator

    @classmethod
    def of(cls, settings: Settings, tenant: Tenant | None) -> CallbackCheck:
        """A tenant that is unknown (None) or has no Twilio credentials here cannot have been
        signed for: Forbidden, the same as a wrong signature (not an oracle)."""
        if tenant is None:
            log.warning("twilio callback for no tenant")
            raise Forbidden(SIGNATURE_INVALID)
        account = account_of(settings, tenant)
        if account is None:
            names = credential_names(tenant)
            log.error(
                "twilio callback, no credentials to verify it", tenant=tenant.subdomain, env=names
            )
            raise Forbidden(SIGNATURE_INVALID)
        if settings.public_url is None:
            log.error("twilio callback, DISPATCHER_PUBLIC_URL is not set to verify it")
            raise Forbidden(SIGNATURE_INVALID)
        validator = RequestValidator(account.auth_token.get_secret_value())
        return cls(tenant, settings.public_url, validator)

    def signed_form(
        self, raw_path: str, content_type: str, raw: bytes, signature: str
    ) -> MultiDict[str]:
        """The form Twilio sent to `raw_path`, once its signature holds. Behind a proxy the
        ingress sees another scheme and host than Twilio called; the path is the one Twilio
        called, after any prefix of public_url that the proxy strips."""
        form = _form(content_type, raw)
        if not self.validator.validate(f"{self.public_url}{raw_path}", form, signature):
            log.warning("twilio signature does not match", tenant=self.tenant.subdomain)
            raise Forbidden(SIGNATURE_INVALID)
        return form


def _form(content_type: str, raw: bytes) -> MultiDict[str]:
    """Twilio posts forms; any other body signs as no fields at all."""
    if content_type != "application/x-www-form-urlencoded":
        return MultiDict()
    try:
        pairs = parse_qsl(raw.decode(), keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidRequest("Request body is not a valid form") from exc
    return MultiDict(pairs)


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
    return say_twiml(settings.answer_message)


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
    if not isinstance(sid, str) or not SID.fullmatch(sid):
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
