"""Progress bars: drawn on a terminal (also one that reports no size), nothing on a pipe
unless asked for, nothing on a terminal when asked not to."""

from __future__ import annotations

import os
import re
import sys

import pytest

from dispatcher import progress
from tests.terminal import drain, frames, pseudo_terminal

FINAL = re.compile(r"store: 100%\|█+\| 3/3 \[00:00<00:00, +[\d.]+tenant/s\]")


def _draw(monkeypatch: pytest.MonkeyPatch, fd: int, show: bool | None) -> None:
    stream = os.fdopen(os.dup(fd), "w", encoding="utf-8")
    monkeypatch.setattr(sys, "stderr", stream)
    with progress.bar("store", 3, unit="tenant", show=show) as bar:
        bar.update(3)
    stream.close()


@pytest.mark.parametrize("columns", [100, 0])
def test_a_terminal_gets_the_bar(monkeypatch: pytest.MonkeyPatch, columns: int) -> None:
    with pseudo_terminal(columns) as (terminal, reading):
        _draw(monkeypatch, terminal, show=None)
        drawn = frames(drain(reading))
    assert len(drawn) == 1 and FINAL.fullmatch(drawn[0]), drawn
    assert len(drawn[0]) <= (columns or progress.FALLBACK_SIZE[0])


def test_a_terminal_gets_nothing_when_asked_not_to(monkeypatch: pytest.MonkeyPatch) -> None:
    with pseudo_terminal() as (terminal, reading):
        _draw(monkeypatch, terminal, show=False)
        assert drain(reading) == ""


@pytest.mark.parametrize(("show", "drawn"), [(None, False), (True, True)])
def test_a_pipe_gets_a_bar_only_when_asked(
    monkeypatch: pytest.MonkeyPatch, show: bool | None, drawn: bool
) -> None:
    reading, writing = os.pipe()
    try:
        _draw(monkeypatch, writing, show=show)
        os.close(writing)
        with os.fdopen(reading, encoding="utf-8") as pipe:
            text = pipe.read()
    finally:
        for fd in (reading, writing):
            try:
                os.close(fd)
            except OSError:
                pass
    if drawn:
        assert FINAL.fullmatch(frames(text)[-1]), text
    else:
        assert text == ""
