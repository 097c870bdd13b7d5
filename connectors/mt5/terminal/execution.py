"""Carrying out a validated request, and the trade server's answers.

- :func:`execute`: a ``TRADE_ACTION_DEAL`` opens, adds to, reduces, closes or reverses a position of the
  simulated account and books its order and deal (entry IN/OUT/INOUT) in the :class:`~.history.History`;
  ``TRADE_ACTION_SLTP`` moves a position's stops. Position ticket == identifier == opening order ticket.
- :func:`answer`: the ``OrderSendResult`` of a request (each with the next request id), with the
  comments of :data:`RETCODE_COMMENTS`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bridge.domain.deal import DealKind
from connectors.mt5.terminal import constants as C
from connectors.mt5.terminal.history import COMMENT_MAX
from connectors.mt5.terminal.parsing import Parsed
from connectors.mt5.terminal.positions import PositionMeta
from connectors.mt5.terminal.records import OrderSendResult, TradeRequest
from connectors.mt5.terminal.symbols import lots

if TYPE_CHECKING:
    from connectors.mt5.terminal.terminal import Terminal

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


def answer(t: Terminal, req: TradeRequest, retcode: int, *, deal: int = 0, order: int = 0, volume: float = 0.0,
           price: float = 0.0, bid: float = 0.0, ask: float = 0.0) -> OrderSendResult:
    request_id = t._next_request
    t._next_request += 1
    return OrderSendResult(retcode, deal, order, volume, price, bid, ask, RETCODE_COMMENTS.get(retcode, ""),
                           request_id, 0, req)


def execute(t: Terminal, p: Parsed, plan: dict) -> OrderSendResult:
    """Carry out ``p`` by the ``plan`` of :func:`~.validation.validate`."""
    req = p.request
    comment = req.comment[:COMMENT_MAX]
    if req.action == C.TRADE_ACTION_SLTP:
        pos = plan["position"]
        t.account.modify(pos.position_id, p.sl, p.tp)
        t._meta[pos.position_id].time_update_msc = t._now_msc()
        return answer(t, req, C.TRADE_RETCODE_DONE)
    side, units, target, price = plan["side"], plan["units"], plan["target"], plan["price"]
    order_id = t.history.next_order  # the order about to be recorded (position ticket == order ticket)
    if target is not None and req.position:
        change = t.account.reduce(target.position_id, units, price)
    else:
        change = t.account.open(lambda: order_id, req.symbol, side, units, price, p.sl, p.tp, None)
    entry = {DealKind.OPEN: C.DEAL_ENTRY_IN, DealKind.ADD: C.DEAL_ENTRY_IN,
             DealKind.PARTIAL_CLOSE: C.DEAL_ENTRY_OUT, DealKind.CLOSE: C.DEAL_ENTRY_OUT,
             DealKind.REVERSAL: C.DEAL_ENTRY_INOUT}[change.kind]
    order, deal = t.history.record(change, req.type, entry, C.DEAL_REASON_EXPERT, req.magic, comment,
                                   req.type_filling, req.type_time, p.price or price, sl=p.sl, tp=p.tp)
    assert order == order_id
    now = t._now_msc()
    if change.kind is DealKind.OPEN:
        t._meta[order] = PositionMeta(now, now, req.magic, comment, C.POSITION_REASON_EXPERT)
    elif change.kind is DealKind.CLOSE:
        t._meta.pop(change.position_id, None)
    else:
        meta = t._meta[change.position_id]
        meta.time_update_msc = now
        if change.kind is DealKind.REVERSAL:
            meta.time_msc, meta.magic, meta.comment = now, req.magic, comment
    return answer(t, req, C.TRADE_RETCODE_DONE, deal=deal, order=order,
                  volume=lots(t.market, req.symbol, units), price=float(price))
