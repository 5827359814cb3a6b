"""Schemathesis fuzzes the live service from its own OpenAPI document, stateless and stateful.

A real server (the app on a real port, plus an ARQ worker so that inbound calls get offers)
runs in a thread with the demo directory. Every answer must be no 5xx and must conform to the
document: status, content type, headers and body schema; schema-invalid requests must be
refused. DISPATCHER_FUZZ_EXAMPLES (default 30) sets the examples per operation and the
scenarios of the state machine; a longer run, with the tally of answers printed at the end:
`DISPATCHER_FUZZ_EXAMPLES=500 .venv/bin/pytest -s tests/dispatcher/http/test_fuzz.py`.

Two checks of schemathesis are left out because the contract says otherwise on purpose:
`positive_data_acceptance` (a schema-valid body may still name an unknown agent or menu, which
API.md answers with 400) and `ignored_auth` (its wrong credentials name a user that is no
tenant, which API.md answers with 404, not 401). Requests always carry the demo tenant's
credentials (the admin token on the manager API); test_openapi.py checks authentication of
every operation instead.
"""

from __future__ import annotations

import copy
import os
import traceback
from collections import Counter
from collections.abc import Iterator
from typing import Any

import hypothesis
import pytest
import schemathesis
from schemathesis import Case, Response
from schemathesis.core.failures import FailureGroup
from schemathesis.generation.stateful.state_machine import APIStateMachine

from dispatcher.http import openapi
from dispatcher.settings import Settings
from tests.conftest import ADMIN_TOKEN
from tests.live import LiveService, live_service

pytestmark = pytest.mark.slow

EXAMPLES = int(os.environ.get("DISPATCHER_FUZZ_EXAMPLES", "30"))
AGENT_EMAILS = [
    "admin@somedomain.com",
    "agent@somedomain.com",
    "allen@somedomain.com",
    "john.doe@foo.com",
]
NUMBERS = ["+1 628-555-0142", "+1 205-123-4567", "+1 415-555-0100", "+1 859-657-9625"]
SCHEDULED = ["2030-06-03T17:00:00Z", "2031-01-02T10:30:00+09:00", "2029-12-31 23:59:59"]

CONFIG = schemathesis.Config.from_dict(
    {
        "generation": {
            "mode": "all",
            "max-examples": EXAMPLES,
            "database": "none",
            "with-security-parameters": False,
        },
        # Only the document's own links: inferred ones guess wrong (an id into X-Request-Id).
        "phases": {"stateful": {"max-steps": 12, "inference": {"algorithms": []}}},
        "checks": {
            "positive_data_acceptance": {"enabled": False},
            "ignored_auth": {"enabled": False},
        },
        "auth": {
            "openapi": {
                "tenantBasic": {"username": "demo", "password": "demo-token"},
                "managerBearer": {"bearer": ADMIN_TOKEN},
            }
        },
        # Values of the demo directory, so that a good share of requests gets past validation.
        "dictionaries": {
            "agent_emails": {"values": AGENT_EMAILS},
            "numbers": {"values": NUMBERS},
            "sms_numbers": {"values": ["+1 628-555-0199", "+1 339-219-5276"]},
            "menus": {"values": [9, 50, 51, "9"]},
            "agents": {"values": [1, 2, 3, 4]},
            "tickets": {"values": ["71450", 76517, "5006x00000XXxxxXXX"]},
            "scheduled": {"values": SCHEDULED},
            "langs": {"values": ["en", "ko", "fr", "xy"]},
        },
        "parameters": {
            "body.agent_email": {"dictionary": "agent_emails", "probability": 0.9},
            "body.agentEmail": {"dictionary": "agent_emails", "probability": 0.5},
            "body.agentId": {"dictionary": "agents", "probability": 0.5},
            "body.end_user_number": {"dictionary": "numbers", "probability": 0.9},
            "body.from": {"dictionary": "numbers", "probability": 0.7},
            "body.outbound_number": {"dictionary": "sms_numbers", "probability": 0.9},
            "body.menu_id": {"dictionary": "menus", "probability": 0.9},
            "body.ticket_id": {"dictionary": "tickets", "probability": 0.3},
            "body.scheduled_at": {"dictionary": "scheduled", "probability": 0.9},
            "body.lang": {"dictionary": "langs", "probability": 0.5},
            "path.id": {"dictionary": "agents", "probability": 0.5},
        },
    }
)

# The agent's event stream never ends by design; test_openapi.py reads its first bytes.
schema = schemathesis.openapi.from_dict(copy.deepcopy(openapi.document()), config=CONFIG).exclude(
    operation_id="getAgentEvents"
)


# (run, operation, status) -> requests; printed at the end of the module (`pytest -s`).
TALLY: Counter[tuple[str, str, int]] = Counter()


def report() -> str:
    lines = []
    for run in ("stateless", "stateful"):
        counts = {k: v for k, v in TALLY.items() if k[0] == run}
        if not counts:
            continue
        operations = {label for _, label, _ in counts}
        statuses = Counter[int]()
        for (_, _, status), n in counts.items():
            statuses[status] += n
        lines.append(
            f"{run}: {sum(counts.values())} requests over {len(operations)} operations, "
            f"statuses {dict(sorted(statuses.items()))}"
        )
        lines += [f"  {label} {status}: {n}" for (_, label, status), n in sorted(counts.items())]
    return "\n".join(lines)


@pytest.fixture(scope="module")
def service(redis_url: str) -> Iterator[LiveService]:
    # No rate limit: the fuzzer is one tenant sending as fast as it can.
    settings = Settings(redis_url=redis_url, admin_token=ADMIN_TOKEN, rate_limit_per_s=0)  # type: ignore[arg-type]
    with live_service(settings) as live:
        yield live
    print("\n" + report())


@pytest.fixture(scope="module")
def with_worker(service: LiveService) -> Iterator[str]:
    """The live service with a worker, so calls move on and inbound calls get real offers."""
    service.start_worker()
    yield service.url
    service.stop_worker()


@schema.parametrize()
def test_stateless(case: Case[Any], with_worker: str) -> None:
    response = case.call_and_validate(base_url=with_worker, timeout=10)
    TALLY[("stateless", case.operation.label, response.status_code)] += 1


def test_stateful(service: LiveService) -> None:
    """Scenarios follow the document's links (create, then read, flag and finish what was
    created). Each starts from the same empty state and no worker runs, so that a scenario's
    answers depend on its requests alone, as Hypothesis needs to explore them."""
    service.stop_worker()
    ran: list[int] = []
    failures: list[FailureGroup] = []
    machine = _scenarios(service, ran, failures)
    for _ in range(10):
        if len(ran) >= EXAMPLES:
            break
        _run_until_stopped(machine, EXAMPLES - len(ran))
        if failures:
            raise failures[0]
    assert len(ran) >= EXAMPLES, f"{len(ran)} of {EXAMPLES} scenarios ran"


def _scenarios(
    service: LiveService, ran: list[int], failures: list[FailureGroup]
) -> type[APIStateMachine]:
    class Scenarios(schema.as_state_machine()):
        def setup(self) -> None:
            service.reset()
            ran.append(1)

        def get_call_kwargs(self, case: Case[Any]) -> dict[str, Any]:
            return {"base_url": service.url, "timeout": 10}

        def after_call(self, response: Response, case: Case[Any]) -> None:
            TALLY[("stateful", case.operation.label, response.status_code)] += 1

        def validate_response(
            self, response: Response, case: Case[Any], *args: Any, **kw: Any
        ) -> None:
            try:
                super().validate_response(response, case, *args, **kw)
            except FailureGroup as exc:
                failures.append(exc)
                raise

    return Scenarios


def _run_until_stopped(machine: type[APIStateMachine], scenarios: int) -> None:
    """Hypothesis stops a run when a scenario's draws differ from an earlier one's with the same
    start: a live server is no pure function (clock, ids). As schemathesis's own engine does,
    such a stop is no failure; the caller runs afresh until its budget is spent."""
    settings = hypothesis.settings(
        max_examples=max(1, scenarios),
        stateful_step_count=12,
        deadline=None,
        database=None,
        derandomize=False,
        # A failure is reported as found: shrinking replays scenarios, which the server
        # answers differently the second time.
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
        suppress_health_check=list(hypothesis.HealthCheck),
    )
    try:
        machine.run(settings=settings)
    except hypothesis.errors.Flaky:
        pass
    except AssertionError as exc:
        # Hypothesis asserts, rather than raising Flaky, on some inconsistent replays.
        if not _raised_in_hypothesis(exc):
            raise


def _raised_in_hypothesis(exc: BaseException) -> bool:
    frames = traceback.extract_tb(exc.__traceback__)
    return bool(frames) and f"{os.sep}hypothesis{os.sep}" in frames[-1].filename
