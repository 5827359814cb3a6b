"""Call and chat statuses, fail reasons and the legal moves between statuses."""

from __future__ import annotations

from enum import StrEnum


class CallStatus(StrEnum):
    SELECTING = "selecting"
    QUEUED = "queued"
    ASSIGNED = "assigned"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    FINISHED = "finished"
    FAILED = "failed"
    SWITCHING = "switching"
    RECOVERED = "recovered"
    SCHEDULED = "scheduled"
    ACTION_ONLY = "action_only"
    ACTION_ONLY_FINISHED = "action_only_finished"
    DEFLECTED = "deflected"
    VOICEMAIL = "voicemail"
    VOICEMAIL_RECEIVED = "voicemail_received"
    VOICEMAIL_READ = "voicemail_read"


TERMINAL_CALL_STATUSES = frozenset(
    {
        CallStatus.FINISHED,
        CallStatus.FAILED,
        CallStatus.RECOVERED,
        CallStatus.ACTION_ONLY_FINISHED,
        CallStatus.DEFLECTED,
        CallStatus.VOICEMAIL_READ,
    }
)

# The moves this product makes; anything else is refused by `check_transition`.
CALL_TRANSITIONS: dict[CallStatus, frozenset[CallStatus]] = {
    CallStatus.SCHEDULED: frozenset({CallStatus.QUEUED, CallStatus.FAILED}),
    CallStatus.QUEUED: frozenset({CallStatus.ASSIGNED, CallStatus.FAILED}),
    CallStatus.ASSIGNED: frozenset({CallStatus.CONNECTING, CallStatus.FAILED}),
    CallStatus.CONNECTING: frozenset(
        {CallStatus.CONNECTED, CallStatus.FAILED, CallStatus.SWITCHING}
    ),
    CallStatus.SWITCHING: frozenset({CallStatus.CONNECTING, CallStatus.FAILED}),
    CallStatus.CONNECTED: frozenset({CallStatus.FINISHED}),
    # A failed call of a campaign that was called back (its redial is its child).
    CallStatus.FAILED: frozenset({CallStatus.RECOVERED}),
}
# The statuses in which an agent holds the call (a voice slot of theirs).
HELD_BY_AGENT = frozenset({CallStatus.ASSIGNED, CallStatus.CONNECTING, CallStatus.SWITCHING})


def ending(current: CallStatus) -> CallStatus | None:
    """The move that ends a call now (store/stores.py's end_call), as the table gives it:
    finished from a status that may finish, else failed where it may fail; None once ended."""
    moves = CALL_TRANSITIONS.get(current, frozenset())
    for end in (CallStatus.FINISHED, CallStatus.FAILED):
        if end in moves:
            return end
    return None


class IllegalTransition(ValueError):
    def __init__(self, current: CallStatus, target: CallStatus) -> None:
        super().__init__(f"illegal call transition {current} -> {target}")
        self.current = current
        self.target = target


def check_transition(current: CallStatus, target: CallStatus) -> None:
    if target not in CALL_TRANSITIONS.get(current, frozenset()):
        raise IllegalTransition(current, target)


class ChatStatus(StrEnum):
    SELECTING = "selecting"
    QUEUED = "queued"
    ASSIGNED = "assigned"
    FINISHED = "finished"
    FAILED = "failed"


TERMINAL_CHAT_STATUSES = frozenset({ChatStatus.FINISHED, ChatStatus.FAILED})
# A chat in one of these is an open SMS session (in the order of ChatStatus).
OPEN_CHAT_STATUSES = tuple(status for status in ChatStatus if status not in TERMINAL_CHAT_STATUSES)


class FailReason(StrEnum):
    NOTHING = "nothing"
    UNKNOWN = "unknown"
    EXPIRED = "expired"
    EU_CANCELED = "eu_canceled"
    EU_REJECTED = "eu_rejected"
    EU_ABANDONED = "eu_abandoned"
    EU_BUSY = "eu_busy"
    EU_WRONG_NUMBER = "eu_wrong_number"
    EU_NO_ANSWER = "eu_no_answer"
    AG_CANCELED = "ag_canceled"
    AG_IGNORED = "ag_ignored"
    VOIP_CONN_GENERAL = "voip_conn_general"
    VOIP_CONN_TIMEOUT = "voip_conn_timeout"
    STUCK_DUE_TO_API_ERROR = "stuck_due_to_api_error"
    MENU_DELETED = "menu_deleted"


class CallType(StrEnum):
    OUTBOUND = "Voice Outbound (API)"
    INBOUND = "Voice Inbound (API)"
    SCHEDULED = "Voice Scheduled (API)"


CALL_TYPE_ALIASES: dict[str, CallType] = {
    **{t.value: t for t in CallType},
    "OutboundCall": CallType.OUTBOUND,
    "IncomingCall": CallType.INBOUND,
    "ScheduledCall": CallType.SCHEDULED,
}


class ChatType(StrEnum):
    MESSAGING_API = "Messaging (API)"
    MESSAGING_SMS = "Messaging (SMS)"


CHAT_TYPE_ALIASES: dict[str, ChatType] = {
    **{t.value: t for t in ChatType},
    "SMS": ChatType.MESSAGING_SMS,
}


class OfferState(StrEnum):
    """An offer's state (stored on the offer hash); `open` rings, the others are final."""

    OPEN = "open"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    WITHDRAWN = "withdrawn"
    EXPIRED = "expired"


class OfferStep(StrEnum):
    """The `event` of a call's history entries that the offer scripts write (domain/history.py)."""

    OFFERED = "offered"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    WITHDRAWN = "withdrawn"
    EXPIRED = "expired"


class AgentStatus(StrEnum):
    AVAILABLE = "available"
    UNAVAILABLE = "unavailable"
    OFFLINE = "offline"
