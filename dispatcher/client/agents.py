"""`dispatcher agents simulate N`: simulated agents of a tenant, through the public API."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import Any

import click

from dispatcher.client.api import Client
from dispatcher.client.options import api_options, run
from dispatcher.client.simulated_agents import Timing, describe, desks, pick_agents, simulate

_SECONDS = click.FloatRange(0)


@click.group(short_help="Simulated agents, through the API.")
def agents() -> None:
    """Agents through the API: simulated people at agent desktops, for demos and tests."""


@agents.command("simulate", short_help="Run N simulated agents of a tenant.")
@api_options
@click.argument("count", metavar="N", type=click.IntRange(1))
@click.option(
    "--accept-after",
    type=_SECONDS,
    default=2.0,
    show_default=True,
    metavar="SECONDS",
    help="How long an offer rings before the agent accepts it.",
)
@click.option(
    "--talk-time",
    type=_SECONDS,
    default=30.0,
    show_default=True,
    metavar="SECONDS",
    help="How long after a call connects the agent finishes it; 0: never (the end user hangs up).",
)
@click.option(
    "--jitter",
    type=_SECONDS,
    default=0.5,
    show_default=True,
    metavar="SECONDS",
    help="Each wait is up to this much longer or shorter, at random, as people's are.",
)
@click.option(
    "--duration",
    type=click.FloatRange(0, min_open=True),
    default=None,
    metavar="SECONDS",
    help="Stop after this long (default: on Ctrl-C or SIGTERM).",
)
@click.option(
    "--agent-token",
    "agent_tokens",
    multiple=True,
    required=True,
    metavar="ID=TOKEN",
    envvar="DISPATCHER_AGENT_TOKENS",
    show_envvar=True,
    callback=lambda _context, _parameter, given: _agent_tokens(given),
    help="An agent's own token (one of its api_tokens in the directory), once per agent to "
    "simulate; the environment variable takes them space-separated. Each simulated agent "
    "signs in with its own, as at the agent console; agents without one are left alone.",
)
@click.option(
    "--keep-available",
    is_flag=True,
    help="Leave the agents available on exit (default: each goes back to its former status).",
)
def simulate_agents(
    url: str,
    tenant: str,
    token: str,
    count: int,
    accept_after: float,
    talk_time: float,
    jitter: float,
    duration: float | None,
    agent_tokens: dict[int, str],
    keep_available: bool,
) -> None:
    """Run N simulated agents: the tenant's first N agents by id (GET /apps/api/v1/agents,
    with the tenant's token) among those given an --agent-token.
    Each goes available, watches its offers on its event stream, accepts each after
    --accept-after seconds, and finishes the call --talk-time seconds after it connects.
    A person who signs in at the agent console as one of them takes it over until the console
    closes (`up --simulate-agents`, which knows the menus, also makes the others leave that
    agent's menus to the person). Only the public API is used, so this works against any
    deployment. One line is printed per thing an agent does."""
    timing = Timing(accept_after_s=accept_after, talk_time_s=talk_time or None, jitter_s=jitter)
    client = Client(url, tenant, token)
    run(_simulate(client, tenant, agent_tokens, count, timing, duration, not keep_available))


def _agent_tokens(given: tuple[str, ...]) -> dict[int, str]:
    tokens: dict[int, str] = {}
    for item in given:
        agent_id, separator, token = item.partition("=")
        if not separator or not agent_id.isascii() or not agent_id.isdigit() or not token:
            raise click.BadParameter(f"expected ID=TOKEN (e.g. 2=the-agents-token), not {item!r}")
        tokens[int(agent_id)] = token
    return tokens


async def _simulate(
    client: Client,
    tenant: str,
    tokens: dict[int, str],
    count: int,
    timing: Timing,
    duration: float | None,
    restore: bool,
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    if duration is not None:
        loop.call_later(duration, stop.set)
    async with client as api:
        listed = await pick_agents(api, None)
        chosen = [agent for agent in listed if agent["id"] in tokens][:count]
        if len(chosen) < count:
            click.echo(
                f"agents with an --agent-token: {len(chosen)}, simulating them all", err=True
            )
        own = {agent["id"]: tokens[agent["id"]] for agent in chosen}
        async with desks(client.url, tenant, own) as clients:
            await simulate(clients, chosen, timing, _echo, stop, restore=restore)


def _echo(event: str, fields: dict[str, Any]) -> None:
    with contextlib.suppress(BrokenPipeError):  # `... | head` closed the pipe
        click.echo(describe(event, fields))
