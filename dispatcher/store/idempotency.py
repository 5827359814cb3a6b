"""Idempotent creates: a request retried with the same `Idempotency-Key` and body replays the
first answer instead of creating again; the same key with another body is refused.

A batch item's `client_token` is the same mechanism: the item's key among the tenant's keys of
POST /calls (so an item and a POST /calls with that Idempotency-Key and the same body are one
request), its fingerprint taken without the token itself.

The first answer is written by the same Lua step that stores the record (create_record.lua),
so a crash can never leave a record without its answer or an answer without its record, and
two concurrent duplicates serialize there: the second finds the first's answer and writes
nothing."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson
from redis.asyncio import Redis

from dispatcher.domain.errors import Conflict, InvalidRequest
from dispatcher.store.keys import Key, TenantKeys

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
BAD_KEY = f"{HEADER} must be 1 to {MAX_KEY_LENGTH} printable ASCII characters"
KEY_REUSED = f"{HEADER} was already used with a different request body"
TOKEN = "client_token"
BAD_TOKEN = f"{TOKEN} must be 1 to {MAX_KEY_LENGTH} printable ASCII characters"
TOKEN_REUSED = f"{TOKEN} was already used with a different call"
REPLAYED_HEADER = "Idempotent-Replayed"
STORED = ["fp", "status", "body"]  # fields of a stored first answer


@dataclass(frozen=True)
class Answer:
    """What a create answered: its HTTP status and JSON body (bytes, sent as stored)."""

    status: int
    body: bytes
    replayed: bool = False
    record_id: int | None = None  # the call or chat created (not stored: for the logs)


@dataclass(frozen=True)
class Once:
    """One client key of one endpoint of a tenant, and the fingerprint of the request body."""

    redis_key: Key
    fingerprint: str
    ttl_ms: int
    reused: str = KEY_REUSED  # the Conflict's message when another body used the key


def once(
    keys: TenantKeys, scope: str, client_key: str | None, body: dict[str, Any], ttl_s: int
) -> Once | None:
    """None without a key. The key is hashed into the Redis key name (bounded length, any
    bytes); the body is fingerprinted in canonical form (key order and spacing ignored)."""
    if client_key is None:
        return None
    if not _well_formed(client_key):
        raise InvalidRequest(BAD_KEY)
    return _once(keys, scope, client_key, body, ttl_s, KEY_REUSED)


def once_for_item(
    keys: TenantKeys, scope: str, item: dict[str, Any], ttl_s: int, campaign_id: int | None
) -> Once | None:
    """The `client_token` of a batch item, as its Idempotency-Key: fingerprinted without the
    token, and with the campaign it joins (the same token for another campaign is refused)."""
    if TOKEN not in item:
        return None
    token = item[TOKEN]
    if not isinstance(token, str) or not _well_formed(token):
        raise InvalidRequest(BAD_TOKEN)
    body = {name: value for name, value in item.items() if name != TOKEN}
    if campaign_id is not None:
        body = {"campaign": campaign_id, "call": body}
    return _once(keys, scope, token, body, ttl_s, TOKEN_REUSED)


def internal_once(keys: TenantKeys, scope: str, name: str, ttl_s: int) -> Once:
    """A key the product itself makes a record under, once (a redial per failed call): in a
    scope of its own, which no client's key can reach."""
    return _once(keys, scope, name, {}, ttl_s, KEY_REUSED)


def _well_formed(client_key: str) -> bool:
    return 0 < len(client_key) <= MAX_KEY_LENGTH and all(" " <= c <= "~" for c in client_key)


def _once(
    keys: TenantKeys, scope: str, client_key: str, body: dict[str, Any], ttl_s: int, reused: str
) -> Once:
    digest = hashlib.sha256(client_key.encode()).hexdigest()
    fingerprint = hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return Once(keys.idempotency(scope, digest), fingerprint, ttl_s * 1000, reused)


async def recall(redis: Redis, key: Once | None) -> Answer | None:
    """The first answer given for this key, if any (raises Conflict for another body)."""
    if key is None:
        return None
    stored = await redis.hmget(key.redis_key, STORED)  # type: ignore[misc]
    return replay(key, stored) if stored[0] is not None else None


async def recall_many(redis: Redis, keys: list[Once]) -> list[list[bytes | None]]:
    """What is stored under each key (as `replay` reads it): one pipelined round trip."""
    async with redis.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.hmget(key.redis_key, STORED)
        stored: list[list[bytes | None]] = await pipe.execute()
    return stored


def replay(key: Once, stored: list[bytes]) -> Answer:
    fingerprint, status, body = stored
    if fingerprint.decode() != key.fingerprint:
        raise Conflict(key.reused)
    return Answer(status=int(status), body=body, replayed=True)
