"""When a pool's rollovers are due: a schedule per pool, in UTC. Pure: no clock.

Accepted texts (case and extra spaces do not matter):

* ``manual``: never by itself; only an operator's ``bridge pamm rollover``;
* ``every 15m`` / ``every 1h`` / ``every 4h``: every N minutes or hours, at the
  multiples of the interval counted from 1970-01-01T00:00Z (``every 4h`` is
  00:00, 04:00, ... UTC). The interval must divide a day (1440 minutes) so the
  times are the same every day;
* ``daily HH:MM``: once a day at that UTC time;
* ``weekly DAY HH:MM``: once a week (``mon`` .. ``sun``) at that UTC time.

All times are UTC, so daylight saving time never moves a rollover.
:meth:`Schedule.next_after` gives the first due time *strictly after* a
moment (a rollover exactly at a due time is not due again at that time).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from allocation.pamm.errors import PammError

FORMS = '"manual", "every 15m", "every 1h", "every 4h", "daily HH:MM", "weekly fri HH:MM" (UTC)'
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DAY = 24 * 60
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True, slots=True)
class Schedule:
    """A parsed schedule. ``kind`` is manual, every, daily or weekly.

    ``minutes``: the interval (every) or the minute of the day (daily, weekly);
    ``weekday``: 0 = Monday (weekly only).
    """

    kind: str
    minutes: int = 0
    weekday: int = 0

    @property
    def text(self) -> str:
        """The canonical text (what :func:`parse_schedule` reads back to the same schedule)."""
        if self.kind == "manual":
            return "manual"
        if self.kind == "every":
            return f"every {self.minutes // 60}h" if self.minutes % 60 == 0 else f"every {self.minutes}m"
        clock = f"{self.minutes // 60:02d}:{self.minutes % 60:02d}"
        return f"daily {clock}" if self.kind == "daily" else f"weekly {DAYS[self.weekday]} {clock}"

    def __str__(self) -> str:
        return self.text

    def next_after(self, moment: datetime) -> datetime | None:
        """The first due time strictly after ``moment`` (UTC), or None for ``manual``."""
        if not isinstance(moment, datetime) or moment.tzinfo is None:
            raise PammError(f"times must be timezone-aware datetimes, got {moment!r}")
        if self.kind == "manual":
            return None
        moment = moment.astimezone(timezone.utc)
        if self.kind == "every":
            step = timedelta(minutes=self.minutes)
            return _EPOCH + ((moment - _EPOCH) // step + 1) * step
        day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
        if self.kind == "daily":
            due = day + timedelta(minutes=self.minutes)
            return due if due > moment else due + timedelta(days=1)
        due = day + timedelta(days=(self.weekday - day.weekday()) % 7, minutes=self.minutes)
        return due if due > moment else due + timedelta(days=7)


_EVERY = re.compile(r"every (\d{1,4})(m|h)")
_DAILY = re.compile(r"daily (\d{2}):(\d{2})")
_WEEKLY = re.compile(r"weekly ([a-z]{3}) (\d{2}):(\d{2})")


def parse_schedule(text: object) -> Schedule:
    """Read a schedule text; a text that is none of the accepted forms is a :class:`PammError`."""
    if not isinstance(text, str):
        raise PammError(f"schedule must be text, one of {FORMS}; got {text!r}")
    norm = " ".join(text.lower().split())
    if norm == "manual":
        return Schedule("manual")
    if m := _EVERY.fullmatch(norm):
        minutes = int(m[1]) * (60 if m[2] == "h" else 1)
        if minutes == 0 or _DAY % minutes:
            raise PammError(f"schedule {text!r}: the interval must divide a day (1440 minutes), "
                            f"e.g. every 15m, every 1h, every 4h")
        return Schedule("every", minutes)
    if m := _DAILY.fullmatch(norm):
        return Schedule("daily", _clock(text, m[1], m[2]))
    if (m := _WEEKLY.fullmatch(norm)) and m[1] in DAYS:
        return Schedule("weekly", _clock(text, m[2], m[3]), DAYS.index(m[1]))
    raise PammError(f"schedule {text!r} is not one of {FORMS}")


def _clock(text: str, hours: str, minutes: str) -> int:
    h, m = int(hours), int(minutes)
    if h > 23 or m > 59:
        raise PammError(f"schedule {text!r}: {hours}:{minutes} is not a time of day (00:00 to 23:59 UTC)")
    return h * 60 + m
