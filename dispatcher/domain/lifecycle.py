"""Pure status transitions of a call object: each returns the new object, or refuses the move."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from dispatcher.directory.schema import Agent
from dispatcher.domain import clock
from dispatcher.domain.objects import AgentInfo, CallObject, CallParticipant, ChatObject, OfferEvent
from dispatcher.domain.records import voip_provider
from dispatcher.domain.statuses import CallStatus, ChatStatus, FailReason, check_transition


def _seconds_between(start: str | None, end: datetime) -> int:
    began = clock.parse_iso(start)
    return max(0, round((end - began).total_seconds())) if began else 0


def _moved(call: CallObject, target: CallStatus, **changes: Any) -> CallObject:
    """A call moving on is held no more."""
    check_transition(CallStatus(call.status), target)
    update = {"status": target.value, "held_until": None, "held_reason": None, **changes}
    return call.model_copy(update=update)


def held(call: CallObject, until: datetime, reason: str) -> CallObject:
    """A scheduled call that may not be placed yet stays scheduled, and says till when."""
    return call.model_copy(update={"held_until": clock.iso(until), "held_reason": reason})


def fired(call: CallObject, groups: list[str], now: datetime) -> CallObject:
    """A scheduled call reaching its time: queued, and its first groups offered."""
    stamp = clock.iso(now)
    events = [OfferEvent(casting_time=stamp, group=group) for group in groups]
    return _moved(call, CallStatus.QUEUED, queued_at=stamp, offer_events=events)


def cast(call: CallObject, groups: list[str], now: datetime) -> CallObject:
    """More groups offered the queued call (cascade)."""
    stamp = clock.iso(now)
    added = [OfferEvent(casting_time=stamp, group=group) for group in groups]
    return call.model_copy(update={"offer_events": [*call.offer_events, *added]})


def assigned(call: CallObject, agent: Agent, participant_id: int, now: datetime) -> CallObject:
    participant = CallParticipant(
        id=participant_id, type="agent", call_id=call.id, user_id=agent.id
    )
    return _moved(
        call,
        CallStatus.ASSIGNED,
        assigned_at=clock.iso(now),
        agent_info=AgentInfo.of(agent),
        wait_duration=_seconds_between(call.queued_at, now),
        participants=[participant, *call.participants],
    )


def connecting(
    call: CallObject, outbound_number: str | None = None, carrier: str | None = None
) -> CallObject:
    """Dialled through `carrier` (when given: the call object names the carrier placing it)."""
    changes: dict[str, Any] = {}
    if outbound_number is not None:
        changes["outbound_number"] = outbound_number
    if carrier is not None:
        changes["voip_provider"] = voip_provider(carrier)
    return _moved(call, CallStatus.CONNECTING, **changes)


def switching(call: CallObject, carrier: str) -> CallObject:
    """Its carrier failed the dial: the call moves to `carrier`, the tenant's next one, which
    the call object names from now on."""
    return _moved(call, CallStatus.SWITCHING, voip_provider=voip_provider(carrier))


def connected(call: CallObject, now: datetime) -> CallObject:
    stamp = clock.iso(now)
    participants = [
        p.model_copy(update={"status": "connected", "connected_at": stamp})
        for p in call.participants
    ]
    return _moved(call, CallStatus.CONNECTED, connected_at=stamp, participants=participants)


def finished(call: CallObject, now: datetime, disconnected_by: str) -> CallObject:
    stamp = clock.iso(now)
    duration = _seconds_between(call.connected_at, now)
    participants = [
        p.model_copy(update={"status": "finished", "ended_at": stamp, "call_duration": duration})
        for p in call.participants
    ]
    return _moved(
        call,
        CallStatus.FINISHED,
        ends_at=stamp,
        call_duration=duration,
        disconnected_by=disconnected_by,
        participants=participants,
    )


def recovered(call: CallObject) -> CallObject:
    """A failed call that was called back: its fail reason and times stay what they were."""
    return _moved(call, CallStatus.RECOVERED)


def failed(
    call: CallObject, now: datetime, reason: FailReason, details: str | None = None
) -> CallObject:
    stamp = clock.iso(now)
    participants = [
        p.model_copy(update={"status": "failed", "ended_at": stamp, "fail_reason": reason.value})
        for p in call.participants
    ]
    changes: dict[str, Any] = {
        "ends_at": stamp,
        "fail_reason": reason.value,
        "fail_details": details,
        "participants": participants,
    }
    if call.status == CallStatus.QUEUED:
        changes["wait_duration"] = _seconds_between(call.queued_at, now)
    return _moved(call, CallStatus.FAILED, **changes)


def chat_finished(chat: ChatObject, now: datetime) -> ChatObject:
    """An SMS session ending (by the API, an agent, a timeout or an opt-out)."""
    stamp = clock.iso(now)
    participants = [
        p.model_copy(update={"status": "finished", "ended_at": stamp}) for p in chat.participants
    ]
    return chat.model_copy(
        update={
            "status": ChatStatus.FINISHED.value,
            "ends_at": stamp,
            "chat_duration": _seconds_between(chat.created_at, now),
            "participants": participants,
        }
    )
