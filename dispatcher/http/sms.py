"""SMS: POST /sms opens an outbound session; GET /chats and /chats/:id read them back."""

from __future__ import annotations

import structlog
from aiohttp import web

from dispatcher.domain import clock
from dispatcher.domain.chat_requests import validate_sms
from dispatcher.domain.errors import Conflict, NotFound
from dispatcher.domain.fields import integer
from dispatcher.http import listing
from dispatcher.http.appkeys import stores_of
from dispatcher.http.auth import tenant_of, tenant_to_create
from dispatcher.http.body import json_object
from dispatcher.http.calls import created, once_for
from dispatcher.http.responses import answer_response, json_response

routes = web.RouteTableDef()
CHATS = "/apps/api/v1/chats"
CHAT_NOT_FOUND = "Chat not found"


@routes.post("/apps/api/v1/sms")
async def create_sms(request: web.Request) -> web.Response:
    tenant, charge = await tenant_to_create(request)
    async with charge:
        body = await json_object(request)
        chats = stores_of(request, tenant).chats
        key = once_for(request, chats, "sms", body)
        replayed = await chats.recall(key)
        if replayed is not None:
            return answer_response(replayed)
        plan = validate_sms(body, tenant)
        answer = await chats.create_chat(plan, clock.now(), key, charge.for_create())
    return created(answer, "chat_id")


@routes.get(CHATS)
async def list_chats(request: web.Request) -> web.Response:
    tenant = await tenant_of(request)
    return await listing.respond(request, stores_of(request, tenant).chats)


@routes.get(CHATS + "/{id}")
async def get_chat(request: web.Request) -> web.Response:
    tenant = await tenant_of(request)
    chat_id = _chat_id(request)
    doc = await stores_of(request, tenant).chats.document(chat_id) if chat_id is not None else None
    if doc is None:
        raise NotFound(CHAT_NOT_FOUND)
    return json_response(doc)


@routes.post(CHATS + "/{id}/finish")
async def finish_chat(request: web.Request) -> web.Response:
    """Ends the SMS session; the consumer may be sent a new outbound SMS at once."""
    tenant = await tenant_of(request)
    chat_id = _chat_id(request)
    chats = stores_of(request, tenant).chats
    if chat_id is None or await chats.load(chat_id) is None:
        raise NotFound(CHAT_NOT_FOUND)
    ended = await chats.finish(chat_id)
    if ended is None:
        raise Conflict("Chat has already ended")
    return json_response(ended)


def _chat_id(request: web.Request) -> int | None:
    chat_id = integer(request.match_info["id"])
    if chat_id is not None:
        structlog.contextvars.bind_contextvars(chat_id=chat_id)
    return chat_id
