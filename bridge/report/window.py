"""The report's time window: ``--from`` inclusive, ``--to`` exclusive, both UTC.

A bare date is its midnight UTC; an ISO date-time without an offset is UTC; one with an offset is
converted. Bad text, or a window that is empty by construction (``--from`` not before ``--to``), is an
:class:`~bridge.errors.InputError` naming the option.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

from bridge.errors import InputError

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_NS_PER_US = 1000


def parse_instant(text: str, option: str) -> datetime:
    """``text`` (``YYYY-MM-DD`` or an ISO date-time) as an aware UTC datetime."""
    text = (text or "").strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InputError(f"{option}: {text!r} is not a date (2026-12-01) or an ISO date-time "
                         f"(2026-12-01T14:30:00, UTC unless it has an offset)") from None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def to_ns(moment: datetime) -> int:
    """An aware datetime as integer nanoseconds since the epoch (exact: no float)."""
    return (moment - EPOCH) // timedelta(microseconds=1) * _NS_PER_US


def from_ns(ns: int) -> datetime:
    """Integer nanoseconds since the epoch as an aware UTC datetime (to the microsecond)."""
    return EPOCH + timedelta(microseconds=ns // _NS_PER_US)


@dataclass(frozen=True, slots=True)
class Window:
    """``[start, end)`` in UTC."""

    start: datetime
    end: datetime

    @property
    def start_ns(self) -> int:
        return to_ns(self.start)

    @property
    def end_ns(self) -> int:
        return to_ns(self.end)

    def holds(self, moment: datetime) -> bool:
        return self.start <= moment < self.end

    def label(self) -> str:
        return f"{self.start.isoformat()} to {self.end.isoformat()} (end exclusive)"


def window(start_text: str, end_text: str) -> Window:
    """The window ``--from start_text --to end_text``; an InputError if it is not a proper one."""
    start = parse_instant(start_text, "--from")
    end = parse_instant(end_text, "--to")
    if start >= end:
        raise InputError(f"--from {start.isoformat()} is not before --to {end.isoformat()} "
                         f"(--to is exclusive: the window would be empty)")
    return Window(start, end)
