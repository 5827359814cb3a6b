"""Twilio's callbacks: call status, message status and inbound SMS. Twilio signs each with the
tenant's auth token over the public URL it called (X-Twilio-Signature); a missing or wrong
signature is 403 and changes nothing. Twilio may send a callback again: each one queues its
job under an id of its own, and a job that runs twice changes nothing the second time."""

from __future__ import annotations

from urllib.parse import parse_qsl

import structlog
from aiohttp import web
from multidict import MultiDict
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from dispatcher import twilio
from dispatcher.directory.tenant import Tenant
from dispatcher.domain import clock
from dispatcher.domain.errors import Forbidden, InvalidRequest, NotFound
from dispatcher.domain.fields import integer
from dispatcher.http.appkeys import DIRECTORY, SCRIPTS, SETTINGS, stores_of
from dispatcher.http.body import raw_body
from dispatcher.http.carrier import receive_sms
from dispatcher.store import jobs

log = structlog.get_logger("dispatcher.http.twilio")
routes = web.RouteTableDef()

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
# A failed call whose SIP answer says the number does not exist.
WRONG_NUMBER_SIP_CODES = frozenset({"404", "410", "484", "604"})
MESSAGE_FAILURES = frozenset({"failed", "undelivered"})
RECEIPT_TTL_S = 86_400
# Twilio reads the answer to an inbound message as TwiML: empty, nothing is sent back.
EMPTY_TWIML = str(MessagingResponse())


@routes.post(twilio.CALL_STATUS_PATH)
async def call_status(request: web.Request) -> web.Response:
    """A call's progress; queues the carrier_result job that applies it."""
    tenant, form = await signed_form(request)
    call_id = _record_id(request, "call_id", "Call not found")
    structlog.contextvars.bind_contextvars(call_id=call_id)
    status, sid = form.get("CallStatus", ""), form.get("CallSid", "")
    outcome = CALL_OUTCOMES.get(status)
    if outcome is None:
        raise InvalidRequest("CallStatus is invalid")
    if not twilio.SID.fullmatch(sid):
        raise InvalidRequest("CallSid is invalid")
    if outcome == "failed" and form.get("SipResponseCode") in WRONG_NUMBER_SIP_CODES:
        outcome = "wrong_number"
    now_ms = clock.to_ms(clock.now())
    result = jobs.JobSpec(
        jobs.CARRIER_RESULT, tenant.subdomain, call_id, now_ms, (outcome, sid), f"{outcome}-{sid}"
    )
    await jobs.enqueue(request.app[SCRIPTS], [result])
    log.info("twilio call status", call_status=status, outcome=outcome, carrier_call_id=sid)
    return web.Response(status=204)


@routes.post(twilio.MESSAGE_STATUS_PATH)
async def message_status(request: web.Request) -> web.Response:
    """A sent message's delivery; failures are logged and counted per tenant and status."""
    tenant, form = await signed_form(request)
    chat_id = _record_id(request, "chat_id", "Chat not found")
    status, sid = form.get("MessageStatus", ""), form.get("MessageSid", "")
    if not twilio.SID.fullmatch(sid):
        raise InvalidRequest("MessageSid is invalid")
    if status not in MESSAGE_FAILURES:
        log.info("twilio message status", chat_id=chat_id, message_status=status)
        return web.Response(status=204)
    first = await stores_of(request, tenant).chats.count_delivery_failure(
        sid, status, RECEIPT_TTL_S
    )
    log.warning(
        "sms not delivered",
        chat_id=chat_id,
        message_status=status,
        error_code=form.get("ErrorCode", "")[:16],
        carrier_message_id=sid,
        repeated=not first,
    )
    return web.Response(status=204)


@routes.post(twilio.INBOUND_SMS_PATH)
async def inbound_sms(request: web.Request) -> web.Response:
    """A consumer's message, Twilio's Messaging webhook of the tenant's numbers (From, To,
    Body), handled as the simulated carrier's; answered with empty TwiML."""
    tenant, form = await signed_form(request)
    sender, text = form.get("From"), form.get("Body")
    await receive_sms(request, tenant, sender, text, names=("From", "Body"))
    return web.Response(text=EMPTY_TWIML, content_type="text/xml")


async def signed_form(request: web.Request) -> tuple[Tenant, MultiDict[str]]:
    """The tenant of the path and the form Twilio sent, once its signature holds."""
    signature = request.headers.get(SIGNATURE_HEADER, "")
    if not signature:
        raise Forbidden(SIGNATURE_MISSING)
    tenant, validator = await _validator(request)
    form = _form(request.content_type, await raw_body(request))
    settings = request.app[SETTINGS]
    # Behind a proxy this process sees another scheme and host than Twilio called; the
    # path is the one Twilio called, after any prefix of public_url that the proxy strips.
    url = f"{settings.public_url}{request.raw_path}"
    if not validator.validate(url, form, signature):
        log.warning("twilio signature does not match", tenant=tenant.subdomain, path=request.path)
        raise Forbidden(SIGNATURE_INVALID)
    structlog.contextvars.bind_contextvars(tenant=tenant.subdomain)
    return tenant, form


async def _validator(request: web.Request) -> tuple[Tenant, RequestValidator]:
    """The tenant and a validator with its auth token; a tenant that is unknown or has no
    Twilio credentials here cannot have been signed for (the same 403, not an oracle)."""
    settings = request.app[SETTINGS]
    subdomain = request.match_info["subdomain"]
    tenant = await request.app[DIRECTORY].tenant(subdomain) if len(subdomain) <= 63 else None
    if tenant is None:
        log.warning("twilio callback for no tenant")
        raise Forbidden(SIGNATURE_INVALID)
    account = twilio.account_of(settings, tenant)
    if account is None:
        names = twilio.credential_names(tenant)
        log.error("twilio callback, no credentials to verify it", tenant=subdomain, env=names)
        raise Forbidden(SIGNATURE_INVALID)
    if settings.public_url is None:
        log.error("twilio callback, DISPATCHER_PUBLIC_URL is not set to verify it")
        raise Forbidden(SIGNATURE_INVALID)
    return tenant, RequestValidator(account.auth_token.get_secret_value())


def _form(content_type: str, raw: bytes) -> MultiDict[str]:
    """Twilio posts forms; any other body signs as no fields at all."""
    if content_type != "application/x-www-form-urlencoded":
        return MultiDict()
    try:
        pairs = parse_qsl(raw.decode(), keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidRequest("Request body is not a valid form") from exc
    return MultiDict(pairs)


def _record_id(request: web.Request, name: str, not_found: str) -> int:
    record_id = integer(request.match_info[name])
    if record_id is None:
        raise NotFound(not_found)
    return record_id
