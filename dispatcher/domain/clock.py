"""Timestamps in the spec's format (ISO 8601 UTC, milliseconds, 'Z') and their parsing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
# The instants every time zone can show: a day inside datetime's range at each end, so that a
# menu's hours can be judged in any zone without an OverflowError.
EARLIEST = datetime(1, 1, 2, tzinfo=UTC)
LATEST = datetime(9999, 12, 30, 23, 59, 59, 999_999, tzinfo=UTC)


def now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    # isoformat pads the year to four digits, as strftime's %Y does not on every libc.
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def parse_iso(raw: object) -> datetime | None:
    """An ISO 8601 timestamp; one without an offset is taken as UTC. None if unparseable or
    outside EARLIEST..LATEST. Only printable ASCII is read: CPython 3.11's fromisoformat stops
    at a NUL and would take "...Z\\x00anything" for a time."""
    if not isinstance(raw, str) or not 0 < len(raw) <= 64:
        return None
    if not (raw.isascii() and raw.isprintable()):
        return None
    try:
        moment = datetime.fromisoformat(raw)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        moment = moment.astimezone(UTC)
    except (ValueError, OverflowError):
        return None
    return moment if EARLIEST <= moment <= LATEST else None


def to_ms(moment: datetime) -> int:
    """Milliseconds since the epoch, floored exactly: the millisecond `iso` shows."""
    return (moment - _EPOCH) // _MS


def from_ms(ms: int) -> datetime:
    return _EPOCH + ms * _MS
