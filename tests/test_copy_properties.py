"""Properties of copied opens over random volumes, balances, settings and symbol specs (hypothesis)."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

from hypothesis import given, settings, strategies as st

from allocation.copy import Follower, Master, copy_deal, resolve
from allocation.copy.settings import CopySettings, SizingMode, TinyTrades
from allocation.leg import Action, Reason
from bridge.domain.deal import DealKind, MasterDeal, Side
from bridge.domain.ids import DealId, Login, Platform, PositionId, ServerId
from bridge.domain.volume import SymbolSpec

D = Decimal
NOW = datetime(2024, 3, 4, 12, 0, tzinfo=timezone.utc)
MASTER_LOGIN = Login(ServerId(Platform.SIM, "master"), 1001)
MODES = [SizingMode.MULTIPLIER, SizingMode.FIXED, SizingMode.BALANCE, SizingMode.EQUITY, SizingMode.CONTRACT]
CONTRACTS = [D("1"), D("10"), D("100"), D("1000"), D("100000")]
ROUNDED_UP = {Reason.ROUNDED_TO_MINIMUM, Reason.FORCED_TO_MINIMUM}


def hundredths(max_value: int, min_value: int = 0) -> st.SearchStrategy[Decimal]:
    """Decimals with two places, built from integers (no floats anywhere)."""
    return st.integers(min_value, max_value).map(lambda n: D(n) / D(100))


@st.composite
def symbol_specs(draw, symbol: str = "EURUSD") -> SymbolSpec:
    contract = draw(st.sampled_from(CONTRACTS))
    step = draw(st.integers(1, 1000)) * draw(st.sampled_from([1, 10, 100, 1000]))
    min_steps = draw(st.integers(1, 20))
    max_steps = min_steps + draw(st.integers(0, 100_000))
    return SymbolSpec(symbol, contract, step * min_steps, step * max_steps, step)


@st.composite
def chains(draw) -> tuple[CopySettings, ...]:
    """A strategy -> subscription -> follower chain with random modes, multipliers and limits."""
    levels = []
    for _ in range(draw(st.integers(1, 3))):
        min_lots = draw(st.none() | hundredths(500))
        max_lots = draw(st.none() | hundredths(100_000, 1))
        if min_lots is not None and max_lots is not None and min_lots > max_lots:
            min_lots, max_lots = max_lots, min_lots
        levels.append(CopySettings(
            mode=draw(st.none() | st.sampled_from(MODES)),
            multiplier=draw(st.none() | hundredths(1000)),
            fixed_lots=draw(st.none() | hundredths(10_000, 1)),
            reverse=draw(st.none() | st.booleans()),
            min_lots=min_lots,
            max_lots=max_lots,
            tiny=draw(st.none() | st.sampled_from(list(TinyTrades))),
            max_risk_coefficient=draw(st.none() | st.integers(0, 20).map(D)),
        ))
    # the first level always names a mode among the ones under test (the default is balance)
    first = levels[0]
    if first.mode is None:
        levels[0] = CopySettings(**{**{f: getattr(first, f) for f in first.__slots__}, "mode": SizingMode.BALANCE})
    return tuple(levels)


@st.composite
def cases(draw):
    master_spec = draw(symbol_specs())
    follower_spec = draw(symbol_specs())
    master_volume = draw(st.integers(1, 10_000)) * master_spec.step_volume
    side = draw(st.sampled_from(list(Side)))
    deal = MasterDeal(DealId(Platform.SIM, 1), PositionId(Platform.SIM, 10), MASTER_LOGIN, "EURUSD",
                      DealKind.OPEN, side, master_volume, NOW)
    money = st.integers(0, 10_000_000).map(D)
    master = Master(draw(money), draw(money), master_spec)
    follower = Follower("F1", draw(money), draw(money), {"EURUSD": follower_spec})
    return deal, master, follower, draw(chains())


@settings(max_examples=200, deadline=None)
@given(cases())
def test_every_open_leg_is_tradable_or_explained(case):
    deal, master, follower, levels = case
    eff = resolve(*levels)
    legs = copy_deal(deal, master, follower, eff, NOW)
    assert len(legs) == 1
    (leg,) = legs
    spec = follower.specs["EURUSD"]
    assert leg.account == "F1" and leg.symbol == "EURUSD"

    if leg.volume:
        assert leg.action is Action.OPEN
        assert spec.on_grid(leg.volume)
        assert spec.min_volume <= leg.volume <= spec.max_volume
        assert leg.spec.tradable(leg.volume)
    else:
        assert leg.action is Action.NONE
        assert leg.reason is not None
    if leg.volume != leg.ideal:
        assert leg.reason is not None
    # a volume only goes above the ideal by rounding (or forcing) up to the symbol minimum
    if leg.volume > leg.ideal:
        assert leg.reason in ROUNDED_UP
        assert leg.volume == spec.min_volume
    if leg.reason is Reason.FORCED_TO_MINIMUM:
        assert spec.min_volume <= eff.max_risk_coefficient * leg.ideal


@settings(max_examples=200, deadline=None)
@given(cases())
def test_volume_never_exceeds_max_lots_nor_falls_below_min_lots(case):
    deal, master, follower, levels = case
    eff = resolve(*levels)
    (leg,) = copy_deal(deal, master, follower, eff, NOW)
    per_lot = follower.specs["EURUSD"].contract_size * 100
    if eff.max_lots is not None:
        assert leg.volume <= eff.max_lots * per_lot
    if eff.min_lots is not None and leg.volume:
        assert leg.volume >= eff.min_lots * per_lot


@settings(max_examples=200, deadline=None)
@given(cases())
def test_reverse_always_gives_the_opposite_side(case):
    deal, master, follower, levels = case
    eff = resolve(*levels)
    (leg,) = copy_deal(deal, master, follower, eff, NOW)
    reversals = sum(1 for level in levels if level.reverse)
    assert eff.reverse is (reversals % 2 == 1)
    assert leg.side is (deal.side.opposite if eff.reverse else deal.side)
    flipped_eff = resolve(*levels, CopySettings(reverse=True))
    (flipped,) = copy_deal(deal, master, follower, flipped_eff, NOW)
    assert flipped.side is leg.side.opposite
    # reversing changes the side, never the size
    assert (flipped.volume, flipped.ideal, flipped.reason) == (leg.volume, leg.ideal, leg.reason)


@settings(max_examples=200, deadline=None)
@given(cases())
def test_results_are_deterministic(case):
    deal, master, follower, levels = case
    first = copy_deal(deal, master, follower, resolve(*levels), NOW)
    second = copy_deal(deal, master, follower, resolve(*levels), NOW)
    assert first == second


@settings(max_examples=200, deadline=None)
@given(cases())
def test_multiplier_mode_ideal_is_master_lots_times_k(case):
    deal, master, follower, levels = case
    eff = resolve(*levels, CopySettings(mode=SizingMode.MULTIPLIER))
    (leg,) = copy_deal(deal, master, follower, eff, NOW)
    master_lots = master.spec.to_lots(deal.volume)
    follower_spec = follower.specs["EURUSD"]
    assert leg.ideal == master_lots * eff.multiplier * follower_spec.contract_size * 100
