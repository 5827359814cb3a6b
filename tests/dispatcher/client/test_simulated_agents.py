"""`dispatcher agents simulate N` as an operator runs it, against a live service and a worker:
the agents go available, accept their offers, finish their calls, and go back to their
former status on Ctrl-C."""

from __future__ import annotations

import http.client
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import IO, Any

import pytest

from dispatcher.settings import Settings
from tests.conftest import basic
from tests.dispatcher.client.test_calls import BIN, INBOUND, _environment, _request
from tests.live import LiveService, live_service
from tests.workers.conftest import SOLO_MENU, tenant_document

pytestmark = pytest.mark.subprocess


@pytest.fixture(scope="module")
def service(redis_url: str) -> Iterator[LiveService]:
    # Each test loads its own directory: no process may read the one before (TTL 0).
    settings = Settings(redis_url=redis_url, rate_limit_per_s=0, directory_ttl_s=0)
    with live_service(settings) as live:
        live.start_worker()
        yield live
        live.stop_worker()


def _read_until(stream: IO[str], done: Callable[[str], bool], timeout_s: float = 15) -> list[str]:
    """Lines of `stream` up to the first for which `done` holds."""
    deadline = time.monotonic() + timeout_s
    lines: list[str] = []
    while time.monotonic() < deadline:
        line = stream.readline()
        if not line:
            break
        lines.append(line.rstrip("\n"))
        if done(lines[-1]):
            return lines
    raise AssertionError(f"gave up waiting; read {lines}")


# The demo agents' own tokens (deploy/demo.yaml); the worker tests' extra agents have none.
AGENT_TOKENS = " ".join(f"{n}=demo-agent-{n}" for n in range(1, 5))


def _simulate(service: LiveService, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(BIN), "agents", "simulate", *args],
        env=_environment(DISPATCHER_URL=service.url, DISPATCHER_AGENT_TOKENS=AGENT_TOKENS),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _document(**agent_one: Any) -> dict[str, Any]:
    """The worker tests' tenant: menu 61 rings agent 1 alone; the simulated end user talks for
    a minute, so the agent is the one who finishes."""
    simulator = {"answer_after_s": 0.05, "talk_time_s": 60, "rules": []}
    document = tenant_document(
        settings={"simulator": simulator},
        menus={SOLO_MENU: {"offer_timeout_s": 10, "max_wait_s": 30}},
    )
    document["tenants"][0]["agents"][0].update(agent_one)
    return document


def test_simulated_agents_answer_talk_and_finish_then_log_off(service: LiveService) -> None:
    service.reset(_document(status="offline"))
    # Queued before any agent is there: the agent finds it when it goes available.
    call = _request(f"{service.url}/apps/api/v1/calls", "POST", {**INBOUND, "menu_id": SOLO_MENU})
    agents = _simulate(service, "1", "--accept-after", "0.1", "--talk-time", "0.2", "--jitter", "0")
    try:
        assert agents.stdout is not None
        lines = _read_until(agents.stdout, lambda line: "finished call" in line)
        agents.send_signal(signal.SIGINT)
        rest, errors = agents.communicate(timeout=15)
    finally:
        if agents.poll() is None:
            agents.kill()
            agents.wait()
    assert (agents.returncode, errors) == (0, "")
    assert lines + rest.splitlines() == [
        "agent 1 (admin@somedomain.com): available",
        f"agent 1: offer 1 of call {call['id']} (Group 1), accepting in 0.1 s",
        f"agent 1: accepted call {call['id']}",
        f"agent 1: call {call['id']} connected, finishing in 0.2 s",
        f"agent 1: finished call {call['id']}",
        "agent 1: back to offline",
    ]
    finished = _request(f"{service.url}/apps/api/v1/calls/{call['id']}")
    assert (finished["status"], finished["agent_info"]["id"]) == ("finished", 1)
    assert _request(f"{service.url}/apps/api/v1/agents/1")["status"] == "offline"


def test_without_talk_time_the_end_user_ends_the_call(service: LiveService) -> None:
    """--talk-time 0: the agent accepts and leaves the call to the end user, who hangs up
    after the carrier's talk time; --duration ends the run and --keep-available keeps the
    agent available."""
    document = _document()
    document["tenants"][0]["settings"]["simulator"]["talk_time_s"] = 0.1
    service.reset(document)
    agents = _simulate(
        service, "1", "--accept-after", "0", "--talk-time", "0", "--jitter", "0",
        "--duration", "30", "--keep-available",
    )  # fmt: skip
    try:
        assert agents.stdout is not None
        first = _read_until(agents.stdout, lambda line: line.endswith("available"))
        call = _request(
            f"{service.url}/apps/api/v1/calls", "POST", {**INBOUND, "menu_id": SOLO_MENU}
        )
        accepted = _read_until(agents.stdout, lambda line: "accepted" in line)
        deadline = time.monotonic() + 10
        while _request(f"{service.url}/apps/api/v1/calls/{call['id']}")["status"] != "finished":
            assert time.monotonic() < deadline, "the end user never hung up"
            time.sleep(0.05)
        agents.send_signal(signal.SIGTERM)
        rest, errors = agents.communicate(timeout=15)
    finally:
        if agents.poll() is None:
            agents.kill()
            agents.wait()
    assert (agents.returncode, errors) == (0, "")
    assert first + accepted + rest.splitlines() == [
        "agent 1 (admin@somedomain.com): available",
        f"agent 1: offer 1 of call {call['id']} (Group 1), accepting in 0.0 s",
        f"agent 1: accepted call {call['id']}",
    ]
    assert _request(f"{service.url}/apps/api/v1/agents/1")["status"] == "available"


def test_more_agents_than_the_tenant_has_simulates_them_all(service: LiveService) -> None:
    service.reset()
    agents = _simulate(service, "9", "--duration", "0.5")
    out, errors = agents.communicate(timeout=30)
    assert (agents.returncode, errors) == (
        0,
        "agents with an --agent-token: 4, simulating them all\n",
    )
    assert out.splitlines() == [
        "agent 1 (admin@somedomain.com): available",
        "agent 2 (agent@somedomain.com): available",
        "agent 3 (allen@somedomain.com): available",
        "agent 4 (john.doe@foo.com): available",
        "agent 1: back to available",
        "agent 2: back to available",
        "agent 3: back to available",
        "agent 4: back to available",
    ]


def test_a_person_signing_in_as_a_simulated_agent_takes_it_over(service: LiveService) -> None:
    """`make run` simulates every agent; someone opening the agent console for one of them
    (a newer event stream) gets that agent's offers: the simulation leaves it alone."""
    service.reset(_document())
    agents = _simulate(service, "1", "--accept-after", "0", "--jitter", "0")
    console = http.client.HTTPConnection(service.url.removeprefix("http://"), timeout=15)
    try:
        assert agents.stdout is not None
        first = _read_until(agents.stdout, lambda line: line.endswith("available"))
        time.sleep(0.5)  # the simulated agent's own stream is open by now
        console.request("GET", "/apps/api/v1/agents/1/events", headers=basic())
        assert console.getresponse().status == 200
        taken = _read_until(agents.stdout, lambda line: "signed in elsewhere" in line)
        call = _request(
            f"{service.url}/apps/api/v1/calls", "POST", {**INBOUND, "menu_id": SOLO_MENU}
        )
        time.sleep(0.5)  # the simulation would have accepted it at once
        assert _request(f"{service.url}/apps/api/v1/calls/{call['id']}")["status"] == "queued"
        agents.send_signal(signal.SIGINT)
        rest, errors = agents.communicate(timeout=15)
    finally:
        console.close()
        if agents.poll() is None:
            agents.kill()
            agents.wait()
    assert (agents.returncode, errors) == (0, "")
    assert first + taken + rest.splitlines() == [
        "agent 1 (admin@somedomain.com): available",
        "agent 1: signed in elsewhere (a newer event stream), left to it",
        "agent 1: back to available",
    ]


def test_the_agent_is_simulated_again_once_the_person_s_console_closes(
    service: LiveService,
) -> None:
    """The simulated agent waits on standby while the person's stream is open, and takes the
    agent back (available again, whatever the person left) when it ends."""
    service.reset(_document())
    agents = _simulate(service, "1", "--accept-after", "0", "--talk-time", "0.1", "--jitter", "0")
    console = http.client.HTTPConnection(service.url.removeprefix("http://"), timeout=15)
    try:
        assert agents.stdout is not None
        first = _read_until(agents.stdout, lambda line: line.endswith("available"))
        time.sleep(0.5)  # the simulated agent's own stream is open by now
        console.request("GET", "/apps/api/v1/agents/1/events", headers=basic())
        assert console.getresponse().status == 200
        taken = _read_until(agents.stdout, lambda line: "signed in elsewhere" in line)
        away = _request(f"{service.url}/apps/api/v1/agents/1/status", "PUT", {"status": "offline"})
        assert away["status"] == "offline"
        console.close()
        back = _read_until(agents.stdout, lambda line: "simulated again" in line)
        call = _request(
            f"{service.url}/apps/api/v1/calls", "POST", {**INBOUND, "menu_id": SOLO_MENU}
        )
        answered = _read_until(agents.stdout, lambda line: "finished call" in line)
        agents.send_signal(signal.SIGINT)
        rest, errors = agents.communicate(timeout=15)
    finally:
        console.close()
        if agents.poll() is None:
            agents.kill()
            agents.wait()
    assert (agents.returncode, errors) == (0, "")
    assert first + taken + back + answered + rest.splitlines() == [
        "agent 1 (admin@somedomain.com): available",
        "agent 1: signed in elsewhere (a newer event stream), left to it",
        "agent 1: the other desk closed, simulated again",
        f"agent 1: offer 1 of call {call['id']} (Group 1), accepting in 0.0 s",
        f"agent 1: accepted call {call['id']}",
        f"agent 1: call {call['id']} connected, finishing in 0.1 s",
        f"agent 1: finished call {call['id']}",
        "agent 1: back to available",
    ]


def test_each_simulated_agent_signs_in_with_its_own_token(service: LiveService) -> None:
    """Not with the tenant's: a wrong agent token is refused, and an agent given none is not
    simulated at all."""
    service.reset()
    wrong = subprocess.run(
        [str(BIN), "agents", "simulate", "1", "--agent-token", "1=not-its-token"],
        env=_environment(DISPATCHER_URL=service.url),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert (wrong.returncode, wrong.stderr) == (1, "Error: Unauthorized (HTTP 401)\n")
    only_one = subprocess.run(
        [
            str(BIN),
            "agents",
            "simulate",
            "4",
            "--agent-token",
            "2=demo-agent-2",
            "--duration",
            "0.5",
        ],
        env=_environment(DISPATCHER_URL=service.url),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert (only_one.returncode, only_one.stderr) == (
        0,
        "agents with an --agent-token: 1, simulating them all\n",
    )
    assert only_one.stdout.splitlines() == [
        "agent 2 (agent@somedomain.com): available",
        "agent 2: back to available",
    ]
