"""A carrier that places no real calls: it answers (a person or a machine), rings out, is busy
or fails by the tenant's rules (settings.simulator), and reports each result back as a deferred
carrier_result job; a number ruled `unreachable` fails the dial itself, as a carrier that is
down would. Its inbound SMS arrive as JSON `{"from", "to", "text"}` (dispatcher/http/carrier.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from dispatcher.carriers.base import (
    Carrier,
    CarrierError,
    Dial,
    InboundSms,
    Report,
    Resources,
    Sms,
)
from dispatcher.directory.schema import CarrierOutcome
from dispatcher.directory.tenant import Tenant
from dispatcher.domain import clock
from dispatcher.domain.machines import AnsweredBy, AnsweringMachine
from dispatcher.store import jobs

ANSWERS = frozenset({"answer", "machine"})


class SimulatedCarrier(Carrier):
    name = "simulated"

    def __init__(self, report: Report) -> None:
        self._report = report

    @classmethod
    def create(cls, resources: Resources) -> SimulatedCarrier:
        return cls(resources.report)

    async def dial(self, request: Dial) -> str:
        simulator = request.tenant.doc.settings.simulator
        if simulator.dial_latency_s:
            await asyncio.sleep(simulator.dial_latency_s)
        ruled = simulator.outcome_for(request.to)
        if ruled == "unreachable":
            raise CarrierError(
                "the simulated carrier could not be reached", retry_after_s=0, carrier_fault=True
            )
        outcome = answered(ruled, request.machine)
        now_ms = clock.to_ms(clock.now())
        answered_ms = now_ms + int(simulator.answer_after_s * 1000)
        sub = request.tenant.subdomain
        results = [
            jobs.JobSpec(
                jobs.CARRIER_RESULT,
                sub,
                request.call_id,
                answered_ms,
                (outcome, None, self.name),
                outcome,
            )
        ]
        if talks(outcome, request.machine) and simulator.talk_time_s is not None:
            ended_ms = answered_ms + int(simulator.talk_time_s * 1000)
            results.append(
                jobs.JobSpec(
                    jobs.CARRIER_RESULT,
                    sub,
                    request.call_id,
                    ended_ms,
                    ("completed", None, self.name),
                    "completed",
                )
            )
        # Both at once: a dial stopped between the two would leave a call answered and never
        # hung up (its re-run finds the call connected and does not dial again).
        await self._report(results)
        return f"sim-{sub}-{request.call_id}"

    async def hangup(self, tenant: Tenant, call_id: int, carrier_call_id: str) -> None:
        """Nothing to end: the pending results find the call already ended and change nothing."""

    async def leave_message(
        self, tenant: Tenant, call_id: int, carrier_call_id: str, machine: AnsweringMachine
    ) -> None:
        """Nothing to play: the machine it answered with records nothing."""

    async def send_sms(self, request: Sms) -> str:
        return f"sim-{request.tenant.subdomain}-{request.chat_id}-{clock.to_ms(clock.now())}"

    @classmethod
    def inbound_sms(cls, fields: Mapping[str, object]) -> InboundSms:
        return InboundSms.parse(fields.get("from"), fields.get("text"), ("from", "text"))


def answered(outcome: CarrierOutcome, machine: AnsweringMachine | None) -> str:
    """What the carrier reports on the answer: with no detection asked a machine's answer is
    an answer like a person's; with detection, who answered (the detection is instant here)."""
    if outcome not in ANSWERS:
        return outcome
    if machine is None:
        return "answer"
    return (AnsweredBy.MACHINE if outcome == "machine" else AnsweredBy.HUMAN).value


def talks(outcome: str, machine: AnsweringMachine | None) -> bool:
    """Whether the call goes on after the answer, until the end user (or machine) hangs up."""
    if outcome == AnsweredBy.MACHINE:
        return machine is not None and not machine.ends_call
    return outcome in {"answer", AnsweredBy.HUMAN}
