"""Master deals: what a signal provider or MAM manager did on the master account.

Connectors turn platform events (an MT5 deal, a cTrader execution event, an MT4
EA trade event) into a :class:`MasterDeal`; platform types stay in the connector.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import Enum

from bridge.domain.ids import DealId, Login, PositionId


class Side(str, Enum):
    BUY = "buy"
    SELL = "sell"

    def __str__(self) -> str:
        return self.value

    @property
    def opposite(self) -> "Side":
        return Side.SELL if self is Side.BUY else Side.BUY


class DealKind(str, Enum):
    """What a master deal did to its position."""

    OPEN = "open"  # a new position
    ADD = "add"  # more volume on an existing position (netting accounts)
    PARTIAL_CLOSE = "partial-close"  # part of the position closed
    CLOSE = "close"  # the whole position closed
    REVERSAL = "reversal"  # netting INOUT: close, then open the other side
    SLTP = "sltp"  # stop-loss / take-profit changed
    PENDING = "pending"  # a pending order placed (not yet a position)
    BALANCE = "balance"  # deposit, withdrawal, credit: not a trade

    def __str__(self) -> str:
        return self.value


def signed(side: Side, volume: int) -> int:
    """A position's volume with its direction: buy positive, sell negative."""
    return volume if side is Side.BUY else -volume


def kind_of(before: int, after: int) -> DealKind:
    """What a deal did to a position, from its signed volume before and after (every platform alike)."""
    if before == 0:
        return DealKind.OPEN
    if after == 0:
        return DealKind.CLOSE
    if (before > 0) != (after > 0):
        return DealKind.REVERSAL
    return DealKind.ADD if abs(after) > abs(before) else DealKind.PARTIAL_CLOSE


@dataclass(frozen=True, slots=True)
class MasterDeal:
    """One master deal, volumes in canonical units (see ``bridge.domain.volume``).

    ``side`` is the side of the position the deal leaves open (for a reversal,
    the new side); for closes it is the side of the position being closed.
    ``volume`` is what the deal traded; for a reversal it is the volume of the
    new position. ``position_volume`` is the master position's volume *before*
    the deal (0 for an open), which is what a partial close is a fraction of.
    """

    deal_id: DealId
    position_id: PositionId
    account: Login
    symbol: str
    kind: DealKind
    side: Side
    volume: int
    time: datetime
    position_volume: int = 0
    price: Decimal | None = None
    sl: Decimal | None = None
    tp: Decimal | None = None

    def __post_init__(self) -> None:
        for name in ("volume", "position_volume"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"deal {self.deal_id}: {name} must be a non-negative int")
        if self.time.tzinfo is None:
            raise ValueError(f"deal {self.deal_id}: time must be timezone-aware (UTC)")
        if self.kind in (DealKind.PARTIAL_CLOSE, DealKind.CLOSE, DealKind.REVERSAL):
            if self.position_volume <= 0:
                raise ValueError(f"deal {self.deal_id}: a {self.kind} needs the position volume before it")
        if self.kind is DealKind.PARTIAL_CLOSE and self.volume >= self.position_volume:
            raise ValueError(f"deal {self.deal_id}: a partial close must close less than the position")
        for name in ("price", "sl", "tp"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Decimal):
                raise TypeError(f"deal {self.deal_id}: {name} must be a Decimal or None")
