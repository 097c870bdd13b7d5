"""A test rig for the MT5 connector: simulated terminals on one shared Market, one injected clock,
and the :class:`~connectors.mt5.venue.MT5Venue` built over them (through the simulator provider).

Every terminal reads the same Twisted ``Clock`` (Unix seconds), shifted by its ``server_offset``;
the venue is told the same offset. With ``threads=False`` every venue call runs inline, so the
venue's Deferreds have fired when the rig's ``result`` looks at them; the pollers and health checks
run when the clock is advanced (``pump``).

``manual``/``manual_close`` trade *by hand* on a terminal (``order_send`` with magic 0 and an empty
comment), as a master's trader does; :class:`MT5Harness` is the venue contract's harness.
"""

from __future__ import annotations

import random
from decimal import Decimal

from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from bridge.domain.deal import Side
from bridge.domain.ids import Login, Platform, PositionId
from connectors.mt5 import providers
from connectors.mt5.terminal import constants as C
from connectors.mt5.terminal.terminal import Faults, Terminal
from connectors.mt5.venue import MT5Venue
from connectors.sim.market import Market

START = 1_709_553_600  # 2024-03-04 12:00 UTC
MASTER, HEDGER, NETTER, NET_MASTER = 5001, 5002, 5003, 5004
POLL_S = 0.005


class Rig:
    """``accounts``: login -> hedging; every terminal on one Market and one clock."""

    def __init__(self, accounts: dict[int, bool] | None = None, *, server_offset: int = 7200, seed: int = 7,
                 faults: dict[int, Faults] | None = None, balance: str = "10000", threads: bool = False,
                 reactor=None, timeout_s: float = 10.0) -> None:
        accounts = accounts if accounts is not None else {MASTER: True, HEDGER: True, NETTER: False,
                                                          NET_MASTER: False}
        self.clock = Clock()
        self.clock.advance(START)
        self.market = Market()
        rng = random.Random(seed)
        self.terminals = {
            login: Terminal(login=login, hedging=hedging, market=self.market, clock=self.clock.seconds,
                            rng=random.Random(rng.getrandbits(64)), server_offset=server_offset,
                            faults=(faults or {}).get(login), balance=balance)
            for login, hedging in accounts.items()}
        self.venue = MT5Venue("mt5", {login: providers.simulator(t) for login, t in self.terminals.items()},
                              reactor=reactor if reactor is not None else self.clock, clock=self.clock,
                              poll_interval_s=POLL_S, server_offset_s=server_offset, timeout_s=timeout_s,
                              threads=threads)
        self.result(self.venue.start())

    def login(self, number: int) -> Login:
        return self.venue.login(number)

    def result(self, d):
        box = []
        d.addBoth(box.append)
        for _ in range(1000):
            if box:
                break
            self.clock.advance(POLL_S)
        assert box, "the venue did not answer"
        if isinstance(box[0], Failure):
            box[0].raiseException()
        return box[0]

    def pump(self, until=lambda: True, seconds: float = POLL_S, limit: int = 400) -> None:
        for _ in range(limit):
            self.clock.advance(seconds)
            if until():
                return
        assert until(), "pump: the condition never held"

    # -- trading by hand --------------------------------------------------------
    def _send(self, t: Terminal, symbol: str, side: Side, lots, position: int | None = None):
        tick = t.symbol_info_tick(symbol)
        buy = side is Side.BUY
        request = {"action": C.TRADE_ACTION_DEAL, "symbol": symbol, "volume": float(Decimal(str(lots))),
                   "type": C.ORDER_TYPE_BUY if buy else C.ORDER_TYPE_SELL, "price": tick.ask if buy else tick.bid,
                   "deviation": 1000, "type_filling": C.ORDER_FILLING_FOK, "type_time": C.ORDER_TIME_GTC}
        if position is not None:
            request["position"] = position
        r = t.order_send(request)
        assert r is not None and r.retcode == C.TRADE_RETCODE_DONE, (r, t.last_error())
        return r

    def manual(self, account: Login, symbol: str, side: Side, lots) -> PositionId:
        t = self.terminals[account.number]
        r = self._send(t, symbol, side, lots)
        [deal] = t.history_deals_get(ticket=r.order)
        return PositionId(Platform.MT5, deal.position_id)

    def manual_close(self, account: Login, position: PositionId, lots=None) -> None:
        t = self.terminals[account.number]
        [p] = t.positions_get(ticket=position.value)
        side = Side.SELL if p.type == C.POSITION_TYPE_BUY else Side.BUY
        self._send(t, p.symbol, side, lots if lots is not None else repr(p.volume), position.value)

    def manual_sltp(self, account: Login, position: PositionId, sl=None, tp=None) -> None:
        t = self.terminals[account.number]
        [p] = t.positions_get(ticket=position.value)
        r = t.order_send({"action": C.TRADE_ACTION_SLTP, "symbol": p.symbol, "position": position.value,
                          "sl": float(Decimal(str(sl))) if sl is not None else 0.0,
                          "tp": float(Decimal(str(tp))) if tp is not None else 0.0})
        assert r is not None and r.retcode == C.TRADE_RETCODE_DONE, (r, t.last_error())

    def close(self) -> None:
        self.venue.stop()


class MT5Harness(Rig):
    """The venue contract's harness (tests/venue_contract.py)."""

    def __init__(self) -> None:
        super().__init__({MASTER: True, HEDGER: True, NETTER: False})
        self.master, self.hedger, self.netter = self.login(MASTER), self.login(HEDGER), self.login(NETTER)

    def result_or_none(self, d) -> None:
        if isinstance(d, defer.Deferred):
            self.result(d)
