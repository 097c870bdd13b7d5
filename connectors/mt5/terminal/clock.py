"""Time in the simulated terminal: a manual clock for tests, and trade-server time.

The terminal takes any clock that returns Unix seconds (``Decimal`` or ``float``).
:func:`server_msc` turns it into trade-server milliseconds (the clock plus the
server's offset), the unit of every ``time_msc``-like field of the records.
"""

from __future__ import annotations

from decimal import ROUND_FLOOR, Decimal
from typing import Callable


class SimClock:
    """A manual clock: ``clock()`` returns Unix seconds as a ``Decimal``; ``advance`` moves it."""

    def __init__(self, start: object = "1704067200") -> None:  # 2024-01-01 00:00 UTC
        self.now = Decimal(str(start))

    def __call__(self) -> Decimal:
        return self.now

    def advance(self, seconds: object) -> None:
        self.now += Decimal(str(seconds))


def server_msc(clock: Callable[[], object], offset: int) -> int:
    """Trade-server time in whole milliseconds: ``clock()`` plus ``offset`` seconds, rounded down."""
    seconds = Decimal(str(clock())) + offset
    return int((seconds * 1000).to_integral_value(ROUND_FLOOR))
