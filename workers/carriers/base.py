"""The carrier interface: place and end calls, send SMS; results come back as jobs."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from dispatcher.directory.tenant import Tenant
from dispatcher.store.jobs import JobSpec

# How an adapter reports results back: by queueing jobs (carrier_result, ...), all of one
# report in one atomic step.
Report = Callable[[list[JobSpec]], Awaitable[None]]


@dataclass(frozen=True)
class Dial:
    tenant: Tenant
    call_id: int
    to: str
    from_: str | None
    agent_id: int | None = None  # the agent the end user is to be connected to


@dataclass(frozen=True)
class Sms:
    tenant: Tenant
    chat_id: int
    to: str
    from_: str
    text: str


class CarrierError(Exception):
    """The carrier refused or could not be reached; `fail_reason` says how to record it. The
    message becomes the call's fail_details: it must hold no secret and no phone number.
    `retry_after_s` is set when trying again may work (the carrier was busy or unreachable)."""

    def __init__(
        self,
        message: str,
        fail_reason: str = "voip_conn_general",
        *,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.fail_reason = fail_reason
        self.retry_after_s = retry_after_s


class Carrier(ABC):
    name: str

    @abstractmethod
    async def dial(self, request: Dial) -> str:
        """Start a call; returns the carrier's id for it. Must be safe to repeat for one call."""

    @abstractmethod
    async def hangup(self, tenant: Tenant, call_id: int, carrier_call_id: str) -> None: ...

    @abstractmethod
    async def send_sms(self, request: Sms) -> str:
        """Send one message; returns the carrier's message id."""
