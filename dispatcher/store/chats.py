"""A tenant's SMS chats in Redis: creation with the consumer's session, messages, delivery
reports, and ending a session exactly once."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

import orjson

from dispatcher.domain import clock, lifecycle
from dispatcher.domain.chat_requests import SmsPlan
from dispatcher.domain.objects import ChatObject
from dispatcher.domain.records import ChatMeta, sms_chat
from dispatcher.domain.statuses import OPEN_CHAT_STATUSES, TERMINAL_CHAT_STATUSES, ChatStatus
from dispatcher.store import jobs
from dispatcher.store.buckets import Bucket
from dispatcher.store.idempotency import Answer, Once
from dispatcher.store.records import Claims, Creation, Kind, RecordStore
from dispatcher.store.scripting import Stale
from dispatcher.store.scripts import EndSession, Jobs, Transition, Write

OPT_OUT_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})


def is_opt_out(text: str) -> bool:
    return text.strip().upper() in OPT_OUT_WORDS


class ChatStore(RecordStore):
    """One tenant's SMS chats: created with their first job and the consumer's session in one
    atomic step, then messages, and ending a session exactly once."""

    kind: ClassVar[Kind] = "chat"

    async def create_chat(
        self, plan: SmsPlan, now: datetime, key: Once | None = None, bucket: Bucket | None = None
    ) -> Answer:
        """200 with the chat; `bucket` as in `create_call`."""
        anonymous = None if plan.contact else plan.end_user_number
        participants = 2 if plan.agent else 1
        ids = await self._ids(("chat", participants, anonymous), bucket)
        now = ids.created
        chat, meta = sms_chat(plan, ids, now)
        job = jobs.JobSpec(jobs.SEND_SMS, self.tenant.subdomain, chat.id, clock.to_ms(now))
        claims = Claims(
            consumer_number=plan.end_user_number,
            session_ttl_ms=self.tenant.doc.settings.sms_session_timeout_s * 1000,
        )
        doc = chat.model_dump_json().encode()
        answer = Answer(200, doc, record_id=chat.id)
        meta_json = meta.model_dump_json()
        creation = Creation("chat", chat, doc, meta_json, now, job, claims, answer, key)
        return await self._create(creation)

    async def load(self, chat_id: int) -> tuple[ChatObject, ChatMeta, int] | None:
        doc, meta, rev = await self._redis.hmget(self.keys.chat(chat_id), ["doc", "meta", "rev"])  # type: ignore[misc]
        if doc is None or meta is None or rev is None:
            return None
        return ChatObject.model_validate_json(doc), ChatMeta.model_validate_json(meta), int(rev)

    async def newest_open(self, latest: int) -> list[tuple[ChatObject, ChatMeta, int]]:
        """The newest `latest` chats not ended, each with how many messages it holds: two
        round trips, the ids by status, then the chats."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for status in OPEN_CHAT_STATUSES:
                pipe.zrange(
                    self.keys.chats_by_status(status), 0, latest - 1, desc=True, withscores=True
                )
            found = [entry for reply in await pipe.execute() for entry in reply]
        ids = [int(raw) for raw, _ in sorted(found, key=lambda entry: -entry[1])[:latest]]
        async with self._redis.pipeline(transaction=False) as pipe:
            for chat_id in ids:
                pipe.hmget(self.keys.chat(chat_id), ["doc", "meta"])
                pipe.llen(self.keys.chat_messages(chat_id))
            replies = await pipe.execute()
        chats = []
        for (doc, meta), messages in zip(replies[::2], replies[1::2], strict=True):
            if doc is not None and meta is not None:
                chat = ChatObject.model_validate_json(doc)
                chats.append((chat, ChatMeta.model_validate_json(meta), int(messages)))
        return chats

    async def active_chat(self, number: str) -> int | None:
        raw = await self._redis.get(self.keys.sms_session(number))
        return int(raw) if raw is not None else None

    async def add_message(self, chat_id: int, direction: str, text: str) -> None:
        entry = {"direction": direction, "text": text, "at": clock.iso(clock.now())}
        await self._redis.rpush(self.keys.chat_messages(chat_id), orjson.dumps(entry))  # type: ignore[misc]

    async def touch(self, chat_id: int, number: str) -> None:
        """A message either way: the session lives another full timeout."""
        timeout_s = self.tenant.doc.settings.sms_session_timeout_s
        await self._redis.pexpire(self.keys.sms_session(number), timeout_s * 1000)
        await self.schedule_timeout(chat_id)

    async def session_ttl_ms(self, number: str) -> int:
        return max(0, int(await self._redis.pttl(self.keys.sms_session(number))))

    async def schedule_timeout(self, chat_id: int, after_ms: int | None = None) -> None:
        """Check for the session's end once it would have expired (plus a small margin)."""
        now_ms = clock.to_ms(clock.now())
        wait_ms = (
            self.tenant.doc.settings.sms_session_timeout_s * 1000 if after_ms is None else after_ms
        )
        due = now_ms + wait_ms + 5
        spec = jobs.JobSpec(
            jobs.END_SMS_SESSION, self.tenant.subdomain, chat_id, due, (), str(now_ms)
        )
        await self._scripts.enqueue([spec], now_ms)

    async def finish(self, chat_id: int, attempts: int = 8) -> ChatObject | None:
        """Ends the chat and frees the consumer for a new session; None if it had ended."""
        for _ in range(attempts):
            loaded = await self.load(chat_id)
            if loaded is None:
                return None
            chat, meta, rev = loaded
            if ChatStatus(chat.status) in TERMINAL_CHAT_STATUSES:
                return None
            now = clock.now()
            ended = lifecycle.chat_finished(chat, now)
            doc = ended.model_dump_json()
            now_ms = clock.to_ms(now)
            webhooks = jobs.webhook_jobs(self.tenant, "chat", chat_id, doc, rev + 1, now_ms)
            write = Write(
                record=self.keys.chat(chat_id),
                from_index=self.keys.chats_by_status(chat.status),
                to_index=self.keys.chats_by_status(ended.status),
                rev=rev,
                doc=doc,
                status=ended.status,
                id=chat_id,
                score=clock.to_ms(clock.parse_iso(chat.created_at) or now),
                ended=self.keys.ended(self.kind),
                ended_score=now_ms,
            )
            try:
                await self._scripts.run(Transition(write, Jobs.of(webhooks, now_ms)))
            except Stale:
                continue
            session = self.keys.sms_session(meta.end_user_number)
            await self._scripts.run(EndSession(session, chat_id))
            event = {"type": "chat.updated", "chat": ended.model_dump(mode="json")}
            await self._redis.publish(self.keys.events, orjson.dumps(event))
            return ended
        return None

    async def count_delivery_failure(self, message_id: str, status: str, ttl_s: int) -> bool:
        """Counts a carrier's report that a message ended `status` (failed, undelivered), once
        per (message, status) however often it is reported; whether this was the first."""
        receipt = self.keys.carrier_receipt(message_id, status)
        first = bool(await self._redis.set(receipt, 1, nx=True, ex=ttl_s))
        if first:
            await self._redis.hincrby(self.keys.sms_delivery_failures, status, 1)  # type: ignore[misc]
        return first
