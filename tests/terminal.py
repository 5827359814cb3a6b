"""A real pseudo-terminal for tests of what a command draws on a terminal (progress bars)."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import termios
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def pseudo_terminal(columns: int = 100) -> Iterator[tuple[int, int]]:
    """(terminal side, reading side) file descriptors of a terminal `columns` wide; 0: one
    that reports no size, as an unsized pseudo-terminal does. Both are closed on exit."""
    reading, terminal = pty.openpty()
    if columns:
        fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    try:
        yield terminal, reading
    finally:
        for fd in (terminal, reading):
            try:
                os.close(fd)
            except OSError:
                pass


def drain(reading: int, timeout_s: float = 0.2) -> str:
    """What was written to the terminal so far (until `timeout_s` without more), with the
    terminal's CR LF line ends back to LF."""
    chunks = []
    while select.select([reading], [], [], timeout_s)[0]:
        try:
            chunk = os.read(reading, 65536)
        except OSError:  # every terminal side closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode().replace("\r\n", "\n")


def frames(drawn: str) -> list[str]:
    """The last state of each line a bar drew (tqdm redraws a line after a CR)."""
    return [line.split("\r")[-1] for line in drawn.split("\n") if line.split("\r")[-1]]
