"""One simulated MT4 terminal logged in to one account: its order pools and the trade server's rules.

MQL4 semantics (shared/specs/platforms.md section 3.3):

- Every order and every balance operation gets a ticket from one counter. A market order lives in
  the open pool (``MODE_TRADES``) until it is closed, then in the history pool (``MODE_HISTORY``),
  which also holds balance operations (``type`` 6, symbol ``""``, ``profit`` = amount). The history
  pool only grows; its order is the order things entered it (``history_order(pos)``).
- ``order_send`` (``OrderSend``) takes the current Ask (buy) / Bid (sell) within ``slippage`` points
  (else 138 requote, 129 off the tick); lots must be on ``MODE_LOTSTEP`` and within
  ``MODE_MINLOT..MODE_MAXLOT`` (else 131; rounding down is the EA's job, the server refuses); SL/TP
  at least ``MODE_STOPLEVEL`` points (and one point) away from the close price (else 130); the margin
  must fit the free margin (else 134).
- ``order_close`` (``OrderClose``): fewer lots than the order's is a partial close: the closed part
  stays in the history under the old ticket (its comment becomes ``to #<new>``) and the remainder is
  reopened under a NEW ticket with the same open price, time, SL, TP and magic, comment
  ``from #<old>``. Both parts must be at least ``MODE_MINLOT`` (else 131). An unknown ticket: 4108.
- ``order_modify`` (``OrderModify``): unchanged levels raise error 1 (no result), as MT4 does.
- ``step()`` random-walks the market; then SL/TP trigger (the history comment gets ``[sl]``/``[tp]``
  appended) and, at a margin level at or below ``margin_so`` percent, the most losing order is stopped
  out (comment ``so: <level>%/<equity>/<margin>``).

Refusals raise :class:`TradeError` (``.code`` is the MQL4 error). The ``order_*`` calls are the EA's
path and meet the random :class:`Faults` (requote, busy); the by-hand calls ``open``/``close``/
``modify`` trade at the current price and meet only ``faults.connected``.

Money and lots are ``Decimal`` (prices with the symbol's digits, lots on the lot step, money in
cents); volumes are converted to integer hundredths of a base unit only to ask :class:`Market` for a
profit. Times: the injected ``clock`` returns Unix seconds; every time is trade-server time, the
clock plus ``server_offset`` seconds. One call at a time (``lock``, re-entrant).
"""

from __future__ import annotations

import random
import threading
import time as _time
from dataclasses import replace
from decimal import ROUND_DOWN, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from typing import Callable

from bridge.domain.deal import Side
from bridge.domain.volume import UNITS_PER_BASE
from connectors.mt4 import protocol as P
from connectors.mt4.simulator.faults import Faults
from connectors.mt4.simulator.orders import ZERO, Order, TradeError
from connectors.sim.market import CENT, Market

__all__ = ["SimClock", "Terminal", "TradeError"]

COMMENT_LENGTH = 31  # MT4 keeps 31 characters of a comment
LOTS = Decimal("0.01")


class SimClock:
    """A manual clock: ``clock()`` returns Unix seconds as a ``Decimal``; ``advance`` moves it."""

    def __init__(self, start: object = "1704067200") -> None:  # 2024-01-01 00:00 UTC
        self.now = Decimal(str(start))

    def __call__(self) -> Decimal:
        return self.now

    def advance(self, seconds: object) -> None:
        self.now += Decimal(str(seconds))


def _price(value: object) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


class Terminal:
    """One MT4 account on a simulated trade server: the market, the pools, the clock and the faults."""

    def __init__(self, *, login: int, balance: object = "10000", currency: str = "USD", leverage: int = 100,
                 market: Market | None = None, clock: Callable[[], object] | None = None,
                 rng: random.Random | None = None, server_offset: int = 7200, faults: Faults | None = None,
                 server: str = "SimBroker-MT4", name: str = "Sim Trader", company: str = "Sim Broker Ltd",
                 stop_level: int = 0, margin_so: object = 30, first_ticket: int = 1001) -> None:
        self.login = login
        self.currency = currency
        self.leverage = leverage
        self.market = market if market is not None else Market()
        self.clock = clock if clock is not None else SimClock()
        self.rng = rng if rng is not None else random.Random(0)
        # faults (and the EA's epochs) draw from their own generator, so turning them on leaves prices alone
        self.fault_rng = random.Random(self.rng.getrandbits(64))
        self.server_offset = server_offset
        self.faults = faults if faults is not None else Faults()
        self.server = server
        self.name = name
        self.company = company
        self.stop_level = stop_level
        self.margin_so = Decimal(str(margin_so))
        self.lock = threading.RLock()
        self.balance = ZERO
        self.changes = 0  # bumped by every change of the pools (lets a scan skip an unchanged terminal)
        self._open: dict[int, Order] = {}
        self._history: list[Order] = []
        self._next_ticket = first_ticket
        amount = Decimal(str(balance))
        if amount:
            self.balance_operation(amount, "Deposit")

    # ------------------------------------------------------------------ time, faults
    def now_msc(self) -> int:
        """Trade-server time in whole milliseconds (``TimeCurrent()`` * 1000 plus the milliseconds)."""
        seconds = Decimal(str(self.clock())) + self.server_offset
        return int((seconds * 1000).to_integral_value(ROUND_FLOOR))

    def spend(self, microseconds: int) -> None:
        """Let ``microseconds`` pass: on the injected clock if it can ``advance``, else really."""
        if microseconds:
            advance = getattr(self.clock, "advance", None)
            if advance is not None:
                advance(Decimal(microseconds) / 1_000_000)
            else:
                _time.sleep(microseconds / 1_000_000)

    def _roll(self, rate: float) -> bool:
        return rate > 0 and self.fault_rng.random() < rate

    def _ticket(self) -> int:
        ticket = self._next_ticket
        self._next_ticket += 1
        return ticket

    # ------------------------------------------------------------------ symbols (MarketInfo)
    def symbol_info(self, symbol: str) -> dict:
        """``MarketInfo`` of ``symbol`` under the protocol's SYMBOL names (KeyError if unknown)."""
        d = self.market.definition(symbol)
        quote = self.market.quote(symbol)
        point = self.market.point(symbol)
        contract = Decimal(d.contract_size)
        tick_value = (point * contract * self.market.quote_value(symbol, self.currency)).quantize(
            Decimal("0.00001"), ROUND_HALF_EVEN).normalize()
        return {"symbol": symbol, "digits": d.digits, "point": point, "contract_size": contract,
                "min_lot": Decimal(d.min_lots), "lot_step": Decimal(d.step_lots), "max_lot": Decimal(d.max_lots),
                "tick_value": tick_value, "tick_size": point, "stop_level": self.stop_level,
                "trade_allowed": True, "bid": quote.bid, "ask": quote.ask, "base": d.base, "quote": d.quote,
                "margin_currency": d.base}

    def round_lots(self, symbol: str, lots: object) -> Decimal:
        """``floor(lots / MODE_LOTSTEP) * MODE_LOTSTEP`` with two decimals (what the EA sends)."""
        step = Decimal(self.market.definition(symbol).step_lots)
        exact = _price(lots)
        return ((exact / step).to_integral_value(ROUND_DOWN) * step).quantize(LOTS)

    def _check_lots(self, symbol: str, lots: Decimal) -> None:
        d = self.market.definition(symbol)
        step = Decimal(d.step_lots)
        if lots <= 0 or lots % step or lots < Decimal(d.min_lots) or lots > Decimal(d.max_lots):
            raise TradeError(P.ERR_INVALID_TRADE_VOLUME)

    def _units(self, symbol: str, lots: Decimal) -> int:
        return int(lots * Decimal(self.market.definition(symbol).contract_size) * UNITS_PER_BASE)

    def _side(self, order_type: int) -> Side:
        return Side.BUY if order_type == P.OP_BUY else Side.SELL

    def market_price(self, symbol: str, order_type: int, *, closing: bool = False) -> Decimal:
        """Ask for a buy (Bid to close it), Bid for a sell (Ask to close it)."""
        quote = self.market.quote(symbol)
        buying = (order_type == P.OP_BUY) != closing
        return quote.ask if buying else quote.bid

    # ------------------------------------------------------------------ money
    def _floating(self, order: Order) -> Decimal:
        close = self.market_price(order.symbol, order.type, closing=True)
        return self.market.profit(order.symbol, self._side(order.type), self._units(order.symbol, order.lots),
                                  order.open_price, close, self.currency)

    def _margin(self, symbol: str, lots: Decimal, price: Decimal) -> Decimal:
        notional = lots * Decimal(self.market.definition(symbol).contract_size) * price / self.leverage
        quote = self.market.definition(symbol).quote
        return self.market.convert(notional, quote, self.currency).quantize(CENT, ROUND_HALF_EVEN)

    def figures(self) -> tuple[Decimal, Decimal, Decimal]:
        """(equity, margin, free margin) now."""
        equity = self.balance + sum((self._floating(o) for o in self._open.values()), ZERO)
        margin = sum((self._margin(o.symbol, o.lots, o.open_price) for o in self._open.values()), ZERO)
        return equity, margin, equity - margin

    def account(self) -> dict:
        """The protocol's ACCOUNT result (``AccountInfo*``)."""
        with self.lock:
            equity, margin, free = self.figures()
            return {"login": self.login, "currency": self.currency, "balance": self.balance, "equity": equity,
                    "margin": margin, "free_margin": free, "leverage": self.leverage, "server": self.server,
                    "company": self.company, "name": self.name}

    # ------------------------------------------------------------------ pools (OrderSelect)
    def open_orders(self) -> list[Order]:
        """The open pool (market orders), oldest ticket first, as copies with the floating profit."""
        with self.lock:
            return [replace(o, profit=self._floating(o)) for o in sorted(self._open.values(), key=lambda o: o.ticket)]

    def history_orders(self) -> list[Order]:
        """The history pool (closed orders and balance operations) in the order they entered it, as copies."""
        with self.lock:
            return [replace(o) for o in self._history]

    def history_total(self) -> int:
        """``OrdersHistoryTotal()``."""
        return len(self._history)

    def history_order(self, pos: int) -> Order:
        """``OrderSelect(pos, SELECT_BY_POS, MODE_HISTORY)``: a copy of the history pool's ``pos``-th entry."""
        with self.lock:
            return replace(self._history[pos])

    def order(self, ticket: int) -> Order | None:
        """``OrderSelect(ticket, SELECT_BY_TICKET)``: an open order, else a history one, else ``None``."""
        with self.lock:
            if ticket in self._open:
                return replace(self._open[ticket], profit=self._floating(self._open[ticket]))
            for o in self._history:
                if o.ticket == ticket:
                    return replace(o)
            return None

    # ------------------------------------------------------------------ the EA's trading calls
    def order_send(self, symbol: str, order_type: int, lots: object, price: object, slippage: int,
                   sl: object = 0, tp: object = 0, comment: str = "", magic: int = 0, *,
                   faults: bool = True) -> int:
        """``OrderSend`` of a market order: the new ticket, or :class:`TradeError`."""
        with self.lock:
            self._check_connected()
            if symbol not in self.market:
                raise TradeError(4106, "unknown symbol")
            if order_type not in (P.OP_BUY, P.OP_SELL) or slippage < 0:
                raise TradeError(P.ERR_INVALID_TRADE_PARAMETERS)
            lots, sl, tp = _price(lots), _price(sl), _price(tp)
            self._check_lots(symbol, lots)
            if faults:
                self._server_faults()
            fill = self._check_price(symbol, order_type, _price(price), slippage, closing=False)
            self._check_stops(symbol, order_type, sl, tp)
            _, _, free = self.figures()
            if self._margin(symbol, lots, fill) > free:
                raise TradeError(P.ERR_NOT_ENOUGH_MONEY)
            now = self.now_msc()
            order = Order(self._ticket(), symbol, order_type, lots, fill, now // 1000, now, sl, tp, magic,
                          comment[:COMMENT_LENGTH])
            self._open[order.ticket] = order
            self.changes += 1
            return order.ticket

    def order_close(self, ticket: int, lots: object, price: object, slippage: int, *, faults: bool = True) -> int:
        """``OrderClose``: the remainder's new ticket after a partial close, ``0`` after a full one."""
        with self.lock:
            self._check_connected()
            order = self._open.get(ticket)
            if order is None:
                raise TradeError(P.ERR_INVALID_TICKET)
            lots = _price(lots)
            if lots != order.lots:
                self._check_lots(order.symbol, lots)
                if lots > order.lots:
                    raise TradeError(P.ERR_INVALID_TRADE_VOLUME)
                self._check_lots(order.symbol, order.lots - lots)
            if faults:
                self._server_faults()
            close = self._check_price(order.symbol, order.type, _price(price), slippage, closing=True)
            return self._close(order, lots, close)

    def order_modify(self, ticket: int, sl: object, tp: object, *, faults: bool = True) -> None:
        """``OrderModify`` of an open order's SL/TP; error 1 when nothing changes."""
        with self.lock:
            self._check_connected()
            order = self._open.get(ticket)
            if order is None:
                raise TradeError(P.ERR_INVALID_TICKET)
            sl, tp = _price(sl), _price(tp)
            if faults:
                self._server_faults()
            if (sl, tp) == (order.sl, order.tp):
                raise TradeError(P.ERR_NO_RESULT)
            self._check_stops(order.symbol, order.type, sl, tp)
            order.sl, order.tp = sl, tp
            self.changes += 1

    # ------------------------------------------------------------------ by hand (tests, MANUAL_*)
    def open(self, symbol: str, type: int, lots: object, sl: object = 0, tp: object = 0, magic: int = 0,
             comment: str = "") -> int:
        """Open at the current price as a trader would by hand: the ticket (TradeError on refusal)."""
        with self.lock:
            if symbol not in self.market:
                raise TradeError(4106, "unknown symbol")
            price = self.market_price(symbol, type) if type in (P.OP_BUY, P.OP_SELL) else ZERO
            return self.order_send(symbol, type, lots, price, 0, sl, tp, comment, magic, faults=False)

    def close(self, ticket: int, lots: object = None) -> int:
        """Close ``lots`` (default all) at the current price: the remainder's ticket, or 0."""
        with self.lock:
            order = self._open.get(ticket)
            if order is None:
                self._check_connected()
                raise TradeError(P.ERR_INVALID_TICKET)
            amount = order.lots if lots is None or _price(lots) == 0 else lots
            price = self.market_price(order.symbol, order.type, closing=True)
            return self.order_close(ticket, amount, price, 0, faults=False)

    def modify(self, ticket: int, sl: object, tp: object) -> None:
        """Set an open order's SL/TP by hand (unchanged levels: error 1, as ``OrderModify``)."""
        self.order_modify(ticket, sl, tp, faults=False)

    def balance_operation(self, amount: object, comment: str = "") -> int:
        """A deposit (positive) or withdrawal: a history entry of type 6; its ticket."""
        amount = Decimal(str(amount)).quantize(CENT, ROUND_HALF_EVEN)
        with self.lock:
            now = self.now_msc()
            entry = Order(self._ticket(), "", P.OP_BALANCE, ZERO, ZERO, now // 1000, now, comment=comment,
                          close_time=now // 1000, close_time_msc=now, profit=amount)
            self.balance += amount
            self._history.append(entry)
            self.changes += 1
            return entry.ticket

    # ------------------------------------------------------------------ the market
    def step(self, n: int = 1) -> None:
        """Move the market ``n`` random-walk steps (seeded ``rng``); SL/TP and stop-out after each."""
        with self.lock:
            for _ in range(n):
                self.market.step(self.rng)
                self._check_triggers()

    def set_bid(self, symbol: str, bid: object) -> None:
        """Put a symbol's bid at ``bid`` (scripted scenarios); SL/TP and stop-out are checked."""
        with self.lock:
            self.market.set_bid(symbol, _price(bid))
            self._check_triggers()

    # ------------------------------------------------------------------ internals
    def _check_connected(self) -> None:
        if not self.faults.connected:
            raise TradeError(P.ERR_NO_CONNECTION)

    def _server_faults(self) -> None:
        if self._roll(self.faults.busy):
            raise TradeError(P.ERR_TRADE_CONTEXT_BUSY)
        if self._roll(self.faults.requote):
            raise TradeError(P.ERR_REQUOTE)

    def _check_price(self, symbol: str, order_type: int, price: Decimal, slippage: int, *, closing: bool) -> Decimal:
        if price <= 0 or not self.market.on_tick(symbol, price):
            raise TradeError(P.ERR_INVALID_PRICE)
        current = self.market_price(symbol, order_type, closing=closing)
        if abs(current - price) > slippage * self.market.point(symbol):
            raise TradeError(P.ERR_REQUOTE)
        return current

    def _check_stops(self, symbol: str, order_type: int, sl: Decimal, tp: Decimal) -> None:
        if sl < 0 or tp < 0 or not self.market.on_tick(symbol, sl) or not self.market.on_tick(symbol, tp):
            raise TradeError(P.ERR_INVALID_STOPS)
        point = self.market.point(symbol)
        distance = max(self.stop_level, 1) * point
        close = self.market_price(symbol, order_type, closing=True)
        below, above = (sl, tp) if order_type == P.OP_BUY else (tp, sl)
        if (below and close - below < distance) or (above and above - close < distance):
            raise TradeError(P.ERR_INVALID_STOPS)

    def _close(self, order: Order, lots: Decimal, price: Decimal, comment: str | None = None) -> int:
        """Move ``lots`` of ``order`` to the history at ``price`` (its comment there: ``comment``, default
        unchanged); reopen the rest under a new ticket."""
        now = self.now_msc()
        profit = self.market.profit(order.symbol, self._side(order.type), self._units(order.symbol, lots),
                                    order.open_price, price, self.currency)
        del self._open[order.ticket]
        remainder = 0
        comment = (order.comment if comment is None else comment)[:COMMENT_LENGTH]
        if lots < order.lots:
            remainder = self._ticket()
            rest = replace(order, ticket=remainder, lots=order.lots - lots, comment=f"from #{order.ticket}")
            comment = f"to #{remainder}"
            self._open[remainder] = rest
        self._history.append(replace(order, lots=lots, comment=comment, close_price=price, close_time=now // 1000,
                                     close_time_msc=now, profit=profit))
        self.balance += profit
        self.changes += 1
        return remainder

    def _check_triggers(self) -> None:
        for order in sorted(self._open.values(), key=lambda o: o.ticket):
            close = self.market_price(order.symbol, order.type, closing=True)
            buy = order.type == P.OP_BUY
            if order.sl and (close <= order.sl if buy else close >= order.sl):
                self._close(order, order.lots, close, order.comment + "[sl]")
            elif order.tp and (close >= order.tp if buy else close <= order.tp):
                self._close(order, order.lots, close, order.comment + "[tp]")
        while self._open:
            equity, margin, _ = self.figures()
            if not margin or equity * 100 > margin * self.margin_so:
                return
            worst = min(self._open.values(), key=lambda o: (self._floating(o), o.ticket))
            level = (equity * 100 / margin).quantize(Decimal("0.1"))
            mark = f"so: {level}%/{equity.quantize(Decimal('0.1'))}/{margin.quantize(Decimal('0.1'))}"
            self._close(worst, worst.lots, self.market_price(worst.symbol, worst.type, closing=True), mark)
