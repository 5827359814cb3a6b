"""ARQ jobs as the ingress writes them itself, inside the same atomic step as the record."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from arq.jobs import serialize_job

from dispatcher.directory.tenant import Tenant
from dispatcher.domain import clock
from dispatcher.store import keys

if TYPE_CHECKING:
    from dispatcher.store.scripts import Scripts

# Names of the worker functions (workers/settings.py registers them under these names).
ROUTE_CALL = "route_call"
FIRE_SCHEDULED_CALL = "fire_scheduled_call"
DIAL_OUTBOUND = "dial_outbound"
SEND_SMS = "send_sms"
CONNECT_CALL = "connect_call"
CARRIER_RESULT = "carrier_result"
HANGUP_CALL = "hangup_call"
LEAVE_MESSAGE = "leave_message"
END_SMS_SESSION = "end_sms_session"
DELIVER_WEBHOOK = "deliver_webhook"
PUMP_CAMPAIGN = "pump_campaign"
SWEEP_CAMPAIGN = "sweep_campaign"
REDIAL_CALL = "redial_call"
EXPIRE_CHOICE = "expire_choice"


def hangup(
    subdomain: str, call_id: int, carrier_call_id: str, now_ms: int, carrier: str | None
) -> JobSpec:
    """Ending one carrier call of a call, at the carrier that placed it (None: the tenant's
    first): queued once per carrier call."""
    extra = (carrier_call_id, carrier)
    return JobSpec(HANGUP_CALL, subdomain, call_id, now_ms, extra, carrier_call_id)


def leave_message(
    subdomain: str, call_id: int, carrier_call_id: str, now_ms: int, carrier: str | None
) -> JobSpec:
    """Leaving a campaign's message on the machine that answered one carrier call, at the
    carrier that placed it (None: the tenant's first), once."""
    extra = (carrier_call_id, carrier)
    return JobSpec(LEAVE_MESSAGE, subdomain, call_id, now_ms, extra, f"message-{carrier_call_id}")


# ARQ's own default: a job not started within a day of its run time is dropped.
EXPIRES_EXTRA_MS = 86_400_000


def serialize(data: dict[str, Any]) -> bytes:
    return orjson.dumps(data)


def deserialize(raw: bytes) -> dict[str, Any]:
    value = orjson.loads(raw)
    assert isinstance(value, dict)
    return value


@dataclass(frozen=True)
class JobSpec:
    """A job with a deterministic id (`function:tenant:record`): one record's job queues once."""

    function: str
    subdomain: str
    record_id: int
    run_at_ms: int
    extra: tuple[Any, ...] = ()
    suffix: str = ""  # tells apart the several jobs one record may have of one function

    @property
    def job_id(self) -> str:
        base = f"{self.function}:{self.subdomain}:{self.record_id}"
        return f"{base}:{self.suffix}" if self.suffix else base

    def payload(self, now_ms: int) -> bytes:
        return serialize_job(
            self.function,
            (self.subdomain, self.record_id, *self.extra),
            {},
            None,
            now_ms,
            serializer=serialize,
        )

    def ttl_ms(self, now_ms: int) -> int:
        return max(self.run_at_ms - now_ms, 0) + EXPIRES_EXTRA_MS

    @property
    def queue(self) -> keys.Key:
        """Webhook deliveries go to an ARQ queue of their own, which the worker's webhook lane
        drains: a slow receiver then holds no routing, firing or dialing."""
        return keys.WEBHOOK_QUEUE if self.function == DELIVER_WEBHOOK else keys.QUEUE


_CHAT_JOBS = frozenset({SEND_SMS, END_SMS_SESSION})


def log_fields(job_id: str) -> dict[str, str | int]:
    """What every log line of a job carries, read from its id (see JobSpec.job_id): the job
    id always; its function, tenant and call or chat id when the id is one of ours."""
    fields: dict[str, str | int] = {"job_id": job_id}
    parts = job_id.split(":", 3)
    if len(parts) < 3 or not parts[2].isdigit():
        return fields
    function, subdomain, record = parts[0], parts[1], int(parts[2])
    suffix = parts[3] if len(parts) == 4 else ""
    chat = function in _CHAT_JOBS or (function == DELIVER_WEBHOOK and suffix.startswith("chat-"))
    fields.update(function=function, tenant=subdomain)
    fields["chat_id" if chat else "call_id"] = record
    return fields


# The ARQ queue the ingress writes to and the workers read (ARQ's default name), and webhook
# deliveries' own, drained by the workers' webhook lane (workers/settings.py): see JobSpec.queue.
QUEUE_NAME = keys.QUEUE
WEBHOOK_QUEUE_NAME = keys.WEBHOOK_QUEUE


def webhook_jobs(
    tenant: Tenant, kind: str, record_id: int, doc: str, rev: int, now_ms: int
) -> list[JobSpec]:
    """An event reaches the tenant's webhook through a job queued with the change itself, so
    it is never lost; its id (kind and revision) makes a retried change queue it once."""
    if not tenant.doc.settings.webhook_url:
        return []
    event = '{"type":"' + kind + '.updated","' + kind + '":' + doc + "}"
    return [
        JobSpec(DELIVER_WEBHOOK, tenant.subdomain, record_id, now_ms, (event,), f"{kind}-{rev}")
    ]


async def enqueue(scripts: Scripts, specs: list[JobSpec]) -> None:
    """Queue jobs outside any other write (a write queues its jobs in its own script)."""
    await scripts.enqueue(specs, clock.to_ms(clock.now()))
