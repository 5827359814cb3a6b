"""Simulated agents that act only through the public API, as agent desktops would: each goes
available, watches its event stream for offers, accepts one after a human-like delay, and
finishes the call some talk time after it connects. A person who signs in as one of them at
the console takes it over until the console closes; meanwhile the others step aside for that
agent's menus when told them (`People`). Used by `dispatcher agents simulate N` against any
deployment, and by `dispatcher up --simulate-agents` (`make run`)."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

from dispatcher.client.api import ApiError, Client, Unreachable

# What a simulated agent reports: an event name and its fields (agent_id always).
Report = Callable[[str, dict[str, Any]], None]

MESSAGES = {
    "available": "agent {agent_id} ({email}): available",
    "offer": "agent {agent_id}: offer {offer_id} of call {call_id} ({group}), "
    "accepting in {delay_s:.1f} s",
    "accepted": "agent {agent_id}: accepted call {call_id}",
    "missed": "agent {agent_id}: offer {offer_id} of call {call_id}: {message}",
    "withdrawn": "agent {agent_id}: offer {offer_id} of call {call_id} withdrawn",
    "connected": "agent {agent_id}: call {call_id} connected, finishing in {delay_s:.1f} s",
    "finished": "agent {agent_id}: finished call {call_id}",
    "ended": "agent {agent_id}: call {call_id} ended: {outcome}",
    "not_connected": "agent {agent_id}: call {call_id} still {status} after {waited_s:.0f} s, "
    "left as it is",
    "restored": "agent {agent_id}: back to {status}",
    "error": "agent {agent_id}: {message}",
    "taken_over": "agent {agent_id}: signed in elsewhere (a newer event stream), left to it",
    "handed_back": "agent {agent_id}: the other desk closed, simulated again",
    "stepped_aside": "agent {agent_id}: offer {offer_id} of call {call_id} declined, its menu "
    "{menu_id} is left to agent {people} at the console",
}
TERMINAL = {"finished", "failed"}


def describe(event: str, fields: dict[str, Any]) -> str:
    return MESSAGES[event].format(**fields)


@dataclass(frozen=True)
class Timing:
    """How long a simulated person takes. `talk_time_s` None: the agent never finishes a call
    (the end user hangs up, as the simulated carrier's does after its own talk time)."""

    accept_after_s: float = 2.0
    talk_time_s: float | None = 30.0
    jitter_s: float = 0.0  # each wait is this much longer or shorter at most, at random
    poll_s: float = 0.5  # how often a held call is read until it connects
    connect_limit_s: float = 120.0  # a held call not connected by then is left alone

    def wait_s(self, base_s: float, rng: random.Random) -> float:
        return max(0.0, base_s + rng.uniform(-self.jitter_s, self.jitter_s))


@dataclass
class People:
    """The agents that people hold at a console (their streams took them over from the
    simulation), and what the simulation leaves to them: each offer of a call whose menu's
    groups hold one of those agents is declined by the simulated agents at once, so the menu's
    calls go to the person. `menus` names each menu's agents and `menu_of` reads a call's menu
    (with the tenant's token); without them the simulation steps aside for nobody. `calls_of`
    lists the calls an agent holds, for the simulation to finish those a person left."""

    menus: Mapping[int, frozenset[int]] = field(default_factory=dict)
    menu_of: Callable[[int], Awaitable[int | None]] | None = None
    calls_of: Callable[[int], Awaitable[list[int]]] | None = None
    held: set[int] = field(default_factory=set)

    async def holding(self, call_id: int) -> tuple[int | None, list[int]]:
        """The call's menu and the agents held by people in it (none: the call is ours)."""
        if not self.held or self.menu_of is None:
            return None, []
        menu_id = await self.menu_of(call_id)
        people = self.menus.get(menu_id, frozenset()) & self.held if menu_id is not None else ()
        return menu_id, sorted(people)

    async def left_by_person(self, agent_id: int) -> list[int]:
        """The calls the agent still holds as its person leaves (none when not known)."""
        return await self.calls_of(agent_id) if self.calls_of is not None else []


async def pick_agents(api: Client, count: int | None) -> list[dict[str, Any]]:
    """The tenant's first `count` agents by id (all of them with None), from GET /agents."""
    agents: list[dict[str, Any]] = []
    page = 1
    while count is None or len(agents) < count:
        listed = await api.agents(page=page)
        agents += listed.items
        if not listed.items or len(agents) >= listed.total:
            break
        page += 1
    return agents if count is None else agents[:count]


@contextlib.asynccontextmanager
async def desks(
    url: str, tenant: str, tokens: Mapping[int, str]
) -> AsyncIterator[dict[int, Client]]:
    """Each agent's own client, signed in with its own token (Basic user `<tenant>/<id>`), as
    the agent console is: a simulated agent never holds the tenant's token."""
    async with contextlib.AsyncExitStack() as stack:
        yield {
            agent_id: await stack.enter_async_context(Client(url, f"{tenant}/{agent_id}", token))
            for agent_id, token in tokens.items()
        }


async def simulate(
    clients: Mapping[int, Client],
    agents: list[dict[str, Any]],
    timing: Timing,
    report: Report,
    stop: asyncio.Event,
    *,
    restore: bool = True,
    people: People | None = None,
) -> None:
    """Runs the agents, each through its own client (`clients` by agent id), until `stop`;
    then, with `restore`, puts each agent it made available back in the status it had.
    `people` says which menus to leave to the agents people take over (none by default).
    Failing to make an agent available ends it at once (ApiError, Unreachable); later
    failures are reported and the agent's stream is reopened."""
    rng = random.Random()
    available: list[dict[str, Any]] = []
    try:
        for agent in agents:
            await clients[agent["id"]].set_status(agent["id"], "available")
            available.append(agent)
            report("available", {"agent_id": agent["id"], "email": agent["email"]})
        shared = people or People()
        simulated = [
            SimulatedAgent(clients[a["id"]], a["id"], timing, report, rng, shared) for a in agents
        ]
        await _run_until(stop, simulated)
    finally:
        if restore:
            for agent in available:
                await clients[agent["id"]].set_status(agent["id"], agent["status"])
                report("restored", {"agent_id": agent["id"], "status": agent["status"]})


async def _run_until(stop: asyncio.Event, people: list[SimulatedAgent]) -> None:
    running = [asyncio.create_task(person.run()) for person in people]
    stopping = asyncio.create_task(stop.wait())
    try:
        # An agent's loop ends only by a bug: that is raised rather than waited out.
        waiting = {stopping, *running}
        while stopping in waiting:
            done, waiting = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            if any(not task.cancelled() and task.exception() for task in done):
                break
    finally:
        for task in (stopping, *running):
            task.cancel()
        await asyncio.gather(stopping, *running, return_exceptions=True)
        await asyncio.gather(*(person.stop() for person in people))
    for task in running:
        failure = None if task.cancelled() else task.exception()
        if failure is not None:
            raise failure


class SimulatedAgent:
    """One person at an agent desktop."""

    def __init__(
        self,
        api: Client,
        agent_id: int,
        timing: Timing,
        report: Report,
        rng: random.Random,
        people: People | None = None,
    ) -> None:
        self.api = api
        self.agent_id = agent_id
        self.timing = timing
        self._report = report
        self._rng = rng
        self._people = people or People()
        self._seated = False  # whether a stream of ours held the agent yet
        self._offers: dict[int, asyncio.Task[None]] = {}  # offer id -> its answer
        self._calls: dict[int, asyncio.Task[None]] = {}  # call id -> its conversation

    async def run(self) -> None:
        """Listens until cancelled. When a person signs in as this agent (a newer event stream
        supersedes ours), it waits on standby until the person's stream ends, then takes the
        agent back. Once a stream of ours held the agent, every later one is opened on standby,
        so a dropped one (reopened a second later) never takes the agent from a person who
        signed in meanwhile; the first takes it from any stream, a stale desk's too."""
        while True:
            try:
                if await self._listen(standby=self._seated):
                    self._taken_over()
                    continue
            except (ApiError, Unreachable) as exc:
                self.report("error", message=str(exc))
            await asyncio.sleep(1)

    async def stop(self) -> None:
        tasks = [*self._offers.values(), *self._calls.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def report(self, event: str, **fields: Any) -> None:
        self._report(event, {"agent_id": self.agent_id, **fields})

    def _taken_over(self) -> None:
        """The person answers the agent's offers now; the calls it holds it still finishes."""
        self.report("taken_over")
        self._people.held.add(self.agent_id)
        for answering in self._offers.values():
            answering.cancel()

    async def _handed_back(self) -> None:
        """Available again, whatever status the person left: the agent is simulated, and
        finishes the calls the person left (their end users may wait for the agent)."""
        await self.api.set_status(self.agent_id, "available")
        left = await self._people.left_by_person(self.agent_id)
        self._people.held.discard(self.agent_id)
        self.report("handed_back")
        for call_id in left:
            self._holding(call_id)

    async def _listen(self, standby: bool) -> bool:
        """True when the stream ended because another desk took the agent over."""
        opened = False
        async for event, data in self.api.events(self.agent_id, standby=standby):
            if not opened and (event == "ready" or not standby):
                # The stream holds the agent once subscribed (on standby: once `ready`), so
                # offers made before that are read instead.
                opened = self._seated = True
                if self.agent_id in self._people.held:
                    await self._handed_back()
                for offer in await self.api.offers(self.agent_id):
                    self._offered(offer)
            if event == "offer":
                self._offered(data)
            elif event == "offer_withdrawn":
                self._withdrawn(data)
            elif event == "assigned":
                self._holding(data["call_id"])
            elif event == "call_updated" and data["status"] not in TERMINAL:
                self._holding(data["id"])  # also a call created assigned (outbound)
            elif event == "superseded":
                return True
        return False

    def _offered(self, offer: dict[str, Any]) -> None:
        if offer["id"] not in self._offers:
            self._offers[offer["id"]] = self._spawn(self._answer(offer))

    def _withdrawn(self, offer: dict[str, Any]) -> None:
        answering = self._offers.get(offer["id"])
        if answering is not None and not answering.done():
            answering.cancel()
            self.report("withdrawn", offer_id=offer["id"], call_id=offer["call_id"])

    def _holding(self, call_id: int) -> None:
        if self.timing.talk_time_s is not None and call_id not in self._calls:
            self._calls[call_id] = self._spawn(self._converse(call_id, self.timing.talk_time_s))

    async def _answer(self, offer: dict[str, Any]) -> None:
        delay_s = self.timing.wait_s(self.timing.accept_after_s, self._rng)
        ids = {"offer_id": offer["id"], "call_id": offer["call_id"]}
        if await self._stepped_aside(offer):
            return
        self.report("offer", **ids, group=offer["group"], delay_s=delay_s)
        await asyncio.sleep(delay_s)
        if await self._stepped_aside(offer):  # a person signed in meanwhile
            return
        try:
            call = await self.api.accept(offer["id"])
        except ApiError as exc:
            if exc.status != 409:
                raise
            self.report("missed", **ids, message=exc.message)
            return
        self.report("accepted", call_id=call["id"])
        self._holding(call["id"])

    async def _stepped_aside(self, offer: dict[str, Any]) -> bool:
        """Declines the offer when its call's menu is left to a person at the console."""
        menu_id, people = await self._people.holding(offer["call_id"])
        if not people:
            return False
        try:
            await self.api.decline(offer["id"])
        except ApiError as exc:
            if exc.status != 409:  # 409: it rang out or was taken meanwhile
                raise
        ids = {"offer_id": offer["id"], "call_id": offer["call_id"]}
        held_by = ", ".join(map(str, people))
        self.report("stepped_aside", **ids, menu_id=menu_id, people=held_by)
        return True

    async def _converse(self, call_id: int, talk_time_s: float) -> None:
        call = await self._until_connected(call_id)
        if call["status"] in TERMINAL:
            self.report("ended", call_id=call_id, outcome=_outcome(call))
            return
        if call["status"] != "connected":
            waited_s = self.timing.connect_limit_s
            self.report("not_connected", call_id=call_id, status=call["status"], waited_s=waited_s)
            return
        delay_s = self.timing.wait_s(talk_time_s, self._rng)
        self.report("connected", call_id=call_id, delay_s=delay_s)
        await asyncio.sleep(delay_s)
        try:
            await self.api.finish_call(call_id)
        except ApiError as exc:
            if exc.status != 409:
                raise
            call = await self.api.call(call_id)  # the end user hung up first
            self.report("ended", call_id=call_id, outcome=_outcome(call))
            return
        self.report("finished", call_id=call_id)

    async def _until_connected(self, call_id: int) -> dict[str, Any]:
        """The call once connected or ended, or as it is after the connect limit."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timing.connect_limit_s
        while True:
            call = await self.api.call(call_id)
            if call["status"] == "connected" or call["status"] in TERMINAL:
                return call
            if loop.time() >= deadline:
                return call
            await asyncio.sleep(self.timing.poll_s)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        return asyncio.create_task(self._reporting_failures(work))

    async def _reporting_failures(self, work: Coroutine[Any, Any, None]) -> None:
        try:
            await work
        except (ApiError, Unreachable) as exc:
            self.report("error", message=str(exc))


def _outcome(call: dict[str, Any]) -> str:
    reason = call.get("fail_reason")
    return str(call["status"]) + (f" ({reason})" if reason not in (None, "nothing") else "")
