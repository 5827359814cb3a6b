"""Agent side: the agents and their live status, open offers, accept/decline, and an SSE stream
per agent. The tenant's token may act for any agent; an agent's own token for that agent only
(403 on another's routes and offers), and the list of agents is the tenant's alone."""

from __future__ import annotations

import contextlib
from typing import Any

import orjson
import structlog
from aiohttp import web
from redis.exceptions import RedisError

from dispatcher.directory.schema import Agent
from dispatcher.directory.tenant import Tenant
from dispatcher.domain.errors import Conflict, InvalidRequest, NotFound
from dispatcher.domain.fields import integer
from dispatcher.domain.statuses import AgentStatus
from dispatcher.http import listing, sse
from dispatcher.http.appkeys import METRICS, SETTINGS, stores_of
from dispatcher.http.auth import Caller, caller_of, tenant_of
from dispatcher.http.body import json_object
from dispatcher.http.responses import json_response
from dispatcher.store.agents import AgentStore
from dispatcher.store.desks import SUPERSEDED, Desk, is_announcement
from dispatcher.store.keys import TenantKeys
from dispatcher.store.scripts import OFFER_GONE
from dispatcher.store.stream_leases import StreamCap

routes = web.RouteTableDef()
log = structlog.get_logger("dispatcher.http.agents")
BASE = "/apps/api/v1/agents/{id}"
AGENT_NOT_FOUND = "Agent not found"
KEEP_ALIVE_S = 15.0
AGENT_STREAMS = "Too many event streams open for this agent (at most {})"


def agents_of(request: web.Request, tenant: Tenant) -> AgentStore:
    return stores_of(request, tenant).agents


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


@routes.get("/apps/api/v1/agents")
async def list_agents(request: web.Request) -> web.Response:
    """The tenant's agents by id, a page at a time, each with their live status."""
    tenant = await tenant_of(request)
    page, per = listing.paging(request.query)
    agents = sorted(tenant.agents_by_id.values(), key=lambda agent: agent.id)
    shown = agents[(page - 1) * per : page * per]
    lives = await agents_of(request, tenant).live([agent.id for agent in shown])
    return json_response(
        [agent_view(agent, live) for agent, live in zip(shown, lives, strict=True)],
        headers=listing.page_headers(request, page, per, len(agents)),
    )


@routes.get(BASE)
async def get_agent(request: web.Request) -> web.Response:
    tenant, agent = await _own_agent(request)
    (live,) = await agents_of(request, tenant).live([agent.id])
    return json_response(agent_view(agent, live))


@routes.put(BASE + "/status")
async def put_status(request: web.Request) -> web.Response:
    tenant, agent = await _own_agent(request)
    body = await json_object(request)
    raw = body.get("status")
    if not isinstance(raw, str) or raw not in set(AgentStatus):
        raise InvalidRequest("status must be one of available, unavailable, offline")
    live = await agents_of(request, tenant).set_status(agent.id, AgentStatus(raw))
    return json_response(agent_view(agent, live))


@routes.get(BASE + "/offers")
async def get_offers(request: web.Request) -> web.Response:
    tenant, agent = await _own_agent(request)
    offers = await agents_of(request, tenant).open_offers(agent.id)
    return json_response([offer.view() for offer in offers])


@routes.post("/apps/api/v1/offers/{id}/accept")
async def accept_offer(request: web.Request) -> web.Response:
    caller = await caller_of(request)
    calls = agents_of(request, caller.tenant)
    accepted = await calls.accept(await _own_offer(caller, calls, _offer_id(request)))
    request.app[METRICS].offer_accepted(accepted.waited_s)
    call = accepted.snapshot.call
    structlog.contextvars.bind_contextvars(call_id=call.id, offer_id=accepted.offer.id)
    return json_response(call)


@routes.post("/apps/api/v1/offers/{id}/decline")
async def decline_offer(request: web.Request) -> web.Response:
    caller = await caller_of(request)
    tenant = caller.tenant
    calls = agents_of(request, tenant)
    offer = await calls.decline(await _own_offer(caller, calls, _offer_id(request)))
    structlog.contextvars.bind_contextvars(call_id=offer.call_id, offer_id=offer.id)
    return json_response({"id": offer.id, "call_id": offer.call_id, "state": "declined"})


@routes.get(BASE + "/events")
async def agent_events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: offer, offer_withdrawn, assigned, call_updated; a comment every
    15 s keeps proxies from closing an idle stream. One desk per agent: a newer stream of the
    same agent (another console, or a person taking over from `agents simulate`) ends this one
    with a `superseded` event."""
    tenant, agent = await _own_agent(request)
    keys = TenantKeys(tenant.subdomain)
    desk = agents_of(request, tenant).desk(agent.id)
    caps = [_agent_cap(request, keys, agent.id), sse.tenant_cap(request, keys)]
    async with sse.subscribe(request, [keys.agent_events(agent.id)], caps) as stream:
        try:
            await desk.take()
            await _relay(stream, desk)
        except (RedisError, ConnectionError):  # the stream ends; the console reconnects
            log.warning("agent stream ended: Redis is unavailable", exc_info=True)
        finally:
            with contextlib.suppress(RedisError, ConnectionError):
                await desk.release()
    return stream.response


async def _relay(stream: sse.EventStream, desk: Desk) -> None:
    while stream.open:
        message = await stream.receive(KEEP_ALIVE_S)
        if message is None:
            if stream.open:
                await stream.comment("keep-alive")
            continue
        event = orjson.loads(message)
        if await desk.lost_to(event):
            await stream.send(SUPERSEDED, b"{}")
            return
        if not is_announcement(event):
            await stream.send(event["event"], orjson.dumps(event["data"]))


def _agent_cap(request: web.Request, keys: TenantKeys, agent_id: int) -> StreamCap:
    limit = request.app[SETTINGS].streams_per_agent
    return StreamCap(keys.agent_streams(agent_id), limit, AGENT_STREAMS.format(limit))


def _offer_id(request: web.Request) -> int:
    offer_id = integer(request.match_info["id"])
    if offer_id is None:
        raise Conflict(OFFER_GONE)
    return offer_id


async def _own_agent(request: web.Request) -> tuple[Tenant, Agent]:
    """The tenant and the agent of the path, which an agent's token must be the one of."""
    caller = await caller_of(request)
    agent = _agent(request, caller.tenant.agents_by_id)
    caller.may_act_for(agent.id)
    return caller.tenant, agent


async def _own_offer(caller: Caller, calls: AgentStore, offer_id: int) -> int:
    """The offer id, once an agent's token is known to be the one the offer was made to."""
    if caller.agent is not None:
        offer = await calls.offer(offer_id)
        if offer is None:
            raise Conflict(OFFER_GONE)
        caller.may_act_for(offer.agent_id)
    return offer_id


def _agent(request: web.Request, agents: dict[int, Agent]) -> Agent:
    agent = agents.get(integer(request.match_info["id"]) or 0)
    if agent is None:
        raise NotFound(AGENT_NOT_FOUND)
    return agent
