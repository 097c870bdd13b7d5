"""One simulated MetaTrader 5 terminal logged in to one account on a simulated trade server.

The :class:`Terminal`'s public methods have the MetaTrader5 package's names and
signatures and behave like them: errors return ``None`` (``False`` for
``initialize``/``login``/``symbol_select``) and set :meth:`last_error`; queries
return tuples of the records in :mod:`.records`, ``()`` when nothing matches.
:mod:`.api` binds module-level functions to a current terminal.

Money and volumes are exact inside (``Decimal`` prices and money, integer
hundredths of a base unit for volumes, via :mod:`connectors.sim.market` and
:mod:`connectors.sim.account`); they become floats only in the records.

Times: the injected ``clock`` returns Unix seconds (``Decimal`` or ``float``);
every time field is trade-server time, i.e. the clock plus ``server_offset``
seconds (``time`` in whole seconds, ``*_msc`` in milliseconds). Date arguments
of the history functions are compared with those same numbers: an ``int``
or ``float`` as it is, a naive ``datetime`` by its wall-clock fields, an aware
one by its Unix timestamp (like the real package, which does not know the
server's zone either: pad the window).

This module holds the :class:`Terminal` (its state and public API); the work is
done by plain functions of the modules beside it, which take the terminal as
their first argument:

- :mod:`.calls`: the behaviour of every public call (``api_call``: lock, per-call cost,
  ``last_error``; ``Fail``).
- :mod:`.clock`: :class:`SimClock` and trade-server time; :mod:`.faults`: :class:`Faults`.
- :mod:`.symbols`: :class:`SymbolSettings`, ``SymbolInfo``, the ``group`` filter.
- :mod:`.positions`: what MT5 keeps beside each position, ``TradePosition``.
- :mod:`.history`: the orders and deals booked, their tickets, ``history_*_get``.
- :mod:`.parsing`: a request dict (and the ``order_calc_*`` arguments) as exact values.
- :mod:`.validation`: whether a request can execute (its retcode) and the plan to execute it.
- :mod:`.execution`: executing the plan, the ``OrderSendResult`` answers.
- :mod:`.risk`: margin, balance/equity figures, SL/TP triggers and stop-out.

``SimClock``, ``Faults`` and ``SymbolSettings`` are importable from here too.
"""

from __future__ import annotations

import random
import threading
import time as _time
from dataclasses import replace
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Callable

from connectors.mt5.terminal import constants as C
from connectors.mt5.terminal import risk
from connectors.mt5.terminal.calls import Fail, api_call, as_float
from connectors.mt5.terminal.clock import SimClock, server_msc
from connectors.mt5.terminal.execution import RETCODE_COMMENTS, answer, execute
from connectors.mt5.terminal.faults import Faults, ipc_text
from connectors.mt5.terminal.history import History
from connectors.mt5.terminal.parsing import parse_calc_args, parse_request
from connectors.mt5.terminal.positions import PositionMeta, position_record, select
from connectors.mt5.terminal.records import AccountInfo, OrderCheckResult, OrderSendResult, SymbolInfo
from connectors.mt5.terminal.records import TerminalInfo, Tick, TradeDeal, TradeOrder, TradePosition, TradeRequest
from connectors.mt5.terminal.symbols import SymbolSettings, checked_symbol, match_group, symbol_record
from connectors.mt5.terminal.validation import validate
from connectors.sim.account import Account
from connectors.sim.market import CENT, Market

__all__ = ["BUILD", "BUILD_DATE", "Faults", "SimClock", "SymbolSettings", "Terminal"]

BUILD = 3211
BUILD_DATE = "25 Feb 2022"


class Terminal:
    """One terminal, one account (hedging or netting), the market, the clock and the faults."""

    def __init__(self, *, login: int = 5000001, password: str = "password", server: str = "SimBroker-Demo",
                 name: str = "Sim Trader", company: str = "Sim Broker Ltd", currency: str = "USD",
                 balance: object = "10000", leverage: int = 100, hedging: bool = True,
                 market: Market | None = None, clock: Callable[[], object] | None = None,
                 sleep: Callable[[float], None] | None = None, rng: random.Random | None = None,
                 server_offset: int = 7200, faults: Faults | None = None,
                 symbols: dict[str, SymbolSettings] | None = None, algo_trading: bool = True,
                 margin_so_call: object = 50, margin_so_so: object = 30,
                 path: str = r"C:\Program Files\MetaTrader 5") -> None:
        self.login_id = login
        self._password = password
        self.server = server
        self.name = name
        self.company = company
        self.currency = currency
        self.leverage = leverage
        self.hedging = hedging
        self.market = market if market is not None else Market()
        self.clock = clock if clock is not None else SimClock()
        if sleep is None:
            advance = getattr(self.clock, "advance", None)
            sleep = advance if advance is not None else _time.sleep
        self._sleep = sleep
        self.rng = rng if rng is not None else random.Random(0)
        # faults draw from their own generator (seeded from ``rng``), so turning them on leaves prices alone
        self.fault_rng = random.Random(self.rng.getrandbits(64))
        self.server_offset = server_offset
        self.faults = faults if faults is not None else Faults()
        self.settings = {s: replace((symbols or {}).get(s, SymbolSettings())) for s in self.market.symbols}
        self.algo_trading = algo_trading
        self.margin_so_call = Decimal(margin_so_call)
        self.margin_so_so = Decimal(margin_so_so)
        self.lock = threading.RLock()
        self.path = path
        self.account = Account(login, currency, hedging, Decimal(0), self.market)
        self._meta: dict[int, PositionMeta] = {}  # by position id
        self.history = History(self.market, self._now_msc)
        self._next_request = 1
        self._initialized = False
        self._error: tuple[int, str] = (C.RES_S_OK, "Success")
        now = self._now_msc()
        self._tick_msc = {s: now for s in self.market.symbols}
        amount = Decimal(str(balance))
        if amount:
            self._balance_deal(amount.quantize(CENT, ROUND_HALF_EVEN), "Deposit")

    # ------------------------------------------------------------------ time, faults, money
    def _now_msc(self) -> int:
        return server_msc(self.clock, self.server_offset)

    def _spend(self) -> None:
        if self.faults.call_cost_us:
            cost = Decimal(self.faults.call_cost_us) / 1_000_000
            self._sleep(cost if hasattr(self.clock, "advance") else float(cost))

    def _roll(self, rate: float) -> bool:
        return rate > 0 and self.fault_rng.random() < rate

    def margin(self, symbol: str, units: int, price: Decimal) -> Decimal:
        """Margin of ``units`` at ``price``: notional / leverage, in the account currency (cents)."""
        return risk.margin(self, symbol, units, price)

    # ------------------------------------------------------------------ simulation controls
    def step(self, n: int = 1) -> None:
        """Move the market ``n`` random-walk steps (seeded by ``rng``); stops trigger after each."""
        with self.lock:
            for _ in range(n):
                self.market.step(self.rng)
                now = self._now_msc()
                for s in self.market.symbols:
                    self._tick_msc[s] = now
                risk.check_stops(self)

    def set_bid(self, symbol: str, bid: object) -> None:
        """Put a symbol's bid at ``bid`` (scripted scenarios); stops trigger."""
        with self.lock:
            self.market.set_bid(symbol, Decimal(str(bid)))
            self._tick_msc[symbol] = self._now_msc()
            risk.check_stops(self)

    def balance_operation(self, amount: object, comment: str = "") -> TradeDeal:
        """A deposit (positive) or withdrawal: a deal with type=2, order=0, symbol=''."""
        amount = Decimal(str(amount)).quantize(CENT, ROUND_HALF_EVEN)
        with self.lock:
            return self._balance_deal(amount, comment)

    def _balance_deal(self, amount: Decimal, comment: str) -> TradeDeal:
        self.account.balance += amount
        return self.history.balance(amount, comment)

    # ------------------------------------------------------------------ connection
    @api_call
    def initialize(self, path: str | None = None, *, login: int | None = None, password: str | None = None,
                   server: str | None = None, timeout: int = 60000, portable: bool = False) -> bool:
        if login is not None:
            self._authorize(login, password, server)
        self._initialized = True
        return True

    def _authorize(self, login: object, password: object, server: object) -> None:
        if not isinstance(login, int) or isinstance(login, bool):
            raise Fail(C.RES_E_INVALID_PARAMS, 'Invalid "login" argument')
        if login != self.login_id or password != self._password or (server is not None and server != self.server):
            raise Fail(C.RES_E_AUTH_FAILED, "Terminal: Authorization failed")

    @api_call
    def login(self, login: int, *, password: str | None = None, server: str | None = None,
              timeout: int = 60000) -> bool:
        self._authorize(login, password, server)
        return True

    @api_call
    def shutdown(self) -> None:
        self._initialized = False
        return None

    @api_call
    def version(self) -> tuple[int, int, str]:
        return (500, BUILD, BUILD_DATE)

    @api_call
    def last_error(self) -> tuple[int, str]:
        return self._error

    # ------------------------------------------------------------------ account, terminal
    @api_call
    def account_info(self) -> AccountInfo:
        balance, floating, equity, margin = risk.figures(self)
        level = risk.margin_level(equity, margin)
        mode = C.ACCOUNT_MARGIN_MODE_RETAIL_HEDGING if self.hedging else C.ACCOUNT_MARGIN_MODE_RETAIL_NETTING
        return AccountInfo(
            self.login_id, C.ACCOUNT_TRADE_MODE_DEMO, self.leverage, 200, 0, True, True, mode, 2, False,
            float(balance), 0.0, float(floating), float(equity), float(margin), float(equity - margin), level,
            float(self.margin_so_call), float(self.margin_so_so), 0.0, 0.0, 0.0, 0.0, 0.0, self.name, self.server, self.currency, self.company)

    @api_call
    def terminal_info(self) -> TerminalInfo:
        return TerminalInfo(
            False, False, self.faults.connected, False, self.algo_trading, False, False, False, False, False,
            BUILD, 100000, 0, 25000, 0.0, 0.0, "MetaQuotes Ltd.", "MetaTrader 5", "English", self.path,
            self.path, r"C:\Users\user\AppData\Roaming\MetaQuotes\Terminal\Common")

    # ------------------------------------------------------------------ symbols
    @api_call
    def symbols_total(self) -> int:
        return len(self.market.symbols)

    @api_call
    def symbols_get(self, group: str | None = None) -> tuple[SymbolInfo, ...]:
        return tuple(symbol_record(self, s) for s in self.market.symbols if group is None or match_group(s, group))

    @api_call
    def symbol_info(self, symbol: str) -> SymbolInfo:
        return symbol_record(self, checked_symbol(self, symbol, selected=True))

    @api_call
    def symbol_info_tick(self, symbol: str) -> Tick:
        symbol = checked_symbol(self, symbol, selected=True)
        q = self.market.quote(symbol)
        msc = self._tick_msc[symbol]
        return Tick(msc // 1000, float(q.bid), float(q.ask), 0.0, 0, msc, C.TICK_FLAG_BID | C.TICK_FLAG_ASK, 0.0)

    @api_call
    def symbol_select(self, symbol: str, enable: bool | None = None) -> bool:
        symbol = checked_symbol(self, symbol)
        self.settings[symbol].selected = True if enable is None else bool(enable)
        return True

    # ------------------------------------------------------------------ positions, orders
    @api_call
    def positions_total(self) -> int:
        return len(self.account.positions)

    @api_call
    def positions_get(self, *, symbol: str | None = None, group: str | None = None,
                      ticket: int | None = None) -> tuple[TradePosition, ...]:
        records = [position_record(self, p) for p in self.account.positions.values()]
        return select(records, symbol, group, ticket, lambda r: r.ticket, lambda r: r.symbol)

    @api_call
    def orders_total(self) -> int:
        return 0  # pending orders are not simulated yet

    @api_call
    def orders_get(self, *, symbol: str | None = None, group: str | None = None,
                   ticket: int | None = None) -> tuple[TradeOrder, ...]:
        return ()

    # ------------------------------------------------------------------ history
    @api_call
    def history_deals_total(self, date_from, date_to) -> int:
        return len(self.history.deals(date_from, date_to))

    @api_call
    def history_deals_get(self, date_from=None, date_to=None, *, group: str | None = None,
                          ticket: int | None = None, position: int | None = None) -> tuple[TradeDeal, ...]:
        """``ticket`` is an order ticket (the deals of that order), ``position`` a position id."""
        return self.history.deals(date_from, date_to, group, ticket, position)

    @api_call
    def history_orders_total(self, date_from, date_to) -> int:
        return len(self.history.orders(date_from, date_to))

    @api_call
    def history_orders_get(self, date_from=None, date_to=None, *, group: str | None = None,
                           ticket: int | None = None, position: int | None = None) -> tuple[TradeOrder, ...]:
        return self.history.orders(date_from, date_to, group, ticket, position)

    # ------------------------------------------------------------------ calculations
    @api_call
    def order_calc_margin(self, action: int, symbol: str, volume: float, price: float) -> float:
        _, symbol, units, (p,) = parse_calc_args(self, action, symbol, volume, price)
        return float(risk.margin(self, symbol, units, p))

    @api_call
    def order_calc_profit(self, action: int, symbol: str, volume: float, price_open: float,
                          price_close: float) -> float:
        side, symbol, units, (po, pc) = parse_calc_args(self, action, symbol, volume, price_open, price_close)
        return float(self.market.profit(symbol, side, units, po, pc, self.currency))

    # ------------------------------------------------------------------ trading
    @api_call
    def order_check(self, request: dict) -> OrderCheckResult:
        p = parse_request(request)
        retcode, plan = validate(self, p)
        balance, floating, equity, margin = risk.figures(self)
        if retcode == 0 and req_is_deal(p.request):
            margin += plan["margin"]
        free = equity - margin
        level = risk.margin_level(equity, margin)
        comment = "Done" if retcode == 0 else RETCODE_COMMENTS.get(retcode, "")
        return OrderCheckResult(retcode, float(balance), float(equity), float(floating), float(margin),
                                float(free), level, comment, p.request)

    @api_call
    def order_send(self, request: dict) -> OrderSendResult:
        if not self.faults.connected:
            raise Fail(C.RES_E_INTERNAL_FAIL_CONNECT, "No IPC connection")
        p = parse_request(request)
        if self._roll(self.faults.ipc_before):
            raise Fail(self.faults.ipc_code, ipc_text(self.faults.ipc_code))
        if self._roll(self.faults.requote) and p.request.action == C.TRADE_ACTION_DEAL:
            q = self.market.quote(p.request.symbol) if p.request.symbol in self.market else None
            result = answer(self, p.request, C.TRADE_RETCODE_REQUOTE, bid=as_float(q and q.bid),
                            ask=as_float(q and q.ask))
        else:
            retcode, plan = validate(self, p)
            if retcode:
                result = answer(self, p.request, retcode, bid=as_float(plan.get("bid")),
                                ask=as_float(plan.get("ask")))
            else:
                result = execute(self, p, plan)
        if self._roll(self.faults.ipc_after):
            raise Fail(self.faults.ipc_code, ipc_text(self.faults.ipc_code))
        return result


    # ------------------------------------------------------------------ not simulated yet
    def _unsupported(self, *args, **kwargs):
        raise Fail(C.RES_E_UNSUPPORTED, "Not supported by the simulated terminal")

    copy_ticks_from = api_call(_unsupported)
    copy_ticks_range = api_call(_unsupported)
    copy_rates_from = api_call(_unsupported)
    copy_rates_from_pos = api_call(_unsupported)
    copy_rates_range = api_call(_unsupported)
    market_book_add = api_call(_unsupported)
    market_book_release = api_call(_unsupported)
    market_book_get = api_call(_unsupported)


def req_is_deal(req: TradeRequest) -> bool:
    return req.action == C.TRADE_ACTION_DEAL
