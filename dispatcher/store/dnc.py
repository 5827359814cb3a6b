"""A tenant's company do-not-call list in Redis: two sorted sets and nothing per entry beyond
them (store/keys.py's `dnc`: number -> ms it was added; `dnc_expiring`: number -> ms it expires,
for the entries that do). An entry is off the list from its expiry on, exactly, whether or not
the sweep (workers/dnc.py) has removed it yet: every read here and lib.lua's on_dnc, which the
scripts that start calls use, judge it so.

Adds and removes are one script each for the whole request (up to 10,000 numbers): a request
is applied whole, in order, or not at all. A list is read in the order entries were added, then
by number (Redis orders equal scores by member), oldest first."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from dispatcher.store.keys import TenantKeys
from dispatcher.store.scripts import DncAdd, DncPage, DncRemove, DncSweep, Scripts

# Expired entries one script removes at most (the sweep's step, and a page's before it reads):
# a script holds Redis for about a millisecond per thousand.
PURGE_STEP = 10_000


@dataclass(frozen=True)
class Entry:
    """One number on the list: when it was added and when it expires (ms; None: never)."""

    number: str
    created_ms: int
    expires_ms: int | None


class DncList:
    """Repository of one tenant's company DNC list."""

    def __init__(self, redis: Redis, scripts: Scripts, subdomain: str) -> None:
        self._redis = redis
        self._scripts = scripts
        self.keys = TenantKeys(subdomain)

    async def add(self, entries: list[tuple[str, int | None]], now_ms: int) -> list[bool]:
        """Adds (E.164 number, expires ms or None) in order; per entry whether it was created
        (it was not on the list, or had expired) rather than updated (its expiry replaced, its
        time of adding kept). A number given twice is created, then updated."""
        if not entries:
            return []
        flat: list[str | int] = []
        for number, expires_ms in entries:
            flat += [number, expires_ms or 0]
        return await self._scripts.run(DncAdd(self.keys.dnc, self.keys.dnc_expiring, flat, now_ms))

    async def remove(self, numbers: list[str], now_ms: int) -> list[bool]:
        """Takes E.164 numbers off the list; per number whether it was on it."""
        if not numbers:
            return []
        remove = DncRemove(self.keys.dnc, self.keys.dnc_expiring, numbers, now_ms)
        return await self._scripts.run(remove)

    async def entry(self, number: str, now_ms: int) -> Entry | None:
        """The number's entry, if it is on the list at `now_ms`."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zscore(self.keys.dnc, number)
            pipe.zscore(self.keys.dnc_expiring, number)
            created, expires = await pipe.execute()
        if created is None or (expires is not None and expires <= now_ms):
            return None
        return Entry(number, int(created), None if expires is None else int(expires))

    async def page(self, page: int, per: int, now_ms: int) -> tuple[int, list[Entry]]:
        """(entries on the list at `now_ms`, page `page` of `per` of them), expired entries
        removed first so that the count is exact (PURGE_STEP a script, as many steps as it
        takes)."""
        offset = (page - 1) * per
        ask = DncPage(self.keys.dnc, self.keys.dnc_expiring, now_ms, offset, per, PURGE_STEP)
        while (read := await self._scripts.run(ask)) is None:
            continue
        total, rows = read
        return total, [Entry(*row) for row in rows]

    async def sweep(self, now_ms: int, most: int = PURGE_STEP) -> int:
        """Removes up to `most` entries expired at `now_ms`; how many it removed."""
        sweep = DncSweep(self.keys.dnc, self.keys.dnc_expiring, now_ms, most)
        return await self._scripts.run(sweep)
