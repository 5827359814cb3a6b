"""What calls and chats share in Redis: creation with their first job, reads and lists."""

from __future__ import annotations

import collections
import math
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar, overload

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from dispatcher.directory.tenant import Tenant
from dispatcher.domain import clock, compliance
from dispatcher.domain.campaigns import cancelled
from dispatcher.domain.chat_requests import ACTIVE_SESSION, OPTED_OUT
from dispatcher.domain.errors import DispatchError, InvalidRequest, ServiceUnavailable
from dispatcher.domain.objects import CallObject, ChatObject
from dispatcher.domain.records import (
    Ids,
)
from dispatcher.domain.statuses import CallType, ChatType
from dispatcher.store import idempotency, jobs, keys
from dispatcher.store.buckets import Bucket
from dispatcher.store.campaigns import CampaignLink
from dispatcher.store.idempotency import Answer, Once
from dispatcher.store.keys import Key
from dispatcher.store.scripting import Refused
from dispatcher.store.scripts import (
    NO_JOBS,
    AllocateIds,
    CreateRecord,
    Guard,
    Jobs,
    Scripts,
)

if TYPE_CHECKING:
    from dispatcher.history.archive import Archive

Kind = Literal["call", "chat"]
T = TypeVar("T")
AGENT_NOT_AVAILABLE = "Agent is not available to take this call"
_CLAIM_ERRORS = {
    "dnc": compliance.ON_DNC_LIST,
    "agent_busy": AGENT_NOT_AVAILABLE,
    "session_active": ACTIVE_SESSION,
    "opted_out": OPTED_OUT,
}


@dataclass(frozen=True)
class Page:
    total: int
    items: list[bytes]  # stored JSON documents, in order


@dataclass(frozen=True)
class Visible:
    """Which archived rows a list read may show beside the live records it read: those of an
    archiving pass no later than `seq`, but for the ids still `moving` (store/archiving.py)."""

    seq: int
    moving: frozenset[int]


@dataclass(frozen=True)
class Live:
    """The Redis half of a list read (RecordStore._live)."""

    total: int
    ids: list[int]
    visible: Visible


@dataclass(frozen=True)
class ListQuery:
    page: int = 1
    per: int = 100
    status: str | None = None
    type: str | None = None  # a CallType or ChatType value
    created_from_ms: int | None = None
    created_to_ms: int | None = None
    descending: bool = True
    campaign_id: int | None = None  # a call list's: the calls of that campaign


@dataclass(frozen=True)
class Creation:
    """A record ready to be stored by create_record.lua, and the answer its create gives
    (stored under the client's key when there is one)."""

    kind: Kind
    record: CallObject | ChatObject
    doc: bytes  # the record's JSON, serialised once: stored, and the answer's body
    meta_json: str
    now: datetime
    job: jobs.JobSpec | None
    claims: Claims
    answer: Answer
    key: Once | None
    campaign: CampaignLink | None = None
    due_ms: int = 0  # when a call of a campaign is due


@dataclass(frozen=True)
class Claims:
    agent_id: int = 0
    agent_capacity: int | None = None
    consumer_number: str | None = None
    session_ttl_ms: int = 0
    # The sorted set a call joins as it is stored, and its score there: a queued call waits in
    # its menu from the start (scored by creation), a scheduled one sits in the tenant's
    # scheduled set (scored by scheduled_at) until it fires.
    joins: tuple[Key, int] | None = None
    # The company DNC list and contact limit a call is checked against as it is stored.
    guard: Guard | None = None


class RecordStore:
    """What a tenant's calls and chats share: creation with their first job in one atomic step
    (create_record.lua), reads and lists. CallStore and ChatStore are its two kinds."""

    kind: ClassVar[Kind]

    def __init__(
        self, redis: Redis, scripts: Scripts, tenant: Tenant, archive: Archive | None = None
    ) -> None:
        self._redis = redis
        self._scripts = scripts
        self._archive = archive  # None: no history configured, Redis holds every record
        self.tenant = tenant
        self.keys = keys.TenantKeys(tenant.subdomain)

    async def recall(self, key: Once | None) -> Answer | None:
        """The first answer given under a client's Idempotency-Key, if any."""
        return await idempotency.recall(self._redis, key)

    async def recall_many(self, keys: list[Once]) -> list[list[bytes | None]]:
        return await idempotency.recall_many(self._redis, keys)

    def _record_key(self, record_id: int) -> Key:
        return self.keys.call(record_id) if self.kind == "call" else self.keys.chat(record_id)

    async def document(self, record_id: int) -> bytes | None:
        """The record's object as stored, live in Redis or archived in PostgreSQL."""
        raw: bytes | None = await self._redis.hget(  # type: ignore[misc]
            self._record_key(record_id), "doc"
        )
        if raw is None and self._archive is not None:
            raw = await self._archive.document(self.kind, self.tenant.subdomain, record_id)
        return raw

    async def page(self, query: ListQuery) -> Page:
        """One page of the list, live and archived records merged in id order (which is
        creation order), each once (store/archiving.py says how)."""
        offset = (query.page - 1) * query.per
        if self._archive is None:
            live = await self._live(query, offset, query.per)
            return Page(total=live.total, items=await self._documents(live.ids))
        live = await self._live(query, 0, offset + query.per)
        tenant = self.tenant.subdomain
        archived_total = await self._archive.count(self.kind, tenant, query, live.visible)
        archived: list[int] = []
        if archived_total:
            archived = await self._archive.ids(
                self.kind, tenant, query, live.visible, offset + query.per
            )
        ids = sorted({*live.ids, *archived}, reverse=query.descending)[offset : offset + query.per]
        return Page(total=live.total + archived_total, items=await self._documents(ids))

    async def stream(self, query: ListQuery, size: int = 1000) -> AsyncIterator[list[bytes]]:
        """Every record of the list in its order (the page and per of `query` aside), live and
        archived, each once, `size` at a time: an export holds one batch of objects, and the
        ids of the live records (as many as Redis holds), whatever the list's length."""
        archive = self._archive

        async def archived(visible: Visible, after: int | None) -> list[tuple[int, bytes]]:
            assert archive is not None
            return await archive.batch(
                self.kind, self.tenant.subdomain, query, visible, size, after
            )

        async def live(ids: list[int]) -> list[bytes | None]:
            return await self._documents(ids, keep_gaps=True)

        merged = self.merged(query, size, live, archived if archive is not None else None)
        async for batch in merged:
            yield batch

    async def merged(
        self,
        query: ListQuery,
        size: int,
        read_live: Callable[[list[int]], Awaitable[list[T | None]]],
        read_archived: Callable[[Visible, int | None], Awaitable[list[tuple[int, T]]]] | None,
    ) -> AsyncIterator[list[T]]:
        """`stream`'s merge, for what `read_live` reads of live ids (None: gone from both
        sides since) and `read_archived` of the archive's next `size` rows after an id (keyset
        pages, in the list's order), each record once, `size` at a time."""
        live = await self._live(query, 0, -1)
        live_ids = collections.deque(live.ids)
        archived: collections.deque[tuple[int, T]] = collections.deque()
        more = read_archived is not None
        after: int | None = None

        def first(a: int, b: int) -> bool:
            return a > b if query.descending else a < b

        while live_ids or archived or more:
            if more and not archived:
                assert read_archived is not None
                rows = await read_archived(live.visible, after)
                archived.extend(rows)
                more = len(rows) == size
                after = rows[-1][0] if rows else after
            picked: list[tuple[int, T | None]] = []  # an archived row's item, None: a live id
            while len(picked) < size and (live_ids or archived):
                if more and not archived:
                    break  # the archive's next rows may come before the next live id
                if archived and (not live_ids or first(archived[0][0], live_ids[0])):
                    picked.append(archived.popleft())
                else:
                    picked.append((live_ids.popleft(), None))
            wanted = [record_id for record_id, item in picked if item is None]
            read = iter(await read_live(wanted) if wanted else [])
            batch = [item if item is not None else next(read) for _, item in picked]
            if found := [item for item in batch if item is not None]:
                yield found

    async def live(
        self, query: ListQuery, pick: Callable[[bytes], T | None], size: int = 1000
    ) -> tuple[Visible, list[T]]:
        """A report's Redis half: what `pick` keeps of the object of each live record created
        in the query's range (its other filters are `pick`'s to apply), and which archived
        rows may count beside them. The ids are read as a list reads them, in one MULTI with
        the archiving set and pass counter, so that a record moving meanwhile counts once; the
        objects `size` at a time (one archived since is read from PostgreSQL), so that only
        what `pick` keeps of them is held."""
        since, until = query.created_from_ms, query.created_to_ms
        campaign = query.campaign_id
        scope = ListQuery(created_from_ms=since, created_to_ms=until, campaign_id=campaign)
        live = await self._live(scope, 0, -1)
        kept: list[T] = []
        for start in range(0, len(live.ids), size):
            for doc in await self._documents(live.ids[start : start + size]):
                picked = pick(doc)
                if picked is not None:
                    kept.append(picked)
        return live.visible, kept

    async def _live(self, query: ListQuery, offset: int, count: int) -> Live:
        """The Redis half of a list read, in one MULTI: how many live records match, the ids
        from `offset` on (at most `count`; -1: all), and what a PostgreSQL read may show
        beside them."""
        index = self.keys.calls if self.kind == "call" else self.keys.chats
        filters: list[str] = []
        if query.status is not None:
            by_status = (
                self.keys.calls_by_status if self.kind == "call" else self.keys.chats_by_status
            )
            filters.append(by_status(query.status))
        if query.type is not None:
            filters.append(self._type_index(query.type))
        if query.campaign_id is not None and self.kind == "call":
            filters.append(self.keys.campaign_calls(query.campaign_id))
        if len(filters) == 1:  # one index alone is read as it is, not copied first
            index, filters = Key(filters[0]), []
        low = query.created_from_ms if query.created_from_ms is not None else -math.inf
        high = query.created_to_ms if query.created_to_ms is not None else math.inf
        scratch = self.keys.scratch(uuid.uuid4().hex) if filters else None
        async with self._redis.pipeline(transaction=True) as pipe:
            if scratch is not None:
                pipe.zinterstore(scratch, filters, aggregate="MIN")
            pipe.zcount(scratch or index, low, high)
            pipe.zrange(
                scratch or index,
                high if query.descending else low,  # type: ignore[arg-type]
                low if query.descending else high,  # type: ignore[arg-type]
                desc=query.descending,
                byscore=True,
                offset=offset,
                num=count,  # -1: all
            )
            if scratch is not None:
                pipe.delete(scratch)
            pipe.smembers(self.keys.archiving(self.kind))
            pipe.get(self.keys.archive_seq)
            replies = await pipe.execute()
        if scratch is not None:
            replies = [replies[1], replies[2], *replies[4:]]
        total, ids, moving, seq = replies
        return Live(
            total=total,
            ids=[int(raw) for raw in ids],
            visible=Visible(seq=int(seq or 0), moving=frozenset(int(raw) for raw in moving)),
        )

    def _type_index(self, record_type: str) -> Key:
        if self.kind == "call":
            return self.keys.calls_by_type(CallType(record_type))
        return self.keys.chats_by_type(ChatType(record_type))

    @overload
    async def _documents(self, ids: Sequence[int]) -> list[bytes]: ...
    @overload
    async def _documents(
        self, ids: Sequence[int], keep_gaps: Literal[True]
    ) -> list[bytes | None]: ...

    async def _documents(
        self, ids: Sequence[int], keep_gaps: bool = False
    ) -> list[bytes] | list[bytes | None]:
        """The objects of `ids`, in order: from Redis, else (archived since the ids were
        read) from PostgreSQL; one gone from both is left out (None with `keep_gaps`)."""
        if not ids:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for record_id in ids:
                pipe.hget(self._record_key(record_id), "doc")
            docs = await pipe.execute()
        gone = [record_id for record_id, doc in zip(ids, docs, strict=True) if doc is None]
        if gone and self._archive is not None:
            archived = await self._archive.documents(self.kind, self.tenant.subdomain, gone)
            docs = [
                doc if doc is not None else archived.get(record_id)
                for record_id, doc in zip(ids, docs, strict=True)
            ]
        if keep_gaps:
            return list(docs)
        return [doc for doc in docs if doc is not None]

    async def _ids(self, allocation: Allocation, bucket: Bucket | None) -> Ids:
        """The ids of one new record (after a token of `bucket`)."""
        [raw] = await self._scripts.run(self._allocation([allocation], bucket))
        return ids_of(raw)

    def _allocation(
        self, allocations: Sequence[Allocation], bucket: Bucket | None = None
    ) -> AllocateIds:
        """allocate_ids.lua for the ids of new records of one kind, in order (after a token
        of `bucket`)."""
        [kind] = {kind for kind, _, _ in allocations}
        return AllocateIds(
            record_seq=self.keys.sequence(kind),
            participant_seq=self.keys.sequence("participant"),
            end_user_seq=self.keys.sequence("end_user"),
            end_users=self.keys.end_users,
            records=[
                {"participants": participants, **({"number": number} if number else {})}
                for _, participants, number in allocations
            ],
            bucket=bucket,
        )

    async def _create(self, creation: Creation) -> Answer:
        """Runs create_record.lua for one creation: the client's answer (raises refusals)."""
        script = self._record_script(creation)
        try:
            await self._scripts.run(script)
        except Refused as refused:
            return refused_answer(creation, refused)
        return creation.answer

    def _record_script(self, creation: Creation) -> CreateRecord:
        """create_record.lua for one creation."""
        record, claims, key, campaign = (
            creation.record,
            creation.claims,
            creation.key,
            creation.campaign,
        )
        now_ms = clock.to_ms(creation.now)
        if isinstance(record, CallObject):
            indexes = (
                self.keys.calls,
                self.keys.calls_by_status(record.status),
                self.keys.calls_by_type(record.call_type),  # type: ignore[arg-type]
            )
        else:
            indexes = (
                self.keys.chats,
                self.keys.chats_by_status(record.status),
                self.keys.chats_by_type(record.chat_type),  # type: ignore[arg-type]
            )
        session = claims.consumer_number is not None
        held = clock.parse_iso(record.held_until) if isinstance(record, CallObject) else None
        held_until = clock.to_ms(held) if held is not None else None
        return CreateRecord(
            record=self._record_key(record.id),
            all=indexes[0],
            by_status=indexes[1],
            by_type=indexes[2],
            jobs=Jobs.of([creation.job], now_ms) if creation.job else NO_JOBS,
            doc=creation.doc.decode(),
            meta=creation.meta_json,
            status=record.status,
            score=now_ms,
            id=record.id,
            lang=record.lang if isinstance(record, CallObject) else None,
            agent=self.keys.agent(claims.agent_id) if claims.agent_capacity is not None else None,
            capacity=claims.agent_capacity,
            session=self.keys.sms_session(claims.consumer_number or "") if session else None,
            do_not_contact=self.keys.do_not_contact if session else None,
            number=claims.consumer_number,
            session_ttl=claims.session_ttl_ms if session else None,
            joins=claims.joins[0] if claims.joins else None,
            joins_score=claims.joins[1] if claims.joins else None,
            once=key.redis_key if key else None,
            once_answer=_once_answer(key, creation) if key else None,
            campaign=campaign.key if campaign else None,
            campaign_due=campaign.due_key if campaign else None,
            campaign_calls=campaign.calls_key if campaign else None,
            guard=claims.guard,
            held=self.keys.held if held_until is not None else None,
            held_until=held_until,
            due=creation.due_ms if campaign else None,
        )


def _once_answer(key: Once, creation: Creation) -> dict[str, Any]:
    """What create_record.lua stores under the client's key. The body is left out when it is
    the record itself (a 201 or 200 answer), which the script then stores: the record's JSON
    is the bulk of the script's argument, and it would be there twice."""
    answer = {"fp": key.fingerprint, "ttl": key.ttl_ms, "status": creation.answer.status}
    if creation.answer.body != creation.doc:
        answer["body"] = creation.answer.body.decode()
    return answer


Allocation = tuple[Kind, int, str | None]  # kind, participants to number, anonymous number


def ids_of(raw: tuple[int, int, int, int]) -> Ids:
    record_id, first_participant, end_user, created_ms = raw
    return Ids(
        record=record_id,
        first_participant=first_participant,
        end_user=end_user or None,
        created=clock.from_ms(created_ms),
    )


def refused_answer(creation: Creation, refused: Refused) -> Answer:
    """What the client is answered when create_record.lua stored nothing (raises the claims'
    refusals): a concurrent duplicate's first answer, replayed."""
    if refused.code == "replay":
        assert creation.key is not None
        detail = refused.detail
        stored = [str(detail[name]).encode() for name in ("fp", "status", "body")]
        return idempotency.replay(creation.key, stored)
    if refused.code == "campaign_cancelled":
        raise cancelled()
    if refused.code == "contact_limit":
        detail = refused.detail
        raise compliance.over_contact_limit(int(detail["limit"]), int(detail["retry_at"]))
    raise InvalidRequest(_CLAIM_ERRORS[refused.code])


def settled(creation: Creation, script: CreateRecord, outcome: Any) -> Answer | DispatchError:
    """The answer to one creation of a batch, its refusal returned rather than raised; an
    error of Redis itself for this one script (not the connection: that fails the whole
    batch) is answered as a 503 for this item alone."""
    if isinstance(outcome, ResponseError):
        return ServiceUnavailable("Service unavailable")
    try:
        script.decode(outcome)
    except Refused as refused:
        try:
            return refused_answer(creation, refused)
        except DispatchError as error:
            return error
    return creation.answer
