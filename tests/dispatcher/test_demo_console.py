"""`make run`'s demo with a person at the agent console: a real `dispatcher up --simulate-agents`
and, beside its simulated agents, one agent's event stream opened as the console opens it. The
simulated agents leave that agent's menus to the person, the person's call lasts until the
person finishes it, and once the console closes the agent is simulated again (and finishes the
call the person left)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from tests.conftest import basic, demo_document
from tests.polling import eventually
from tests.up import dispatcher_up

pytestmark = pytest.mark.subprocess  # a real dispatcher up --simulate-agents

API = "/apps/api/v1"
PERSON = basic("demo/4", "demo-agent-4")  # agent 4: menu 9's second group, menu 51 (and 50)
INBOUND = {"call_type": "Voice Inbound (API)", "end_user_number": "+1 205-123-4567"}
OUTBOUND = {"call_type": "Voice Outbound (API)", "end_user_number": "+1 628-555-0142"}
TALK_TIME_S = 0.5  # the simulated agents' (and, without --simulate-agents, the end users')


def _document() -> dict[str, Any]:
    """The demo, quicker: menu 9 rings its second group (agent 4) a second after its first."""
    document = demo_document()
    tenant = document["tenants"][0]
    tenant["settings"]["simulator"] = {"answer_after_s": 0.05, "talk_time_s": TALK_TIME_S}
    tenant["menus"][0]["cascade_interval_s"] = 1
    return document


def _agent_events(log_file: Path, event: str) -> list[dict[str, Any]]:
    """What the simulation logged of `event` (`simulated agent: <event>`), in order."""
    lines = log_file.read_bytes().splitlines()
    logged = [orjson.loads(line) for line in lines if line.startswith(b"{")]
    return [line for line in logged if line["event"] == f"simulated agent: {event}"]


async def _logged(log_file: Path, event: str, match: Callable[[dict[str, Any]], bool]) -> None:
    async def found() -> bool | None:
        return True if any(match(line) for line in _agent_events(log_file, event)) else None

    await eventually(found, f"the simulation to log {event}", timeout=30)


async def _next_offer(stream: aiohttp.ClientResponse) -> dict[str, Any]:
    """The next offer on an agent's event stream (the held call's events skipped)."""
    async with asyncio.timeout(30):
        while True:
            block = (await stream.content.readuntil(b"\n\n")).decode()
            fields = dict(line.split(": ", 1) for line in block.strip().splitlines())
            if fields.get("event") == "offer":
                offer: dict[str, Any] = orjson.loads(fields["data"])
                return offer


class Demo:
    def __init__(self, http: aiohttp.ClientSession, base: str, log_file: Path) -> None:
        self.http = http
        self.api = base + API
        self.log_file = log_file

    async def ask(
        self, method: str, path: str, headers: dict[str, str], body: Any = None
    ) -> tuple[int, Any]:
        async with self.http.request(method, self.api + path, headers=headers, json=body) as got:
            return got.status, await got.json()

    async def call(self, menu_id: int) -> int:
        status, call = await self.ask("POST", "/calls", basic(), {**INBOUND, "menu_id": menu_id})
        assert (status, call["status"]) == (201, "queued")
        return int(call["id"])

    async def status_of(self, call_id: int) -> str:
        return str((await self.ask("GET", f"/calls/{call_id}", basic()))[1]["status"])


@contextlib.asynccontextmanager
async def _demo(tmp_path: Path) -> AsyncIterator[tuple[Demo, Path]]:
    """The demo once its four simulated agents are available."""
    options = ("--simulate-agents",)
    async with (
        dispatcher_up(tmp_path, _document(), options=options) as (base, log_file),
        aiohttp.ClientSession() as http,
    ):
        await _logged(log_file, "available", lambda line: line["agent_id"] == 4)
        yield Demo(http, base, log_file), log_file


async def _accept(demo: Demo, console: aiohttp.ClientResponse, call_id: int, group: str) -> None:
    """The person's side of a call until it connects: its offer rings, the person accepts,
    once the simulated agents 1 and 2, offered it too, have stepped aside (they do at once; an
    accept before they have would withdraw their offers first, a race this is not about)."""
    offer = await _next_offer(console)
    assert (offer["call_id"], offer["group"]) == (call_id, group)
    for agent_id in (1, 2):
        await _logged(
            demo.log_file,
            "stepped_aside",
            lambda line, agent=agent_id: (line["agent_id"], line["call_id"]) == (agent, call_id),
        )
    status, accepted = await demo.ask("POST", f"/offers/{offer['id']}/accept", PERSON)
    assert (status, accepted["status"], accepted["agent_info"]["id"]) == (200, "assigned", 4)

    async def connected() -> bool | None:
        return True if await demo.status_of(call_id) == "connected" else None

    await eventually(connected, "the person's call to connect", timeout=30)


async def _take(demo: Demo, console: aiohttp.ClientResponse, call_id: int, group: str) -> None:
    """The person's side of a call: it connects and stays connected, four times the simulated
    talk time (a simulated end user would have hung up by then), until the person finishes it."""
    await _accept(demo, console, call_id, group)
    await asyncio.sleep(4 * TALK_TIME_S)
    assert await demo.status_of(call_id) == "connected"
    status, finished = await demo.ask("POST", f"/calls/{call_id}/finish", PERSON)
    assert (status, finished["status"], finished["disconnected_by"]) == (
        200,
        "finished",
        "disconnected_by_agent",
    )


async def test_a_simulated_agent_finishes_an_outbound_call_made_for_it(tmp_path: Path) -> None:
    """A call created assigned to a simulated agent (no offer) is finished by it too: its end
    user waits for the agent under --simulate-agents, as a person's does."""
    async with _demo(tmp_path) as (demo, log_file):
        body = {**OUTBOUND, "agent_email": "agent@somedomain.com"}
        status, created = await demo.ask("POST", "/calls", basic(), body)
        assert (status, created["status"], created["agent_info"]["id"]) == (201, "assigned", 2)

        async def finished() -> dict[str, Any] | None:
            call: dict[str, Any] = (await demo.ask("GET", f"/calls/{created['id']}", basic()))[1]
            return call if call["status"] == "finished" else None

        call = await eventually(finished, "agent 2's simulation to finish the call", 30)
        assert call["disconnected_by"] == "disconnected_by_agent"
        # The simulation logs it once its finish is answered, which the call may show first.
        await _logged(log_file, "finished", lambda line: line["call_id"] == call["id"])
        assert [line["call_id"] for line in _agent_events(log_file, "finished")] == [call["id"]]


async def test_a_person_at_the_console_gets_the_menus_calls_until_the_console_closes(
    tmp_path: Path,
) -> None:
    async with (
        _demo(tmp_path) as (demo, log_file),
        demo.http.get(f"{demo.api}/agents/4/events", headers=PERSON) as console,
    ):
        assert console.status == 200
        await _logged(log_file, "taken_over", lambda line: line["agent_id"] == 4)
        # Menu 9 rings agents 1 and 2 first, who would accept in ~2 s: they decline at once,
        # and the call waits for its second group, the person. Menu 51 rings agents 1, 2 and
        # the person together: 1 and 2 decline.
        cascaded = await demo.call(9)
        await _take(demo, console, cascaded, "Group 2")
        multicast = await demo.call(51)
        await _take(demo, console, multicast, "Group 1")
        left = await demo.call(51)  # accepted, and left connected when the console closes
        await _accept(demo, console, left, "Group 1")
        declined = {
            (line["agent_id"], line["call_id"], line["menu_id"], line["people"])
            for line in _agent_events(log_file, "stepped_aside")
        }
        assert declined == {
            (1, cascaded, 9, "4"),
            (2, cascaded, 9, "4"),
            (1, multicast, 51, "4"),
            (2, multicast, 51, "4"),
            (1, left, 51, "4"),
            (2, left, 51, "4"),
        }
        assert _agent_events(log_file, "accepted") == []
        console.close()
        # The console closed: agent 4 is simulated again, and finishes the call the person
        # left. With agents 1 and 2 away, a call of menu 51 is agent 4's: the simulated agent
        # takes it and ends it itself.
        await _logged(log_file, "handed_back", lambda line: line["agent_id"] == 4)
        await _logged(log_file, "finished", lambda line: line["call_id"] == left)
        status, ended = await demo.ask("GET", f"/calls/{left}", basic())
        assert (ended["status"], ended["disconnected_by"]) == ("finished", "disconnected_by_agent")
        for away in (1, 2):
            status, agent = await demo.ask(
                "PUT", f"/agents/{away}/status", basic(), {"status": "unavailable"}
            )
            assert (status, agent["status"]) == (200, "unavailable")
        later = await demo.call(51)

        async def finished_by_simulation() -> dict[str, Any] | None:
            call: dict[str, Any] = (await demo.ask("GET", f"/calls/{later}", basic()))[1]
            return call if call["status"] == "finished" else None

        call = await eventually(finished_by_simulation, "agent 4's simulation to finish", 30)
        assert (call["agent_info"]["id"], call["disconnected_by"]) == (4, "disconnected_by_agent")
        assert [line["call_id"] for line in _agent_events(log_file, "accepted")] == [later]
