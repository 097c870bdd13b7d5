"""MT4 benchmark: a master trade in the terminal -> the last follower's order command reaching its EA.

The bridge runs as ``bridge run`` builds it from a ``platform = "mt4"`` venue
of simulated terminals (``provider = "simulator"``): each terminal runs the
copybridge EA's logic (``connectors.mt4.simulator``) served on ``inproc://``
endpoints, scanning for changes every millisecond as the real EA's timer does,
and the bridge's MT4 connector speaks the EA protocol to it
(connectors/mt4/PROTOCOL.md). The master's trader opens and closes at the
master's terminal, one trade at a time, each once the previous one is fully
copied.

The clock starts when the master's trade returns (the ticket is in the
terminal) and stops when the trade's last follower ``OPEN`` or ``CLOSE``
command reaches that follower's EA: a thin wrapper around each follower EA's
command handler notes the moment. The figure includes the EA's scan (on
average half a millisecond), its event, the bus, journal, worker, executor
and the command. The first ``WARMUP`` trades are not measured.
"""

from __future__ import annotations

import random
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import zmq
from twisted.internet import reactor as default_reactor

from allocation.copy import CopySettings, resolve
from allocation.copy.settings import SizingMode
from bridge.bench.pipeline import WARMUP, PipelineFigures, cpu_reference, raw_hop
from bridge.bench.pipeline import _settle as settle
from bridge.daemon.config import BridgeConfig, CopyConfig, MT4Account, MT4Settings, VenueConfig
from bridge.daemon.services import build
from bridge.domain.ids import Login, Platform, ServerId
from connectors.mt4 import protocol as P

SERVER = ServerId(Platform.MT4, "bench")
MASTER = Login(SERVER, 1)


def bench_config(followers: int, seed: int, store_dir: Path) -> BridgeConfig:
    rng = random.Random(seed)
    logins = [Login(SERVER, 100 + i) for i in range(followers)]
    accounts = (MT4Account(MASTER.number, "simulator", balance=Decimal(100_000)),
                *(MT4Account(f.number, "simulator", balance=Decimal(rng.randrange(5_000, 50_000))) for f in logins))
    venue = VenueConfig(SERVER.name, Platform.MT4, seed, 0, (), mt4=MT4Settings(accounts))
    return BridgeConfig(store_dir / "bench.sqlite", "inproc://bench-mt4-deals", "inproc://bench-mt4-replay", 100,
                        (venue,), (MASTER,),
                        tuple(CopyConfig(MASTER, f, resolve(CopySettings(mode=SizingMode.MULTIPLIER))) for f in logins),
                        ())


class _TimedEA:
    """Wraps an EA's command handler: notes when each trading command reaches it."""

    def __init__(self, ea, sent_ns: list[int]) -> None:
        self._handle = ea.handle
        self._sent_ns = sent_ns
        ea.handle = self

    def __call__(self, command: dict):
        if command.get("cmd") in (P.OPEN, P.CLOSE):
            self._sent_ns.append(time.perf_counter_ns())
        return self._handle(command)


def run(followers: int, deals: int, seed: int = 7, progress=None) -> PipelineFigures:
    reactor = default_reactor
    ctx = zmq.Context()
    config = bench_config(followers, seed, Path(tempfile.mkdtemp(prefix="copybridge-bench-")))
    top = build(config, reactor, "all", ctx)
    (venue,) = top.venues.values()
    sent_ns: list[int] = []
    master = None
    for server in venue.simulated:
        if server.ea.terminal.login == MASTER.number:
            master = server.ea.terminal
        else:
            _TimedEA(server.ea, sent_ns)
    top.startService()
    worker = top.getServiceNamed("worker")
    samples: list[int] = []
    try:
        _settle(reactor, lambda: worker.ready.called and worker.worker.idle)
        ticket = None
        for n in range(WARMUP + deals):
            sent_ns.clear()
            before = worker.worker.journalled
            if ticket is None:
                ticket = master.open("EURUSD", P.OP_BUY, Decimal("1.00"))
            else:
                master.close(ticket)
                ticket = None
            done_ns = time.perf_counter_ns()
            _settle(reactor, lambda: _copied(worker, before))
            if n >= WARMUP:
                if len(sent_ns) != followers:
                    raise RuntimeError(f"trade {n + 1}: {len(sent_ns)} follower orders, not {followers}")
                samples.append(max(sent_ns) - done_ns)
                if progress:
                    progress(1)
    finally:
        top.stopService()
        for _ in range(20):
            reactor.iterate(0.001)
        ctx.destroy(0)
    return PipelineFigures(followers, deals, samples, raw_hop(1000), cpu_reference(200))


def _copied(worker, before: int) -> bool:
    """One more master deal is journalled and every order of it is done (no SQL until then)."""
    if not worker.worker.idle or worker.worker.journalled <= before:
        return False
    return not worker.store.intents_in_state("planned", "sent", "unknown")


def _settle(reactor, condition, timeout_s: float = 30.0):
    return settle(reactor, condition, timeout_s, wait_s=0.0002, what="the MT4 bench")
