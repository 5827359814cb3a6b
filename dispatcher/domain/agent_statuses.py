"""A manager's bulk change of agent statuses, in the platform's shape: the status it names (the
platform's display names, any case), the agents named directly or through their teams, and the
answer's entry per agent."""

from __future__ import annotations

from typing import Any

from dispatcher.directory.schema import Agent
from dispatcher.directory.tenant import Tenant
from dispatcher.domain.errors import InvalidRequest, NotFound
from dispatcher.domain.statuses import AgentStatus

MAX_IDS = 1_000  # agent ids, and team ids, a request
BAD_STATUS = "status must be one of Available, Unavailable, Offline"
NO_AGENTS = "agent_ids or team_ids must name at least one agent"
# The platform's text for an agent in a system status; this product knows one: holding a call.
IN_CALL = "Agent can't be changed from system status 'In-call'"
LOGOUT_PENDING = "Agent will be logged out when its call ends"


def status_of(body: dict[str, Any]) -> AgentStatus:
    """`status`, required: a display name or this product's value, in any case."""
    if "status" not in body:
        raise InvalidRequest("status is required")
    raw = body["status"]
    if not isinstance(raw, str):
        raise InvalidRequest(BAD_STATUS)
    for status in AgentStatus:
        if raw.strip().lower() == status.value:
            return status
    raise InvalidRequest(BAD_STATUS)


def named_agents(body: dict[str, Any], tenant: Tenant) -> list[Agent]:
    """The agents of `agent_ids` and of the teams of `team_ids`, each once, by agent id. An id
    the tenant does not know is a 404 for the whole request: nothing is changed."""
    agent_ids = _ids(body, "agent_ids")
    team_ids = _ids(body, "team_ids")
    for team_id in team_ids:
        if team_id not in tenant.teams_by_id:
            raise NotFound(f"Team {team_id} not found")
    wanted = set(agent_ids)
    for team_id in team_ids:
        wanted.update(tenant.teams_by_id[team_id].agent_ids)
    for agent_id in agent_ids:
        if agent_id not in tenant.agents_by_id:
            raise NotFound(f"Agent {agent_id} not found")
    if not wanted:
        raise InvalidRequest(NO_AGENTS)
    return [tenant.agents_by_id[agent_id] for agent_id in sorted(wanted)]


def entry(
    agent: Agent, previous: AgentStatus, current: AgentStatus, message: str | None = None
) -> dict[str, Any]:
    shown: dict[str, Any] = {
        "agent_id": agent.id,
        "name": agent.name,
        "email": agent.email,
        "agent_number": agent.agent_number,
        "previous_status": previous.value,
        "current_status": current.value,
    }
    if message is not None:
        shown["message"] = message
    return shown


def _ids(body: dict[str, Any], name: str) -> list[int]:
    if name not in body:
        return []
    raw = body[name]
    if not isinstance(raw, list) or not all(_is_id(item) for item in raw):
        raise InvalidRequest(f"{name} must be an array of integer ids")
    if len(raw) > MAX_IDS:
        raise InvalidRequest(f"{name} must hold at most {MAX_IDS} ids a request")
    return raw


def _is_id(item: object) -> bool:
    return isinstance(item, int) and not isinstance(item, bool)
