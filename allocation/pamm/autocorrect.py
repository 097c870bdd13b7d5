"""``autocorrect`` handling: a withdrawal partially closes every open master position.

money.md section 4: with ``autocorrect``, nothing happens to the positions on a
deposit; a withdrawal closes part of every open master position in proportion
to the share of the pool withdrawn, so the investors who stay keep the same
exposure per unit.

The rules (one leg per open position, each with a reason when it is rounded):

* ``share`` = cash paid out at the rollover / the pool's equity at the dealing
  NAV, before the payouts (fees stay in the pool, so they move no position);
  ``0 < share <= 1``.
* ideal close = position volume x share (exact, in canonical units);
* the close is *floored* to the symbol's step (:attr:`Reason.FLOORED_TO_STEP`),
  so the pool never closes more than the withdrawn share;
* a close that floors to nothing closes nothing
  (:attr:`Reason.PARTIAL_CLOSE_BELOW_STEP`);
* a remainder that would fall below the symbol's minimum closes the whole
  position instead of leaving dust (:attr:`Reason.REMAINDER_BELOW_MINIMUM`);
  a share of 1 (everyone left) closes everything;
* a close is cut to the symbol's maximum volume per order only by the venue
  connector, never here (the close is one order on one position).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal

from allocation.leg import Action, Leg, Reason
from allocation.pamm.errors import PammError
from bridge.domain.deal import Side
from bridge.domain.volume import SymbolSpec


@dataclass(frozen=True, slots=True)
class OpenPosition:
    """One open master position, as the venue reports it."""

    position_id: str
    symbol: str
    side: Side
    volume: int


def withdrawn_share(payouts: Decimal, equity_before: Decimal) -> Decimal:
    """The share of the pool a rollover paid out (exact Decimal in (0, 1]), or 0 when nothing left it."""
    if payouts < 0 or equity_before < 0:
        raise PammError(f"payouts {payouts} and equity {equity_before} must not be negative")
    if payouts == 0:
        return Decimal(0)
    if payouts > equity_before:
        raise PammError(f"payouts {payouts} exceed the pool's equity {equity_before}")
    return payouts / equity_before


def autocorrect_closes(positions: list[OpenPosition], specs: dict[str, SymbolSpec], share: Decimal) -> list[tuple[str, Leg]]:
    """One leg per open position: ``(position_id, leg)``; a leg with volume 0 sends nothing.

    ``leg.account`` is the position id's owner label ``"master"``; the caller
    knows the account. Positions are taken in the order given.
    """
    if not 0 <= share <= 1:
        raise PammError(f"withdrawn share must be in [0, 1], got {share}")
    legs: list[tuple[str, Leg]] = []
    for p in positions:
        spec = specs.get(p.symbol)
        if spec is None:
            raise PammError(f"no symbol spec for {p.symbol} (position {p.position_id})")
        ideal = Decimal(p.volume) * share
        legs.append((p.position_id, _leg(p, spec, ideal, share)))
    return legs


def _leg(p: OpenPosition, spec: SymbolSpec, ideal: Decimal, share: Decimal) -> Leg:
    if share == 0:
        return Leg("master", Action.NONE, p.symbol, p.side, ideal, 0, spec, Reason.NOT_COPIED)
    if share == 1:
        return Leg("master", Action.CLOSE, p.symbol, p.side, ideal, p.volume, spec)
    step = spec.step_volume
    steps = int((ideal / step).to_integral_value(rounding=ROUND_FLOOR))
    volume = min(steps * step, p.volume)
    reason = Reason.FLOORED_TO_STEP if volume != ideal else None
    if volume == 0:
        return Leg("master", Action.NONE, p.symbol, p.side, ideal, 0, spec, Reason.PARTIAL_CLOSE_BELOW_STEP)
    if p.volume - volume < spec.min_volume:
        return Leg("master", Action.CLOSE, p.symbol, p.side, ideal, p.volume, spec,
                   None if volume == p.volume else Reason.REMAINDER_BELOW_MINIMUM)
    return Leg("master", Action.PARTIAL_CLOSE, p.symbol, p.side, ideal, volume, spec, reason)
