"""The daemon with a ``platform = "mt5"`` venue of simulated terminals: a master's trade copied, each once.

The production service tree (venues service, connector, bus, worker, executor)
runs on the global reactor with real threads (one per terminal); the master's
trader is the test, calling ``order_send`` on the master's simulated terminal
as a script using the MetaTrader5 package would.
"""

from __future__ import annotations

import time
from decimal import Decimal

import zmq
from twisted.internet import reactor

from bridge.daemon.config import parse
from bridge.daemon.services import build
from connectors.mt5.terminal import constants as C

MASTER, FOLLOWER, NETTER = 7001, 7002, 7003


def pump(until, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not until():
        assert time.monotonic() < deadline, "timed out waiting on the daemon"
        reactor.iterate(0.002)


def test_a_master_trade_on_a_simulated_mt5_terminal_is_copied_once_by_the_daemon(tmp_path):
    config = parse({
        "store": {"path": str(tmp_path / "bridge.sqlite")},
        "bus": {"deals": "inproc://mt5-deals", "deals_replay": "inproc://mt5-replay", "heartbeat_ms": 50},
        "venue": [{"name": "mt", "platform": "mt5", "poll_interval_ms": 5, "server_offset_s": 7200, "account": [
            {"login": MASTER, "provider": "simulator", "balance": Decimal(50_000)},
            {"login": FOLLOWER, "provider": "simulator", "balance": Decimal(20_000)},
            {"login": NETTER, "provider": "simulator", "balance": Decimal(20_000), "hedging": False}]}],
        "master": [{"account": f"mt/{MASTER}"}],
        "copy": [{"master": f"mt/{MASTER}", "follower": f"mt/{FOLLOWER}", "settings": {"mode": "multiplier"}},
                 {"master": f"mt/{MASTER}", "follower": f"mt/{NETTER}",
                  "settings": {"mode": "multiplier", "multiplier": Decimal("0.5")}}],
    }, "bridge.toml", tmp_path)
    ctx = zmq.Context()
    top = build(config, reactor, "all", ctx)
    venue = next(iter(top.venues.values()))
    terminal = {login: w.provider for login, w in venue.pool.workers.items()}
    top.startService()
    worker = top.getServiceNamed("worker")
    try:
        pump(lambda: worker.ready.called and worker.worker.idle)
        master = terminal[MASTER]
        tick = master.symbol_info_tick("EURUSD")
        sent = master.order_send({"action": C.TRADE_ACTION_DEAL, "symbol": "EURUSD", "volume": 0.4,
                                  "type": C.ORDER_TYPE_BUY, "price": tick.ask, "deviation": 10,
                                  "type_filling": C.ORDER_FILLING_FOK, "type_time": C.ORDER_TIME_GTC})
        assert sent.retcode == C.TRADE_RETCODE_DONE, sent

        def volumes() -> tuple:
            return tuple(sum(p.volume for p in terminal[f].positions_get()) for f in (FOLLOWER, NETTER))
        pump(lambda: volumes() == (0.4, 0.2))
        close = master.order_send({"action": C.TRADE_ACTION_DEAL, "symbol": "EURUSD", "volume": 0.4,
                                   "type": C.ORDER_TYPE_SELL, "position": sent.order,
                                   "price": master.symbol_info_tick("EURUSD").bid, "deviation": 10,
                                   "type_filling": C.ORDER_FILLING_FOK, "type_time": C.ORDER_TIME_GTC})
        assert close.retcode == C.TRADE_RETCODE_DONE, close
        pump(lambda: volumes() == (0, 0) and worker.worker.idle
             and not worker.store.intents_in_state("planned", "sent", "unknown"))
        for f in (FOLLOWER, NETTER):  # exactly once: one opening and one closing deal each, at the terminal
            trades = [d for d in terminal[f].history_deals_get(0, 2**31) if d.type in (0, 1)]
            assert [d.entry for d in trades] == [C.DEAL_ENTRY_IN, C.DEAL_ENTRY_OUT], trades
        kinds = [r["kind"] for r in worker.store.db.query("SELECT kind FROM master_deals ORDER BY seq")]
        assert kinds.count("open") == 1 and kinds.count("close") == 1, kinds
        assert set(kinds) <= {"open", "close", "balance"}, kinds  # the account's first deposit is a deal too
    finally:
        top.stopService()
        for _ in range(20):
            reactor.iterate(0.002)
        ctx.destroy(0)
