"""Money at risk in the simulated terminal: margin, the account's figures, and the closes the trade
server makes on its own: SL/TP triggers (deal reasons 4/5, :func:`check_stops`) and stop-out at a
margin level at or below ``margin_so_so`` % (reason 6, :func:`check_stop_out`)."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from typing import TYPE_CHECKING

from bridge.domain.deal import Side
from connectors.mt5.terminal import constants as C
from connectors.sim.market import CENT

if TYPE_CHECKING:
    from connectors.mt5.terminal.terminal import Terminal


def margin(t: Terminal, symbol: str, units: int, price: Decimal) -> Decimal:
    """Margin of ``units`` at ``price``: notional / leverage, in the account currency (cents)."""
    notional = Decimal(units) / 100 * price
    in_quote = notional / t.leverage
    d = t.market.definition(symbol)
    return t.market.convert(in_quote, d.quote, t.currency).quantize(CENT, ROUND_HALF_EVEN)


def used_margin(t: Terminal) -> Decimal:
    return sum((margin(t, p.symbol, p.volume, p.open_price) for p in t.account.positions.values()), Decimal(0))


def figures(t: Terminal) -> tuple[Decimal, Decimal, Decimal, Decimal]:
    """balance, floating profit, equity, margin."""
    floating = t.account.floating().quantize(CENT, ROUND_HALF_EVEN)
    return t.account.balance, floating, t.account.equity(), used_margin(t)


def margin_level(equity: Decimal, used: Decimal) -> float:
    """Equity / margin in %, to the cent; 0.0 without margin."""
    return float((equity / used * 100).quantize(CENT, ROUND_HALF_EVEN)) if used else 0.0


def check_stops(t: Terminal) -> None:
    """Close every position whose SL or TP the current price reached, then check the stop-out."""
    for p in list(t.account.positions.values()):
        q = t.market.quote(p.symbol)
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
        meta = t._meta[p.position_id]
        tag = "sl" if reason == C.DEAL_REASON_SL else "tp"
        comment = f"[{tag} {level:.{t.market.definition(p.symbol).digits}f}]"
        deal_type = C.ORDER_TYPE_SELL if p.side is Side.BUY else C.ORDER_TYPE_BUY
        change = t.account.reduce(p.position_id, p.volume, close)
        del t._meta[p.position_id]
        t.history.record(change, deal_type, C.DEAL_ENTRY_OUT, reason, meta.magic, comment,
                         C.ORDER_FILLING_FOK, C.ORDER_TIME_GTC, close, sl=level if tag == "sl" else None,
                         tp=level if tag == "tp" else None)
    check_stop_out(t)


def check_stop_out(t: Terminal) -> None:
    """While the margin level is at or below ``margin_so_so`` %, close the most losing position (reason 6)."""
    while t.account.positions:
        _, _, equity, used = figures(t)
        if not used or equity * 100 / used > t.margin_so_so:
            return
        level = (equity * 100 / used).quantize(CENT, ROUND_HALF_EVEN)

        def loss(p):
            close = t.market.fill_price(p.symbol, p.side.opposite)
            return t.market.profit(p.symbol, p.side, p.volume, p.open_price, close, t.currency)

        p = min(t.account.positions.values(), key=loss)
        close = t.market.fill_price(p.symbol, p.side.opposite)
        meta = t._meta.pop(p.position_id)
        deal_type = C.ORDER_TYPE_SELL if p.side is Side.BUY else C.ORDER_TYPE_BUY
        change = t.account.reduce(p.position_id, p.volume, close)
        t.history.record(change, deal_type, C.DEAL_ENTRY_OUT, C.DEAL_REASON_SO, meta.magic, f"[so {level}%]",
                         C.ORDER_FILLING_FOK, C.ORDER_TIME_GTC, close)
