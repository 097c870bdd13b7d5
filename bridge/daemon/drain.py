"""The graceful stop: on SIGTERM, let the follower orders in flight finish before the services stop.

``bridge run`` calls :func:`drain` when the reactor is asked to stop (SIGTERM
from ``systemctl stop``, or SIGINT), before the service tree stops:

1. the worker takes no new master deal and starts no new one
   (:attr:`bridge.worker.worker.Worker.stopping`). A deal it does not take is
   newer than the journal's last, so the next start backfills it from the
   venue; a deal journalled but not yet planned stays ``new`` in the journal.
   No new scheduled PAMM rollover starts either (a daemon that was down over
   a scheduled time runs it when it comes back);
2. the deal being worked on finishes: its orders reach the venues and their
   results are written (and so do the orders of a PAMM rollover under way);
3. at most ``timeout_s`` is spent waiting (``bridge run --drain-timeout``,
   shorter than the unit's ``TimeoutStopSec`` so that systemd never has to
   kill the daemon). Whatever is still unfinished then is logged, one line
   with the count and the keys; the next start's recovery looks each one up
   at its venue before anything is sent again (``bridge.worker.worker``).
"""

from __future__ import annotations

import logging
import time

from twisted.internet import defer, task

from bridge.worker.worker import UNFINISHED

log = logging.getLogger("bridge.drain")

DRAIN_TIMEOUT_S = 20.0  # the default of `bridge run --drain-timeout`; the units' TimeoutStopSec is longer
POLL_S = 0.02
KEYS_SHOWN = 10


def _named(top, name: str):
    try:
        return top.getServiceNamed(name)
    except KeyError:
        return None


def busy(top) -> bool:
    """Orders are in flight in this process: a worker deal or recovery, or a pool's rollover."""
    worker = _named(top, "worker")
    if worker is not None and worker.running and hasattr(worker, "worker") and worker.worker.working:
        return True
    pools = _named(top, "pools")
    return bool(pools is not None and pools.running and pools.running_rollovers)


@defer.inlineCallbacks
def drain(top, clock, timeout_s: float = DRAIN_TIMEOUT_S):
    """Stop taking deals and wait (at most ``timeout_s``) for the orders in flight; fires with the
    intents still unfinished (a list of intent rows; empty when everything is final)."""
    worker = _named(top, "worker")
    if worker is None or not worker.running or not hasattr(worker, "worker"):
        return []  # a connector alone has no orders to wait for: it just stops publishing
    worker.worker.stopping = True
    pools = _named(top, "pools")
    ticker = getattr(pools, "ticker", None)
    if ticker is not None and ticker.running:
        ticker.stop()  # no new scheduled rollover; one under way finishes (see busy); a missed one runs at next start
    started = time.monotonic()
    waited = busy(top)
    if waited:
        log.info("drain: taking no new master deal; waiting up to %g s for the orders in flight", timeout_s)
    while busy(top) and time.monotonic() - started < timeout_s:
        yield task.deferLater(clock, POLL_S, lambda: None)
    timed_out = busy(top)
    left = worker.store.intents_in_state(*UNFINISHED)
    took = time.monotonic() - started
    if left:
        keys = ", ".join(row.key for row in left[:KEYS_SHOWN]) + (", ..." if len(left) > KEYS_SHOWN else "")
        why = f"still in flight after {took:.1f} s (drain timeout)" if timed_out else "unresolved"
        log.warning("drain: %d order(s) %s: %s; the next start looks each up at its venue", len(left), why, keys)
    elif waited:
        log.info("drain: every order in flight finished in %.1f s", took)
    return left
