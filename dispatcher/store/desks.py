"""One desk per agent: the newest event stream of an agent holds it, decided in Redis, so of
streams opened together exactly one wins (the last to write the desk key) and the rest end. A
stream on standby takes the desk only once no other holds it (`take_if_free`), told so by the
release of the desk before it."""

from __future__ import annotations

import secrets
from typing import Any

import orjson
from redis.asyncio import Redis

from dispatcher.store.keys import TenantKeys
from dispatcher.store.scripts import ReleaseDesk, Scripts

# The event an agent's stream announces when it takes the desk, and the one an older stream
# then sends its client before it ends (the console and simulated agents sign out on it).
SUPERSEDED = "superseded"
# Published when a stream frees the desk, for the streams on standby to take it.
RELEASED = "desk_released"


class Desk:
    """An agent stream's claim on the agent's desk."""

    def __init__(self, redis: Redis, scripts: Scripts, keys: TenantKeys, agent_id: int) -> None:
        self._redis = redis
        self._scripts = scripts
        self._key = keys.agent_desk(agent_id)
        self._channel = keys.agent_events(agent_id)
        self.id = secrets.token_hex(8)

    async def take(self) -> None:
        """Makes this desk the agent's and tells the other streams so. Call once subscribed
        to the agent's channel: then any desk taken later is announced to this one."""
        announcement = orjson.dumps({"event": SUPERSEDED, "data": {"desk": self.id}})
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(self._key, self.id)
            pipe.publish(self._channel, announcement)
            await pipe.execute()

    async def take_if_free(self) -> bool:
        """Takes the desk unless another stream holds it, announcing it as `take` does."""
        if not await self._redis.set(self._key, self.id, nx=True):
            return False
        # Not in one step with the key: a desk taken meanwhile wins all the same, as the
        # key names it (see lost_to).
        announcement = orjson.dumps({"event": SUPERSEDED, "data": {"desk": self.id}})
        await self._redis.publish(self._channel, announcement)
        return True

    async def lost_to(self, event: dict[str, Any]) -> bool:
        """Whether `event` announces another desk and this one is no longer the agent's.
        Announcements of streams opened together arrive in any order, but the key holds the
        last desk taken, so only the last stream to take it stays."""
        if event.get("event") != SUPERSEDED or event["data"].get("desk") == self.id:
            return False
        current: bytes | None = await self._redis.get(self._key)
        return current is None or current.decode() != self.id

    async def release(self) -> None:
        """Frees the desk key, unless a newer desk holds it; then a stream on standby may
        take it."""
        if await self._scripts.run(ReleaseDesk(self._key, self.id)):
            await self._redis.publish(self._channel, orjson.dumps({"event": RELEASED}))


def is_announcement(event: dict[str, Any]) -> bool:
    """A message between desks, never relayed to a stream's client."""
    return event.get("event") in (SUPERSEDED, RELEASED)


def is_release(event: dict[str, Any]) -> bool:
    return event.get("event") == RELEASED
