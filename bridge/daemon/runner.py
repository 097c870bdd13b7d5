"""Run the demo session on a live reactor and collect its summary."""

from __future__ import annotations

import time

from twisted.internet import defer

from bridge.daemon.demo import MASTER, SERVER, Script, demo_config, play, summarise, temp_dir
from bridge.daemon.services import build

STEP_INTERVAL_S = 0.005  # between master deals
SETTLE_TIMEOUT_S = 120


def run_demo(reactor, followers: int, deals: int, seed: int, *, progress=None, platform: str = "sim",
             **venue_options) -> defer.Deferred:
    """Start the bridge, play the script, wait until every deal is copied; fires with the summary.

    ``platform="ctrader"``: every account on the local cTrader server, started
    here (see ``bridge.daemon.demo_ctrader``); ``platform="mt5"``: every account
    on a simulated MT5 terminal (see ``bridge.daemon.demo_mt5``)."""
    config = demo_config(followers, seed, temp_dir(), **venue_options)
    server = listening = None
    if platform == "ctrader":
        from bridge.daemon import demo_ctrader

        server, listening = demo_ctrader.start_server(config, reactor, seed)
        config = demo_ctrader.on_ctrader(config, listening.getHost().port, server.identity.ca_pem)
    elif platform == "mt5":
        from bridge.daemon import demo_mt5

        config = demo_mt5.on_mt5(config)
    elif platform == "mt4":
        from bridge.daemon import demo_mt4

        config = demo_mt4.on_mt4(config)
    top = build(config, reactor)
    top.startService()
    worker = top.getServiceNamed("worker")
    if server is not None:
        venue = demo_ctrader.Desk(server)
        records = demo_ctrader.Records(server)
    elif platform in ("mt5", "mt4"):
        demo_platform = demo_mt5 if platform == "mt5" else demo_mt4
        (platform_venue,) = top.venues.values()
        venue = demo_platform.Desk(platform_venue)
        records = demo_platform.Records(platform_venue)
    else:
        venue = records = top.venues[SERVER]
    steps = list(Script(deals, seed).steps())
    interval = STEP_INTERVAL_S
    if server is not None:
        # cTrader lets a connection send 50 requests a second (the connector's buckets: 24 at once, then 24/s):
        # the master trades no faster than each connection's share of one fan-out refills
        (venue_config,) = config.venues
        accounts = len(venue_config.ctrader.accounts)
        interval = max(STEP_INTERVAL_S, -(-accounts // venue_config.ctrader.pool_size) / 24 + 0.02)
    elif platform in ("mt5", "mt4"):
        # every follower order is a call on its terminal's thread (the simulated terminals share the GIL with
        # the bridge): the master trades no faster than one fan-out takes, so the latency is not queueing
        # (on MT4 a step of the netted session can be several trades: one per ticket the master holds)
        interval = max(STEP_INTERVAL_S, len(config.copies) * (0.0005 if platform == "mt5" else 0.002))
    state: dict = {}
    done = defer.Deferred()
    started = time.monotonic()

    def step(i: int) -> None:
        if i < len(steps):
            try:
                play(venue, steps[i], state)
            except Exception as exc:  # the master's own trade failed: the demo cannot go on
                top.stopService()
                done.errback(RuntimeError(f"demo step {i + 1} ({steps[i][0]}) failed: {exc}"))
                return
            if progress:
                progress(1)
            reactor.callLater(interval, step, i + 1)
        else:
            settle()

    def settle() -> None:
        store = worker.store
        if platform == "ctrader":  # every trading step is one master deal (a reversal too, on the netting
            # master); an SL/TP step is one only if it changed the stops (the same stops again: no deal)
            journalled = _trading_deals(store, "sltp") >= sum(1 for step in steps if step[0] != "sltp")
        elif platform == "mt5":  # every trade in the master terminal's history (SL/TP changes come before them)
            journalled = all(store.deal_seq(deal_id) is not None for deal_id in venue.master_trades(MASTER))
        elif platform == "mt4":  # every trade in the master terminal's records (SL/TP changes are not trades)
            journalled = _trading_deals(store, "sltp") >= venue.master_tickets(MASTER)
        else:
            journalled = all(store.deal_seq(d.deal_id) is not None for d in venue.deals_since(MASTER, None).result)
        unfinished = store.intents_in_state("planned", "sent", "unknown")
        if journalled and not unfinished and worker.worker.idle:
            summary = summarise(store, records, config, modifies_trade=platform == "sim")
            summary["platform"] = platform
            summary["store"] = str(config.store_path)
            d = defer.maybeDeferred(top.stopService)
            if listening is not None:
                d.addCallback(lambda _: listening.stopListening())
            d.addCallback(lambda _: done.callback(summary))
            return
        if time.monotonic() - started > SETTLE_TIMEOUT_S:
            top.stopService()
            done.errback(RuntimeError(f"demo did not settle in {SETTLE_TIMEOUT_S} s: "
                                      f"{len(unfinished)} intents unfinished"))
            return
        reactor.callLater(0.01, settle)

    # the worker is ready once the venues are connected and it has recovered
    worker.ready.addCallback(lambda _: step(0))
    return done


def _trading_deals(store, *also_not: str) -> int:
    """Master deals journalled, balance operations (and deals of the kinds ``also_not``) not counted."""
    kinds = ("balance", *also_not)
    return next(iter(store.db.query(f"SELECT count(*) AS n FROM master_deals WHERE kind NOT IN "
                                    f"({', '.join('?' * len(kinds))})", kinds)))["n"]
