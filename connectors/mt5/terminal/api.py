"""Module-level functions with the MetaTrader5 package's names and signatures, bound to a current terminal.

``from connectors.mt5.terminal import api as mt5`` then works like ``import MetaTrader5 as mt5``::

    mt5.use(Terminal(login=123, password="pw", server="SimBroker-Demo"))
    mt5.initialize(login=123, password="pw", server="SimBroker-Demo")
    mt5.order_send({"action": mt5.TRADE_ACTION_DEAL, ...})

:func:`use` (this fake's own) binds the terminal; before it, ``initialize``
fails the way the real one does when no terminal is installed. Every constant
of :mod:`.constants` and the record types are re-exported.
"""

from __future__ import annotations

from connectors.mt5.terminal.constants import *  # noqa: F401,F403
from connectors.mt5.terminal.constants import RES_E_INTERNAL_FAIL_CONNECT, RES_E_INTERNAL_FAIL_INIT
from connectors.mt5.terminal.records import (  # noqa: F401
    AccountInfo,
    BookInfo,
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
from connectors.mt5.terminal.terminal import Terminal

__version__ = "5.0.6231"
__author__ = "MetaQuotes Ltd."

_current: Terminal | None = None
_error: tuple[int, str] = (1, "Success")


def use(terminal: Terminal | None) -> None:
    """Bind the module's functions to ``terminal`` (None unbinds)."""
    global _current
    _current = terminal


def current() -> Terminal | None:
    return _current


def _t() -> Terminal | None:
    global _error
    if _current is None:
        _error = (RES_E_INTERNAL_FAIL_CONNECT, "No IPC connection")
    return _current


def initialize(path=None, *, login=None, password=None, server=None, timeout=60000, portable=False) -> bool:
    global _error
    if _current is None:
        _error = (RES_E_INTERNAL_FAIL_INIT, "IPC initialize failed, MetaTrader 5 x64 not found")
        return False
    return _current.initialize(path, login=login, password=password, server=server, timeout=timeout,
                               portable=portable)


def login(login, *, password=None, server=None, timeout=60000) -> bool:
    t = _t()
    return False if t is None else t.login(login, password=password, server=server, timeout=timeout)


def shutdown() -> None:
    t = _t()
    if t is not None:
        t.shutdown()


def last_error() -> tuple[int, str]:
    return _error if _current is None else _current.last_error()


def _forward(name: str):
    def call(*args, **kwargs):
        t = _t()
        return None if t is None else getattr(t, name)(*args, **kwargs)

    call.__name__ = name
    call.__qualname__ = name
    call.__doc__ = getattr(Terminal, name).__doc__
    return call


version = _forward("version")
account_info = _forward("account_info")
terminal_info = _forward("terminal_info")
symbols_total = _forward("symbols_total")
symbols_get = _forward("symbols_get")
symbol_info = _forward("symbol_info")
symbol_info_tick = _forward("symbol_info_tick")
symbol_select = _forward("symbol_select")
positions_total = _forward("positions_total")
positions_get = _forward("positions_get")
orders_total = _forward("orders_total")
orders_get = _forward("orders_get")
history_deals_total = _forward("history_deals_total")
history_deals_get = _forward("history_deals_get")
history_orders_total = _forward("history_orders_total")
history_orders_get = _forward("history_orders_get")
order_check = _forward("order_check")
order_send = _forward("order_send")
order_calc_margin = _forward("order_calc_margin")
order_calc_profit = _forward("order_calc_profit")
copy_ticks_from = _forward("copy_ticks_from")
copy_ticks_range = _forward("copy_ticks_range")
copy_rates_from = _forward("copy_rates_from")
copy_rates_from_pos = _forward("copy_rates_from_pos")
copy_rates_range = _forward("copy_rates_range")
market_book_add = _forward("market_book_add")
market_book_release = _forward("market_book_release")
market_book_get = _forward("market_book_get")
