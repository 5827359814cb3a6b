"""The one retry of carrier requests: which refusals are tried again, and after what pause."""

from __future__ import annotations

import pytest
from arq import Retry

from dispatcher.carriers.base import CarrierError
from workers.retries import retry_if_worth_it


@pytest.mark.parametrize(
    ("retry_after_s", "job_try", "tries", "defer_s"),
    [
        (0.0, 1, 3, 0.25),  # the backoff: 0.25 s, doubled each try
        (0.0, 2, 3, 0.5),
        (0.0, 4, 5, 2.0),
        (1.0, 1, 3, 1.0),  # the carrier's Retry-After when longer
        (10.0, 2, 3, 10.0),
        (0.3, 2, 3, 0.5),  # the backoff when longer
    ],
)
def test_a_busy_carrier_is_tried_again_after_the_longer_pause(
    retry_after_s: float, job_try: int, tries: int, defer_s: float
) -> None:
    refusal = CarrierError("Twilio refused the call: HTTP 503", retry_after_s=retry_after_s)
    with pytest.raises(Retry) as caught:
        retry_if_worth_it(refusal, job_try, tries, "dial")
    assert caught.value.defer_score == int(defer_s * 1000)
    assert caught.value.__cause__ is refusal


@pytest.mark.parametrize(
    ("retry_after_s", "job_try", "tries"),
    [
        (None, 1, 3),  # a refusal another try would not change
        (0.0, 3, 3),  # the last try
        (0.0, 5, 5),
        (1.0, 4, 3),
    ],
)
def test_a_refusal_or_the_last_try_is_not_tried_again(
    retry_after_s: float | None, job_try: int, tries: int
) -> None:
    refusal = CarrierError("no number to dial", retry_after_s=retry_after_s)
    outcome = "given up"
    try:
        retry_if_worth_it(refusal, job_try, tries, "dial")
    except Retry:
        outcome = "tried again"
    assert outcome == "given up"
