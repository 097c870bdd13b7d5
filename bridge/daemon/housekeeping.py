"""Housekeeping kept off the order path: garbage collection and WAL checkpoints.

Two pauses would otherwise land in the middle of a fan-out, whenever a
counter happened to cross a threshold:

* Python's cyclic garbage collector (a full collection walks every object the
  daemon holds: milliseconds to tens of milliseconds);
* SQLite's automatic WAL checkpoint (copies the write-ahead log back into the
  database file and fsyncs it, every 1,000 pages by default).

Instead, once the daemon has started, the objects it holds are frozen out of
the collector (``gc.freeze()``), automatic collection is switched off, and
the store's automatic checkpoint too. :meth:`Housekeeping.run` does both jobs
when the worker has just gone idle, at most once per ``interval_s``; a timer
runs it anyway after ``overdue_s`` without an idle moment, so a daemon that is
never idle still collects its garbage and keeps its WAL bounded. A deal that
arrives during housekeeping waits for it (a few milliseconds, at most once
per interval).
"""

from __future__ import annotations

import gc
import logging
import time

from twisted.internet.task import LoopingCall

log = logging.getLogger("bridge.housekeeping")


class Housekeeping:
    def __init__(self, reactor, store, *, interval_s: float = 1.0, overdue_s: float = 10.0,
                 clock=time.monotonic) -> None:
        self.reactor = reactor
        self.store = store
        self.interval_s = interval_s
        self.overdue_s = overdue_s
        self.clock = clock
        self.runs = 0
        self._last = clock()
        self._timer: LoopingCall | None = None
        self._gc_was_enabled = gc.isenabled()

    def start(self) -> None:
        gc.collect()
        gc.freeze()  # what startup built lives as long as the daemon: never scanned again
        gc.disable()
        self.store.db.execute("PRAGMA wal_autocheckpoint = 0")
        self._timer = LoopingCall(self._check_overdue)
        self._timer.clock = self.reactor
        self._timer.start(self.overdue_s, now=False)

    def stop(self) -> None:
        if self._timer is not None and self._timer.running:
            self._timer.stop()
        gc.unfreeze()
        if self._gc_was_enabled:
            gc.enable()

    def idle(self) -> None:
        """The worker has nothing in flight: a good moment, if one is due."""
        if self.clock() - self._last >= self.interval_s:
            self.run()

    def _check_overdue(self) -> None:
        if self.clock() - self._last >= self.overdue_s:
            self.run()

    def run(self) -> None:
        started = time.perf_counter()
        collected = gc.collect()
        try:
            self.store.db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except Exception as e:  # a busy reader: the next run checkpoints
            log.warning("housekeeping: WAL checkpoint skipped: %s", e)
        self._last = self.clock()
        self.runs += 1
        log.debug("housekeeping: %d objects collected, WAL checkpointed in %.1f ms", collected,
                  (time.perf_counter() - started) * 1000)
