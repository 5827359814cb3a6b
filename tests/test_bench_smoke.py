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


def test_the_bench_archive_smoke_run_archives_every_call_it_ends(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Every call the part created and ended is a row in PostgreSQL and gone from Redis (the
    part reports a problem, and exits 1, otherwise); each figure of the part is printed."""
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "archive"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    figures = [
        "archiving: 2,000 ended calls drained by 1 worker",
        "rows archived/s ÷ calls created/s",
        "Redis bytes per ended call",
        "GET /calls/:id, live (1,050 ended calls in Redis)",
        "GET /calls/:id, archived",
        "GET /calls?per=100&page=11 (50 live, 50 archived)",
        "PostgreSQL bytes per archived call",
    ]
    table = done.stdout.split("\n| figure |", 1)[1]
    assert [figure for figure in figures if figure not in table] == []
    # at a tenth, half and all of the calls created
    assert len(re.findall(r"\| +Redis used_memory at [\d,]+ created \|", table)) == 3
    drift = done.stdout.split("\nDrift figures", 1)[1].splitlines()[1:]
    with capsys.disabled():
        print("\nbench --smoke archive drift figures (no timing is asserted):")
        print("\n".join(drift))


def test_the_bench_dnc_smoke_run_refuses_every_listed_number(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Every call of the part to a number on the company DNC list is refused with the
    platform's text and none is stored, every other is created (the part reports a problem,
    and exits 1, otherwise); each figure of the part is printed."""
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "dnc"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    table = done.stdout.split("\n| figure |", 1)[1]
    figures = [
        "DNC list: 2,000 numbers added through POST /apps/api/v1/outbound_dialer/dnc (200",
        "Redis bytes per DNC entry",
        "MEMORY USAGE of the two keys, over the entries",
        "2,000 numbers listed, against an empty list",
        "the same with the check off (dnc_call_types [])",
        "per request, listed",
        "per request, empty",
        "per request, off",
    ]
    assert [figure for figure in figures if figure not in table] == []
    assert re.search(r"Redis bytes per DNC entry [^|]*\| [\d,]+ B", table)
    refused = re.search(r"\| [\d,]+/s; ([\d,]+) refused, 0 stored \|", table)
    assert refused is not None and int(refused.group(1).replace(",", "")) > 0
    drift = done.stdout.split("\nDrift figures", 1)[1].splitlines()[1:]
    with capsys.disabled():
        print("\nbench --smoke dnc drift figures (no timing is asserted):")
        print("\n".join(drift))
