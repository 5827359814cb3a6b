"""Agent side: an agent's live status (what routing and outbound calls read)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from dispatcher.directory.schema import Agent
from dispatcher.domain.errors import InvalidRequest, NotFound
from dispatcher.domain.fields import integer
from dispatcher.domain.statuses import AgentStatus
from dispatcher.http.appkeys import REDIS
from dispatcher.http.auth import tenant_of
from dispatcher.http.body import json_object
from dispatcher.http.responses import json_response
from dispatcher.store.keys import TenantKeys

routes = web.RouteTableDef()
BASE = "/apps/api/v1/agents/{id}"
AGENT_NOT_FOUND = "Agent not found"


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
    if raw not in set(AgentStatus):
        raise InvalidRequest("status must be one of available, unavailable, offline")
    redis = request.app[REDIS]
    key = TenantKeys(tenant.subdomain).agent(agent.id)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.hset(key, "status", str(raw))
        pipe.hgetall(key)
        _, live = await pipe.execute()
    return json_response(agent_view(agent, live))


def _agent(request: web.Request, agents: dict[int, Agent]) -> Agent:
    agent = agents.get(integer(request.match_info["id"]) or 0)
    if agent is None:
        raise NotFound(AGENT_NOT_FOUND)
    return agent
