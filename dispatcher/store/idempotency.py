"""Idempotent creates: a request retried with the same `Idempotency-Key` and body replays the
first answer instead of creating again; the same key with another body is refused.

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
from dispatcher.store.keys import TenantKeys

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
BAD_KEY = f"{HEADER} must be 1 to {MAX_KEY_LENGTH} printable ASCII characters"
KEY_REUSED = f"{HEADER} was already used with a different request body"
REPLAYED_HEADER = "Idempotent-Replayed"


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

    redis_key: str
    fingerprint: str
    ttl_ms: int

    def script_args(self) -> list[str | int]:
        return [self.fingerprint, self.ttl_ms]


def once(
    keys: TenantKeys, scope: str, client_key: str | None, body: dict[str, Any], ttl_s: int
) -> Once | None:
    """None without a key. The key is hashed into the Redis key name (bounded length, any
    bytes); the body is fingerprinted in canonical form (key order and spacing ignored)."""
    if client_key is None:
        return None
    if not 0 < len(client_key) <= MAX_KEY_LENGTH or not all(
        " " <= char <= "~" for char in client_key
    ):
        raise InvalidRequest(BAD_KEY)
    digest = hashlib.sha256(client_key.encode()).hexdigest()
    fingerprint = hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return Once(keys.idempotency(scope, digest), fingerprint, ttl_s * 1000)


async def recall(redis: Redis, key: Once | None) -> Answer | None:
    """The first answer given for this key, if any (raises Conflict for another body)."""
    if key is None:
        return None
    stored = await redis.hmget(key.redis_key, ["fp", "status", "body"])  # type: ignore[misc]
    return replay(key, stored) if stored[0] is not None else None


def replay(key: Once, stored: list[bytes]) -> Answer:
    fingerprint, status, body = stored
    if fingerprint.decode() != key.fingerprint:
        raise Conflict(KEY_REUSED)
    return Answer(status=int(status), body=body, replayed=True)
