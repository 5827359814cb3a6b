"""Which move ends a call comes from the transition table alone."""

from __future__ import annotations

import pytest

from dispatcher.domain.statuses import TERMINAL_CALL_STATUSES, CallStatus, ending


@pytest.mark.parametrize(
    ("current", "end"),
    [
        (CallStatus.SCHEDULED, CallStatus.FAILED),
        (CallStatus.QUEUED, CallStatus.FAILED),
        (CallStatus.ASSIGNED, CallStatus.FAILED),
        (CallStatus.CONNECTING, CallStatus.FAILED),
        (CallStatus.SWITCHING, CallStatus.FAILED),
        (CallStatus.CONNECTED, CallStatus.FINISHED),
        *((status, None) for status in sorted(TERMINAL_CALL_STATUSES)),
    ],
)
def test_the_move_that_ends_a_call(current: CallStatus, end: CallStatus | None) -> None:
    assert ending(current) == end
