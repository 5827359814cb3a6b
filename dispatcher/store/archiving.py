"""Moving ended calls and chats out of Redis: the Redis half (the PostgreSQL half is
dispatcher/history/archive.py, the job that drives both workers/archiver.py).

A record that ends joins its tenant's ended set, scored by when it ended (lib.lua's
cas_transition). Once it has been there `DISPATCHER_HOT_RETENTION_S`, it moves in three steps:

1. `begin_archive.lua` reads it whole (object, meta, revision, flags, history, offers), adds its
   id to the tenant's archiving set and numbers the pass (`seq`);
2. its row is upserted into PostgreSQL on (tenant, id), carrying the pass's number;
3. `release_archived.lua` deletes every key and index entry it owns (`Footprint`), only if its
   revision and history are still those copied, and takes it out of the archiving set.

Whatever stops the move between two steps (SIGKILL, PostgreSQL down, Redis restarted) leaves
the record in Redis, whole and still in the ended set: the next pass copies it again, and the
upsert makes the second copy the first one's equal. A record that changed after it was copied
(a customer flag set) stays in Redis and is copied again.

A list reads both sides, and must show a record once while it moves. Its Redis half is one
MULTI: the live ids, the archiving set and the pass counter. A PostgreSQL row counts only if
its pass is no later than that counter and its id was not in that archiving set
(records.Visible):
a record copied before the read and still in Redis is in the archiving set, so it is listed
from Redis; one whose pass began after the read is newer than the counter; one removed from
Redis before the read was out of the archiving set with its row committed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from redis.asyncio import Redis

from dispatcher.domain.statuses import CallType, ChatType
from dispatcher.store.keys import Key, TenantKeys
from dispatcher.store.records import Kind
from dispatcher.store.scripts import BeginArchive, ReleaseArchived, Scripts


@dataclass(frozen=True)
class Footprint:
    """Everything one record holds in Redis: the keys that are its alone, and its entries
    (the record's or its offers' members) in keys it shares with other records."""

    keys: list[Key]
    entries: list[tuple[Key, str]]  # (sorted set, member)


@dataclass(frozen=True)
class Moving:
    """One record as begin_archive.lua read it, on its way to PostgreSQL."""

    kind: Kind
    id: int
    rev: int
    doc: str  # the object exactly as the API serves it
    fields: dict[str, Any]  # the object parsed (the row's columns are read from it)
    meta: str  # its private facts (JSON)
    flags: dict[str, bool]  # a call's customer flags
    history: list[str]  # a call's history entries or a chat's messages (JSON each)
    offers: dict[int, int]  # a call's offers: offer id -> agent id

    @property
    def member(self) -> str:
        return index_member(self.id)


def index_member(record_id: int) -> str:
    """A record's member in the list indexes and the ended set (lib.lua's `member`)."""
    return f"{record_id:015d}"


def call_footprint(
    keys: TenantKeys,
    call: dict[str, Any],
    meta: dict[str, Any],
    offers: dict[int, int],
) -> Footprint:
    """Where a call (its object and meta as JSON) may hold keys and members: its hash,
    history and offers, its offers' hashes, and its members in the tenant's indexes (the
    ended set among them), its menu's waiting set, the scheduled set, its campaign's sets and
    its agents' open offers.
    Its ARQ jobs are not listed: they expire by themselves."""
    call_id = int(call["id"])
    padded, plain = index_member(call_id), str(call_id)
    own = [
        keys.call(call_id),
        keys.call_history(call_id),
        keys.call_offers(call_id),
        *(keys.offer(offer_id) for offer_id in sorted(offers)),
    ]
    entries = [
        (keys.calls, padded),
        (keys.calls_by_status(call["status"]), padded),
        (keys.calls_by_type(CallType(call["call_type"])), padded),
        (keys.scheduled, plain),
        (keys.held, plain),
        (keys.ended("call"), padded),
    ]
    if meta.get("menu_id") is not None:
        entries.append((keys.waiting(int(meta["menu_id"])), plain))
    if meta.get("campaign_id") is not None:
        campaign_id = int(meta["campaign_id"])
        entries.append((keys.campaign_due(campaign_id), plain))
        entries.append((keys.campaign_released(campaign_id), plain))
        entries.append((keys.campaign_calls(campaign_id), padded))
        entries.append((keys.campaign_redialling(campaign_id), plain))
    for offer_id, agent_id in sorted(offers.items()):
        entries.append((keys.agent_offers(agent_id), str(offer_id)))
    return Footprint(own, entries)


def chat_footprint(keys: TenantKeys, chat: dict[str, Any]) -> Footprint:
    """A chat's hash and messages, and its members in the tenant's chat indexes."""
    chat_id = int(chat["id"])
    padded = index_member(chat_id)
    entries = [
        (keys.chats, padded),
        (keys.chats_by_status(chat["status"]), padded),
        (keys.chats_by_type(ChatType(chat["chat_type"])), padded),
        (keys.ended("chat"), padded),
    ]
    return Footprint([keys.chat(chat_id), keys.chat_messages(chat_id)], entries)


class HotRecords:
    """One tenant's ended records still in Redis, and their moves out of it."""

    def __init__(self, redis: Redis, scripts: Scripts, subdomain: str) -> None:
        self._redis = redis
        self._scripts = scripts
        self.subdomain = subdomain
        self.keys = TenantKeys(subdomain)

    async def due(self, kind: Kind, cutoff_ms: int, limit: int) -> list[int]:
        """Ids of records that ended at or before the cutoff, the longest ended first."""
        members = await self._redis.zrangebyscore(
            self.keys.ended(kind), "-inf", cutoff_ms, start=0, num=limit
        )
        return [int(member) for member in members]

    async def oldest_ended_ms(self, kind: Kind) -> int | None:
        """When the longest-ended record still in Redis ended (the archive's lag)."""
        first = await self._redis.zrange(self.keys.ended(kind), 0, 0, withscores=True)
        return int(first[0][1]) if first else None

    async def begin(
        self, kind: Kind, ids: Sequence[int], cutoff_ms: int
    ) -> tuple[int, list[Moving]]:
        """Step 1: the pass's number and the records read (those still due)."""
        script = BeginArchive(
            ended=self.keys.ended(kind),
            archiving=self.keys.archiving(kind),
            seq=self.keys.archive_seq,
            records=[self._record_key(kind, record_id) for record_id in ids],
            histories=[self._history_key(kind, record_id) for record_id in ids],
            offers=[self.keys.call_offers(record_id) for record_id in ids]
            if kind == "call"
            else None,
            ids=list(ids),
            members=[index_member(record_id) for record_id in ids],
            cutoff=cutoff_ms,
        )
        answer = await self._scripts.run(script)
        return answer["seq"], [_moving(kind, raw) for raw in answer["records"]]

    async def release(self, kind: Kind, moved: Sequence[Moving]) -> int:
        """Step 3, once their rows are committed: how many records left Redis."""
        if not moved:
            return 0
        keys_: list[dict[str, Key | list[Key]]] = []
        args: list[dict[str, Any]] = []
        for record in moved:
            footprint = self.footprint(record)
            own = [key for key in footprint.keys[1:] if key != self._history_key(kind, record.id)]
            keys_.append(
                {
                    "record": self._record_key(kind, record.id),
                    "history": self._history_key(kind, record.id),
                    "own": own,
                    "entries": [key for key, _ in footprint.entries],
                }
            )
            args.append(
                {
                    "id": record.id,
                    "member": record.member,
                    "rev": record.rev,
                    "length": len(record.history),
                    "members": [member for _, member in footprint.entries],
                }
            )
        release = ReleaseArchived(
            ended=self.keys.ended(kind),
            archiving=self.keys.archiving(kind),
            records=keys_,
            moved=args,
        )
        return await self._scripts.run(release)

    def footprint(self, record: Moving) -> Footprint:
        if record.kind == "call":
            meta = orjson.loads(record.meta)
            return call_footprint(self.keys, record.fields, meta, record.offers)
        return chat_footprint(self.keys, record.fields)

    def _record_key(self, kind: Kind, record_id: int) -> Key:
        return self.keys.call(record_id) if kind == "call" else self.keys.chat(record_id)

    def _history_key(self, kind: Kind, record_id: int) -> Key:
        if kind == "call":
            return self.keys.call_history(record_id)
        return self.keys.chat_messages(record_id)


def _moving(kind: Kind, raw: dict[str, Any]) -> Moving:
    flat = raw["fields"]
    fields = dict(zip(flat[::2], flat[1::2], strict=True))
    offers_flat = raw["offers"] or []
    doc = fields["doc"]
    flags = {
        name.removeprefix("flag:"): value == "1"
        for name, value in fields.items()
        if name.startswith("flag:")
    }
    return Moving(
        kind=kind,
        id=int(raw["id"]),
        rev=int(fields["rev"]),
        doc=doc,
        fields=orjson.loads(doc),
        meta=fields.get("meta", "{}"),
        flags=flags,
        history=list(raw["history"] or []),
        offers={
            int(offer): int(agent)
            for agent, offer in zip(offers_flat[::2], offers_flat[1::2], strict=True)
        },
    )
