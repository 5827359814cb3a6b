"""Agent side: live status, open offers, accept/decline, and an SSE stream per agent."""

from __future__ import annotations

from typing import Any

import orjson
import structlog
from aiohttp import web

from dispatcher.directory.schema import Agent
from dispatcher.directory.tenant import Tenant
from dispatcher.domain import clock
from dispatcher.domain.errors import Conflict, InvalidRequest, NotFound
from dispatcher.domain.fields import integer
from dispatcher.domain.statuses import AgentStatus
from dispatcher.http.appkeys import METRICS, REDIS, SCRIPTS
from dispatcher.http.auth import tenant_of
from dispatcher.http.body import json_object
from dispatcher.http.responses import json_response
from dispatcher.store import jobs
from dispatcher.store.keys import TenantKeys
from dispatcher.store.lifecycle import OFFER_GONE, Calls

routes = web.RouteTableDef()
BASE = "/apps/api/v1/agents/{id}"
AGENT_NOT_FOUND = "Agent not found"


def calls_of(request: web.Request, tenant: Tenant) -> Calls:
    return Calls(request.app[REDIS], request.app[SCRIPTS], tenant)


def agent_view(agent: Agent, live: dict[bytes, bytes]) -> dict[str, Any]:
    return {
        "id": agent.id,
        "email": agent.email,
        "name": agent.name,
        "first_name": agent.first_name,
        "last_name": agent.last_name,
        "status": live.get(b"status", AgentStatus.OFFLINE.encode()).decode(),
        "languages": agent.languages,
        "capacity": agent.capacity.model_dump(),
        "active_calls": int(live.get(b"voice", b"0")),
    }


@routes.get(BASE)
async def get_agent(request: web.Request) -> web.Response:
    tenant = await tenant_of(request)
    agent = _agent(request, tenant.agents_by_id)
    live = await request.app[REDIS].hgetall(  # type: ignore[misc]
        TenantKeys(tenant.subdomain).agent(agent.id)
    )
    return json_response(agent_view(agent, live))


@routes.put(BASE + "/status")
async def put_status(request: web.Request) -> web.Response:
    tenant = await tenant_of(request)
    agent = _agent(request, tenant.agents_by_id)
    body = await json_object(request)
    raw = body.get("status")
    if not isinstance(raw, str) or raw not in set(AgentStatus):
        raise InvalidRequest("status must be one of available, unavailable, offline")
    redis = request.app[REDIS]
    key = TenantKeys(tenant.subdomain).agent(agent.id)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hset(key, "status", str(raw))
        pipe.hgetall(key)
        _, live = await pipe.execute()
    if raw == AgentStatus.AVAILABLE:
        await calls_of(request, tenant).wake_waiting_calls([agent.id])
    return json_response(agent_view(agent, live))


@routes.get(BASE + "/offers")
async def get_offers(request: web.Request) -> web.Response:
    tenant = await tenant_of(request)
    agent = _agent(request, tenant.agents_by_id)
    offers = await calls_of(request, tenant).open_offers(agent.id)
    return json_response([offer.view() for offer in offers])


@routes.post("/apps/api/v1/offers/{id}/accept")
async def accept_offer(request: web.Request) -> web.Response:
    tenant = await tenant_of(request)
    accepted = await calls_of(request, tenant).accept(_offer_id(request))
    request.app[METRICS].offer_accepted(accepted.waited_s)
    call = accepted.snapshot.call
    structlog.contextvars.bind_contextvars(call_id=call.id, offer_id=accepted.offer.id)
    return json_response(call)


@routes.post("/apps/api/v1/offers/{id}/decline")
async def decline_offer(request: web.Request) -> web.Response:
    tenant = await tenant_of(request)
    calls = calls_of(request, tenant)
    offer = await calls.decline(_offer_id(request))
    structlog.contextvars.bind_contextvars(call_id=offer.call_id, offer_id=offer.id)
    # Re-route now: the next agents need not wait for the offer to expire.
    now_ms = clock.to_ms(clock.now())
    await calls.enqueue(
        [jobs.JobSpec(jobs.ROUTE_CALL, tenant.subdomain, offer.call_id, now_ms, (), f"d{offer.id}")]
    )
    return json_response({"id": offer.id, "call_id": offer.call_id, "state": "declined"})


@routes.get(BASE + "/events")
async def agent_events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: offer, offer_withdrawn, assigned; a comment every 15 s keeps
    proxies from closing an idle stream."""
    tenant = await tenant_of(request)
    agent = _agent(request, tenant.agents_by_id)
    channel = TenantKeys(tenant.subdomain).agent_events(agent.id)
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    await response.prepare(request)
    async with request.app[REDIS].pubsub() as pubsub:
        await pubsub.subscribe(channel)
        await response.write(b": connected\n\n")
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=15)
            if message is None:
                await response.write(b": keep-alive\n\n")
                continue
            event = orjson.loads(message["data"])
            payload = orjson.dumps(event["data"])
            await response.write(
                b"event: " + event["event"].encode() + b"\ndata: " + payload + b"\n\n"
            )


def _offer_id(request: web.Request) -> int:
    offer_id = integer(request.match_info["id"])
    if offer_id is None:
        raise Conflict(OFFER_GONE)
    return offer_id


def _agent(request: web.Request, agents: dict[int, Agent]) -> Agent:
    agent = agents.get(integer(request.match_info["id"]) or 0)
    if agent is None:
        raise NotFound(AGENT_NOT_FOUND)
    return agent
