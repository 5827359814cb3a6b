"""Twilio's callbacks: call status, answering-machine detection, message status and inbound
SMS. The Twilio adapter (dispatcher/carriers/twilio.py) checks their signature and reads them; a
missing or wrong signature is 403 and changes nothing. Twilio may send a callback again: each
one queues its job under an id of its own, and a job that runs twice changes nothing the second
time."""

from __future__ import annotations

import structlog
from aiohttp import web
from multidict import MultiDict

from dispatcher.carriers import twilio
from dispatcher.carriers.twilio import CallbackCheck, TwilioCarrier
from dispatcher.directory.tenant import Tenant
from dispatcher.domain import clock
from dispatcher.domain.errors import Forbidden, NotFound
from dispatcher.domain.fields import integer
from dispatcher.http.appkeys import DIRECTORY, SCRIPTS, SETTINGS, stores_of
from dispatcher.http.body import raw_body
from dispatcher.http.carrier import receive_sms
from dispatcher.store import jobs

log = structlog.get_logger("dispatcher.http.twilio")
routes = web.RouteTableDef()

RECEIPT_TTL_S = 86_400


@routes.post(twilio.CALL_STATUS_PATH)
async def call_status(request: web.Request) -> web.Response:
    """A call's progress; queues the carrier_result job that applies it."""
    tenant, form = await signed_form(request)
    call_id = _record_id(request, "call_id", "Call not found")
    structlog.contextvars.bind_contextvars(call_id=call_id)
    report = TwilioCarrier.call_report(form)
    outcome, sid = report.outcome, report.carrier_call_id
    await _queue_result(request, tenant, call_id, outcome, sid)
    log.info("twilio call status", call_status=report.status, outcome=outcome, carrier_call_id=sid)
    return web.Response(status=204)


@routes.post(twilio.MACHINE_PATH)
async def machine_detected(request: web.Request) -> web.Response:
    """Who answered a call placed with answering-machine detection; queues the carrier_result
    job that connects the call or lets the machine end it."""
    tenant, form = await signed_form(request)
    call_id = _record_id(request, "call_id", "Call not found")
    structlog.contextvars.bind_contextvars(call_id=call_id)
    report = TwilioCarrier.machine_report(form)
    await _queue_result(request, tenant, call_id, report.outcome, report.carrier_call_id)
    log.info(
        "twilio answering machine detection",
        answered_by=report.status,
        outcome=report.outcome,
        carrier_call_id=report.carrier_call_id,
    )
    return web.Response(status=204)


async def _queue_result(
    request: web.Request, tenant: Tenant, call_id: int, outcome: str, sid: str
) -> None:
    """The carrier_result job of one callback, once per carrier call and outcome."""
    now_ms = clock.to_ms(clock.now())
    named = (outcome, sid, TwilioCarrier.name)  # the carrier too: a call may have switched away
    result = jobs.JobSpec(
        jobs.CARRIER_RESULT, tenant.subdomain, call_id, now_ms, named, f"{outcome}-{sid}"
    )
    await jobs.enqueue(request.app[SCRIPTS], [result])


@routes.post(twilio.MESSAGE_STATUS_PATH)
async def message_status(request: web.Request) -> web.Response:
    """A sent message's delivery; failures are logged and counted per tenant and status."""
    tenant, form = await signed_form(request)
    chat_id = _record_id(request, "chat_id", "Chat not found")
    report = TwilioCarrier.delivery_report(form)
    if not report.failed:
        log.info("twilio message status", chat_id=chat_id, message_status=report.status)
        return web.Response(status=204)
    first = await stores_of(request, tenant).chats.count_delivery_failure(
        report.carrier_message_id, report.status, RECEIPT_TTL_S
    )
    log.warning(
        "sms not delivered",
        chat_id=chat_id,
        message_status=report.status,
        error_code=report.error_code,
        carrier_message_id=report.carrier_message_id,
        repeated=not first,
    )
    return web.Response(status=204)


@routes.post(twilio.INBOUND_SMS_PATH)
async def inbound_sms(request: web.Request) -> web.Response:
    """A consumer's message, handled as the simulated carrier's; answered with empty TwiML."""
    tenant, form = await signed_form(request)
    await receive_sms(request, tenant, TwilioCarrier.inbound_sms(form))
    return web.Response(text=twilio.EMPTY_TWIML, content_type="text/xml")


async def signed_form(request: web.Request) -> tuple[Tenant, MultiDict[str]]:
    """The tenant of the path and the form Twilio sent, once its signature holds."""
    signature = request.headers.get(twilio.SIGNATURE_HEADER, "")
    if not signature:
        raise Forbidden(twilio.SIGNATURE_MISSING)
    subdomain = request.match_info["subdomain"]
    tenant = await request.app[DIRECTORY].tenant(subdomain) if len(subdomain) <= 63 else None
    check = CallbackCheck.of(request.app[SETTINGS], tenant)
    raw = await raw_body(request)
    form = check.signed_form(request.raw_path, request.content_type, raw, signature)
    structlog.contextvars.bind_contextvars(tenant=check.tenant.subdomain)
    return check.tenant, form


def _record_id(request: web.Request, name: str, not_found: str) -> int:
    record_id = integer(request.match_info[name])
    if record_id is None:
        raise NotFound(not_found)
    return record_id
