"""Progress bars of long commands (tqdm: rate and time left) on stderr: drawn on a terminal,
left out elsewhere so that logs and CI output stay clean, unless asked for either way."""

from __future__ import annotations

import os
import sys
from typing import Any

from tqdm import tqdm

# The size of a terminal that reports none (a pseudo-terminal nobody sized, as `docker run -t`
# and some CI runners give): tqdm would draw nothing in it.
FALLBACK_SIZE = (80, 24)


def bar(
    desc: str,
    total: float | None,
    *,
    unit: str = "it",
    unit_scale: bool = False,
    show: bool | None = None,
) -> tqdm[Any]:
    """A bar on stderr; `show` None: only when stderr is a terminal (tqdm's disable=None)."""
    size = _fallback_size()
    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        unit_scale=unit_scale,
        file=sys.stderr,
        disable=None if show is None else not show,
        ncols=size[0] if size else None,
        nrows=size[1] if size else None,
        dynamic_ncols=size is None,  # else the bar follows the terminal's width
    )


def _fallback_size() -> tuple[int, int] | None:
    try:
        columns = os.get_terminal_size(sys.stderr.fileno()).columns
    except (OSError, ValueError, AttributeError):  # no terminal, or no file descriptor
        return None
    return None if columns else FALLBACK_SIZE
