"""Signed delivery of events to the tenant's webhook, retried with backoff by ARQ, in a lane of
its own (workers/settings.py): a slow or dead receiver holds only its own tenant's deliveries."""

from __future__ import annotations

import errno
import hashlib
import hmac
import random
import socket
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, NoReturn

import aiohttp
import structlog
from aiohappyeyeballs import AddrInfoType, SocketFactoryType
from arq import Retry
from arq.constants import retry_key_prefix

from dispatcher.domain import clock, destinations
from dispatcher.metrics import Metrics
from dispatcher.settings import Settings
from dispatcher.store import jobs
from workers.context import WorkerContext, typed

log = structlog.get_logger("workers.webhooks")
MAX_TRIES = 10
# A delivery put off this long (its tenant busy, its destination's circuit open) gives up.
HELD_AT_MOST = timedelta(hours=1)


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """HMAC-SHA256 over `timestamp.body`, hex: what receivers recompute to trust an event."""
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


class RefusedDestination(OSError):
    """A webhook address that is not public (nor allow-listed): no socket is made for it."""

    def __init__(self) -> None:
        # One message for every refused address: aiohappyeyeballs then raises this one, not
        # a plain OSError naming them all, when every address of a name is refused.
        super().__init__(errno.EACCES, "webhook destination address not allowed")


def guarded_sockets(networks: Sequence[destinations.Network]) -> SocketFactoryType:
    """The connector's socket factory: it sees every address aiohttp connects to, resolved or
    literal, at the moment it connects, so DNS rebinding after a check cannot slip past."""

    def create(addr_info: AddrInfoType) -> socket.socket:
        family, kind, proto, _, address = addr_info
        if not destinations.allowed(str(address[0]), networks):
            raise RefusedDestination()
        return socket.socket(family=family, type=kind, proto=proto)

    return create


def webhook_session(settings: Settings) -> aiohttp.ClientSession:
    """The webhook lane's own HTTP session: few connections per destination, a short timeout,
    public addresses only."""
    connector = aiohttp.TCPConnector(
        limit=settings.webhook_max_jobs,
        limit_per_host=settings.webhook_connections_per_host,
        socket_factory=guarded_sockets(settings.webhook_allowed_networks),
    )
    timeout = aiohttp.ClientTimeout(total=settings.webhook_timeout_s)
    return aiohttp.ClientSession(connector=connector, timeout=timeout)


@dataclass
class Breaker:
    """One destination's failures in a row; once there are enough, deliveries wait."""

    failures: int = 0
    open_until: float = 0.0


class WebhookLane:
    """What holds a delivery back, in this worker process: its tenant's deliveries in flight,
    and the circuit breaker of its destination (host:port)."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self._per_tenant = settings.webhook_tenant_concurrency
        self._to_open = settings.webhook_breaker_failures
        self._cooldown_s = settings.webhook_breaker_cooldown_s
        # A tenant's turn comes about when one of its deliveries ends: within a timeout.
        self._busy_wait_s = settings.webhook_timeout_s
        self._metrics = metrics
        self._in_flight: Counter[str] = Counter()
        self._breakers: dict[str, Breaker] = {}

    def wait(self, subdomain: str, where: str) -> tuple[str, float] | None:
        """Why and how long a delivery must wait, or None to go now. After a cool-down one
        delivery goes (the breaker's trial) and the others wait for its outcome."""
        if self._in_flight[subdomain] >= self._per_tenant:
            return "tenant_busy", self._busy_wait_s * random.uniform(1, 2)
        breaker = self._breakers.get(where)
        if breaker is None or breaker.failures < self._to_open:
            return None
        now = time.monotonic()
        if now < breaker.open_until:
            return "circuit_open", breaker.open_until - now + random.uniform(0, 1)
        breaker.open_until = now + self._cooldown_s
        return None

    @contextmanager
    def running(self, subdomain: str) -> Iterator[None]:
        self._in_flight[subdomain] += 1
        try:
            yield
        finally:
            self._in_flight[subdomain] -= 1
            if not self._in_flight[subdomain]:
                del self._in_flight[subdomain]

    def record(self, where: str, delivered: bool) -> None:
        if delivered:
            self._breakers.pop(where, None)
        else:
            breaker = self._breakers.setdefault(where, Breaker())
            breaker.failures += 1
            if breaker.failures >= self._to_open:
                breaker.open_until = time.monotonic() + self._cooldown_s
        opened = sum(b.failures >= self._to_open for b in self._breakers.values())
        self._metrics.webhook_open_circuits.set(opened)


async def deliver_webhook(ctx: dict[str, Any], subdomain: str, record_id: int, event: str) -> str:
    context = typed(ctx)
    tenant = await context["directory"].tenant(subdomain)
    url = tenant.doc.settings.webhook_url if tenant else None
    if tenant is None or not url:
        return "no webhook"
    refused = destinations.url_problem(url, context["settings"].webhook_allowed_networks)
    if refused is not None:
        return failed(context, subdomain, record_id, url, (refused, "refused"))
    lane, where = context["webhook_lane"], destinations.destination(url)
    waiting = lane.wait(subdomain, where)
    if waiting is not None:
        if clock.now() - context["enqueue_time"] > HELD_AT_MOST:
            # Deferrals count no try: without a bound, the events of a destination that stays
            # down would pile up in Redis for as long as it does.
            held = (f"held back over {HELD_AT_MOST.total_seconds():.0f} s", "held_too_long")
            return failed(context, subdomain, record_id, url, held, final=True)
        await defer(context, *waiting)
    secret = tenant.doc.settings.webhook_secret
    with lane.running(subdomain):
        problem = await post(context["webhook_http"], url, event.encode(), secret)
    lane.record(where, problem is None)
    if problem is not None:
        return failed(context, subdomain, record_id, url, problem)
    return "delivered"


async def defer(context: WorkerContext, reason: str, delay_s: float) -> NoReturn:
    """Puts a delivery off without counting a try: ARQ counted this run when it started it."""
    await context["redis"].decr(retry_key_prefix + context["job_id"])
    context["metrics"].webhook_deferred(reason)
    raise Retry(defer=delay_s)


async def post(
    session: aiohttp.ClientSession, url: str, body: bytes, secret: str | None
) -> tuple[str, str] | None:
    """One signed POST of `body`; what went wrong (a problem and its reason label), if any.
    A redirect is not followed: it is a failed delivery (it could point anywhere)."""
    timestamp = str(int(time.time()))
    headers = {"Content-Type": "application/json", "X-Signature-Timestamp": timestamp}
    if secret:
        headers["X-Signature"] = signature(secret, timestamp, body)
    try:
        async with session.post(url, data=body, headers=headers, allow_redirects=False) as answer:
            if answer.status < 300:
                return None
            return f"answered {answer.status}", f"status_{answer.status // 100}xx"
    except (aiohttp.ClientError, TimeoutError) as exc:
        return f"unreachable: {type(exc).__name__}", failure_reason(exc)


def failed(
    context: WorkerContext,
    subdomain: str,
    record_id: int,
    url: str,
    problem: tuple[str, str],
    final: bool = False,
) -> str:
    """Counts and logs a failed delivery (its destination, never the URL's path, query or
    userinfo), then has ARQ retry it with backoff, up to MAX_TRIES."""
    text, reason = problem
    context["metrics"].webhook_failed(reason)
    tries = context["job_try"]
    log.warning(
        "webhook failed",
        tenant=subdomain,
        record_id=record_id,
        destination=destinations.destination(url),
        problem=text,
        tries=tries,
    )
    if final or tries >= MAX_TRIES:
        return f"gave up: {text}"
    raise Retry(defer=min(2**tries, 300))


def failure_reason(exc: BaseException) -> str:
    """The reason label of a delivery that got no answer (a few values, never free text)."""
    if isinstance(exc, TimeoutError):  # aiohttp's timeouts are TimeoutErrors too
        return "timeout"
    if isinstance(exc, aiohttp.ClientConnectorError) and isinstance(
        exc.os_error, RefusedDestination
    ):
        return "refused"
    if isinstance(exc, aiohttp.ClientConnectionError):
        return "connection"
    return "client_error"


async def hand_to_lane(ctx: dict[str, Any], subdomain: str, record_id: int, event: str) -> str:
    """A delivery found in the main queue (queued there before webhooks had a lane of their
    own) moves to the webhook lane's queue."""
    context = typed(ctx)
    await context["redis"].enqueue_job(
        jobs.DELIVER_WEBHOOK,
        subdomain,
        record_id,
        event,
        _job_id=f"{context['job_id']}:lane",
        _queue_name=jobs.WEBHOOK_QUEUE_NAME,
    )
    return "handed to the webhook lane"
