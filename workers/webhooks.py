"""Signed delivery of events to the tenant's webhook, retried with backoff by ARQ."""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

import aiohttp
import structlog
from arq import Retry

from workers.context import typed

log = structlog.get_logger("workers.webhooks")
MAX_TRIES = 10


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """HMAC-SHA256 over `timestamp.body`, hex: what receivers recompute to trust an event."""
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


async def deliver_webhook(ctx: dict[str, Any], subdomain: str, record_id: int, event: str) -> str:
    context = typed(ctx)
    tenant = await context["directory"].tenant(subdomain)
    url = tenant.doc.settings.webhook_url if tenant else None
    if tenant is None or not url:
        return "no webhook"
    body = event.encode()
    timestamp = str(int(time.time()))
    headers = {"Content-Type": "application/json", "X-Signature-Timestamp": timestamp}
    secret = tenant.doc.settings.webhook_secret
    if secret:
        headers["X-Signature"] = signature(secret, timestamp, body)
    try:
        async with context["http"].post(url, data=body, headers=headers) as response:
            if response.status < 300:
                return f"delivered {response.status}"
            problem, reason = f"answered {response.status}", f"status_{response.status // 100}xx"
    except (aiohttp.ClientError, TimeoutError) as exc:
        problem, reason = f"unreachable: {type(exc).__name__}", failure_reason(exc)
    context["metrics"].webhook_failed(reason)
    tries = context["job_try"]
    log.warning(
        "webhook failed", tenant=subdomain, record_id=record_id, problem=problem, tries=tries
    )
    if tries >= MAX_TRIES:
        return f"gave up: {problem}"
    raise Retry(defer=min(2**tries, 300))


def failure_reason(exc: BaseException) -> str:
    """The reason label of a delivery that got no answer (a few values, never free text)."""
    if isinstance(exc, TimeoutError):  # aiohttp's timeouts are TimeoutErrors too
        return "timeout"
    if isinstance(exc, aiohttp.ClientConnectionError):
        return "connection"
    return "client_error"
