"""Simulated trading accounts: positions, balance, equity and realised profit.

An account is either *hedging* (every open is a new position, closes name the
position) or *netting* (at most one position per symbol: an order on the other
side reduces, closes or reverses it, one on the same side adds to it).

Money is exact ``Decimal``: every realised profit is computed by
:meth:`Market.profit` (``(close - open) * volume / 100`` in the quote
currency, converted to the account currency, rounded half-even to cents) and
added to the balance. Equity is the balance plus the open positions' profit
at the current closing prices (bid for a buy, ask for a sell), rounded the
same way. There is no margin model: an open is refused with ``no-money`` only
when equity is not positive.

When a netting position is added to, its open price becomes the
volume-weighted average, rounded half-even to ``digits + 3`` places (MT5 also
keeps the average to a few more places than the symbol's digits). A reversal
keeps the position id (as MT5 netting does); the new side's open price, stops
and key are those of the reversing order.

The account does not number anything: the venue passes the ids in, and turns
each :class:`Change` into a :class:`MasterDeal`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Callable

from bridge.domain.deal import DealKind, MasterDeal, Side
from bridge.domain.ids import Login, PositionId
from connectors.interface import OrderResult, VenuePosition
from connectors.sim.market import CENT, Market


@dataclass(slots=True)
class Position:
    position_id: PositionId
    symbol: str
    side: Side
    volume: int
    open_price: Decimal
    sl: Decimal | None = None
    tp: Decimal | None = None
    key: str | None = None

    def view(self, account: Login) -> VenuePosition:
        return VenuePosition(self.position_id, account, self.symbol, self.side, self.volume, self.open_price,
                             self.sl, self.tp, self.key)


@dataclass(frozen=True, slots=True)
class Change:
    """What one fill did to one position: the makings of a master deal."""

    kind: DealKind
    position_id: PositionId
    symbol: str
    side: Side  # the side left open (reversal: the new side); for closes, the side closed
    volume: int  # traded; for a reversal, the new position's volume
    position_volume: int  # before the fill (0 for an open)
    price: Decimal | None
    sl: Decimal | None
    tp: Decimal | None
    profit: Decimal = Decimal(0)  # realised, account currency
    filled: int = 0  # the volume the order actually traded (a reversal: closed + opened)


@dataclass
class Account:
    login: Login
    currency: str
    hedging: bool
    balance: Decimal
    market: Market
    positions: dict[PositionId, Position] = field(default_factory=dict)  # in opening order
    deals: list[MasterDeal] = field(default_factory=list)  # the account's deal history, oldest first
    orders: dict[str, OrderResult] = field(default_factory=dict)  # filled orders by idempotency key

    # -- reading ----------------------------------------------------------
    def position(self, position_id: PositionId) -> Position | None:
        return self.positions.get(position_id)

    def net_position(self, symbol: str) -> Position | None:
        return next((p for p in self.positions.values() if p.symbol == symbol), None)

    def floating(self) -> Decimal:
        total = Decimal(0)
        for p in self.positions.values():
            close = self.market.fill_price(p.symbol, p.side.opposite)
            total += self.market.profit(p.symbol, p.side, p.volume, p.open_price, close, self.currency)
        return total

    def equity(self) -> Decimal:
        return (self.balance + self.floating()).quantize(CENT, ROUND_HALF_EVEN)

    # -- changing ---------------------------------------------------------
    def open(self, new_id: Callable[[], PositionId], symbol: str, side: Side, volume: int, price: Decimal,
             sl: Decimal | None, tp: Decimal | None, key: str | None) -> Change:
        """An order on ``side``: a new position (hedging, or flat netting), else add/reduce/reverse."""
        current = None if self.hedging else self.net_position(symbol)
        if current is None:
            position = Position(new_id(), symbol, side, volume, price, sl, tp, key)
            self.positions[position.position_id] = position
            return Change(DealKind.OPEN, position.position_id, symbol, side, volume, 0, price, sl, tp,
                          filled=volume)
        if current.side is side:
            return self._add(current, volume, price, sl, tp)
        if volume <= current.volume:
            return self.reduce(current.position_id, volume, price)
        return self._reverse(current, volume, price, sl, tp, key)

    def _add(self, p: Position, volume: int, price: Decimal, sl, tp) -> Change:
        before = p.volume
        places = Decimal(1).scaleb(-(self.market.definition(p.symbol).digits + 3))
        average = (p.open_price * before + price * volume) / (before + volume)
        average = average.quantize(places, ROUND_HALF_EVEN)
        point = self.market.point(p.symbol)
        p.open_price = average.quantize(point) if average == average.quantize(point) else average
        p.volume = before + volume
        if sl is not None:
            p.sl = sl
        if tp is not None:
            p.tp = tp
        return Change(DealKind.ADD, p.position_id, p.symbol, p.side, volume, before, price, p.sl, p.tp,
                      filled=volume)

    def reduce(self, position_id: PositionId, volume: int, price: Decimal) -> Change:
        """Close ``volume`` (at most the whole) of a position at ``price``; realise the profit."""
        p = self.positions[position_id]
        if not 0 < volume <= p.volume:
            raise ValueError(f"{position_id}: cannot close {volume} of {p.volume}")
        before = p.volume
        profit = self._realise(p, volume, price)
        if volume == before:
            del self.positions[position_id]
            kind = DealKind.CLOSE
        else:
            p.volume = before - volume
            kind = DealKind.PARTIAL_CLOSE
        return Change(kind, p.position_id, p.symbol, p.side, volume, before, price, p.sl, p.tp, profit,
                      filled=volume)

    def _reverse(self, p: Position, volume: int, price: Decimal, sl, tp, key) -> Change:
        before = p.volume
        profit = self._realise(p, before, price)
        p.side = p.side.opposite
        p.volume = volume - before
        p.open_price = price
        p.sl, p.tp, p.key = sl, tp, key
        return Change(DealKind.REVERSAL, p.position_id, p.symbol, p.side, p.volume, before, price, sl, tp, profit,
                      filled=volume)

    def modify(self, position_id: PositionId, sl: Decimal | None, tp: Decimal | None) -> Change:
        """Set both stops (None removes one)."""
        p = self.positions[position_id]
        p.sl, p.tp = sl, tp
        return Change(DealKind.SLTP, p.position_id, p.symbol, p.side, 0, p.volume, None, sl, tp)

    def _realise(self, p: Position, volume: int, price: Decimal) -> Decimal:
        profit = self.market.profit(p.symbol, p.side, volume, p.open_price, price, self.currency)
        self.balance += profit
        return profit
