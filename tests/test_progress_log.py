"""The daemon's progress lines for a long reconcile or backfill (no terminal there: lines, not a bar)."""

from __future__ import annotations

import logging

from bridge.worker.progress import ProgressLog


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_line_every_n_items_and_a_last_line(caplog):
    clock = Clock()
    progress = ProgressLog(logging.getLogger("bridge.test"), "worker: reconcile", 1200, "followers", every_n=500,
                           every_s=60, clock=clock)
    with caplog.at_level("INFO", logger="bridge.test"):
        for _ in range(1200):
            clock.now += 0.001
            progress.step()
        progress.finish()
    assert [r.getMessage() for r in caplog.records] == [
        "worker: reconcile: 500 of 1200 followers (41%)",
        "worker: reconcile: 1000 of 1200 followers (83%)",
        "worker: reconcile: done, 1200 followers in 1.2 s",
    ]


def test_a_line_every_few_seconds_when_items_are_slow(caplog):
    clock = Clock()
    progress = ProgressLog(logging.getLogger("bridge.test"), "connector: backfill of v/1", 10, "deals", every_n=500,
                           every_s=5, clock=clock)
    with caplog.at_level("INFO", logger="bridge.test"):
        for _ in range(10):
            clock.now += 2
            progress.step()
        progress.finish()
    assert [r.getMessage() for r in caplog.records] == [
        "connector: backfill of v/1: 3 of 10 deals (30%)",
        "connector: backfill of v/1: 6 of 10 deals (60%)",
        "connector: backfill of v/1: 9 of 10 deals (90%)",
        "connector: backfill of v/1: done, 10 deals in 20.0 s",
    ]


def test_a_short_job_stays_quiet(caplog):
    progress = ProgressLog(logging.getLogger("bridge.test"), "worker: reconcile", 3, "followers")
    with caplog.at_level("INFO", logger="bridge.test"):
        for _ in range(3):
            progress.step()
        progress.finish()
    assert caplog.records == []
