"""The venue contract's harness for the MT5 connector over the ``mt5linux`` provider (issue 5).

The same :class:`~connectors.mt5.venue.MT5Venue` as ``tests/mt5_rig.py``, but every account's terminal
is a real ``bridge sim mt5`` process (rpyc classic on 127.0.0.1, prices still: ``--tick-interval-ms 0``)
reached through ``providers.mt5linux`` (``RpycTerminal``), and the venue runs on real threads.

Each harness starts its own three processes (a hedging master, a hedging and a netting follower) and
kills them in ``close()``: every check gets fresh accounts with empty histories. Starting a process
takes about 0.3 s, so this costs a few seconds for the whole contract, and no state (positions, deals,
keys in comments) can leak from one check into the next.

The reactor is the threaded test clock of ``tests/test_mt5_venue.py``; ``result`` and ``pump`` keep it
on the wall clock (the terminals stamp deals with real time, shifted by the trade server's offset),
which also runs the pollers and health checks, and run what the terminal threads hand back.
``manual``/``manual_close`` trade by hand on the master's terminal through a link of their own
(``order_send`` with magic 0 and an empty comment), as a trader at the master's terminal does.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

from twisted.internet import defer
from twisted.python.failure import Failure

from bridge.domain.deal import Side
from bridge.domain.ids import Login, Platform, PositionId
from connectors.mt5 import providers
from connectors.mt5.rpyc_provider import RpycTerminal
from connectors.mt5.terminal import constants as C
from connectors.mt5.venue import MT5Venue
from tests.test_mt5_rpyc import start_server, stop_server
from tests.test_mt5_venue import ThreadedClock

MASTER, HEDGER, NETTER = 5001, 5002, 5003
PASSWORD, SERVER = "password", "SimBroker-Demo"
SERVER_OFFSET_S = 7200  # `bridge sim mt5` keeps its trade server at UTC+2
POLL_S = 0.005
TIMEOUT_S = 5.0
WAIT_S = 10.0  # result/pump give up after this long


def _start(login: int, hedging: bool):
    """One ``bridge sim mt5`` on a free port: (process, port)."""
    return start_server("--login", str(login), "--hedging" if hedging else "--netting", "--tick-interval-ms", "0")


class MT5RpycHarness:
    """Three ``bridge sim mt5`` processes and the MT5 venue over mt5linux links to them."""

    def __init__(self) -> None:
        self.procs = []
        self.venue = None
        self.hand = None
        try:
            accounts = {MASTER: True, HEDGER: True, NETTER: False}
            with ThreadPoolExecutor(len(accounts)) as pool:
                started = dict(zip(accounts, pool.map(lambda item: _start(*item), accounts.items())))
            self.procs = [proc for proc, _ in started.values()]
            ports = {login: port for login, (_, port) in started.items()}
            self.reactor = ThreadedClock()
            self._sync()
            terminals = {login: providers.mt5linux(host="127.0.0.1", port=port, login=login, password=PASSWORD,
                                                   server=SERVER, timeout_s=TIMEOUT_S)
                         for login, port in ports.items()}
            self.venue = MT5Venue("mt5", terminals, reactor=self.reactor, clock=self.reactor,
                                  poll_interval_s=POLL_S, server_offset_s=SERVER_OFFSET_S, timeout_s=TIMEOUT_S)
            assert self.result(self.venue.start()) is self.venue
            self.master, self.hedger, self.netter = (self.venue.login(n) for n in (MASTER, HEDGER, NETTER))
            self.hand = RpycTerminal(port=ports[MASTER], timeout_s=TIMEOUT_S)  # the trader's own link
            assert self.hand.initialize(login=MASTER, password=PASSWORD, server=SERVER), self.hand.last_error()
        except BaseException:
            self.close()
            raise

    # -- driving the venue ---------------------------------------------------------
    def _sync(self) -> None:
        """The reactor's clock to the wall clock (firing the pollers and health checks that are due)."""
        behind = time.time() - self.reactor.seconds()
        if behind > 0:
            self.reactor.advance(behind)

    def _step(self) -> None:
        self._sync()
        self.reactor.run_pending(wait=POLL_S)

    def result(self, d: defer.Deferred):
        box = []
        d.addBoth(box.append)
        deadline = time.monotonic() + WAIT_S
        while not box and time.monotonic() < deadline:
            self._step()
        assert box, f"the venue did not answer within {WAIT_S} s"
        if isinstance(box[0], Failure):
            box[0].raiseException()
        return box[0]

    def result_or_none(self, d) -> None:
        if isinstance(d, defer.Deferred):
            self.result(d)

    def pump(self, until=lambda: True) -> None:
        deadline = time.monotonic() + WAIT_S
        while not until() and time.monotonic() < deadline:
            self._step()
        assert until(), "pump: the condition never held"

    # -- trading by hand on the master's terminal ------------------------------------
    def _send(self, symbol: str, side: Side, lots, position: int | None = None):
        t = self.hand
        tick = t.symbol_info_tick(symbol)
        buy = side is Side.BUY
        request = {"action": C.TRADE_ACTION_DEAL, "symbol": symbol, "volume": float(Decimal(str(lots))),
                   "type": C.ORDER_TYPE_BUY if buy else C.ORDER_TYPE_SELL, "price": tick.ask if buy else tick.bid,
                   "deviation": 1000, "magic": 0, "comment": "", "type_filling": C.ORDER_FILLING_FOK,
                   "type_time": C.ORDER_TIME_GTC}
        if position is not None:
            request["position"] = position
        r = t.order_send(request)
        assert r is not None and r.retcode == C.TRADE_RETCODE_DONE, (r, t.last_error())
        return r

    def manual(self, account: Login, symbol: str, side: Side, lots) -> PositionId:
        assert account.number == MASTER, "only the master is traded by hand"
        r = self._send(symbol, side, lots)
        [deal] = self.hand.history_deals_get(ticket=r.order)
        return PositionId(Platform.MT5, deal.position_id)

    def manual_close(self, account: Login, position: PositionId, lots=None) -> None:
        assert account.number == MASTER, "only the master is traded by hand"
        [p] = self.hand.positions_get(ticket=position.value)
        side = Side.SELL if p.type == C.POSITION_TYPE_BUY else Side.BUY
        self._send(p.symbol, side, lots if lots is not None else repr(p.volume), position.value)

    def close(self) -> None:
        if self.venue is not None:
            self.venue.stop()
        if self.hand is not None:
            self.hand.close()
        for proc in self.procs:
            stop_server(proc)
        self.procs = []
