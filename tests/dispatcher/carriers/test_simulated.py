"""The simulated carrier's answers: a machine is a person's answer unless detection is asked,
and only a call that goes on after its answer is completed later."""

from __future__ import annotations

import pytest

from dispatcher.carriers.simulated import answered, talks
from dispatcher.directory.schema import CarrierOutcome
from dispatcher.domain.machines import AnsweringMachine, MachineAction

HANG_UP = AnsweringMachine(action=MachineAction.HANG_UP)
CONNECT = AnsweringMachine(action=MachineAction.CONNECT)
MESSAGE = AnsweringMachine(action=MachineAction.MESSAGE, say="Call us back.")


@pytest.mark.parametrize(
    ("outcome", "machine", "reported", "goes_on"),
    [
        ("answer", None, "answer", True),
        ("machine", None, "answer", True),
        ("answer", HANG_UP, "human", True),
        ("machine", HANG_UP, "machine", False),
        ("machine", MESSAGE, "machine", False),
        ("machine", CONNECT, "machine", True),
        ("busy", HANG_UP, "busy", False),
        ("no_answer", None, "no_answer", False),
    ],
)
def test_what_the_simulated_carrier_reports_on_the_answer(
    outcome: CarrierOutcome, machine: AnsweringMachine | None, reported: str, goes_on: bool
) -> None:
    assert answered(outcome, machine) == reported
    assert talks(reported, machine) is goes_on
