"""Calls: POST /calls (three types), GET /calls and /calls/:id, /calls/:id/customer_flag."""

from __future__ import annotations

from typing import Any

import structlog
from aiohttp import web

from dispatcher.directory.schema import Agent
from dispatcher.domain import call_requests, clock
from dispatcher.domain.errors import Conflict, Forbidden, InvalidRequest, NotFound
from dispatcher.domain.fields import integer
from dispatcher.domain.objects import CallObject, CustomerFlags
from dispatcher.http import listing
from dispatcher.http.appkeys import SETTINGS, stores_of
from dispatcher.http.auth import caller_of, tenant_of, tenant_to_create
from dispatcher.http.body import json_object
from dispatcher.http.responses import answer_response, json_response
from dispatcher.store import idempotency
from dispatcher.store.records import RecordStore
from dispatcher.store.stores import end_call

routes = web.RouteTableDef()
BASE = "/apps/api/v1/calls"
CALL_NOT_FOUND = "Call not found"
NOT_YOUR_CALL = "An agent's token reaches the calls assigned to that agent only"
FLAG_ALIASES = {"repeat_customers": "repeat_customer"}


@routes.post(BASE)
async def create_call(request: web.Request) -> web.Response:
    tenant, charge = await tenant_to_create(request)
    async with charge:
        body = await json_object(request)
        records = stores_of(request, tenant).calls
        key = once_for(request, records, "calls", body)
        replayed = await records.recall(key)
        if replayed is not None:
            return answer_response(replayed)
        parent_id = call_requests.wanted_parent(body)
        parent = await records.parent_call(parent_id) if parent_id is not None else None
        plan = call_requests.validate(body, tenant, clock.now(), parent)
        answer = await records.create_call(plan, key, charge.for_create())
    return created(answer, "call_id")


def created(answer: idempotency.Answer, field: str) -> web.Response:
    """A create's answer; the request's log line names what it created."""
    if answer.record_id is not None:
        structlog.contextvars.bind_contextvars(**{field: answer.record_id})
    return answer_response(answer)


def once_for(
    request: web.Request, records: RecordStore, scope: str, body: dict[str, Any]
) -> idempotency.Once | None:
    """The request's Idempotency-Key, if it has one, for this tenant and endpoint."""
    return idempotency.once(
        records.keys,
        scope,
        request.headers.get(idempotency.HEADER),
        body,
        request.app[SETTINGS].idempotency_ttl_s,
    )


@routes.get(BASE)
async def list_calls(request: web.Request) -> web.Response:
    tenant = await tenant_of(request)
    return await listing.respond(request, stores_of(request, tenant).calls)


# Not `batch`: that path is POST /calls/batch's alone, and a GET of it a 405 saying so.
@routes.get(BASE + "/{id:(?!batch$)[^/]+}")
async def get_call(request: web.Request) -> web.Response:
    """The call object; an agent's token reads the calls assigned to that agent only."""
    caller = await caller_of(request)
    doc = await stores_of(request, caller.tenant).calls.document(_call_id(request))
    if doc is None:
        raise NotFound(CALL_NOT_FOUND)
    if caller.agent is not None:
        holder = CallObject.model_validate_json(doc).agent_info
        _held_by(caller.agent, holder.id if holder else None)
    return json_response(doc)


def _held_by(agent: Agent, holder_id: int | None) -> None:
    if holder_id != agent.id:
        raise Forbidden(NOT_YOUR_CALL)


@routes.get(BASE + "/{id}/customer_flag")
async def get_customer_flag(request: web.Request) -> web.Response:
    tenant = await tenant_of(request)
    flags = await stores_of(request, tenant).calls.flags(_call_id(request))
    if flags is None:
        raise NotFound(CALL_NOT_FOUND)
    return json_response(flags)


@routes.patch(BASE + "/{id}/customer_flag")
async def patch_customer_flag(request: web.Request) -> web.Response:
    tenant = await tenant_of(request)
    call_id = _call_id(request)
    body = await json_object(request)
    changes: dict[str, bool] = {}
    for key, value in body.items():
        name = FLAG_ALIASES.get(key, key)
        if name not in CustomerFlags.model_fields:
            continue
        if not isinstance(value, bool):
            raise InvalidRequest(f"{key} must be a boolean")
        changes[name] = value
    flags = await stores_of(request, tenant).calls.set_flags(call_id, changes)
    if flags is None:
        raise NotFound(CALL_NOT_FOUND)
    return json_response(flags)


def _call_id(request: web.Request) -> int:
    call_id = integer(request.match_info["id"])
    if call_id is None:
        raise NotFound(CALL_NOT_FOUND)
    structlog.contextvars.bind_contextvars(call_id=call_id)
    return call_id


@routes.post(BASE + "/{id}/finish")
async def finish_call(request: web.Request) -> web.Response:
    """Ends the call: finished if it was connected, else failed with ag_canceled. An agent's
    token ends the calls assigned to that agent only."""
    caller = await caller_of(request)
    call_id = _call_id(request)
    stores = stores_of(request, caller.tenant)
    found = await stores.calls.load(call_id)
    if found is None:
        raise NotFound(CALL_NOT_FOUND)
    if caller.agent is not None:
        _held_by(caller.agent, found.call.agent_info.id if found.call.agent_info else None)
    after = await end_call(stores, call_id, None, by="disconnected_by_agent", hang_up=True)
    if after is None:
        raise Conflict("Call has already ended")
    return json_response(after.call)
