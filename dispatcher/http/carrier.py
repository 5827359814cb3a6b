"""Carrier callbacks. The simulated carrier's inbound SMS arrive here, authenticated like the
API (Basic, tenant and token); a real carrier's routes (dispatcher/http/twilio.py) have that
carrier's adapter verify its signature and hand their messages to the same `receive_sms`."""

from __future__ import annotations

import structlog
from aiohttp import web

from dispatcher.carriers.base import InboundSms
from dispatcher.carriers.simulated import SimulatedCarrier
from dispatcher.directory.tenant import Tenant
from dispatcher.domain import clock
from dispatcher.http.appkeys import stores_of
from dispatcher.http.auth import tenant_of
from dispatcher.http.body import json_object
from dispatcher.http.responses import json_response
from dispatcher.store.chats import is_opt_out

routes = web.RouteTableDef()


@routes.post("/carrier/simulated/sms")
async def inbound_sms(request: web.Request) -> web.Response:
    """A consumer's message `{"from", "to", "text"}`."""
    tenant = await tenant_of(request)
    body = await json_object(request)
    message = SimulatedCarrier.inbound_sms(body)
    chat_id, opted_out = await receive_sms(request, tenant, message)
    return json_response({"chat_id": chat_id, "opted_out": opted_out})


async def receive_sms(
    request: web.Request, tenant: Tenant, message: InboundSms
) -> tuple[int | None, bool]:
    """A consumer's message, whichever carrier brought it (its adapter read it). It keeps their
    session alive; an opt-out word ends it and puts the number on the tenant's SMS opt-outs
    (store/opt_outs.py). Returns the active chat and the opt-out."""
    number, text = message.sender, message.text
    stores = stores_of(request, tenant)
    chats = stores.chats
    chat_id = await chats.active_chat(number)
    if chat_id is not None:
        structlog.contextvars.bind_contextvars(chat_id=chat_id)
    opted_out = is_opt_out(text)
    if opted_out:
        await stores.opt_outs.add(number, clock.to_ms(clock.now()))
    if chat_id is not None:
        await chats.add_message(chat_id, "inbound", text)
        if opted_out:
            await chats.finish(chat_id)
        else:
            await chats.touch(chat_id, number)
    return chat_id, opted_out
