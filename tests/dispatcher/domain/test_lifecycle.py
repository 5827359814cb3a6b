"""The failover moves of a call: connecting -> switching -> connecting, naming the carrier that
places the call; every other move into or out of switching is refused."""

from __future__ import annotations

import pytest

from dispatcher.domain import clock, lifecycle
from dispatcher.domain.objects import CallObject
from dispatcher.domain.statuses import CallStatus, FailReason, IllegalTransition

CREATED = "2026-12-01T12:00:00.000Z"


def call_in(status: CallStatus) -> CallObject:
    return CallObject(
        id=1,
        call_type="Voice Outbound (API)",
        status=status,
        created_at=CREATED,
        voip_provider="voip_provider_twilio",
    )


def test_a_switch_names_the_next_carrier_and_connects_again() -> None:
    switching = lifecycle.switching(call_in(CallStatus.CONNECTING), "simulated")
    assert (switching.status, switching.voip_provider) == ("switching", "voip_provider_simulated")
    again = lifecycle.connecting(switching, carrier="simulated")
    assert (again.status, again.voip_provider) == ("connecting", "voip_provider_simulated")
    failed = lifecycle.failed(switching, clock.now(), FailReason.VOIP_CONN_GENERAL)
    assert failed.status == "failed"


def test_connecting_through_a_carrier_names_it_and_without_one_keeps_the_name() -> None:
    assigned = call_in(CallStatus.ASSIGNED)
    assert lifecycle.connecting(assigned, carrier="simulated").voip_provider == (
        "voip_provider_simulated"
    )
    assert lifecycle.connecting(assigned).voip_provider == "voip_provider_twilio"


@pytest.mark.parametrize(
    "status", [CallStatus.ASSIGNED, CallStatus.CONNECTED, CallStatus.SWITCHING, CallStatus.FAILED]
)
def test_only_a_connecting_call_switches(status: CallStatus) -> None:
    with pytest.raises(IllegalTransition):
        lifecycle.switching(call_in(status), "simulated")


def test_a_switching_call_does_not_connect_to_the_end_user_directly() -> None:
    with pytest.raises(IllegalTransition):
        lifecycle.connected(call_in(CallStatus.SWITCHING), clock.now())
