"""Simulated agents for demos (`dispatcher up --simulate-agents`, used by `make run`): every
available agent accepts each offer a short while after it arrives, as a person would."""

from __future__ import annotations

import asyncio
import contextlib

import structlog
from redis.asyncio import Redis

from dispatcher.domain import clock
from dispatcher.domain.errors import Conflict
from dispatcher.metrics import Metrics
from dispatcher.store import keys
from dispatcher.store.directory import DirectoryCache
from dispatcher.store.lifecycle import Calls
from dispatcher.store.scripts import Scripts

log = structlog.get_logger("workers.simulated_agents")


async def accept_due_offers(
    redis: Redis,
    scripts: Scripts,
    directory: DirectoryCache,
    accept_after_s: float,
    metrics: Metrics | None = None,
) -> int:
    """One pass over every tenant's agents; returns how many offers were accepted."""
    accepted = 0
    now_ms = clock.to_ms(clock.now())
    for raw in await redis.hkeys(keys.TENANTS):  # type: ignore[misc]
        tenant = await directory.tenant(raw.decode())
        if tenant is None:
            continue
        calls = Calls(redis, scripts, tenant)
        for agent in tenant.doc.agents:
            for offer in await calls.open_offers(agent.id):
                if now_ms - offer.offered_at_ms < accept_after_s * 1000:
                    continue
                with contextlib.suppress(Conflict):
                    taken = await calls.accept(offer.id)
                    if metrics is not None:
                        metrics.offer_accepted(taken.waited_s)
                    accepted += 1
                    log.info("simulated agent accepted", agent_id=agent.id, call_id=offer.call_id)
    return accepted


async def run(
    redis: Redis, stop: asyncio.Event, metrics: Metrics | None = None, accept_after_s: float = 2.0
) -> None:
    scripts, directory = Scripts.register(redis), DirectoryCache(redis)
    while not stop.is_set():
        await accept_due_offers(redis, scripts, directory, accept_after_s, metrics)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.25)
