"""A leg: one account's share of a master deal, with the reason for any rounding.

Every leg carries the *ideal* volume (exact, possibly fractional, in canonical
units), the *volume* to send (an integer on the account's step grid and inside
its [min, max], or zero), and a :class:`Reason` whenever the two differ or the
leg is not sent. A leg with ``volume == 0`` sends nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from typing import Callable

from bridge.domain.deal import Side
from bridge.domain.volume import SymbolSpec, format_lots


class Reason(str, Enum):
    """Why a leg's volume differs from its ideal, or why it is not sent."""

    # rounding
    FLOORED_TO_STEP = "floored-to-step"
    LEFTOVER_STEP = "leftover-step"  # received one step of the block's leftover
    BELOW_MINIMUM = "below-minimum"  # below the symbol's minimum volume: skipped
    FORCED_TO_MINIMUM = "forced-to-minimum"
    ROUNDED_TO_MINIMUM = "rounded-to-minimum"  # within half a step of the minimum
    FORCED_RISK_TOO_HIGH = "forced-risk-too-high"  # forcing the minimum would exceed the risk coefficient
    CLIPPED_TO_MAXIMUM = "clipped-to-maximum"  # the symbol's maximum volume
    BLOCK_EXHAUSTED = "block-exhausted"  # the MAM block has nothing left for this account
    NO_WEIGHT = "no-weight"  # zero (or negative) balance, equity, percentage or multiplier
    # copy settings
    SYMBOL_FILTERED = "symbol-filtered"
    UNKNOWN_SYMBOL = "unknown-symbol"  # the (mapped) symbol is not traded on the follower's venue
    SIDE_NOT_ALLOWED = "side-not-allowed"
    CLOSE_ONLY = "close-only"
    STOPPED_OUT = "stopped-out"
    COPYING_STOPPED = "copying-stopped"
    NO_STOP_LOSS = "no-stop-loss"  # risk sizing needs the master's stop-loss
    MAX_TRADE_RISK = "max-trade-risk"  # cut so the stop-loss loss stays under the limit
    BELOW_MIN_TRADE_VOLUME = "below-min-trade-volume"  # the subscriber's own minimum
    CLIPPED_TO_MAX_TRADE_VOLUME = "clipped-to-max-trade-volume"
    SIGNAL_EXPIRED = "signal-expired"
    PENDING_SKIPPED = "pending-skipped"
    NOT_COPIED = "not-copied"  # a balance operation, or SL/TP copying off
    # closes
    NOT_LINKED = "not-linked"  # no follower position to close (never opened, or closed by hand)
    ADD_ON_HEDGING = "add-on-hedging-account"  # no longer produced (adds open positions); older journals hold it
    REMAINDER_BELOW_MINIMUM = "remainder-below-minimum"  # closes all instead of leaving a dust position
    PARTIAL_CLOSE_BELOW_STEP = "partial-close-below-step"
    NO_PRICE = "no-price"  # the sizing mode needs a price or a conversion rate it did not get

    def __str__(self) -> str:
        return self.value


class Action(str, Enum):
    OPEN = "open"
    CLOSE = "close"  # the whole linked position
    PARTIAL_CLOSE = "partial-close"
    MODIFY = "modify"  # SL/TP only
    PENDING = "pending"  # place a pending order at ``price``
    NONE = "none"  # nothing to send; the reason says why

    def __str__(self) -> str:
        return self.value


# A value, never changed once made. Not frozen: one is built per follower per deal, and a frozen
# dataclass costs about three times as much to build.
@dataclass(slots=True)
class Leg:
    """One account's part of a master deal."""

    account: str
    action: Action
    symbol: str
    side: Side
    ideal: Decimal
    volume: int
    spec: SymbolSpec
    reason: Reason | None = None
    sl: Decimal | None = None
    tp: Decimal | None = None
    price: Decimal | None = None  # for pending orders

    @property
    def sent(self) -> bool:
        return self.action is Action.MODIFY or (self.action is not Action.NONE and self.volume > 0)

    @property
    def lots(self) -> Decimal:
        return self.spec.to_lots(self.volume)

    def as_dict(self) -> dict:
        """The leg as JSON-ready values: lots as decimal strings, volume as ``units``."""
        spec = self.spec
        ideal_lots = self.ideal / (spec.contract_size * 100)
        return {
            "account": self.account,
            "action": self.action.value,
            "lots": spec.format_lots(self.volume),
            "units": self.volume,
            "ideal_lots": format_lots(_round_display(ideal_lots), spec.lot_places),
            "side": self.side.value,
            "symbol": self.symbol,
            "reason": self.reason.value if self.reason else None,
            "sl": None if self.sl is None else str(self.sl),
            "tp": None if self.tp is None else str(self.tp),
        }


class Allocation:
    """The legs of one master deal (a MAM block, or a copy fan-out).

    Built either from legs, or from columns (one list per field, in input order)
    as the MAM engine produces them: a 10,000-account split then costs a few
    integer lists, and the :class:`Leg` objects are made, sorted by account id,
    the first time ``legs`` is read.
    """

    __slots__ = ("block", "block_spec", "side", "_legs", "_columns")

    def __init__(self, block: int, block_spec: SymbolSpec, side: Side, legs=()) -> None:
        self.block = block
        self.block_spec = block_spec
        self.side = side
        self._legs: tuple[Leg, ...] | None = tuple(sorted(legs, key=_by_account))
        self._columns = None

    @classmethod
    def from_columns(cls, block: int, block_spec: SymbolSpec, side: Side, accounts, volumes: list[int],
                     reason: Callable[[int], "Reason | None"], ideal: Callable[[int], Decimal]) -> "Allocation":
        """``accounts[i]`` (with ``.account`` and ``.spec``) gets ``volumes[i]``, for ``reason(i)``;
        ``ideal(i)`` is its exact ideal volume. Both are called only when legs are read."""
        self = cls(block, block_spec, side)
        self._legs = None
        self._columns = (accounts, volumes, reason, ideal)
        return self

    @property
    def legs(self) -> tuple[Leg, ...]:
        if self._legs is None:
            accounts, volumes, reason, ideal = self._columns
            side = self.side
            legs = [
                Leg(a.account, Action.OPEN if volumes[i] else Action.NONE, a.spec.symbol, side, ideal(i),
                    volumes[i], a.spec, reason(i))
                for i, a in enumerate(accounts)
            ]
            legs.sort(key=_by_account)
            self._legs = tuple(legs)
        return self._legs

    @property
    def allocated(self) -> int:
        if self._columns is not None:
            return sum(self._columns[1])
        return sum(leg.volume for leg in self._legs)

    def volume_of(self, account: str) -> int:
        return next(leg.volume for leg in self.legs if leg.account == account)

    def as_dict(self) -> dict:
        spec = self.block_spec
        return {
            "block_lots": spec.format_lots(self.block),
            "block_units": self.block,
            "allocated_lots": spec.format_lots(self.allocated),
            "allocated_units": self.allocated,
            "legs": [leg.as_dict() for leg in self.legs],
        }

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Allocation):
            return NotImplemented
        return (self.block, self.block_spec, self.side, self.legs) == (
            other.block, other.block_spec, other.side, other.legs)

    __hash__ = None  # mutable cache inside: not hashable

    def __repr__(self) -> str:
        return f"Allocation(block={self.block}, allocated={self.allocated}, legs={len(self.legs)})"


def _by_account(leg: Leg) -> str:
    return leg.account


def _round_display(value: Decimal) -> Decimal:
    """An ideal such as 1/3 lot shown to 10 places instead of 28."""
    return value.quantize(Decimal("1E-10")).normalize() if value.as_tuple().exponent < -10 else value
