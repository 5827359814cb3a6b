"""The carrier interface: what goes out (place and end calls, send SMS, from the workers) and
what comes back (the carrier's callbacks, parsed and checked for the ingress)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import ClassVar

import aiohttp

from dispatcher.directory.schema import TenantSettings
from dispatcher.directory.tenant import Tenant
from dispatcher.domain import phones
from dispatcher.domain.chat_requests import MAX_MESSAGE_CHARS
from dispatcher.domain.errors import InvalidRequest
from dispatcher.domain.machines import AnsweringMachine
from dispatcher.settings import Settings
from dispatcher.store.jobs import JobSpec

# How an adapter reports results back: by queueing jobs (carrier_result, ...), all of one
# report in one atomic step.
Report = Callable[[list[JobSpec]], Awaitable[None]]


@dataclass(frozen=True)
class Resources:
    """What a worker hands each adapter it builds: the settings, its one HTTP session, and
    how to report results back."""

    settings: Settings
    session: aiohttp.ClientSession
    report: Report


@dataclass(frozen=True)
class Dial:
    tenant: Tenant
    call_id: int
    to: str
    from_: str | None
    agent_id: int | None = None  # the agent the end user is to be connected to
    # Its campaign's plan for an answering machine: detection is asked for only with one.
    machine: AnsweringMachine | None = None


@dataclass(frozen=True)
class Sms:
    tenant: Tenant
    chat_id: int
    to: str
    from_: str
    text: str


@dataclass(frozen=True)
class InboundSms:
    """A consumer's message as a carrier brought it: the sender's number (E.164) and text."""

    sender: str
    text: str

    @classmethod
    def parse(cls, sender: object, text: object, names: tuple[str, str]) -> InboundSms:
        """Checked as the carrier sent it; `names` are its fields for sender and text, for the
        messages of a refusal."""
        number = phones.normalize(sender)
        if number is None:
            raise InvalidRequest(f"{names[0]} is invalid")
        if not isinstance(text, str):
            raise InvalidRequest(f"{names[1]} is required")
        if len(text) > MAX_MESSAGE_CHARS:  # each message is kept with the chat
            raise InvalidRequest(f"{names[1]} is too long (at most {MAX_MESSAGE_CHARS} characters)")
        return cls(number, text)


class CarrierError(Exception):
    """The carrier refused or could not be reached; `fail_reason` says how to record it. The
    message becomes the call's fail_details: it must hold no secret and no phone number.
    `retry_after_s` is set when trying again may work (the carrier was busy or unreachable).
    `carrier_fault` says the carrier itself failed (a 5xx, a timeout, a refused connection),
    not the request nor the end user: another carrier may well place the call."""

    def __init__(
        self,
        message: str,
        fail_reason: str = "voip_conn_general",
        *,
        retry_after_s: float | None = None,
        carrier_fault: bool = False,
    ) -> None:
        super().__init__(message)
        self.fail_reason = fail_reason
        self.retry_after_s = retry_after_s
        self.carrier_fault = carrier_fault


class Carrier(ABC):
    """One adapter. A worker builds an instance to send with (`create`); the ingress has none
    (no session to send with) and reads the adapter's callbacks through its class methods."""

    name: ClassVar[str]

    @classmethod
    @abstractmethod
    def create(cls, resources: Resources) -> Carrier | None:
        """The adapter, or None when this process cannot use it (no credentials set)."""

    @classmethod
    def settings_problems(cls, at: str, settings: TenantSettings) -> Iterator[str]:
        """What the adapter refuses in a tenant's settings (at the path `at`) beyond the
        schema, as the directory loader's 'path: message' errors."""
        yield from ()

    # --- what goes out ---------------------------------------------------------------------

    @abstractmethod
    async def dial(self, request: Dial) -> str:
        """Start a call; returns the carrier's id for it. Must be safe to repeat for one call."""

    @abstractmethod
    async def hangup(self, tenant: Tenant, call_id: int, carrier_call_id: str) -> None: ...

    @abstractmethod
    async def leave_message(
        self, tenant: Tenant, call_id: int, carrier_call_id: str, machine: AnsweringMachine
    ) -> None:
        """Plays the plan's message (`say` or `play_url`) to the machine that answered, then
        hangs up. Must be safe to repeat."""

    @abstractmethod
    async def send_sms(self, request: Sms) -> str:
        """Send one message; returns the carrier's message id."""

    # --- what comes back -------------------------------------------------------------------

    @classmethod
    @abstractmethod
    def inbound_sms(cls, fields: Mapping[str, object]) -> InboundSms:
        """A consumer's message from the fields of the carrier's inbound callback (once the
        ingress has authenticated it); InvalidRequest when they are not one."""
