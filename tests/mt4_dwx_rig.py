"""A test rig for the DWX connector: simulated MT4 terminals (``connectors.mt4.simulator.Terminal``) each
behind a :class:`~connectors.mt4.dwx.simulator.DwxServer` on tcp://127.0.0.1 (PULL, PUSH, PUB on three
ports), and the :class:`~connectors.mt4.dwx.venue.DwxVenue` over them.

The time, trading by hand, ``pump`` and ``result`` are the MT4 rig's (``tests/mt4_rig.py``): one Twisted
``Clock`` for the servers' timers, the venue's links and polls, advanced a millisecond at a time while the
real sockets carry the frames. :class:`DwxHarness` is the venue contract's harness.
"""

from __future__ import annotations

import random

import zmq
from twisted.internet.task import Clock

from connectors.mt4.dwx.simulator import DwxServer
from connectors.mt4.dwx.venue import DwxVenue
from connectors.mt4.simulator import Terminal
from connectors.sim.market import Market
from tests.mt4_rig import HEDGER, MASTER, START, Rig

#: generous EA inputs (the DWX defaults, 1 order of 0.01 lots at most, would refuse most tests' trades)
INPUTS = {"max_orders": 100, "max_lot_size": "100"}


class DwxRig(Rig):
    def __init__(self, logins=(MASTER, HEDGER), *, server_offset: int = 7200, seed: int = 7,
                 balance: str = "10000", timeout_s: float = 0.5, poll_ms: int = 100, inputs: dict | None = None,
                 start: bool = True) -> None:
        self.ctx = zmq.Context()
        self.clock = Clock()
        self.clock.advance(START)
        self.ms = 0
        self.market = Market()
        rng = random.Random(seed)
        self.terminals = {
            login: Terminal(login=login, balance=balance, market=self.market, clock=self.now,
                            rng=random.Random(rng.getrandbits(64)), server_offset=server_offset)
            for login in logins}
        self.inputs = {**INPUTS, **(inputs or {})}
        self.servers: dict[int, DwxServer] = {}
        for login in logins:
            server = DwxServer(self.terminals[login], self.ctx, "tcp://127.0.0.1:*", "tcp://127.0.0.1:*",
                               reactor=self.clock, **self.inputs)
            server.start()
            self.servers[login] = server
        self.venue = DwxVenue("mt4", {login: (s.command_endpoint, s.reply_endpoint)
                                      for login, s in self.servers.items()},
                              ctx=self.ctx, reactor=self.clock, clock=self.clock, server_offset_s=server_offset,
                              timeout_s=timeout_s, poll_ms=poll_ms)
        if start:
            self.result(self.venue.start())

    def _poller(self) -> zmq.Poller:
        poller = zmq.Poller()
        for link in self.venue.links.values():
            if not link.pull.closed:
                poller.register(link.pull, zmq.POLLIN)
        for server in self.servers.values():
            if not server.pull.closed:
                poller.register(server.pull, zmq.POLLIN)
        return poller


class DwxHarness(DwxRig):
    """The venue contract's harness (tests/venue_contract.py). MT4 accounts always hedge: no netter."""

    skips = {
        "account_info": "the DWX EA has no account command: balance, equity and currency are unknown",
        "manual_trades_reach_watchers_in_order_and_the_history":
            "DWX is polled: an open, partial close and close made between two polls are never seen, and "
            "deals_since has no history, only what this process polled (tests/test_mt4_dwx.py follows "
            "the same trades one poll apart)",
    }

    def __init__(self) -> None:
        # 2 s, not 0.5: the EAs' PUSH/PULL connections come up in zmq's I/O thread in real time, and a full
        # suite on a busy 2-core machine once took longer than two start heartbeats (0.25 s apart)
        super().__init__((MASTER, HEDGER), timeout_s=2.0)
        self.master, self.hedger = self.login(MASTER), self.login(HEDGER)
        self.netter = None
