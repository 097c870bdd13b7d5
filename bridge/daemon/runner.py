"""Run the demo session on a live reactor and collect its summary."""

from __future__ import annotations

import time

from twisted.internet import defer

from bridge.daemon.demo import MASTER, SERVER, Script, demo_config, play, summarise, temp_dir
from bridge.daemon.services import build

STEP_INTERVAL_S = 0.005  # between master deals
SETTLE_TIMEOUT_S = 120


def run_demo(reactor, followers: int, deals: int, seed: int, *, progress=None, **venue_options) -> defer.Deferred:
    """Start the bridge, play the script, wait until every deal is copied; fires with the summary."""
    config = demo_config(followers, seed, temp_dir(), **venue_options)
    top = build(config, reactor)
    top.startService()
    worker = top.getServiceNamed("worker")
    venue = top.venues[SERVER]
    steps = list(Script(deals, seed).steps())
    state: dict = {}
    done = defer.Deferred()
    started = time.monotonic()

    def step(i: int) -> None:
        if i < len(steps):
            play(venue, steps[i], state)
            if progress:
                progress(1)
            reactor.callLater(STEP_INTERVAL_S, step, i + 1)
        else:
            settle()

    def settle() -> None:
        store = worker.store
        journalled = all(store.deal_seq(d.deal_id) is not None for d in venue.deals_since(MASTER, None).result)
        unfinished = store.intents_in_state("planned", "sent", "unknown")
        if journalled and not unfinished and worker.worker.idle:
            summary = summarise(store, venue, config)
            summary["store"] = str(config.store_path)
            d = defer.maybeDeferred(top.stopService)
            d.addCallback(lambda _: done.callback(summary))
            return
        if time.monotonic() - started > SETTLE_TIMEOUT_S:
            top.stopService()
            done.errback(RuntimeError(f"demo did not settle in {SETTLE_TIMEOUT_S} s: "
                                      f"{len(unfinished)} intents unfinished"))
            return
        reactor.callLater(0.01, settle)

    worker.ready.addCallback(lambda _: step(0))
    return done
