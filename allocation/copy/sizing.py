"""Size one copied open: the ideal volume by sizing mode, then limits, then rounding.

All volumes are canonical (hundredths of a unit of base asset); the ideal is an
exact ``Decimal`` and the result an ``int``. Steps, in order:

1. **mode** gives the ideal (see :class:`~allocation.copy.settings.SizingMode`),
   times the chain's multiplier. ``multiplier`` and ``fixed`` speak in lots of
   each side's own symbol; ``balance``, ``equity``, ``contract`` and ``risk`` in
   exposure, so differing contract sizes across venues do not distort them.
2. **subscriber limits**: below ``min_lots`` -> skipped; above ``max_lots`` ->
   clipped; above what ``max_trade_risk`` allows at the master's stop-loss ->
   cut (without a stop-loss the loss is not bounded by the trade and the
   limit is not applied).
3. **venue rounding**: at or above the symbol minimum, floor to the step and
   clip to the symbol maximum. Below the minimum, *tiny trades* decide:
   ``skip`` (default) places the minimum only when the ideal is within half a
   step of it (``rounded-to-minimum``) and skips otherwise; ``force`` places
   the minimum when ``minimum / ideal <= max_risk_coefficient``.
   Rounding up never lifts a volume above a subscriber limit or the risk cut:
   such a leg is skipped with that limit's reason.

Loss at the stop-loss for volume ``v``: ``v / 100 * |price - sl| * quote_rate``
in the follower's account currency, ``quote_rate`` converting the symbol's
quote currency into it (1 when they are the same).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from allocation.copy.settings import Effective, SizingMode, TinyTrades
from allocation.leg import Reason
from bridge.domain.volume import UNITS_PER_BASE, SymbolSpec


# A value, never changed once made. Not frozen: one is built per follower per deal, and a frozen
# dataclass costs about three times as much to build.
@dataclass(slots=True)
class Sizing:
    ideal: Decimal  # canonical, exact
    volume: int  # to send; 0 = skip
    reason: Reason | None


# A value, never changed once made. Not frozen: one is built per follower per deal, and a frozen
# dataclass costs about three times as much to build.
@dataclass(slots=True)
class SizingInputs:
    master_volume: int
    master_spec: SymbolSpec
    master_balance: Decimal
    master_equity: Decimal
    follower_spec: SymbolSpec
    follower_balance: Decimal
    follower_equity: Decimal
    price: Decimal | None = None
    sl: Decimal | None = None
    quote_rate: Decimal | None = Decimal(1)


def size_open(inputs: SizingInputs, settings: Effective) -> Sizing:
    ideal, reason = _ideal(inputs, settings)
    if reason is not None:
        return Sizing(ideal, 0, reason)
    if ideal <= 0:
        return Sizing(ideal, 0, Reason.NO_WEIGHT)
    spec = inputs.follower_spec
    min_lots, max_lots = settings.min_lots, settings.max_lots
    if min_lots is None and max_lots is None and settings.max_trade_risk is None:
        # no subscriber limit (the common case): only the venue's rounding
        volume, rounding = _round(ideal, spec, settings)
        return Sizing(ideal, volume, rounding)
    per_lot = spec.contract_size * UNITS_PER_BASE

    # subscriber limits: a floor, and ceilings each with its own reason
    if min_lots is not None and ideal < min_lots * per_lot:
        return Sizing(ideal, 0, Reason.BELOW_MIN_TRADE_VOLUME)
    ceilings: list[tuple[Decimal, Reason]] = []
    if max_lots is not None:
        ceilings.append((max_lots * per_lot, Reason.CLIPPED_TO_MAX_TRADE_VOLUME))
    risk_cap = _risk_cap(inputs, settings.max_trade_risk)
    if risk_cap is not None:
        ceilings.append((risk_cap, Reason.MAX_TRADE_RISK))
    target, reason = ideal, None
    for cap, why in ceilings:
        if target > cap:
            target, reason = cap, why

    volume, rounding = _round(target, spec, settings)
    if volume:
        for cap, why in ceilings:
            if volume > cap:  # rounding up to the minimum would break a limit
                return Sizing(ideal, 0, why)
        if min_lots is not None and volume < min_lots * per_lot:
            # a chain whose mins exceed its maxes: no volume satisfies both, so none is sent
            return Sizing(ideal, 0, Reason.BELOW_MIN_TRADE_VOLUME)
    if volume == 0:
        return Sizing(ideal, 0, rounding)
    if rounding is Reason.FLOORED_TO_STEP and reason is not None:
        rounding = reason  # the cut is the story; the floor after it is implied
    return Sizing(ideal, volume, rounding or reason)


def _ideal(inputs: SizingInputs, s: Effective) -> tuple[Decimal, Reason | None]:
    mode = s.mode
    k = s.multiplier
    fspec, mspec = inputs.follower_spec, inputs.master_spec
    if mode is SizingMode.MULTIPLIER:
        return inputs.master_volume * k * fspec.contract_size / mspec.contract_size, None
    if mode is SizingMode.CONTRACT:
        return inputs.master_volume * k, None
    if mode is SizingMode.FIXED:
        if s.fixed_lots is None:
            return Decimal(0), Reason.NO_WEIGHT
        return s.fixed_lots * k * fspec.contract_size * UNITS_PER_BASE, None
    if mode in (SizingMode.BALANCE, SizingMode.EQUITY):
        if mode is SizingMode.BALANCE:
            mine, theirs = inputs.follower_balance, inputs.master_balance
        else:
            mine, theirs = inputs.follower_equity, inputs.master_equity
        if theirs <= 0 or mine <= 0:
            return Decimal(0), Reason.NO_WEIGHT
        return inputs.master_volume * mine * k / theirs, None
    # risk
    if inputs.sl is None:
        return Decimal(0), Reason.NO_STOP_LOSS
    loss_per_unit = _loss_per_unit(inputs)
    if loss_per_unit is None:
        return Decimal(0), Reason.NO_PRICE
    if s.risk_fraction is None or inputs.follower_balance <= 0:
        return Decimal(0), Reason.NO_WEIGHT
    return s.risk_fraction * inputs.follower_balance * k / loss_per_unit, None


def _loss_per_unit(inputs: SizingInputs) -> Decimal | None:
    """Money lost per canonical unit if the stop-loss is hit; None if it cannot be told."""
    if inputs.price is None or inputs.sl is None or inputs.quote_rate is None:
        return None
    distance = abs(inputs.price - inputs.sl)
    if distance == 0 or inputs.quote_rate <= 0:
        return None
    return distance * inputs.quote_rate / UNITS_PER_BASE


def _risk_cap(inputs: SizingInputs, max_trade_risk: Decimal | None) -> Decimal | None:
    if max_trade_risk is None or inputs.sl is None:
        return None
    loss_per_unit = _loss_per_unit(inputs)
    if loss_per_unit is None:
        return None
    return max_trade_risk * max(inputs.follower_balance, Decimal(0)) / loss_per_unit


def _round(target: Decimal, spec: SymbolSpec, s: Effective) -> tuple[int, Reason | None]:
    minimum, step = spec.min_volume, spec.step_volume
    if target >= minimum:
        volume = spec.floor(int(target))
        if volume > spec.max_volume:
            return spec.max_volume, Reason.CLIPPED_TO_MAXIMUM
        return volume, (Reason.FLOORED_TO_STEP if volume != target else None)
    if target * 2 >= 2 * minimum - step:
        return minimum, Reason.ROUNDED_TO_MINIMUM
    if s.tiny is TinyTrades.FORCE:
        if target > 0 and minimum <= s.max_risk_coefficient * target:
            return minimum, Reason.FORCED_TO_MINIMUM
        return 0, Reason.FORCED_RISK_TOO_HIGH
    return 0, Reason.BELOW_MINIMUM
