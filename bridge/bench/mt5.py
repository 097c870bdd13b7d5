"""MT5 benchmark: a master deal in the terminal's history -> the last follower ``order_send``.

The bridge runs as ``bridge run`` builds it from a ``platform = "mt5"`` venue
of simulated terminals (``provider = "simulator"``): one terminal per account,
each with its own worker thread, the master's terminal polled every
``poll_interval_ms`` (the default, 5 ms, unless told otherwise). The master's
trader opens and closes at the master's terminal by ``order_send``, one deal at
a time, each once the previous one is fully copied.

The clock starts when the master's ``order_send`` returns (its deal is in the
terminal's history) and stops when the deal's last follower ``order_send``
call reaches that follower's terminal: a thin proxy in front of every follower
terminal notes the moment, so production code has no benchmark hooks. The
figure includes the wait for the next poll (on average half the interval).
The first ``WARMUP`` deals are not measured.
"""

from __future__ import annotations

import random
import tempfile
import threading
import time
from decimal import Decimal
from pathlib import Path

import zmq
from twisted.internet import reactor as default_reactor

from allocation.copy import CopySettings, resolve
from allocation.copy.settings import SizingMode
from bridge.bench.pipeline import WARMUP, PipelineFigures, cpu_reference, raw_hop
from bridge.bench.pipeline import _settle as settle
from bridge.daemon.config import BridgeConfig, CopyConfig, MT5Account, MT5Settings, VenueConfig
from bridge.daemon.services import build
from bridge.domain.ids import DealId, Login, Platform, ServerId
from connectors.mt5.terminal import constants as C

SERVER = ServerId(Platform.MT5, "bench")
MASTER = Login(SERVER, 1)
DEFAULT_POLL_MS = MT5Settings.__dataclass_fields__["poll_interval_ms"].default


class _TimedTerminal:
    """Delegates to a terminal; notes when each trading ``order_send`` call reaches it."""

    def __init__(self, terminal, sent_ns: list[int], lock: threading.Lock) -> None:
        self._terminal = terminal
        self._sent_ns = sent_ns
        self._lock = lock

    def order_send(self, request):
        if request.get("action") == C.TRADE_ACTION_DEAL:
            now = time.perf_counter_ns()
            with self._lock:
                self._sent_ns.append(now)
        return self._terminal.order_send(request)

    def __getattr__(self, name):
        return getattr(self._terminal, name)


def bench_config(followers: int, seed: int, store_dir: Path, poll_interval_ms: int) -> BridgeConfig:
    rng = random.Random(seed)
    logins = [Login(SERVER, 100 + i) for i in range(followers)]
    accounts = (MT5Account(MASTER.number, "simulator", balance=Decimal(100_000)),
                *(MT5Account(f.number, "simulator", balance=Decimal(rng.randrange(5_000, 50_000))) for f in logins))
    venue = VenueConfig(SERVER.name, Platform.MT5, seed, 0, (),
                        mt5=MT5Settings(accounts, poll_interval_ms=poll_interval_ms))
    return BridgeConfig(store_dir / "bench.sqlite", "inproc://bench-mt5-deals", "inproc://bench-mt5-replay", 100,
                        (venue,), (MASTER,),
                        tuple(CopyConfig(MASTER, f, resolve(CopySettings(mode=SizingMode.MULTIPLIER))) for f in logins),
                        ())


def run(followers: int, deals: int, seed: int = 7, progress=None,
        poll_interval_ms: int = DEFAULT_POLL_MS) -> PipelineFigures:
    reactor = default_reactor  # the venue's worker threads answer through reactor.callFromThread
    ctx = zmq.Context()
    config = bench_config(followers, seed, Path(tempfile.mkdtemp(prefix="copybridge-bench-")), poll_interval_ms)
    top = build(config, reactor, "all", ctx)
    (venue,) = top.venues.values()
    sent_ns: list[int] = []
    lock = threading.Lock()
    for login, worker in venue.pool.workers.items():
        if login != MASTER.number:
            worker.provider = _TimedTerminal(worker.provider, sent_ns, lock)
    master = venue.pool.workers[MASTER.number].provider
    top.startService()
    worker = top.getServiceNamed("worker")
    samples: list[int] = []
    try:
        _settle(reactor, lambda: worker.ready.called and worker.worker.idle)
        position = None
        for n in range(WARMUP + deals):
            with lock:
                sent_ns.clear()
            before = worker.worker.journalled
            position, deal, done_ns = _trade(master, position)
            _settle(reactor, lambda: _copied(worker, before, deal))
            if n >= WARMUP:
                with lock:
                    if len(sent_ns) != followers:
                        raise RuntimeError(f"deal {n + 1}: {len(sent_ns)} follower orders, not {followers}")
                    samples.append(max(sent_ns) - done_ns)
                if progress:
                    progress(1)
    finally:
        top.stopService()
        for _ in range(20):
            reactor.iterate(0.001)
        ctx.destroy(0)
    return PipelineFigures(followers, deals, samples, raw_hop(1000), cpu_reference(200))


def _copied(worker, before: int, deal: DealId) -> bool:
    """The master's deal is journalled and every order of it is done (no SQL until the worker journalled one)."""
    if not worker.worker.idle or worker.worker.journalled <= before:
        return False
    store = worker.store
    return store.deal_seq(deal) is not None and not store.intents_in_state("planned", "sent", "unknown")


def _trade(master, position: int | None) -> tuple[int | None, DealId, int]:
    """Open (no position) or close the master's position at its terminal: (position, deal, when it returned)."""
    tick = master.symbol_info_tick("EURUSD")
    request = {"action": C.TRADE_ACTION_DEAL, "symbol": "EURUSD", "volume": 1.0, "deviation": 10,
               "type_filling": C.ORDER_FILLING_FOK, "type_time": C.ORDER_TIME_GTC}
    if position is None:
        request.update(type=C.ORDER_TYPE_BUY, price=tick.ask)
    else:
        request.update(type=C.ORDER_TYPE_SELL, price=tick.bid, position=position)
    result = master.order_send(request)
    done_ns = time.perf_counter_ns()
    if result is None or result.retcode != C.TRADE_RETCODE_DONE:
        raise RuntimeError(f"the bench master's order was refused: {result or master.last_error()}")
    return (result.order if position is None else None), DealId(Platform.MT5, result.deal), done_ns


def _settle(reactor, condition, timeout_s: float = 30.0):
    return settle(reactor, condition, timeout_s, wait_s=0.0005, what="the MT5 bench")
