"""Whether the trade server would execute a parsed request, without changing anything.

:func:`validate` answers ``(retcode, plan)``: retcode 0 and the plan :mod:`.execution` carries out
(side, volume in units, the position it closes or reduces, the market price, the margin it needs),
or the retcode of the refusal: 10013 invalid, 10014 volume, 10030 filling (:func:`filling_ok`), 10004
requote/10020 price changed (instant/request execution beyond ``deviation``), 10015 price, 10016 stops,
10017/10018 trade disabled/market closed, 10019 no money, 10025 no changes (SL/TP), 10027 Algo Trading
off, 10036 position closed, 10038 close volume, 10042-10044 long/short/close only.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from bridge.domain.deal import Side
from connectors.mt5.terminal import constants as C
from connectors.mt5.terminal.parsing import Parsed
from connectors.mt5.terminal.risk import figures, margin
from connectors.mt5.terminal.symbols import SymbolSettings

if TYPE_CHECKING:
    from connectors.mt5.terminal.terminal import Terminal


def validate(t: Terminal, p: Parsed) -> tuple[int, dict]:
    """Check a request without changing anything: (retcode, plan) with retcode 0 if it can execute."""
    req = p.request
    if req.action == C.TRADE_ACTION_SLTP:
        return _validate_sltp(t, p)
    if req.action != C.TRADE_ACTION_DEAL:
        return C.TRADE_RETCODE_INVALID, {}  # pending orders, close-by: not simulated yet
    if req.symbol not in t.market or req.type not in (C.ORDER_TYPE_BUY, C.ORDER_TYPE_SELL):
        return C.TRADE_RETCODE_INVALID, {}
    if not t.algo_trading:
        return C.TRADE_RETCODE_CLIENT_DISABLES_AT, {}
    st = t.settings[req.symbol]
    if st.trade_mode == C.SYMBOL_TRADE_MODE_DISABLED:
        return C.TRADE_RETCODE_TRADE_DISABLED, {}
    if not st.market_open:
        return C.TRADE_RETCODE_MARKET_CLOSED, {}
    spec = t.market.spec(req.symbol)
    d = t.market.definition(req.symbol)
    try:
        units = spec.to_volume(p.volume)
    except ValueError:
        return C.TRADE_RETCODE_INVALID_VOLUME, {}
    step = Decimal(d.step_lots)
    if not (Decimal(d.min_lots) <= p.volume <= Decimal(d.max_lots)) or p.volume % step or not spec.tradable(units):
        return C.TRADE_RETCODE_INVALID_VOLUME, {}
    if not filling_ok(req.type_filling, st):
        return C.TRADE_RETCODE_INVALID_FILL, {}
    side = Side.BUY if req.type == C.ORDER_TYPE_BUY else Side.SELL
    # what the order does to positions
    target = None
    if req.position:
        target = t.account.position(req.position)
        if target is None or target.symbol != req.symbol:
            return C.TRADE_RETCODE_POSITION_CLOSED, {}
        if target.side is side:
            return C.TRADE_RETCODE_INVALID, {}
        if units > target.volume:
            return C.TRADE_RETCODE_INVALID_CLOSE_VOLUME, {}
    elif not t.hedging:
        current = t.account.net_position(req.symbol)
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
    q = t.market.quote(req.symbol)
    market_price = q.price(side)
    if st.exemode in (C.SYMBOL_TRADE_EXECUTION_INSTANT, C.SYMBOL_TRADE_EXECUTION_REQUEST):
        if p.price <= 0:
            return C.TRADE_RETCODE_INVALID_PRICE, {}
        if abs(p.price - market_price) > req.deviation * t.market.point(req.symbol):
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
    need = margin(t, req.symbol, opening, market_price) if opening else Decimal(0)
    _, _, equity, used = figures(t)
    if need and need > equity - used:
        return C.TRADE_RETCODE_NO_MONEY, {"margin": need}
    return 0, {"units": units, "side": side, "target": target, "price": market_price, "margin": need}


def filling_ok(filling: int, st: SymbolSettings) -> bool:
    """Whether the symbol accepts ``type_filling`` (its ``filling_mode`` bitmask and execution mode)."""
    if filling == C.ORDER_FILLING_FOK:
        return bool(st.filling_mode & C._FILLING_FOK) or st.exemode in (
            C.SYMBOL_TRADE_EXECUTION_INSTANT, C.SYMBOL_TRADE_EXECUTION_REQUEST)
    if filling == C.ORDER_FILLING_IOC:
        return bool(st.filling_mode & C._FILLING_IOC)
    if filling == C.ORDER_FILLING_RETURN:
        return st.exemode != C.SYMBOL_TRADE_EXECUTION_MARKET
    return False


def _validate_sltp(t: Terminal, p: Parsed) -> tuple[int, dict]:
    req = p.request
    pos = t.account.position(req.position) if req.position else None
    if pos is None or (req.symbol and req.symbol != pos.symbol):
        return C.TRADE_RETCODE_POSITION_CLOSED, {}
    if not t.algo_trading:
        return C.TRADE_RETCODE_CLIENT_DISABLES_AT, {}
    if not t.settings[pos.symbol].market_open:
        return C.TRADE_RETCODE_MARKET_CLOSED, {}
    q = t.market.quote(pos.symbol)
    close = q.bid if pos.side is Side.BUY else q.ask
    sign = 1 if pos.side is Side.BUY else -1
    if (p.sl is not None and sign * (p.sl - close) >= 0) or (p.tp is not None and sign * (p.tp - close) <= 0):
        return C.TRADE_RETCODE_INVALID_STOPS, {}
    if p.sl == pos.sl and p.tp == pos.tp:
        return C.TRADE_RETCODE_NO_CHANGES, {}
    return 0, {"position": pos}
