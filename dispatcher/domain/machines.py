"""Answering machines: what a campaign's call does when a machine answers it (hang up, leave a
message, or connect anyway), as the campaign's create body names it, and who answered a call."""

from __future__ import annotations

import unicodedata
from enum import StrEnum
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict

from dispatcher.domain import destinations
from dispatcher.domain.errors import InvalidRequest

FIELD = "answering_machine"
# Said by the carrier's text to speech: short enough for any carrier's limits once escaped
# (Twilio takes 4,000 characters of TwiML, an `&` written as 5).
MAX_SAY_CHARS = 500
MAX_URL_CHARS = 2000
# The fail_details of a call a machine answered, by what the carrier then did.
HUNG_UP = "Answered by a machine; hung up"
MESSAGE_LEFT = "Answered by a machine; message left"


class MachineAction(StrEnum):
    HANG_UP = "hang_up"
    MESSAGE = "message"
    CONNECT = "connect"


class AnsweredBy(StrEnum):
    """Who answered a call whose detection was asked for; `unknown` when the carrier could not
    tell (such a call is put through as a person's)."""

    HUMAN = "human"
    MACHINE = "machine"
    UNKNOWN = "unknown"


class AnsweringMachine(BaseModel):
    """A campaign's plan for a machine: its action, and for `message` the one text to say or
    recording to play (fetched by the carrier) before hanging up."""

    model_config = ConfigDict(frozen=True)

    action: MachineAction
    say: str | None = None
    play_url: str | None = None

    @property
    def ends_call(self) -> bool:
        """Whether a machine's answer ends the call (hang_up, message) rather than connects it."""
        return self.action != MachineAction.CONNECT

    @property
    def fail_details(self) -> str:
        return MESSAGE_LEFT if self.action == MachineAction.MESSAGE else HUNG_UP


def parse(raw: object) -> AnsweringMachine | None:
    """The create body's `answering_machine` (absent or null: no detection)."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise InvalidRequest(f"{FIELD} must be an object")
    action = raw.get("action")
    if not isinstance(action, str) or action not in set(MachineAction):
        names = ", ".join(MachineAction)
        raise InvalidRequest(f"{FIELD}.action must be one of {names}")
    say, play_url = raw.get("say"), raw.get("play_url")
    if action != MachineAction.MESSAGE:
        if say is not None or play_url is not None:
            raise InvalidRequest(f"{FIELD}.say and {FIELD}.play_url are for the action message")
        return AnsweringMachine(action=MachineAction(action))
    if (say is None) == (play_url is None):
        raise InvalidRequest(f"{FIELD}: the action message needs exactly one of say or play_url")
    return AnsweringMachine(
        action=MachineAction.MESSAGE,
        say=_say(say) if say is not None else None,
        play_url=_play_url(play_url) if play_url is not None else None,
    )


def _say(raw: object) -> str:
    """Text to speech, written into the carrier's XML: no control characters, which XML cannot
    hold (line breaks and tabs aside)."""
    if (
        not isinstance(raw, str)
        or not raw.strip()
        or len(raw) > MAX_SAY_CHARS
        or any(unicodedata.category(c) == "Cc" and c not in "\n\t" for c in raw)
    ):
        raise InvalidRequest(
            f"{FIELD}.say must be text of 1 to {MAX_SAY_CHARS} characters, no control characters"
        )
    return raw.strip()


def _play_url(raw: object) -> str:
    """A recording the carrier fetches: https with a host, and, as a webhook URL, not an
    internal address written as an IP."""
    refused = InvalidRequest(
        f"{FIELD}.play_url must be an https:// URL of at most {MAX_URL_CHARS} characters"
    )
    if not isinstance(raw, str) or len(raw) > MAX_URL_CHARS:
        raise refused
    try:
        parts = urlsplit(raw)
        parts.port  # noqa: B018 (raises on a port that is not a number)
    except ValueError:
        raise refused from None
    if parts.scheme.lower() != "https" or not parts.hostname:
        raise refused
    if destinations.url_problem(raw) is not None:
        raise InvalidRequest(f"{FIELD}.play_url must not be an internal address")
    return raw
