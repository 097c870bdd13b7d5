"""Progress lines for the daemon's long work (a reconcile of many followers, a large backfill).

The daemon has no terminal, so no bar: a line every ``every_n`` items or
``every_s`` seconds, whichever comes first, and a last line when it is done
(only if a progress line was written: a short job stays quiet)::

    worker: reconcile: 500 of 2000 followers (25%)
    worker: reconcile: done, 2000 followers in 7.3 s
"""

from __future__ import annotations

import logging
import time
from typing import Callable

EVERY_N = 500
EVERY_S = 5.0


class ProgressLog:
    def __init__(self, log: logging.Logger, what: str, total: int, unit: str, *, every_n: int = EVERY_N,
                 every_s: float = EVERY_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.log, self.what, self.total, self.unit = log, what, total, unit
        self.every_n, self.every_s, self.clock = every_n, every_s, clock
        self.done = 0
        self.lines = 0
        self.started = self._last = clock()

    def step(self, n: int = 1) -> None:
        before, self.done = self.done, self.done + n
        now = self.clock()
        if self.done // self.every_n > before // self.every_n or now - self._last >= self.every_s:
            self._last = now
            self.lines += 1
            percent = f" ({100 * self.done // self.total}%)" if self.total else ""
            self.log.info("%s: %d of %d %s%s", self.what, self.done, self.total, self.unit, percent)

    def finish(self) -> None:
        if self.lines:
            self.log.info("%s: done, %d %s in %.1f s", self.what, self.done, self.unit, self.clock() - self.started)
