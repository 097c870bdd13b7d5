"""Symbols of the simulated terminal: how the trade server trades each one, and ``SymbolInfo``.

- :class:`SymbolSettings`: execution mode, filling modes, trade mode, market open, selected.
- :func:`match_group`: the MT5 ``group`` filter (``"EUR*,!*JPY"``) of the ``*_get`` functions.
- :func:`checked_symbol`: a symbol argument, or :class:`~.calls.Fail` (invalid, unknown, not selected).
- :func:`symbol_record`: the ``SymbolInfo`` record of a symbol; :func:`lots`: integer units as lots.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING

from connectors.mt5.terminal import constants as C
from connectors.mt5.terminal.calls import Fail
from connectors.mt5.terminal.records import SymbolInfo
from connectors.sim.market import Market

if TYPE_CHECKING:
    from connectors.mt5.terminal.terminal import Terminal

_SYMBOL_INTS = ("chart_mode", "session_deals", "session_buy_orders", "session_sell_orders", "volume", "volumehigh",
                "volumelow", "time", "digits", "spread", "ticks_bookdepth", "trade_calc_mode", "trade_mode",
                "start_time", "expiration_time", "trade_stops_level", "trade_freeze_level", "trade_exemode",
                "swap_mode", "swap_rollover3days", "expiration_mode", "filling_mode", "order_mode",
                "order_gtc_mode", "option_mode", "option_right")
_SYMBOL_STRS = ("basis", "category", "currency_base", "currency_profit", "currency_margin", "bank", "description",
                "exchange", "formula", "isin", "name", "page", "path")


@dataclass
class SymbolSettings:
    """How the trade server trades a symbol."""

    exemode: int = C.SYMBOL_TRADE_EXECUTION_INSTANT
    filling_mode: int = C._FILLING_FOK  # bitmask: 1 FOK, 2 IOC
    trade_mode: int = C.SYMBOL_TRADE_MODE_FULL
    market_open: bool = True
    selected: bool = True


def match_group(name: str, group: str) -> bool:
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


def lots(market: Market, symbol: str, units: int) -> float:
    """``units`` (hundredths of a base unit) of ``symbol`` in lots."""
    return float(market.spec(symbol).to_lots(units))


def checked_symbol(t: Terminal, symbol: object, *, selected: bool = False) -> str:
    """``symbol`` if the terminal knows it (and, with ``selected``, shows it in Market Watch)."""
    if not isinstance(symbol, str):
        raise Fail(C.RES_E_INVALID_PARAMS, 'Invalid "symbol" argument')
    if symbol not in t.market or (selected and not t.settings[symbol].selected):
        raise Fail(C.RES_E_NOT_FOUND, "Terminal: Not found")
    return symbol


def symbol_record(t: Terminal, symbol: str) -> SymbolInfo:
    """The ``SymbolInfo`` of ``symbol`` now."""
    d = t.market.definition(symbol)
    st = t.settings[symbol]
    q = t.market.quote(symbol)
    point = t.market.point(symbol)
    contract = Decimal(d.contract_size)
    tick_value = t.market.convert(point * contract, d.quote, t.currency)
    time_s = t._tick_msc[symbol] // 1000
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
