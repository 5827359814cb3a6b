"""SMS sessions: send the first message through the carrier, end sessions that time out."""

from __future__ import annotations

from typing import Any

import structlog

from dispatcher.carriers.base import CarrierError, Sms
from dispatcher.domain.statuses import TERMINAL_CHAT_STATUSES, ChatStatus
from workers.context import stores_of, typed
from workers.retries import retry_if_worth_it

log = structlog.get_logger("workers.sms")

SEND_TRIES = 3


async def send_sms(ctx: dict[str, Any], subdomain: str, chat_id: int) -> str:
    context = typed(ctx)
    stores = await stores_of(context, subdomain)
    chats = stores.chats if stores else None
    loaded = await chats.load(chat_id) if chats else None
    if chats is None or loaded is None:
        return "no chat"
    chat, meta, _ = loaded
    if ChatStatus(chat.status) in TERMINAL_CHAT_STATUSES or chat.outbound_number is None:
        return "ended"
    structlog.contextvars.bind_contextvars(tenant=subdomain, chat_id=chat_id)
    try:
        message_id = (
            await context["carriers"]
            .of(chats.tenant)
            .send_sms(
                Sms(chats.tenant, chat_id, meta.end_user_number, chat.outbound_number, meta.message)
            )
        )
    except CarrierError as exc:
        # Busy or out of reach: tried again. A request that timed out may have been sent
        # all the same; the consumer may then get the message twice.
        retry_if_worth_it(exc, context["job_try"], SEND_TRIES, "message")
        log.error("sms not sent", carrier=chats.tenant.doc.settings.carrier, error=str(exc))
        return "not sent"
    await chats.add_message(chat_id, "outbound", meta.message)
    await chats.schedule_timeout(chat_id)
    log.info("sms sent", tenant=subdomain, chat_id=chat_id, carrier_message_id=message_id)
    return "sent"


async def end_sms_session(ctx: dict[str, Any], subdomain: str, chat_id: int) -> str:
    """Runs a timeout after each message; ends the session unless a later message kept it."""
    stores = await stores_of(typed(ctx), subdomain)
    chats = stores.chats if stores else None
    loaded = await chats.load(chat_id) if chats else None
    if chats is None or loaded is None:
        return "no chat"
    _, meta, _ = loaded
    if await chats.active_chat(meta.end_user_number) == chat_id:
        # A later message kept it alive, or this job ran a hair before the session's expiry:
        # look again when the session would expire now.
        await chats.schedule_timeout(chat_id, await chats.session_ttl_ms(meta.end_user_number))
        return "still active"
    return "ended" if await chats.finish(chat_id) else "ended already"
