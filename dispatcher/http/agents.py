"""Agent side: the agents and their live status, open offers, accept/decline, and an SSE stream
per agent. The tenant's token may act for any agent; an agent's own token for that agent only
(403 on another's routes and offers), and the list of agents is the tenant's alone."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import orjson
import structlog
from aiohttp import web
from redis.exceptions import RedisError

from dispatcher.directory.schema import Agent
from dispatcher.directory.tenant import Tenant
from dispatcher.domain import choices, clock
from dispatcher.domain.errors import Conflict, InvalidRequest, NotFound
from dispatcher.domain.fields import integer
from dispatcher.domain.statuses import AgentStatus
from dispatcher.http import listing, sse
from dispatcher.http.appkeys import METRICS, SETTINGS, stores_of
from dispatcher.http.auth import Caller, caller_of, tenant_of
from dispatcher.http.body import json_object
from dispatcher.http.responses import json_response
from dispatcher.store.agents import AgentStore
from dispatcher.store.calls import Snapshot
from dispatcher.store.desks import SUPERSEDED, Desk, is_announcement, is_release
from dispatcher.store.keys import TenantKeys
from dispatcher.store.scripts import OFFER_GONE
from dispatcher.store.stores import Stores
from dispatcher.store.stream_leases import StreamCap

routes = web.RouteTableDef()
log = structlog.get_logger("dispatcher.http.agents")
BASE = "/apps/api/v1/agents/{id}"
AGENT_NOT_FOUND = "Agent not found"
CALL_NOT_FOUND = "Call not found"
KEEP_ALIVE_S = 15.0
AGENT_STREAMS = "Too many event streams open for this agent (at most {})"
# Events of a stream opened with ?standby=true: it waits while another stream holds the
# agent, and is ready once it holds the agent itself.
STANDBY = "standby"
READY = "ready"


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


@routes.get(BASE + "/tenant")
async def get_agent_tenant(request: web.Request) -> web.Response:
    """What a console needs of its tenant: the zone its times are shown in."""
    tenant, _ = await _own_agent(request)
    return json_response({"subdomain": tenant.subdomain, "timezone": tenant.doc.timezone})


@routes.get(BASE + "/calls/{call_id}/end_user")
async def get_end_user(request: web.Request) -> web.Response:
    """The number of the end user on a call the agent is offered or holds (the call object
    carries none): what a console shows as the caller."""
    tenant, agent = await _own_agent(request)
    stores = stores_of(request, tenant)
    call_id = integer(request.match_info["call_id"])
    snapshot = await stores.calls.load(call_id) if call_id is not None else None
    if snapshot is None or not await _reaches(stores, agent, snapshot):
        raise NotFound(CALL_NOT_FOUND)
    number = snapshot.meta.end_user_number
    return json_response({"call_id": snapshot.call.id, "end_user_number": number})


@routes.get(BASE + "/choices")
async def get_choices(request: web.Request) -> web.Response:
    """The agent's calls that wait for its choice (a `202` outbound call), oldest first."""
    tenant, agent = await _own_agent(request)
    waiting = await stores_of(request, tenant).calls.waiting_choices(agent.id)
    return json_response([choices.view(found.call.id, found.meta) for found in waiting])


@routes.post(BASE + "/calls/{call_id}/choice")
async def make_choice(request: web.Request) -> web.Response:
    """The agent picks the number a `202` call waits for; the call then dials (or waits for
    its outbound number, when both were to be chosen)."""
    tenant, agent = await _own_agent(request)
    calls = stores_of(request, tenant).calls
    call_id = integer(request.match_info["call_id"])
    snapshot = await calls.load(call_id) if call_id is not None else None
    if snapshot is None or snapshot.agent_id != agent.id:
        raise NotFound(CALL_NOT_FOUND)
    structlog.contextvars.bind_contextvars(call_id=snapshot.call.id)
    body = await json_object(request)
    if not choices.waiting(snapshot.call, snapshot.meta):
        raise Conflict(choices.NOT_WAITING)
    choice = choices.choice_of(body, snapshot.meta, tenant, clock.now())
    after = await calls.choose(snapshot, choice)
    return json_response(after.call)


async def _reaches(stores: Stores, agent: Agent, snapshot: Snapshot) -> bool:
    """The agent holds the call, or has an open offer of it."""
    if snapshot.agent_id == agent.id:
        return True
    return any(
        offer.call_id == snapshot.call.id for offer in await stores.agents.open_offers(agent.id)
    )


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
    with a `superseded` event. With ?standby=true the stream takes no desk from another: it
    sends `standby` and nothing else while one holds the agent, then `ready` once it holds the
    agent itself (simulated agents wait so for a person's console to close)."""
    tenant, agent = await _own_agent(request)
    standby = _standby_wanted(request)
    keys = TenantKeys(tenant.subdomain)
    desk = agents_of(request, tenant).desk(agent.id)
    caps = [_agent_cap(request, keys, agent.id), sse.tenant_cap(request, keys)]
    async with sse.subscribe(request, [keys.agent_events(agent.id)], caps) as stream:
        try:
            if not standby:
                await desk.take()
            elif not await _stand_by(stream, desk):
                return stream.response
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


def _standby_wanted(request: web.Request) -> bool:
    raw = request.query.get("standby", "false")
    if raw not in ("true", "false"):
        raise InvalidRequest("standby must be true or false")
    return raw == "true"


async def _stand_by(stream: sse.EventStream, desk: Desk) -> bool:
    """Waits, relaying nothing, until the agent's desk is free, then takes it and says `ready`;
    False when the stream ends first. Each keep-alive also looks, in case a release was lost
    (a pub/sub connection that was reopened)."""
    if not await desk.take_if_free():
        await stream.send(STANDBY, b"{}")
        while not await desk.take_if_free():
            message = await _wait_for_release(stream)
            if not stream.open:
                return False
            if message is None:
                await stream.comment("keep-alive")
    await stream.send(READY, b"{}")
    return stream.open


async def _wait_for_release(stream: sse.EventStream) -> bytes | None:
    """The release of the desk, or None after a keep-alive's time without one (the other
    desk's events, which come meanwhile, are dropped)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + KEEP_ALIVE_S
    while stream.open and (left := deadline - loop.time()) > 0:
        message = await stream.receive(left)
        if message is None or is_release(orjson.loads(message)):
            return message
    return None


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
