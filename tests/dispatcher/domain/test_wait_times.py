"""The wait estimator on queues written out by hand: a free agent answers at once, a backlog
waits its position over the rate learnt from busy gaps only, a lull teaches no rate, and a
queue without that history falls back on the waits it shows."""

from __future__ import annotations

import pytest

from dispatcher.domain.wait_times import RECENT_MS, QueueNow, estimate, service_rate

NOW = 10_000_000


def queue(
    waiting: int = 0,
    longest_wait_s: float = 0.0,
    logged_in: int = 1,
    free_slots: int = 0,
    recent: list[tuple[int, int]] | None = None,
) -> QueueNow:
    available = free_slots  # one slot each
    return QueueNow(NOW, waiting, longest_wait_s, logged_in, available, free_slots, 0, recent or [])


# Four assignments 2 s apart, each call having waited longer than its gap: 0.5 calls a second.
BACKLOG = [(NOW - 1_000, 6_000), (NOW - 3_000, 5_000), (NOW - 5_000, 4_000), (NOW - 7_000, 0)]


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        (queue(logged_in=0, waiting=3), None),  # nobody to answer
        (queue(free_slots=2, waiting=1), 0),  # a free agent takes the new call at once
        (queue(free_slots=1, waiting=1, recent=BACKLOG), 2),  # one ahead of it: 1 / 0.5
        (queue(waiting=0, recent=BACKLOG), 2),  # every agent busy: the next to free up
        (queue(waiting=4, recent=BACKLOG), 10),  # (4 + 1) / 0.5
        (queue(waiting=2, longest_wait_s=7.4), 7),  # no rate yet: the longest wait so far
        (queue(waiting=1, longest_wait_s=1, recent=[(NOW - 500, 4_000)]), 4),  # or recent waits
    ],
)
def test_estimates(case: QueueNow, expected: int | None) -> None:
    assert estimate(case) == expected


def test_a_gap_the_later_call_did_not_wait_through_is_a_lull_not_a_rate() -> None:
    # The second call arrived after the first was taken: the 60 s between them were idle.
    assert service_rate([(NOW, 1_000), (NOW - 60_000, 0)], NOW) is None


def test_assignments_older_than_the_window_are_left_out() -> None:
    old = [(NOW - RECENT_MS - 1_000, 9_000), (NOW - RECENT_MS - 2_000, 0)]
    assert service_rate(old, NOW) is None
    assert service_rate([(NOW, 5_000), (NOW - 4_000, 0), *old], NOW) == 0.25
