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
"""

from __future__ import annotations

import calendar
import random
import threading
import time as _time
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from fnmatch import fnmatchcase
from typing import Callable

from bridge.domain.deal import DealKind, Side
from connectors.mt5.terminal import constants as C
from connectors.mt5.terminal.records import (
    AccountInfo,
    OrderCheckResult,
    OrderSendResult,
    SymbolInfo,
    TerminalInfo,
    Tick,
    TradeDeal,
    TradeOrder,
    TradePosition,
    TradeRequest,
)
from connectors.sim.account import Account, Change
from connectors.sim.market import CENT, Market

BUILD = 3211
BUILD_DATE = "25 Feb 2022"
VOLUME_PLACES = Decimal("1e-8")
COMMENT_MAX = 31  # MT5 keeps at most 31 characters of a comment

#: Comments of the trade server's answers.
RETCODE_COMMENTS = {
    C.TRADE_RETCODE_DONE: "Request executed",
    C.TRADE_RETCODE_REQUOTE: "Requote",
    C.TRADE_RETCODE_INVALID: "Invalid request",
    C.TRADE_RETCODE_INVALID_VOLUME: "Invalid volume",
    C.TRADE_RETCODE_INVALID_PRICE: "Invalid price",
    C.TRADE_RETCODE_INVALID_STOPS: "Invalid stops",
    C.TRADE_RETCODE_TRADE_DISABLED: "Trade disabled",
    C.TRADE_RETCODE_MARKET_CLOSED: "Market closed",
    C.TRADE_RETCODE_NO_MONEY: "No money",
    C.TRADE_RETCODE_PRICE_CHANGED: "Prices changed",
    C.TRADE_RETCODE_NO_CHANGES: "No changes",
    C.TRADE_RETCODE_CLIENT_DISABLES_AT: "AutoTrading disabled by client",
    C.TRADE_RETCODE_INVALID_FILL: "Unsupported filling mode",
    C.TRADE_RETCODE_POSITION_CLOSED: "Position doesn't exist",
    C.TRADE_RETCODE_INVALID_CLOSE_VOLUME: "Invalid close volume",
    C.TRADE_RETCODE_LONG_ONLY: "Long only",
    C.TRADE_RETCODE_SHORT_ONLY: "Short only",
    C.TRADE_RETCODE_CLOSE_ONLY: "Close only",
}

_REQUEST_INTS = ("action", "magic", "order", "deviation", "type", "type_filling", "type_time", "expiration",
                 "position", "position_by")
_REQUEST_PRICES = ("price", "stoplimit", "sl", "tp")


_SYMBOL_INTS = ("chart_mode", "session_deals", "session_buy_orders", "session_sell_orders", "volume", "volumehigh",
                "volumelow", "time", "digits", "spread", "ticks_bookdepth", "trade_calc_mode", "trade_mode",
                "start_time", "expiration_time", "trade_stops_level", "trade_freeze_level", "trade_exemode",
                "swap_mode", "swap_rollover3days", "expiration_mode", "filling_mode", "order_mode",
                "order_gtc_mode", "option_mode", "option_right")
_SYMBOL_STRS = ("basis", "category", "currency_base", "currency_profit", "currency_margin", "bank", "description",
                "exchange", "formula", "isin", "name", "page", "path")


class _Fail(Exception):
    """An API call fails: ``None`` to the caller, ``(code, text)`` to ``last_error``."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(code, text)
        self.code = code
        self.text = text


class SimClock:
    """A manual clock: ``clock()`` returns Unix seconds as a ``Decimal``; ``advance`` moves it."""

    def __init__(self, start: object = "1704067200") -> None:  # 2024-01-01 00:00 UTC
        self.now = Decimal(str(start))

    def __call__(self) -> Decimal:
        return self.now

    def advance(self, seconds: object) -> None:
        self.now += Decimal(str(seconds))


@dataclass
class Faults:
    """Injected faults. Rates are probabilities per ``order_send``, drawn from the terminal's
    ``fault_rng`` (seeded from its ``rng``; only when non-zero), never from the price generator.

    ``ipc_before``: the call fails before the request reaches the server (nothing happens);
    ``ipc_after``: it fails after the server executed it (the deal is in the history, findable
    by magic/comment). Both return ``None`` with ``last_error() == (ipc_code, ...)``.
    ``requote``: the server answers 10004 with the current bid/ask. ``connected=False``: the
    terminal lost its server (``terminal_info().connected`` False, ``order_send`` fails with
    -10004). ``call_cost_us``: every API call takes that long on the injected clock.
    """

    ipc_before: float = 0.0
    ipc_after: float = 0.0
    ipc_code: int = C.RES_E_INTERNAL_FAIL_TIMEOUT
    requote: float = 0.0
    connected: bool = True
    call_cost_us: int = 0


@dataclass
class SymbolSettings:
    """How the trade server trades a symbol."""

    exemode: int = C.SYMBOL_TRADE_EXECUTION_INSTANT
    filling_mode: int = C._FILLING_FOK  # bitmask: 1 FOK, 2 IOC
    trade_mode: int = C.SYMBOL_TRADE_MODE_FULL
    market_open: bool = True
    selected: bool = True


@dataclass
class _PositionMeta:
    time_msc: int
    time_update_msc: int
    magic: int
    comment: str
    reason: int


@dataclass
class _Parsed:
    request: TradeRequest
    volume: Decimal = Decimal(0)
    price: Decimal = Decimal(0)
    sl: Decimal | None = None
    tp: Decimal | None = None
    extra: dict = field(default_factory=dict)


def _f(value: Decimal | int | None) -> float:
    return 0.0 if value is None else float(value)


def _match(name: str, group: str) -> bool:
    """MT5 group filter: comma-separated ``*`` patterns, ``!`` excludes; applied left to right."""
    ok = False
    for pattern in group.split(","):
        pattern = pattern.strip().upper()
        if not pattern:
            continue
        if pattern.startswith("!"):
            if fnmatchcase(name.upper(), pattern[1:]):
                ok = False
        elif fnmatchcase(name.upper(), pattern):
            ok = True
    return ok


def _date_seconds(value: object, what: str) -> int:
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            return int(value.timestamp())
        return calendar.timegm(value.timetuple())
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    raise _Fail(C.RES_E_INVALID_PARAMS, f'Invalid "{what}" argument')


def _api(method):
    """Wrap a public method: per-call cost, one call at a time, connection check, last_error bookkeeping."""
    failed = False if method.__name__ in ("initialize", "login", "symbol_select") else None

    def wrapper(self: "Terminal", *args, **kwargs):
        self._spend()
        with self.lock:
            return _call(self, args, kwargs)

    def _call(self: "Terminal", args, kwargs):
        try:
            if method.__name__ not in ("initialize", "last_error", "shutdown") and not self._initialized:
                raise _Fail(C.RES_E_INTERNAL_FAIL_CONNECT, "No IPC connection")
            result = method(self, *args, **kwargs)
        except _Fail as e:
            self._error = (e.code, e.text)
            return failed
        if method.__name__ != "last_error":
            self._error = (C.RES_S_OK, "Success")
        return result

    wrapper.__name__ = method.__name__
    wrapper.__doc__ = method.__doc__
    wrapper.__wrapped__ = method
    return wrapper


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
        self._meta: dict[int, _PositionMeta] = {}
        self._deals: list[TradeDeal] = []
        self._orders: list[TradeOrder] = []
        self._next_order = 10_000_001
        self._next_deal = 7_000_001
        self._next_request = 1
        self._initialized = False
        self._error: tuple[int, str] = (C.RES_S_OK, "Success")
        now = self._now_msc()
        self._tick_msc = {s: now for s in self.market.symbols}
        amount = Decimal(str(balance))
        if amount:
            self._balance_deal(amount.quantize(CENT, ROUND_HALF_EVEN), "Deposit")

    # ------------------------------------------------------------------ time, ids, money
    def _now_msc(self) -> int:
        seconds = Decimal(str(self.clock())) + self.server_offset
        return int((seconds * 1000).to_integral_value(ROUND_FLOOR))

    def _spend(self) -> None:
        if self.faults.call_cost_us:
            cost = Decimal(self.faults.call_cost_us) / 1_000_000
            self._sleep(cost if hasattr(self.clock, "advance") else float(cost))

    def _order_id(self) -> int:
        self._next_order += 1
        return self._next_order - 1

    def _deal_id(self) -> int:
        self._next_deal += 1
        return self._next_deal - 1

    def _roll(self, rate: float) -> bool:
        return rate > 0 and self.fault_rng.random() < rate

    def _lots(self, symbol: str, units: int) -> float:
        return float(self.market.spec(symbol).to_lots(units))

    def margin(self, symbol: str, units: int, price: Decimal) -> Decimal:
        """Margin of ``units`` at ``price``: notional / leverage, in the account currency (cents)."""
        notional = Decimal(units) / 100 * price
        in_quote = notional / self.leverage
        d = self.market.definition(symbol)
        return self.market.convert(in_quote, d.quote, self.currency).quantize(CENT, ROUND_HALF_EVEN)

    def _used_margin(self) -> Decimal:
        return sum((self.margin(p.symbol, p.volume, p.open_price) for p in self.account.positions.values()),
                   Decimal(0))

    def _figures(self) -> tuple[Decimal, Decimal, Decimal, Decimal]:
        """balance, floating profit, equity, margin."""
        floating = self.account.floating().quantize(CENT, ROUND_HALF_EVEN)
        return self.account.balance, floating, self.account.equity(), self._used_margin()

    # ------------------------------------------------------------------ simulation controls
    def step(self, n: int = 1) -> None:
        """Move the market ``n`` random-walk steps (seeded by ``rng``); stops trigger after each."""
        with self.lock:
            for _ in range(n):
                self.market.step(self.rng)
                now = self._now_msc()
                for s in self.market.symbols:
                    self._tick_msc[s] = now
                self._check_stops()

    def set_bid(self, symbol: str, bid: object) -> None:
        """Put a symbol's bid at ``bid`` (scripted scenarios); stops trigger."""
        with self.lock:
            self.market.set_bid(symbol, Decimal(str(bid)))
            self._tick_msc[symbol] = self._now_msc()
            self._check_stops()

    def balance_operation(self, amount: object, comment: str = "") -> TradeDeal:
        """A deposit (positive) or withdrawal: a deal with type=2, order=0, symbol=''."""
        amount = Decimal(str(amount)).quantize(CENT, ROUND_HALF_EVEN)
        with self.lock:
            return self._balance_deal(amount, comment)

    def _balance_deal(self, amount: Decimal, comment: str) -> TradeDeal:
        self.account.balance += amount
        now = self._now_msc()
        deal = TradeDeal(self._deal_id(), 0, now // 1000, now, C.DEAL_TYPE_BALANCE, C.DEAL_ENTRY_IN, 0, 0,
                         C.DEAL_REASON_CLIENT, 0.0, 0.0, 0.0, 0.0, float(amount), 0.0, "",
                         comment[:COMMENT_MAX], "")
        self._deals.append(deal)
        return deal

    def _check_stops(self) -> None:
        for p in list(self.account.positions.values()):
            q = self.market.quote(p.symbol)
            close = q.bid if p.side is Side.BUY else q.ask
            reason = None
            if p.side is Side.BUY:
                if p.sl is not None and close <= p.sl:
                    reason, level = C.DEAL_REASON_SL, p.sl
                elif p.tp is not None and close >= p.tp:
                    reason, level = C.DEAL_REASON_TP, p.tp
            else:
                if p.sl is not None and close >= p.sl:
                    reason, level = C.DEAL_REASON_SL, p.sl
                elif p.tp is not None and close <= p.tp:
                    reason, level = C.DEAL_REASON_TP, p.tp
            if reason is None:
                continue
            meta = self._meta[p.position_id]
            tag = "sl" if reason == C.DEAL_REASON_SL else "tp"
            comment = f"[{tag} {level:.{self.market.definition(p.symbol).digits}f}]"
            deal_type = C.ORDER_TYPE_SELL if p.side is Side.BUY else C.ORDER_TYPE_BUY
            change = self.account.reduce(p.position_id, p.volume, close)
            del self._meta[p.position_id]
            self._record(change, deal_type, C.DEAL_ENTRY_OUT, reason, meta.magic, comment,
                         C.ORDER_FILLING_FOK, C.ORDER_TIME_GTC, close, sl=level if tag == "sl" else None,
                         tp=level if tag == "tp" else None)
        self._check_stop_out()

    def _check_stop_out(self) -> None:
        """While the margin level is at or below ``margin_so_so`` %, close the most losing position (reason 6)."""
        while self.account.positions:
            _, _, equity, margin = self._figures()
            if not margin or equity * 100 / margin > self.margin_so_so:
                return
            level = (equity * 100 / margin).quantize(CENT, ROUND_HALF_EVEN)

            def loss(p):
                close = self.market.fill_price(p.symbol, p.side.opposite)
                return self.market.profit(p.symbol, p.side, p.volume, p.open_price, close, self.currency)

            p = min(self.account.positions.values(), key=loss)
            close = self.market.fill_price(p.symbol, p.side.opposite)
            meta = self._meta.pop(p.position_id)
            deal_type = C.ORDER_TYPE_SELL if p.side is Side.BUY else C.ORDER_TYPE_BUY
            change = self.account.reduce(p.position_id, p.volume, close)
            self._record(change, deal_type, C.DEAL_ENTRY_OUT, C.DEAL_REASON_SO, meta.magic, f"[so {level}%]",
                         C.ORDER_FILLING_FOK, C.ORDER_TIME_GTC, close)

    # ------------------------------------------------------------------ connection
    @_api
    def initialize(self, path: str | None = None, *, login: int | None = None, password: str | None = None,
                   server: str | None = None, timeout: int = 60000, portable: bool = False) -> bool:
        if login is not None:
            self._authorize(login, password, server)
        self._initialized = True
        return True

    def _authorize(self, login: object, password: object, server: object) -> None:
        if not isinstance(login, int) or isinstance(login, bool):
            raise _Fail(C.RES_E_INVALID_PARAMS, 'Invalid "login" argument')
        if login != self.login_id or password != self._password or (server is not None and server != self.server):
            raise _Fail(C.RES_E_AUTH_FAILED, "Terminal: Authorization failed")

    @_api
    def login(self, login: int, *, password: str | None = None, server: str | None = None,
              timeout: int = 60000) -> bool:
        self._authorize(login, password, server)
        return True

    @_api
    def shutdown(self) -> None:
        self._initialized = False
        return None

    @_api
    def version(self) -> tuple[int, int, str]:
        return (500, BUILD, BUILD_DATE)

    @_api
    def last_error(self) -> tuple[int, str]:
        return self._error

    # ------------------------------------------------------------------ account, terminal
    @_api
    def account_info(self) -> AccountInfo:
        balance, floating, equity, margin = self._figures()
        level = float((equity / margin * 100).quantize(CENT, ROUND_HALF_EVEN)) if margin else 0.0
        mode = C.ACCOUNT_MARGIN_MODE_RETAIL_HEDGING if self.hedging else C.ACCOUNT_MARGIN_MODE_RETAIL_NETTING
        return AccountInfo(
            self.login_id, C.ACCOUNT_TRADE_MODE_DEMO, self.leverage, 200, 0, True, True, mode, 2, False,
            float(balance), 0.0, float(floating), float(equity), float(margin), float(equity - margin), level,
            float(self.margin_so_call), float(self.margin_so_so), 0.0, 0.0, 0.0, 0.0, 0.0, self.name, self.server, self.currency, self.company)

    @_api
    def terminal_info(self) -> TerminalInfo:
        return TerminalInfo(
            False, False, self.faults.connected, False, self.algo_trading, False, False, False, False, False,
            BUILD, 100000, 0, 25000, 0.0, 0.0, "MetaQuotes Ltd.", "MetaTrader 5", "English", self.path,
            self.path, r"C:\Users\user\AppData\Roaming\MetaQuotes\Terminal\Common")

    # ------------------------------------------------------------------ symbols
    def _symbol(self, symbol: object, *, selected: bool = False) -> str:
        if not isinstance(symbol, str):
            raise _Fail(C.RES_E_INVALID_PARAMS, 'Invalid "symbol" argument')
        if symbol not in self.market or (selected and not self.settings[symbol].selected):
            raise _Fail(C.RES_E_NOT_FOUND, "Terminal: Not found")
        return symbol

    def _symbol_info(self, symbol: str) -> SymbolInfo:
        d = self.market.definition(symbol)
        st = self.settings[symbol]
        q = self.market.quote(symbol)
        point = self.market.point(symbol)
        contract = Decimal(d.contract_size)
        tick_value = self.market.convert(point * contract, d.quote, self.currency)
        time_s = self._tick_msc[symbol] // 1000
        fx = len(d.base) == 3 and len(d.quote) == 3 and d.base != "XAU"
        path = ("Forex\\" if fx else "CFD\\") + symbol
        values: dict[str, object] = {f: 0.0 for f in SymbolInfo._fields}
        values.update({f: 0 for f in _SYMBOL_INTS})
        values.update({f: "" for f in _SYMBOL_STRS})
        values.update(
            custom=False, select=st.selected, visible=st.selected, spread_float=False, margin_hedged_use_leg=False,
            time=time_s, digits=d.digits, spread=d.spread, trade_calc_mode=0 if fx else 2,
            trade_mode=st.trade_mode, trade_exemode=st.exemode, swap_mode=1, swap_rollover3days=3,
            expiration_mode=15, filling_mode=st.filling_mode, order_mode=127,
            bid=float(q.bid), bidhigh=float(q.bid), bidlow=float(q.bid),
            ask=float(q.ask), askhigh=float(q.ask), asklow=float(q.ask),
            point=float(point), trade_tick_value=float(tick_value), trade_tick_value_profit=float(tick_value),
            trade_tick_value_loss=float(tick_value), trade_tick_size=float(point),
            trade_contract_size=float(contract), volume_min=float(Decimal(d.min_lots)),
            volume_max=float(Decimal(d.max_lots)), volume_step=float(Decimal(d.step_lots)),
            margin_hedged=float(contract) / 2, currency_base=d.base, currency_profit=d.quote,
            currency_margin=d.base if fx else d.quote, description=f"{d.base} vs {d.quote}", name=symbol,
            path=path)
        return SymbolInfo(**values)

    @_api
    def symbols_total(self) -> int:
        return len(self.market.symbols)

    @_api
    def symbols_get(self, group: str | None = None) -> tuple[SymbolInfo, ...]:
        return tuple(self._symbol_info(s) for s in self.market.symbols if group is None or _match(s, group))

    @_api
    def symbol_info(self, symbol: str) -> SymbolInfo:
        return self._symbol_info(self._symbol(symbol, selected=True))

    @_api
    def symbol_info_tick(self, symbol: str) -> Tick:
        symbol = self._symbol(symbol, selected=True)
        q = self.market.quote(symbol)
        msc = self._tick_msc[symbol]
        return Tick(msc // 1000, float(q.bid), float(q.ask), 0.0, 0, msc, C.TICK_FLAG_BID | C.TICK_FLAG_ASK, 0.0)

    @_api
    def symbol_select(self, symbol: str, enable: bool | None = None) -> bool:
        symbol = self._symbol(symbol)
        self.settings[symbol].selected = True if enable is None else bool(enable)
        return True

    # ------------------------------------------------------------------ positions, orders
    def _position_record(self, p) -> TradePosition:
        meta = self._meta[p.position_id]
        q = self.market.quote(p.symbol)
        current = q.bid if p.side is Side.BUY else q.ask
        profit = self.market.profit(p.symbol, p.side, p.volume, p.open_price, current, self.currency)
        return TradePosition(
            p.position_id, meta.time_msc // 1000, meta.time_msc, meta.time_update_msc // 1000,
            meta.time_update_msc, C.POSITION_TYPE_BUY if p.side is Side.BUY else C.POSITION_TYPE_SELL,
            meta.magic, p.position_id, meta.reason, self._lots(p.symbol, p.volume), float(p.open_price),
            _f(p.sl), _f(p.tp), float(current), 0.0, float(profit), p.symbol, meta.comment, "")

    @staticmethod
    def _filter(items, symbol, group, ticket, key_ticket, key_symbol):
        if ticket is not None:
            return tuple(x for x in items if key_ticket(x) == ticket)
        if symbol is not None:
            return tuple(x for x in items if key_symbol(x) == symbol)
        if group is not None:
            return tuple(x for x in items if _match(key_symbol(x), group))
        return tuple(items)

    @_api
    def positions_total(self) -> int:
        return len(self.account.positions)

    @_api
    def positions_get(self, *, symbol: str | None = None, group: str | None = None,
                      ticket: int | None = None) -> tuple[TradePosition, ...]:
        records = [self._position_record(p) for p in self.account.positions.values()]
        return self._filter(records, symbol, group, ticket, lambda r: r.ticket, lambda r: r.symbol)

    @_api
    def orders_total(self) -> int:
        return 0  # pending orders are not simulated yet

    @_api
    def orders_get(self, *, symbol: str | None = None, group: str | None = None,
                   ticket: int | None = None) -> tuple[TradeOrder, ...]:
        return ()

    # ------------------------------------------------------------------ history
    def _history(self, items, time_of, date_from, date_to, group, ticket, position, key_ticket, key_position,
                 key_symbol):
        if ticket is not None:
            return tuple(x for x in items if key_ticket(x) == ticket)
        if position is not None:
            return tuple(x for x in items if key_position(x) == position)
        if date_from is None or date_to is None:
            raise _Fail(C.RES_E_INVALID_PARAMS, 'Invalid "date_from" argument')
        start, end = _date_seconds(date_from, "date_from"), _date_seconds(date_to, "date_to")
        chosen = (x for x in items if start <= time_of(x) <= end)
        if group is not None:
            chosen = (x for x in chosen if _match(key_symbol(x), group))
        return tuple(chosen)

    @_api
    def history_deals_total(self, date_from, date_to) -> int:
        return len(self._history(self._deals, lambda d: d.time, date_from, date_to, None, None, None,
                                 None, None, None))

    @_api
    def history_deals_get(self, date_from=None, date_to=None, *, group: str | None = None,
                          ticket: int | None = None, position: int | None = None) -> tuple[TradeDeal, ...]:
        """``ticket`` is an order ticket (the deals of that order), ``position`` a position id."""
        return self._history(self._deals, lambda d: d.time, date_from, date_to, group, ticket, position,
                             lambda d: d.order, lambda d: d.position_id, lambda d: d.symbol)

    @_api
    def history_orders_total(self, date_from, date_to) -> int:
        return len(self._history(self._orders, lambda o: o.time_done, date_from, date_to, None, None, None,
                                 None, None, None))

    @_api
    def history_orders_get(self, date_from=None, date_to=None, *, group: str | None = None,
                           ticket: int | None = None, position: int | None = None) -> tuple[TradeOrder, ...]:
        return self._history(self._orders, lambda o: o.time_done, date_from, date_to, group, ticket, position,
                             lambda o: o.ticket, lambda o: o.position_id, lambda o: o.symbol)

    # ------------------------------------------------------------------ calculations
    def _calc_args(self, action, symbol, volume, *prices) -> tuple[Side, str, int, list[Decimal]]:
        if action not in (C.ORDER_TYPE_BUY, C.ORDER_TYPE_SELL):
            raise _Fail(C.RES_E_INVALID_PARAMS, 'Invalid "action" argument')
        symbol = self._symbol(symbol)
        if not isinstance(volume, float):
            raise _Fail(C.RES_E_INVALID_PARAMS, 'Invalid "volume" argument')
        try:
            units = self.market.spec(symbol).to_volume(Decimal(repr(volume)).quantize(VOLUME_PLACES, ROUND_HALF_EVEN))
        except ValueError:
            raise _Fail(C.RES_E_INVALID_PARAMS, 'Invalid "volume" argument') from None
        values = []
        for name, p in zip(("price_open", "price_close") if len(prices) == 2 else ("price",), prices):
            if not isinstance(p, (int, float)) or isinstance(p, bool):
                raise _Fail(C.RES_E_INVALID_PARAMS, f'Invalid "{name}" argument')
            values.append(Decimal(repr(float(p))))
        return (Side.BUY if action == C.ORDER_TYPE_BUY else Side.SELL), symbol, units, values

    @_api
    def order_calc_margin(self, action: int, symbol: str, volume: float, price: float) -> float:
        _, symbol, units, (p,) = self._calc_args(action, symbol, volume, price)
        return float(self.margin(symbol, units, p))

    @_api
    def order_calc_profit(self, action: int, symbol: str, volume: float, price_open: float,
                          price_close: float) -> float:
        side, symbol, units, (po, pc) = self._calc_args(action, symbol, volume, price_open, price_close)
        return float(self.market.profit(symbol, side, units, po, pc, self.currency))

    # ------------------------------------------------------------------ trading
    def _parse(self, request: object) -> _Parsed:
        if not isinstance(request, dict):
            raise _Fail(C.RES_E_INVALID_PARAMS, 'Invalid "request" argument')
        values: dict[str, object] = {}
        for key, value in request.items():
            if key in _REQUEST_INTS:
                if not isinstance(value, int):
                    raise _Fail(C.RES_E_INVALID_PARAMS, f'Invalid "{key}" argument')
            elif key in _REQUEST_PRICES:
                if not isinstance(value, (int, float)) or isinstance(value, bool):
                    raise _Fail(C.RES_E_INVALID_PARAMS, f'Invalid "{key}" argument')
                value = float(value)
            elif key == "volume":
                if not isinstance(value, float):
                    raise _Fail(C.RES_E_INVALID_PARAMS, 'Invalid "volume" argument')
            elif key in ("symbol", "comment"):
                if not isinstance(value, str):
                    raise _Fail(C.RES_E_INVALID_PARAMS, f'Invalid "{key}" argument')
            else:
                raise _Fail(C.RES_E_INVALID_PARAMS, f'Invalid "{key}" argument')
            values[key] = value
        if "action" not in values:
            raise _Fail(C.RES_E_INVALID_PARAMS, 'Invalid "action" argument')
        defaults = {f: 0 for f in TradeRequest._fields}
        defaults.update({"volume": 0.0, "price": 0.0, "stoplimit": 0.0, "sl": 0.0, "tp": 0.0, "symbol": "",
                         "comment": ""})
        defaults.update(values)
        req = TradeRequest(**defaults)
        # MT5 keeps volumes to 8 places, so float noise (0.1 * 3) does not make a volume invalid
        lots = Decimal(repr(req.volume)).quantize(VOLUME_PLACES, ROUND_HALF_EVEN)
        parsed = _Parsed(req, lots, Decimal(repr(req.price)))
        parsed.sl = Decimal(repr(req.sl)) if req.sl else None
        parsed.tp = Decimal(repr(req.tp)) if req.tp else None
        return parsed

    def _answer(self, req: TradeRequest, retcode: int, *, deal: int = 0, order: int = 0, volume: float = 0.0,
                price: float = 0.0, bid: float = 0.0, ask: float = 0.0) -> OrderSendResult:
        request_id = self._next_request
        self._next_request += 1
        return OrderSendResult(retcode, deal, order, volume, price, bid, ask, RETCODE_COMMENTS.get(retcode, ""),
                               request_id, 0, req)

    def _validate(self, p: _Parsed) -> tuple[int, dict]:
        """Check a request without changing anything: (retcode, plan) with retcode 0 if it can execute."""
        req = p.request
        if req.action == C.TRADE_ACTION_SLTP:
            return self._validate_sltp(p)
        if req.action != C.TRADE_ACTION_DEAL:
            return C.TRADE_RETCODE_INVALID, {}  # pending orders, close-by: not simulated yet
        if req.symbol not in self.market or req.type not in (C.ORDER_TYPE_BUY, C.ORDER_TYPE_SELL):
            return C.TRADE_RETCODE_INVALID, {}
        if not self.algo_trading:
            return C.TRADE_RETCODE_CLIENT_DISABLES_AT, {}
        st = self.settings[req.symbol]
        if st.trade_mode == C.SYMBOL_TRADE_MODE_DISABLED:
            return C.TRADE_RETCODE_TRADE_DISABLED, {}
        if not st.market_open:
            return C.TRADE_RETCODE_MARKET_CLOSED, {}
        spec = self.market.spec(req.symbol)
        d = self.market.definition(req.symbol)
        try:
            units = spec.to_volume(p.volume)
        except ValueError:
            return C.TRADE_RETCODE_INVALID_VOLUME, {}
        step = Decimal(d.step_lots)
        if not (Decimal(d.min_lots) <= p.volume <= Decimal(d.max_lots)) or p.volume % step or not spec.tradable(units):
            return C.TRADE_RETCODE_INVALID_VOLUME, {}
        if not self._filling_ok(req.type_filling, st):
            return C.TRADE_RETCODE_INVALID_FILL, {}
        side = Side.BUY if req.type == C.ORDER_TYPE_BUY else Side.SELL
        # what the order does to positions
        target = None
        if req.position:
            target = self.account.position(req.position)
            if target is None or target.symbol != req.symbol:
                return C.TRADE_RETCODE_POSITION_CLOSED, {}
            if target.side is side:
                return C.TRADE_RETCODE_INVALID, {}
            if units > target.volume:
                return C.TRADE_RETCODE_INVALID_CLOSE_VOLUME, {}
        elif not self.hedging:
            current = self.account.net_position(req.symbol)
            if current is not None and current.side is not side:
                target = current
        closing = 0 if target is None else min(units, target.volume)
        opening = units - closing
        if st.trade_mode == C.SYMBOL_TRADE_MODE_CLOSEONLY and opening:
            return C.TRADE_RETCODE_CLOSE_ONLY, {}
        if st.trade_mode == C.SYMBOL_TRADE_MODE_LONGONLY and opening and side is Side.SELL:
            return C.TRADE_RETCODE_LONG_ONLY, {}
        if st.trade_mode == C.SYMBOL_TRADE_MODE_SHORTONLY and opening and side is Side.BUY:
            return C.TRADE_RETCODE_SHORT_ONLY, {}
        q = self.market.quote(req.symbol)
        market_price = q.price(side)
        if st.exemode in (C.SYMBOL_TRADE_EXECUTION_INSTANT, C.SYMBOL_TRADE_EXECUTION_REQUEST):
            if p.price <= 0:
                return C.TRADE_RETCODE_INVALID_PRICE, {}
            if abs(p.price - market_price) > req.deviation * self.market.point(req.symbol):
                if st.exemode == C.SYMBOL_TRADE_EXECUTION_INSTANT:
                    return C.TRADE_RETCODE_REQUOTE, {"bid": q.bid, "ask": q.ask}
                return C.TRADE_RETCODE_PRICE_CHANGED, {}
        if opening:
            close_price = q.bid if side is Side.BUY else q.ask
            if side is Side.BUY and ((p.sl is not None and p.sl >= close_price)
                                     or (p.tp is not None and p.tp <= close_price)):
                return C.TRADE_RETCODE_INVALID_STOPS, {}
            if side is Side.SELL and ((p.sl is not None and p.sl <= close_price)
                                      or (p.tp is not None and p.tp >= close_price)):
                return C.TRADE_RETCODE_INVALID_STOPS, {}
        need = self.margin(req.symbol, opening, market_price) if opening else Decimal(0)
        _, _, equity, margin = self._figures()
        if need and need > equity - margin:
            return C.TRADE_RETCODE_NO_MONEY, {"margin": need}
        return 0, {"units": units, "side": side, "target": target, "price": market_price, "margin": need}

    @staticmethod
    def _filling_ok(filling: int, st: SymbolSettings) -> bool:
        if filling == C.ORDER_FILLING_FOK:
            return bool(st.filling_mode & C._FILLING_FOK) or st.exemode in (
                C.SYMBOL_TRADE_EXECUTION_INSTANT, C.SYMBOL_TRADE_EXECUTION_REQUEST)
        if filling == C.ORDER_FILLING_IOC:
            return bool(st.filling_mode & C._FILLING_IOC)
        if filling == C.ORDER_FILLING_RETURN:
            return st.exemode != C.SYMBOL_TRADE_EXECUTION_MARKET
        return False

    def _validate_sltp(self, p: _Parsed) -> tuple[int, dict]:
        req = p.request
        pos = self.account.position(req.position) if req.position else None
        if pos is None or (req.symbol and req.symbol != pos.symbol):
            return C.TRADE_RETCODE_POSITION_CLOSED, {}
        if not self.algo_trading:
            return C.TRADE_RETCODE_CLIENT_DISABLES_AT, {}
        if not self.settings[pos.symbol].market_open:
            return C.TRADE_RETCODE_MARKET_CLOSED, {}
        q = self.market.quote(pos.symbol)
        close = q.bid if pos.side is Side.BUY else q.ask
        sign = 1 if pos.side is Side.BUY else -1
        if (p.sl is not None and sign * (p.sl - close) >= 0) or (p.tp is not None and sign * (p.tp - close) <= 0):
            return C.TRADE_RETCODE_INVALID_STOPS, {}
        if p.sl == pos.sl and p.tp == pos.tp:
            return C.TRADE_RETCODE_NO_CHANGES, {}
        return 0, {"position": pos}

    def _record(self, change: Change, deal_type: int, entry: int, reason: int, magic: int, comment: str,
                filling: int, type_time: int, request_price: Decimal, *, sl=None, tp=None) -> tuple[int, int]:
        """The order and deal of one fill, in the history."""
        now = self._now_msc()
        order, deal = self._order_id(), self._deal_id()
        symbol = change.symbol
        lots = self._lots(symbol, change.filled)
        self._orders.append(TradeOrder(
            order, now // 1000, now, now // 1000, now, 0, deal_type, type_time, filling, C.ORDER_STATE_FILLED,
            magic, change.position_id, 0, reason, lots, 0.0, float(request_price), _f(sl), _f(tp),
            float(change.price), 0.0, symbol, comment, ""))
        self._deals.append(TradeDeal(
            deal, order, now // 1000, now, deal_type, entry, magic, change.position_id, reason, lots,
            float(change.price), 0.0, 0.0, float(change.profit), 0.0, symbol, comment, ""))
        return order, deal

    def _execute(self, p: _Parsed, plan: dict) -> OrderSendResult:
        req = p.request
        comment = req.comment[:COMMENT_MAX]
        if req.action == C.TRADE_ACTION_SLTP:
            pos = plan["position"]
            self.account.modify(pos.position_id, p.sl, p.tp)
            self._meta[pos.position_id].time_update_msc = self._now_msc()
            return self._answer(req, C.TRADE_RETCODE_DONE)
        side, units, target, price = plan["side"], plan["units"], plan["target"], plan["price"]
        order_id = self._next_order  # the order about to be recorded (position ticket == order ticket)
        if target is not None and req.position:
            change = self.account.reduce(target.position_id, units, price)
        else:
            change = self.account.open(lambda: order_id, req.symbol, side, units, price, p.sl, p.tp, None)
        entry = {DealKind.OPEN: C.DEAL_ENTRY_IN, DealKind.ADD: C.DEAL_ENTRY_IN,
                 DealKind.PARTIAL_CLOSE: C.DEAL_ENTRY_OUT, DealKind.CLOSE: C.DEAL_ENTRY_OUT,
                 DealKind.REVERSAL: C.DEAL_ENTRY_INOUT}[change.kind]
        order, deal = self._record(change, req.type, entry, C.DEAL_REASON_EXPERT, req.magic, comment,
                                   req.type_filling, req.type_time, p.price or price, sl=p.sl, tp=p.tp)
        assert order == order_id
        now = self._now_msc()
        if change.kind is DealKind.OPEN:
            self._meta[order] = _PositionMeta(now, now, req.magic, comment, C.POSITION_REASON_EXPERT)
        elif change.kind is DealKind.CLOSE:
            self._meta.pop(change.position_id, None)
        else:
            meta = self._meta[change.position_id]
            meta.time_update_msc = now
            if change.kind is DealKind.REVERSAL:
                meta.time_msc, meta.magic, meta.comment = now, req.magic, comment
        return self._answer(req, C.TRADE_RETCODE_DONE, deal=deal, order=order,
                            volume=self._lots(req.symbol, units), price=float(price))

    @_api
    def order_check(self, request: dict) -> OrderCheckResult:
        p = self._parse(request)
        retcode, plan = self._validate(p)
        balance, floating, equity, margin = self._figures()
        if retcode == 0 and req_is_deal(p.request):
            margin += plan["margin"]
        free = equity - margin
        level = float((equity / margin * 100).quantize(CENT, ROUND_HALF_EVEN)) if margin else 0.0
        comment = "Done" if retcode == 0 else RETCODE_COMMENTS.get(retcode, "")
        return OrderCheckResult(retcode, float(balance), float(equity), float(floating), float(margin),
                                float(free), level, comment, p.request)

    @_api
    def order_send(self, request: dict) -> OrderSendResult:
        if not self.faults.connected:
            raise _Fail(C.RES_E_INTERNAL_FAIL_CONNECT, "No IPC connection")
        p = self._parse(request)
        if self._roll(self.faults.ipc_before):
            raise _Fail(self.faults.ipc_code, _ipc_text(self.faults.ipc_code))
        if self._roll(self.faults.requote) and p.request.action == C.TRADE_ACTION_DEAL:
            q = self.market.quote(p.request.symbol) if p.request.symbol in self.market else None
            result = self._answer(p.request, C.TRADE_RETCODE_REQUOTE, bid=_f(q and q.bid), ask=_f(q and q.ask))
        else:
            retcode, plan = self._validate(p)
            if retcode:
                result = self._answer(p.request, retcode, bid=_f(plan.get("bid")), ask=_f(plan.get("ask")))
            else:
                result = self._execute(p, plan)
        if self._roll(self.faults.ipc_after):
            raise _Fail(self.faults.ipc_code, _ipc_text(self.faults.ipc_code))
        return result


    # ------------------------------------------------------------------ not simulated yet
    def _unsupported(self, *args, **kwargs):
        raise _Fail(C.RES_E_UNSUPPORTED, "Not supported by the simulated terminal")

    copy_ticks_from = _api(_unsupported)
    copy_ticks_range = _api(_unsupported)
    copy_rates_from = _api(_unsupported)
    copy_rates_from_pos = _api(_unsupported)
    copy_rates_range = _api(_unsupported)
    market_book_add = _api(_unsupported)
    market_book_release = _api(_unsupported)
    market_book_get = _api(_unsupported)


def req_is_deal(req: TradeRequest) -> bool:
    return req.action == C.TRADE_ACTION_DEAL


def _ipc_text(code: int) -> str:
    return {C.RES_E_INTERNAL_FAIL_CONNECT: "No IPC connection",
            C.RES_E_INTERNAL_FAIL_TIMEOUT: "IPC timeout"}.get(code, "Internal error")
