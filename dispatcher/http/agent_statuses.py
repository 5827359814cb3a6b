"""Agent statuses in bulk, in the platform's shape (its Apps API's agent_statuses): a manager
sets the status of agents named directly or through their teams, or logs them out. The
tenant's token only."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from dispatcher.directory.schema import Agent
from dispatcher.domain import agent_statuses
from dispatcher.domain.agent_statuses import IN_CALL, LOGOUT_PENDING
from dispatcher.domain.statuses import AgentStatus
from dispatcher.http.appkeys import stores_of
from dispatcher.http.auth import tenant_of
from dispatcher.http.body import json_object
from dispatcher.http.responses import json_response
from dispatcher.store.agents import StatusChange

routes = web.RouteTableDef()
BASE = "/apps/api/v1/agent_statuses"


@routes.post(BASE)
async def change_statuses(request: web.Request) -> web.Response:
    """One entry an agent, by agent id; an agent holding a call keeps its status and says why."""
    tenant = await tenant_of(request)
    body = await json_object(request)
    status = agent_statuses.status_of(body)
    agents = agent_statuses.named_agents(body, tenant)
    store = stores_of(request, tenant).agents
    changes = await store.set_statuses([a.id for a in agents], status, guard=True)
    return json_response(_entries(agents, changes, IN_CALL))


@routes.post(BASE + "/force_logout")
async def force_logout(request: web.Request) -> web.Response:
    """The agents go offline; one holding a call becomes unavailable and goes offline when its
    last call ends (its entry says so)."""
    tenant = await tenant_of(request)
    agents = agent_statuses.named_agents(await json_object(request), tenant)
    store = stores_of(request, tenant).agents
    changes = await store.set_statuses([a.id for a in agents], AgentStatus.OFFLINE, logout=True)
    return json_response(_entries(agents, changes, LOGOUT_PENDING))


def _entries(agents: list[Agent], changes: list[StatusChange], held: str) -> list[dict[str, Any]]:
    """The answer's entries; `held` is the message of an agent holding a call."""
    return [
        agent_statuses.entry(agent, change.previous, change.current, held if change.held else None)
        for agent, change in zip(agents, changes, strict=True)
    ]
