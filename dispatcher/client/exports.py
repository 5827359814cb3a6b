"""An export's body written as it arrives: to a file whole or not at all, or to standard
output, with a progress bar that counts the rows."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import BinaryIO

from dispatcher import progress
from dispatcher.client.api import Client
from dispatcher.domain.exports import FormatName


async def download(
    client: Client,
    kind: str,
    query: Mapping[str, str],
    format_name: FormatName,
    output: Path | None,
    show_progress: bool | None,
) -> int:
    """Writes GET /<kind>/export to `output` (None: standard output); the rows written."""
    rows = RowCounter(format_name)
    with progress.bar("export", None, unit="row", show=show_progress) as bar, _sink(output) as sink:
        async for chunk in client.export(kind, query):
            sink.write(chunk)
            bar.update(rows.feed(chunk))
    return rows.total


@contextlib.contextmanager
def _sink(output: Path | None) -> Iterator[BinaryIO]:
    """Standard output; or a file beside `output` that takes its name once the export has
    ended whole, and is removed if it does not (no partial export under the name asked for)."""
    if output is None:
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    descriptor, partial = tempfile.mkstemp(dir=output.parent, prefix=f".{output.name}.")
    try:
        with os.fdopen(descriptor, "wb") as file:
            yield file
        os.replace(partial, output)
    except BaseException:
        os.unlink(partial)
        raise


class RowCounter:
    """The records of an export's body, counted chunk by chunk as it arrives: its lines, less
    the CSV's header; in CSV, only the line breaks outside quotes (a cell may hold one, and
    the quotes in a cell are doubled, so their count's parity tells inside from outside)."""

    def __init__(self, format_name: FormatName) -> None:
        self._csv = format_name == "csv"
        self._header = self._csv  # the header line is still to come
        self._quoted = False
        self.total = 0

    def feed(self, chunk: bytes) -> int:
        """The records `chunk` ends."""
        if self._csv:
            parts = chunk.split(b'"')
            ended = sum(part.count(b"\n") for part in parts[self._quoted :: 2])
            self._quoted ^= len(parts) % 2 == 0
        else:
            ended = chunk.count(b"\n")
        if self._header and ended:
            ended -= 1
            self._header = False
        self.total += ended
        return ended
