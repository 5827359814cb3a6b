"""The benchmarks still run and lose nothing (a tiny run; figures are not checked: timing is
for `make bench`, on a quiet machine, not for the test suite). The run's drift figures (ratios
and CPU per call) are printed into the test output, so every `make test` shows them."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.subprocess

ROOT = Path(__file__).resolve().parents[1]


def test_the_bench_smoke_run_loses_no_call_and_fires_none_twice(
    capsys: pytest.CaptureFixture[str],
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "e2e", "scheduled"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stderr == ""  # off a terminal: no progress bar
    lost = re.search(
        r"calls lost / assigned twice / agent slots left held: (.*) of (\d+)", done.stdout
    )
    assert lost is not None and lost.group(1) == "0 / 0 / 0" and int(lost.group(2)) >= 95
    assert "fired twice / never fired: 0 / 0 of 3,000" in done.stdout
    assert "| figure | measured | floor (same run) | target |" in done.stdout
    drift = done.stdout.split("\nDrift figures", 1)[1].splitlines()[1:]
    assert [line.split(":")[0] for line in drift] == [
        "- calls assigned/s ÷ bare ARQ no-op jobs/s",
        "- per call assigned (ingress and worker)",
        "- per fired call (workers)",
    ]
    with capsys.disabled():
        print("\nbench --smoke drift figures (no timing is asserted):")
        print("\n".join(drift))
