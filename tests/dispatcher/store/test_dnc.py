"""The company DNC list's store (store/dnc.py) against the real Redis: created and updated,
expiry to the millisecond whether swept or not, removal, pages with exact totals, the sweep."""

from __future__ import annotations

from redis.asyncio import Redis

from dispatcher.store.dnc import DncList, Entry
from dispatcher.store.keys import TenantKeys
from dispatcher.store.scripts import Scripts

A, B, C = "+14155550100", "+14155550101", "+14155550102"
T = 1_700_000_000_000  # ms
YEAR_9999 = 253_402_300_799_999  # the last ms datetime shows: 15 digits survive the round trip


def _list(redis: Redis, subdomain: str = "demo") -> DncList:
    return DncList(redis, Scripts.register(redis), subdomain)


async def test_created_then_updated_keeps_when_it_was_added(redis: Redis) -> None:
    dnc = _list(redis)
    assert await dnc.add([(A, None), (B, T + 5000)], T) == [True, True]
    assert await dnc.add([(A, T + 9000), (B, None), (C, None)], T + 10) == [False, False, True]
    assert await dnc.entry(A, T + 20) == Entry(A, T, T + 9000)
    assert await dnc.entry(B, T + 20) == Entry(B, T, None)  # no longer expires
    assert await dnc.entry(C, T + 20) == Entry(C, T + 10, None)


async def test_a_number_given_twice_in_one_add_is_created_then_updated(redis: Redis) -> None:
    dnc = _list(redis)
    assert await dnc.add([(A, T + 100), (A, None)], T) == [True, False]
    assert await dnc.entry(A, T + 200) == Entry(A, T, None)


async def test_an_entry_is_gone_from_its_expiry_on_exactly(redis: Redis) -> None:
    dnc = _list(redis)
    await dnc.add([(A, T + 1000)], T)
    assert await dnc.entry(A, T + 999) == Entry(A, T, T + 1000)
    assert await dnc.entry(A, T + 1000) is None  # not swept, and gone
    assert await dnc.page(1, 10, T + 1000) == (0, [])
    # Added again after it expired: created anew, at the new time.
    assert await dnc.add([(A, None)], T + 2000) == [True]
    assert await dnc.entry(A, T + 3000) == Entry(A, T + 2000, None)


async def test_the_furthest_expiry_keeps_every_millisecond(redis: Redis) -> None:
    dnc = _list(redis)
    await dnc.add([(A, YEAR_9999)], T)
    assert await dnc.entry(A, T) == Entry(A, T, YEAR_9999)
    assert await dnc.page(1, 1, T) == (1, [Entry(A, T, YEAR_9999)])


async def test_remove_says_which_were_on_the_list(redis: Redis) -> None:
    dnc = _list(redis)
    await dnc.add([(A, None), (B, T + 10)], T)
    assert await dnc.remove([A, B, C, A], T + 10) == [True, False, False, False]
    assert await redis.exists(TenantKeys("demo").dnc, TenantKeys("demo").dnc_expiring) == 0


async def test_pages_are_by_time_added_then_number_with_exact_totals(redis: Redis) -> None:
    dnc = _list(redis)
    await dnc.add([(C, None), (A, T + 50)], T)
    await dnc.add([(B, None)], T + 1)
    assert await dnc.page(1, 2, T + 2) == (3, [Entry(A, T, T + 50), Entry(C, T, None)])
    assert await dnc.page(2, 2, T + 2) == (3, [Entry(B, T + 1, None)])
    assert await dnc.page(1, 10, T + 50) == (2, [Entry(C, T, None), Entry(B, T + 1, None)])
    keys = TenantKeys("demo")
    assert await redis.zcard(keys.dnc) == 2  # the page removed the expired one
    assert await redis.zcard(keys.dnc_expiring) == 0


async def test_a_page_removes_a_backlog_of_expired_entries_in_steps(redis: Redis) -> None:
    dnc = _list(redis)
    numbers = [f"+1628555{n:04d}" for n in range(25_000)]  # 2.5 steps of PURGE_STEP
    await dnc.add([(number, T + 10) for number in numbers], T)
    await dnc.add([(A, None)], T + 1)
    assert await dnc.page(1, 5, T + 10) == (1, [Entry(A, T + 1, None)])
    assert await redis.zcard(TenantKeys("demo").dnc_expiring) == 0


async def test_the_sweep_removes_expired_entries_a_step_at_a_time(redis: Redis) -> None:
    dnc = _list(redis)
    await dnc.add([(A, T + 10), (B, T + 20), (C, T + 30)], T)
    assert await dnc.sweep(T + 20, most=1) == 1
    assert await dnc.sweep(T + 20, most=1) == 1
    assert await dnc.sweep(T + 20, most=1) == 0
    keys = TenantKeys("demo")
    assert await redis.zrange(keys.dnc, 0, -1) == [C.encode()]
    assert await redis.zrange(keys.dnc_expiring, 0, -1) == [C.encode()]


async def test_tenants_have_lists_of_their_own(redis: Redis) -> None:
    await _list(redis, "demo").add([(A, None)], T)
    assert await _list(redis, "other").entry(A, T) is None
    assert await _list(redis, "other").page(1, 10, T) == (0, [])
