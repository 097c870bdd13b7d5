"""A test rig for the MT4 connector: simulated MT4 terminals on one shared Market and one clock, each running
the EA's logic (``connectors.mt4.simulator``) served by an :class:`EAServer` on tcp://127.0.0.1:* in this
process, and the :class:`~connectors.mt4.venue.MT4Venue` over them.

Deterministic time: the EA servers and the venue run on one Twisted ``Clock``; the terminals read the same
time (``START`` plus whole milliseconds, as Decimals), shifted by their ``server_offset``. ``pump`` advances
the clock a millisecond at a time (the EAs' timers serve commands, scan and publish; the venue's links drain
their sockets) and, between steps, waits up to a millisecond of real time for the sockets' I/O. Prices come
from seeded generators; the sockets are real.

``manual``/``manual_close``/``manual_sltp`` trade *by hand* in a terminal (magic 0, empty comment), as a
master's trader does; :class:`MT4Harness` is the venue contract's harness.
"""

from __future__ import annotations

import random
from decimal import Decimal
from pathlib import Path

import zmq
from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from bridge.domain.deal import Side
from bridge.domain.ids import Login, Platform, PositionId
from connectors.mt4 import convert
from connectors.mt4 import protocol as P
from connectors.mt4.simulator import EAServer, Faults, SimulatedEA, Terminal
from connectors.mt4.venue import MT4Venue
from connectors.sim.market import Market

START = 1_709_553_600  # 2024-03-04 12:00 UTC
MASTER, HEDGER, OTHER = 4001, 4002, 4003
STEP_S = 0.001


class Rig:
    def __init__(self, logins=(MASTER, HEDGER), *, server_offset: int = 7200, seed: int = 7,
                 faults: dict[int, Faults] | None = None, balance: str = "10000", timeout_s: float = 0.5,
                 journal_dir: Path | None = None, start: bool = True) -> None:
        self.ctx = zmq.Context()
        self.clock = Clock()
        self.clock.advance(START)
        self.ms = 0
        self.market = Market()
        self.journal_dir = journal_dir
        rng = random.Random(seed)
        self.terminals = {
            login: Terminal(login=login, balance=balance, market=self.market, clock=self.now,
                            rng=random.Random(rng.getrandbits(64)), server_offset=server_offset,
                            faults=(faults or {}).get(login))
            for login in logins}
        self.servers: dict[int, EAServer] = {}
        for login in logins:
            self.serve(login)
        self.venue = MT4Venue("mt4", {login: (s.command_endpoint, s.event_endpoint)
                                      for login, s in self.servers.items()},
                              ctx=self.ctx, reactor=self.clock, clock=self.clock, server_offset_s=server_offset,
                              timeout_s=timeout_s)
        if start:
            self.result(self.venue.start())

    def now(self) -> Decimal:
        return START + Decimal(self.ms) / 1000

    def serve(self, login: int, *, command: str = "tcp://127.0.0.1:*", events: str = "tcp://127.0.0.1:*",
              epoch: str | None = None) -> EAServer:
        """Start (or restart: a new EA, a new epoch, the journal read back) the EA of ``login``."""
        journal = self.journal_dir / f"copybridge-{login}.journal" if self.journal_dir is not None else None
        ea = SimulatedEA(self.terminals[login], epoch=epoch, journal_path=journal)
        server = EAServer(ea, self.ctx, command, events, reactor=self.clock)
        server.start()
        self.servers[login] = server
        return server

    def restart_ea(self, login: int, epoch: str | None = None) -> EAServer:
        """Stop the EA of ``login`` and start a new one on the same endpoints."""
        old = self.servers[login]
        old.stop()
        return self.serve(login, command=old.command_endpoint, events=old.event_endpoint, epoch=epoch)

    def login(self, number: int) -> Login:
        return self.venue.login(number)

    # -- time and sockets ----------------------------------------------------------
    def step(self) -> None:
        self.ms += 1
        self.clock.advance(STEP_S)

    def _poller(self) -> zmq.Poller:
        poller = zmq.Poller()
        for link in self.venue.links.values():
            if not link._closed:
                for s in link.sockets:
                    poller.register(s, zmq.POLLIN)
        for server in self.servers.values():
            if not server.router.closed:
                poller.register(server.router, zmq.POLLIN)
        return poller

    def pump(self, until=lambda: True, seconds: float = 5.0) -> None:
        poller = self._poller()
        for _ in range(int(seconds / STEP_S)):
            if until():
                return
            poller.poll(1)
            self.step()
        assert until(), "pump: the condition never held"

    def wait(self, seconds: float) -> None:
        end = self.ms + int(seconds / STEP_S)
        self.pump(lambda: self.ms >= end, seconds + 1)

    def result(self, d, seconds: float = 5.0):
        box = []
        d.addBoth(box.append)
        self.pump(lambda: bool(box), seconds)
        if isinstance(box[0], Failure):
            box[0].raiseException()
        return box[0]

    def result_or_none(self, d) -> None:
        if isinstance(d, defer.Deferred):
            self.result(d)

    # -- trading by hand ------------------------------------------------------------
    def manual(self, account: Login, symbol: str, side: Side, lots, sl=0, tp=0) -> PositionId:
        t = self.terminals[account.number]
        return PositionId(Platform.MT4, t.open(symbol, P.OP_BUY if side is Side.BUY else P.OP_SELL, lots, sl, tp))

    def open_ticket(self, account: Login, position: PositionId) -> int | None:
        """The open ticket of the position whose root is ``position`` (following ``to #`` history comments)."""
        t = self.terminals[account.number]
        ticket = position.value
        open_tickets = {o.ticket for o in t.open_orders()}
        history = {h.ticket: h for h in t.history_orders()}
        while ticket not in open_tickets:
            entry = history.get(ticket)
            nxt = convert.child_of(entry.comment) if entry is not None else None
            if nxt is None:
                return None
            ticket = nxt
        return ticket

    def manual_close(self, account: Login, position: PositionId, lots=None) -> None:
        self.terminals[account.number].close(self.open_ticket(account, position), lots)

    def manual_sltp(self, account: Login, position: PositionId, sl=0, tp=0) -> None:
        self.terminals[account.number].modify(self.open_ticket(account, position), sl, tp)

    def close(self) -> None:
        self.venue.stop()
        for server in self.servers.values():
            server.stop()
        self.ctx.destroy(linger=0)


class MT4Harness(Rig):
    """The venue contract's harness (tests/venue_contract.py). MT4 accounts always hedge: no netter."""

    def __init__(self) -> None:
        super().__init__((MASTER, HEDGER))
        self.master, self.hedger = self.login(MASTER), self.login(HEDGER)
        self.netter = None
