"""Open positions as the terminal shows them: what MT5 keeps beside each position of the simulated
account (:class:`PositionMeta`), the ``TradePosition`` record (:func:`position_record`) and the
``ticket``/``symbol``/``group`` filter of ``positions_get`` (:func:`select`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from bridge.domain.deal import Side
from connectors.mt5.terminal import constants as C
from connectors.mt5.terminal.calls import as_float
from connectors.mt5.terminal.records import TradePosition
from connectors.mt5.terminal.symbols import lots, match_group

if TYPE_CHECKING:
    from connectors.mt5.terminal.terminal import Terminal


@dataclass
class PositionMeta:
    """What the terminal shows of a position beyond the simulated account's (times, magic, comment)."""

    time_msc: int
    time_update_msc: int
    magic: int
    comment: str
    reason: int


def position_record(t: Terminal, p) -> TradePosition:
    meta = t._meta[p.position_id]
    q = t.market.quote(p.symbol)
    current = q.bid if p.side is Side.BUY else q.ask
    profit = t.market.profit(p.symbol, p.side, p.volume, p.open_price, current, t.currency)
    return TradePosition(
        p.position_id, meta.time_msc // 1000, meta.time_msc, meta.time_update_msc // 1000,
        meta.time_update_msc, C.POSITION_TYPE_BUY if p.side is Side.BUY else C.POSITION_TYPE_SELL,
        meta.magic, p.position_id, meta.reason, lots(t.market, p.symbol, p.volume), float(p.open_price),
        as_float(p.sl), as_float(p.tp), float(current), 0.0, float(profit), p.symbol, meta.comment, "")


def select(items, symbol, group, ticket, key_ticket, key_symbol):
    """``items`` with that ticket, else that symbol, else matching the group, else all."""
    if ticket is not None:
        return tuple(x for x in items if key_ticket(x) == ticket)
    if symbol is not None:
        return tuple(x for x in items if key_symbol(x) == symbol)
    if group is not None:
        return tuple(x for x in items if match_group(key_symbol(x), group))
    return tuple(items)
