"""The layout of the product's keys in Redis, and the upgrade of a Redis written by an older
release. Layout 2 (issue 15) put every key of a tenant under the Redis Cluster hash tag of its
subdomain, `dsp:t:{<subdomain>}:`, where layout 1 wrote `dsp:t:<subdomain>:`, and a call of a
campaign no longer names its campaign's key in its hash (`campaign_key`: its meta has the id).

`dispatcher migrate` (and `dispatcher up`, before it serves) renames a layout-1 Redis in place:
every key of every tenant, its expiry kept, then the layout is written down. It is idempotent,
and a second run after an interrupted one finishes the job. ARQ's keys (`arq:*`), the tenants'
hash, the workers' heartbeats and the refused-credentials buckets did not change. The ingress
and the workers of the older release must be stopped first: they would go on writing layout-1
keys. `serve` and `worker` refuse to start on a Redis that still holds layout-1 tenants.

Layout 3 (issue 17) added each tenant's ended sets, the archiver's work (store/archiving.py):
the migration puts every call and chat that had already ended in them, as if it had ended at
the migration, so that it is archived one hot retention later.

Layout 4 (issue 18) keeps each tenant's SMS opt-outs in a sorted set, number -> ms it opted
out, where a set held the numbers alone: the migration scores every number with the moment
of the migration, the first time it is known on the list.

Layout 5 (issue 19) gives each campaign a list index of its calls (`campaign:<id>:calls`,
GET /calls?campaign_id= and the campaign's results): the migration indexes every call still in
Redis whose meta names a campaign, at its creation time (the tenant's index's score). Their
objects stay as they were, without the `campaign_id` key the calls stored since carry."""

from __future__ import annotations

from collections.abc import Callable

import orjson
from redis.asyncio import Redis
from redis.exceptions import ResponseError, WatchError

from dispatcher.domain import clock
from dispatcher.domain.statuses import TERMINAL_CALL_STATUSES, TERMINAL_CHAT_STATUSES
from dispatcher.store import keys

CURRENT = 5
RENAMES_PER_ROUND_TRIP = 500


class OutdatedLayout(RuntimeError):
    """Redis holds keys of an older release's layout."""


async def version(redis: Redis) -> int:
    """The layout Redis holds: as written down, else 1 when any tenant still has a layout-1
    directory key, else (an empty Redis, or one of tenants stored by this release) CURRENT."""
    written = await redis.get(keys.LAYOUT)
    if written is not None:
        return int(written)
    return 1 if await _old_tenants(redis) else CURRENT


async def refuse_outdated(redis: Redis) -> None:
    """Raises OutdatedLayout when Redis needs `dispatcher migrate` first; writes the layout
    down when it does not."""
    found = await version(redis)
    if found < CURRENT:
        raise OutdatedLayout(
            f"Redis holds keys of layout {found}, written by an older release; stop its "
            f"processes and run `dispatcher migrate` (this release uses layout {CURRENT})"
        )
    await redis.set(keys.LAYOUT, CURRENT, nx=True)


async def migrate(redis: Redis, on_renamed: Callable[[int], None] | None = None) -> int:
    """Brings a layout-1 Redis to the current layout; returns how many keys it renamed."""
    renamed = 0
    found = await version(redis)
    if found < 2:
        for subdomain in await _subdomains(redis):
            renamed += await _rename_tenant(redis, subdomain, on_renamed)
    if found < 3:
        now_ms = clock.to_ms(clock.now())
        for subdomain in await _subdomains(redis):
            await _index_ended(redis, keys.TenantKeys(subdomain), now_ms)
    if found < 4:
        now_ms = clock.to_ms(clock.now())
        for subdomain in await _subdomains(redis):
            await _score_opt_outs(redis, keys.TenantKeys(subdomain), now_ms)
    if found < 5:
        for subdomain in await _subdomains(redis):
            await _index_campaign_calls(redis, keys.TenantKeys(subdomain))
    await redis.set(keys.LAYOUT, CURRENT)
    return renamed


async def _index_ended(redis: Redis, tenant: keys.TenantKeys, now_ms: int) -> None:
    """Layout 3: the records that had ended join their ended set (NX: one that ended since
    keeps its own time), in pipelined batches as ZSCAN reads each terminal status index."""
    indexes = [("call", tenant.calls_by_status(status)) for status in TERMINAL_CALL_STATUSES]
    indexes += [("chat", tenant.chats_by_status(status)) for status in TERMINAL_CHAT_STATUSES]
    for kind, index in indexes:
        batch: list[bytes] = []
        async for member, _ in redis.zscan_iter(index, count=1000):
            batch.append(member)
            if len(batch) == RENAMES_PER_ROUND_TRIP:
                await redis.zadd(tenant.ended(kind), dict.fromkeys(batch, now_ms), nx=True)
                batch = []
        if batch:
            await redis.zadd(tenant.ended(kind), dict.fromkeys(batch, now_ms), nx=True)


async def _index_campaign_calls(redis: Redis, tenant: keys.TenantKeys) -> None:
    """Layout 5: each call of a campaign joins its campaign's list index, read from its meta
    in pipelined batches as ZSCAN reads the tenant's index of calls (ZADD of a member already
    there, a call stored since, changes nothing but its equal score)."""
    batch: list[tuple[bytes, float]] = []
    async for member, score in redis.zscan_iter(tenant.calls, count=1000):
        batch.append((member, score))
        if len(batch) == RENAMES_PER_ROUND_TRIP:
            await _index_batch(redis, tenant, batch)
            batch = []
    await _index_batch(redis, tenant, batch)


async def _index_batch(
    redis: Redis, tenant: keys.TenantKeys, batch: list[tuple[bytes, float]]
) -> None:
    if not batch:
        return
    async with redis.pipeline(transaction=False) as pipe:
        for member, _ in batch:
            pipe.hget(tenant.call(int(member)), "meta")
        metas = await pipe.execute()
    async with redis.pipeline(transaction=False) as pipe:
        for (member, score), meta in zip(batch, metas, strict=True):
            campaign_id = orjson.loads(meta).get("campaign_id") if meta else None
            if campaign_id is not None:
                pipe.zadd(tenant.campaign_calls(int(campaign_id)), {member: score})
        await pipe.execute()


async def _score_opt_outs(redis: Redis, tenant: keys.TenantKeys, now_ms: int) -> None:
    """Layout 4: the opt-out set is copied into a sorted set beside it, in batches as SSCAN
    reads it, and RENAME puts that in its place: a reader sees the whole set or the whole
    sorted set. A number added meanwhile (an older process not stopped) breaks the WATCH and
    the copy starts again; a key that is no set (converted, or none) is left alone."""
    opt_outs = tenant.do_not_contact
    copy = keys.Key(opt_outs + ":scoring")
    async with redis.pipeline(transaction=True) as pipe:
        while True:
            try:
                await pipe.watch(opt_outs)
                if await pipe.type(opt_outs) != b"set":
                    return  # leaving the pipeline unwatches
                await pipe.delete(copy)  # what an interrupted run left
                batch: list[bytes] = []
                async for member in pipe.sscan_iter(opt_outs, count=1000):
                    batch.append(member)
                    if len(batch) == RENAMES_PER_ROUND_TRIP:
                        await pipe.zadd(copy, dict.fromkeys(batch, now_ms))
                        batch = []
                if batch:
                    await pipe.zadd(copy, dict.fromkeys(batch, now_ms))
                pipe.multi()  # type: ignore[no-untyped-call]
                pipe.rename(copy, opt_outs)
                await pipe.execute()
                return
            except WatchError:
                continue


async def _subdomains(redis: Redis) -> list[str]:
    return sorted(raw.decode() for raw in await redis.hkeys(keys.TENANTS))  # type: ignore[misc]


async def _old_tenants(redis: Redis) -> list[str]:
    subdomains = await _subdomains(redis)
    async with redis.pipeline(transaction=False) as pipe:
        for subdomain in subdomains:
            pipe.exists(_old_prefix(subdomain) + "directory")
        found = await pipe.execute()
    return [subdomain for subdomain, there in zip(subdomains, found, strict=True) if there]


def _old_prefix(subdomain: str) -> str:
    return f"{keys.ROOT}:t:{subdomain}:"


def _glob_escaped(text: str) -> str:
    return "".join(f"\\{char}" if char in "*?[]\\" else char for char in text)


async def _rename_tenant(
    redis: Redis, subdomain: str, on_renamed: Callable[[int], None] | None
) -> int:
    """RENAME keeps each key's expiry; a call hash loses the `campaign_key` field layout 2
    reads no more. Keys are renamed in pipelined batches as SCAN finds them."""
    old, new = _old_prefix(subdomain), keys.TenantKeys(subdomain).prefix
    renamed = 0
    batch: list[bytes] = []
    async for raw in redis.scan_iter(match=_glob_escaped(old) + "*", count=1000):
        batch.append(raw)
        if len(batch) == RENAMES_PER_ROUND_TRIP:
            renamed += await _rename(redis, batch, old, new, on_renamed)
            batch = []
    return renamed + await _rename(redis, batch, old, new, on_renamed)


async def _rename(
    redis: Redis,
    batch: list[bytes],
    old: str,
    new: str,
    on_renamed: Callable[[int], None] | None,
) -> int:
    if not batch:
        return 0
    async with redis.pipeline(transaction=False) as pipe:
        for raw in batch:
            rest = raw.decode()[len(old) :]
            pipe.rename(raw, new + rest)
            if _is_call_hash(rest):
                pipe.hdel(new + rest, "campaign_key")
        replies = await pipe.execute(raise_on_error=False)
    for reply in replies:  # SCAN may name a key twice: its second RENAME finds no such key
        if isinstance(reply, ResponseError) and "no such key" not in str(reply):
            raise reply
    if on_renamed is not None:
        on_renamed(len(batch))
    return len(batch)


def _is_call_hash(rest: str) -> bool:
    kind, _, record = rest.partition(":")
    return kind == "call" and record.isdigit()
