"""Sizing of copied opens through copy_deal() (money.md section 2, allocation/copy/sizing.py)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from allocation.copy import Follower, Master, copy_deal, resolve
from allocation.copy.settings import CopySettings, SizingMode, TinyTrades
from allocation.errors import AllocationError
from allocation.leg import Action, Leg, Reason
from bridge.domain.deal import DealKind, MasterDeal, Side
from bridge.domain.ids import DealId, Platform, PositionId
from bridge.domain.volume import SymbolSpec
from tests.builders import MASTER_LOGIN, NOW, spec

D = Decimal




EURUSD = spec()


def open_leg(
    settings: CopySettings | None = None,
    *,
    lots: str = "2",
    side: Side = Side.BUY,
    master_spec: SymbolSpec = EURUSD,
    follower_spec: SymbolSpec = EURUSD,
    master_balance: str = "10000",
    master_equity: str | None = None,
    follower_balance: str = "10000",
    follower_equity: str | None = None,
    price: str | None = None,
    sl: str | None = None,
    quote_rate: str | None = None,
) -> Leg:
    deal = MasterDeal(
        DealId(Platform.SIM, 1), PositionId(Platform.SIM, 10), MASTER_LOGIN, master_spec.symbol,
        DealKind.OPEN, side, master_spec.to_volume(lots), NOW,
        price=None if price is None else D(price), sl=None if sl is None else D(sl),
    )
    master = Master(D(master_balance), D(master_equity or master_balance), master_spec)
    follower = Follower(
        "F1", D(follower_balance), D(follower_equity or follower_balance),
        specs={follower_spec.symbol: follower_spec},
        quote_rates={} if quote_rate is None else {follower_spec.symbol: D(quote_rate)},
    )
    eff = resolve(settings) if settings is not None else resolve()
    legs = copy_deal(deal, master, follower, eff, NOW)
    assert len(legs) == 1
    leg = legs[0]
    # the invariant of every leg: a difference between ideal and sent is explained
    if leg.volume != leg.ideal:
        assert leg.reason is not None
    if leg.volume:
        assert leg.action is Action.OPEN
        assert leg.spec.tradable(leg.volume)
    else:
        assert leg.action is Action.NONE and leg.reason is not None
    return leg


def lots(leg: Leg) -> Decimal:
    return leg.spec.to_lots(leg.volume)


def ideal_lots(leg: Leg) -> Decimal:
    return leg.ideal / (leg.spec.contract_size * 100)


# -- modes with worked numbers ------------------------------------------------------------

def test_multiplier_mode_master_lots_times_k():
    leg = open_leg(CopySettings(mode=SizingMode.MULTIPLIER, multiplier=D("1.5")), lots="2")
    assert lots(leg) == D("3")
    assert leg.ideal == D(30_000_000)
    assert leg.reason is None


def test_multiplier_mode_speaks_in_each_sides_own_lots():
    master_spec = spec("XAUUSD", contract="100000")
    follower_spec = spec("XAUUSD", contract="1000")
    leg = open_leg(CopySettings(mode=SizingMode.MULTIPLIER, multiplier=D("1.5")), lots="2",
                   master_spec=master_spec, follower_spec=follower_spec)
    assert lots(leg) == D("3")
    assert leg.volume == follower_spec.to_volume("3") == 300_000
    assert leg.reason is None


def test_multiplier_mode_multiplies_along_the_chain():
    eff_chain = resolve(CopySettings(mode=SizingMode.MULTIPLIER, multiplier=D("2")),
                        CopySettings(multiplier=D("1.5")), CopySettings(multiplier=D("0.5")))
    deal = MasterDeal(DealId(Platform.SIM, 1), PositionId(Platform.SIM, 10), MASTER_LOGIN, "EURUSD",
                      DealKind.OPEN, Side.BUY, EURUSD.to_volume("2"), NOW)
    (leg,) = copy_deal(deal, Master(D(1), D(1), EURUSD), Follower("F1", D(1), D(1), {"EURUSD": EURUSD}),
                       eff_chain, NOW)
    assert lots(leg) == D("3")


def test_fixed_mode_is_constant_whatever_the_master_volume():
    settings = CopySettings(mode=SizingMode.FIXED, fixed_lots=D("0.25"))
    assert lots(open_leg(settings, lots="2")) == D("0.25")
    assert lots(open_leg(settings, lots="0.01")) == D("0.25")
    assert lots(open_leg(settings, lots="50")) == D("0.25")


def test_fixed_mode_times_multiplier_in_the_followers_lots():
    follower_spec = spec("XAUUSD", contract="100")
    leg = open_leg(CopySettings(mode=SizingMode.FIXED, fixed_lots=D("0.25"), multiplier=D("2")),
                   master_spec=spec("XAUUSD"), follower_spec=follower_spec)
    assert lots(leg) == D("0.5")
    assert leg.volume == follower_spec.to_volume("0.5")


def test_fixed_mode_without_fixed_lots_is_not_sent():
    leg = open_leg(CopySettings(mode=SizingMode.FIXED))
    assert leg.volume == 0
    assert leg.reason is Reason.NO_WEIGHT


def test_balance_mode_worked_example():
    leg = open_leg(CopySettings(mode=SizingMode.BALANCE, multiplier=D("1.5")), lots="2",
                   master_balance="50000", follower_balance="8000")
    assert lots(leg) == D("0.48")
    assert leg.ideal == D(4_800_000)
    assert leg.reason is None


def test_balance_is_the_default_mode():
    leg = open_leg(None, lots="2", master_balance="50000", follower_balance="8000")
    assert lots(leg) == D("0.32")


def test_balance_mode_ignores_equity():
    leg = open_leg(CopySettings(mode=SizingMode.BALANCE), lots="1", master_balance="10000", master_equity="99999",
                   follower_balance="5000", follower_equity="1")
    assert lots(leg) == D("0.5")


def test_balance_mode_keeps_exposure_across_contract_sizes():
    master_spec = spec("XAUUSD", contract="100")
    follower_spec = spec("XAUUSD", contract="10")
    # master 1 lot = 100 oz; follower half the balance -> 50 oz = 5 lots of 10 oz
    leg = open_leg(CopySettings(mode=SizingMode.BALANCE), lots="1", master_spec=master_spec,
                   follower_spec=follower_spec, master_balance="20000", follower_balance="10000")
    assert lots(leg) == D("5")


def test_equity_mode_uses_equity():
    leg = open_leg(CopySettings(mode=SizingMode.EQUITY, multiplier=D("1.5")), lots="2",
                   master_balance="1", master_equity="50000", follower_balance="1", follower_equity="8000")
    assert lots(leg) == D("0.48")
    assert leg.reason is None


@pytest.mark.parametrize("mode", [SizingMode.BALANCE, SizingMode.EQUITY])
def test_balance_and_equity_modes_with_no_money_are_not_sent(mode):
    leg = open_leg(CopySettings(mode=mode), master_balance="10000", follower_balance="0", follower_equity="0")
    assert leg.volume == 0 and leg.reason is Reason.NO_WEIGHT
    leg = open_leg(CopySettings(mode=mode), master_balance="0", master_equity="0")
    assert leg.volume == 0 and leg.reason is Reason.NO_WEIGHT


def test_contract_mode_keeps_the_same_exposure():
    master_spec = spec("XAUUSD", contract="100")
    follower_spec = spec("XAUUSD", contract="10")
    leg = open_leg(CopySettings(mode=SizingMode.CONTRACT), lots="1", master_spec=master_spec,
                   follower_spec=follower_spec)
    assert lots(leg) == D("10")
    assert leg.volume == master_spec.to_volume("1")  # same units of base asset
    assert leg.reason is None


def test_contract_mode_times_multiplier():
    leg = open_leg(CopySettings(mode=SizingMode.CONTRACT, multiplier=D("0.5")), lots="1",
                   master_spec=spec("XAUUSD", contract="100"), follower_spec=spec("XAUUSD", contract="10"))
    assert lots(leg) == D("5")


def test_risk_mode_worked_example():
    leg = open_leg(CopySettings(mode=SizingMode.RISK, risk_fraction=D("0.01")), lots="7",
                   follower_balance="12000", price="1.10000", sl="1.09500")
    # 1% of 12000 = 120; 0.005 per unit of EUR -> 24000 EUR = 0.24 lots
    assert lots(leg) == D("0.24")
    assert leg.ideal == D(2_400_000)
    assert leg.reason is None


def test_risk_mode_sell_with_stop_above():
    leg = open_leg(CopySettings(mode=SizingMode.RISK, risk_fraction=D("0.01")), side=Side.SELL,
                   follower_balance="12000", price="1.10000", sl="1.10500")
    assert lots(leg) == D("0.24")
    assert leg.side is Side.SELL


def test_risk_mode_is_independent_of_the_master_volume():
    settings = CopySettings(mode=SizingMode.RISK, risk_fraction=D("0.01"))
    a = open_leg(settings, lots="0.01", follower_balance="12000", price="1.10000", sl="1.09500")
    b = open_leg(settings, lots="40", follower_balance="12000", price="1.10000", sl="1.09500")
    assert a.volume == b.volume == EURUSD.to_volume("0.24")


def test_risk_mode_without_stop_loss_is_not_copied():
    leg = open_leg(CopySettings(mode=SizingMode.RISK, risk_fraction=D("0.01")), follower_balance="12000",
                   price="1.10000")
    assert leg.volume == 0
    assert leg.action is Action.NONE
    assert leg.reason is Reason.NO_STOP_LOSS


def test_risk_mode_without_price_is_not_copied():
    leg = open_leg(CopySettings(mode=SizingMode.RISK, risk_fraction=D("0.01")), follower_balance="12000",
                   sl="1.09500")
    assert leg.volume == 0
    assert leg.reason is Reason.NO_PRICE


def test_risk_mode_quote_rate_scales_the_volume():
    settings = CopySettings(mode=SizingMode.RISK, risk_fraction=D("0.01"))
    # a quote currency worth 2 account-currency units halves the volume
    assert lots(open_leg(settings, follower_balance="12000", price="1.10000", sl="1.09500",
                         quote_rate="2")) == D("0.12")
    # worth half as much: double
    assert lots(open_leg(settings, follower_balance="12000", price="1.10000", sl="1.09500",
                         quote_rate="0.5")) == D("0.48")


def test_risk_mode_times_multiplier():
    leg = open_leg(CopySettings(mode=SizingMode.RISK, risk_fraction=D("0.01"), multiplier=D("2")),
                   follower_balance="12000", price="1.10000", sl="1.09500")
    assert lots(leg) == D("0.48")


# -- tiny trades --------------------------------------------------------------------------

# min 0.10 lots, step 0.01: half a step below the minimum is 0.095
TINY = spec("EURUSD", min_lots="0.10", max_lots="100", step="0.01")


def tiny_leg(ideal_lots_: str, settings: CopySettings | None = None, follower_spec: SymbolSpec = TINY) -> Leg:
    # fixed mode sizes exactly the wanted ideal
    base = CopySettings(mode=SizingMode.FIXED, fixed_lots=D(ideal_lots_))
    leg_settings = resolve(base, settings) if settings is not None else resolve(base)
    deal = MasterDeal(DealId(Platform.SIM, 1), PositionId(Platform.SIM, 10), MASTER_LOGIN, "EURUSD",
                      DealKind.OPEN, Side.BUY, EURUSD.to_volume("1"), NOW)
    (leg,) = copy_deal(deal, Master(D(10000), D(10000), EURUSD),
                       Follower("F1", D(10000), D(10000), {"EURUSD": follower_spec}), leg_settings, NOW)
    assert leg.ideal == follower_spec.to_volume(ideal_lots_)
    return leg


@pytest.mark.parametrize("ideal", ["0.095", "0.097", "0.0999"])
def test_tiny_within_half_a_step_goes_to_the_minimum(ideal):
    leg = tiny_leg(ideal)
    assert lots(leg) == D("0.10")
    assert leg.action is Action.OPEN
    assert leg.reason is Reason.ROUNDED_TO_MINIMUM


@pytest.mark.parametrize("ideal", ["0.0949", "0.05", "0.01"])
def test_tiny_further_below_is_skipped(ideal):
    leg = tiny_leg(ideal)
    assert leg.volume == 0
    assert leg.action is Action.NONE
    assert leg.reason is Reason.BELOW_MINIMUM


def test_tiny_skip_is_the_default():
    assert resolve().tiny is TinyTrades.SKIP
    assert tiny_leg("0.05", CopySettings(tiny=TinyTrades.SKIP)).reason is Reason.BELOW_MINIMUM


@pytest.mark.parametrize("ideal", ["0.02", "0.05", "0.09"])
def test_force_places_the_minimum_while_the_risk_ratio_is_at_most_5(ideal):
    leg = tiny_leg(ideal, CopySettings(tiny=TinyTrades.FORCE))
    assert lots(leg) == D("0.10")
    assert leg.reason is Reason.FORCED_TO_MINIMUM
    assert leg.action is Action.OPEN


@pytest.mark.parametrize("ideal", ["0.0199", "0.01"])
def test_force_refuses_when_the_risk_ratio_is_above_5(ideal):
    leg = tiny_leg(ideal, CopySettings(tiny=TinyTrades.FORCE))
    assert leg.volume == 0
    assert leg.reason is Reason.FORCED_RISK_TOO_HIGH


def test_force_still_reports_half_step_rounding_as_rounded():
    assert tiny_leg("0.096", CopySettings(tiny=TinyTrades.FORCE)).reason is Reason.ROUNDED_TO_MINIMUM


def test_max_risk_coefficient_override():
    force2 = CopySettings(tiny=TinyTrades.FORCE, max_risk_coefficient=D("2"))
    assert tiny_leg("0.05", force2).reason is Reason.FORCED_TO_MINIMUM  # ratio exactly 2
    assert tiny_leg("0.04", force2).reason is Reason.FORCED_RISK_TOO_HIGH  # ratio 2.5
    force10 = CopySettings(tiny=TinyTrades.FORCE, max_risk_coefficient=D("10"))
    assert tiny_leg("0.01", force10).reason is Reason.FORCED_TO_MINIMUM  # ratio 10
    assert lots(tiny_leg("0.01", force10)) == D("0.10")


def test_max_risk_coefficient_is_overridable_along_the_chain():
    strategy = CopySettings(mode=SizingMode.FIXED, fixed_lots=D("0.04"), tiny=TinyTrades.FORCE,
                            max_risk_coefficient=D("2"))
    follower = CopySettings(max_risk_coefficient=D("3"))
    deal = MasterDeal(DealId(Platform.SIM, 1), PositionId(Platform.SIM, 10), MASTER_LOGIN, "EURUSD",
                      DealKind.OPEN, Side.BUY, EURUSD.to_volume("1"), NOW)
    (leg,) = copy_deal(deal, Master(D(1), D(1), EURUSD), Follower("F1", D(1), D(1), {"EURUSD": TINY}),
                       resolve(strategy, None, follower), NOW)
    assert leg.reason is Reason.FORCED_TO_MINIMUM


# -- subscriber limits -------------------------------------------------------------------

def test_below_min_lots_is_skipped():
    leg = open_leg(CopySettings(mode=SizingMode.MULTIPLIER, min_lots=D("0.5")), lots="0.4")
    assert leg.volume == 0
    assert leg.reason is Reason.BELOW_MIN_TRADE_VOLUME
    assert leg.ideal == EURUSD.to_volume("0.4")


def test_min_lots_is_compared_after_the_multiplier():
    # 0.4 x 1.5 = 0.6 >= 0.5
    leg = open_leg(CopySettings(mode=SizingMode.MULTIPLIER, multiplier=D("1.5"), min_lots=D("0.5")), lots="0.4")
    assert lots(leg) == D("0.6")
    assert leg.reason is None


def test_at_min_lots_is_sent():
    leg = open_leg(CopySettings(mode=SizingMode.MULTIPLIER, min_lots=D("0.5")), lots="0.5")
    assert lots(leg) == D("0.5")


def test_min_lots_in_the_followers_lots():
    # master 2 lots of a 100000 contract = 200 lots of a 1000 contract under contract mode
    leg = open_leg(CopySettings(mode=SizingMode.CONTRACT, min_lots=D("250")), lots="2",
                   follower_spec=spec("EURUSD", contract="1000", max_lots="1000"))
    assert leg.reason is Reason.BELOW_MIN_TRADE_VOLUME
    leg = open_leg(CopySettings(mode=SizingMode.CONTRACT, min_lots=D("150")), lots="2",
                   follower_spec=spec("EURUSD", contract="1000", max_lots="1000"))
    assert lots(leg) == D("200")


def test_above_max_lots_is_clipped():
    leg = open_leg(CopySettings(mode=SizingMode.MULTIPLIER, multiplier=D("2"), max_lots=D("1.5")), lots="2")
    assert lots(leg) == D("1.5")
    assert leg.ideal == EURUSD.to_volume("4")
    assert leg.reason is Reason.CLIPPED_TO_MAX_TRADE_VOLUME


def test_max_lots_clip_then_floor_keeps_the_clip_reason():
    leg = open_leg(CopySettings(mode=SizingMode.MULTIPLIER, max_lots=D("1.555")), lots="2")
    assert lots(leg) == D("1.55")
    assert leg.reason is Reason.CLIPPED_TO_MAX_TRADE_VOLUME


def test_max_trade_risk_cuts_the_volume():
    # 2% of 12000 = 240 at 0.005 per EUR -> at most 0.48 lots; master wants 2 lots
    leg = open_leg(CopySettings(mode=SizingMode.MULTIPLIER, max_trade_risk=D("0.02")), lots="2",
                   follower_balance="12000", price="1.10000", sl="1.09500")
    assert lots(leg) == D("0.48")
    assert leg.ideal == EURUSD.to_volume("2")
    assert leg.reason is Reason.MAX_TRADE_RISK


def test_max_trade_risk_not_binding_leaves_the_volume():
    leg = open_leg(CopySettings(mode=SizingMode.MULTIPLIER, max_trade_risk=D("0.02")), lots="0.3",
                   follower_balance="12000", price="1.10000", sl="1.09500")
    assert lots(leg) == D("0.3")
    assert leg.reason is None


def test_max_trade_risk_is_not_applied_without_a_stop_loss():
    leg = open_leg(CopySettings(mode=SizingMode.MULTIPLIER, max_trade_risk=D("0.02")), lots="2",
                   follower_balance="12000", price="1.10000")
    assert lots(leg) == D("2")
    assert leg.reason is None


def test_max_trade_risk_uses_the_quote_rate():
    leg = open_leg(CopySettings(mode=SizingMode.MULTIPLIER, max_trade_risk=D("0.02")), lots="2",
                   follower_balance="12000", price="1.10000", sl="1.09500", quote_rate="2")
    assert lots(leg) == D("0.24")


def test_the_tighter_of_max_lots_and_max_trade_risk_wins():
    risk_tighter = open_leg(CopySettings(mode=SizingMode.MULTIPLIER, max_lots=D("1"), max_trade_risk=D("0.02")),
                            lots="2", follower_balance="12000", price="1.10000", sl="1.09500")
    assert lots(risk_tighter) == D("0.48") and risk_tighter.reason is Reason.MAX_TRADE_RISK
    lots_tighter = open_leg(CopySettings(mode=SizingMode.MULTIPLIER, max_lots=D("0.3"), max_trade_risk=D("0.02")),
                            lots="2", follower_balance="12000", price="1.10000", sl="1.09500")
    assert lots(lots_tighter) == D("0.3") and lots_tighter.reason is Reason.CLIPPED_TO_MAX_TRADE_VOLUME


def test_rounding_up_to_the_minimum_never_exceeds_max_lots():
    # clipped to 0.095, which would round up to the symbol minimum 0.10 > max_lots: skipped instead
    leg = tiny_leg("1", CopySettings(max_lots=D("0.095")))
    assert leg.volume == 0
    assert leg.reason is Reason.CLIPPED_TO_MAX_TRADE_VOLUME


def test_forcing_the_minimum_never_exceeds_max_lots():
    leg = tiny_leg("0.05", CopySettings(tiny=TinyTrades.FORCE, max_lots=D("0.08")))
    assert leg.volume == 0
    assert leg.reason is Reason.CLIPPED_TO_MAX_TRADE_VOLUME


def test_forcing_the_minimum_never_exceeds_the_risk_cut():
    # risk cut: 0.1% of 4000 = 4 at 0.005 -> 0.008 lots; the minimum 0.10 would lose 50
    deal = MasterDeal(DealId(Platform.SIM, 1), PositionId(Platform.SIM, 10), MASTER_LOGIN, "EURUSD",
                      DealKind.OPEN, Side.BUY, EURUSD.to_volume("1"), NOW, price=D("1.10000"), sl=D("1.09500"))
    eff = resolve(CopySettings(mode=SizingMode.FIXED, fixed_lots=D("0.05"), tiny=TinyTrades.FORCE,
                               max_risk_coefficient=D("100"), max_trade_risk=D("0.001")))
    (leg,) = copy_deal(deal, Master(D(1), D(1), EURUSD), Follower("F1", D(4000), D(4000), {"EURUSD": TINY}),
                       eff, NOW)
    assert leg.volume == 0
    assert leg.reason is Reason.MAX_TRADE_RISK


def test_contradictory_chain_limits_send_nothing_below_min_lots():
    # each level is valid alone; together min 0.5 > max 0.2: clipping to 0.2 would break the minimum
    strategy = CopySettings(mode=SizingMode.MULTIPLIER, min_lots=D("0.5"))
    follower = CopySettings(max_lots=D("0.2"))
    try:
        eff = resolve(strategy, None, follower)
    except AllocationError:
        return  # refusing the contradictory chain is an acceptable answer too
    deal = MasterDeal(DealId(Platform.SIM, 1), PositionId(Platform.SIM, 10), MASTER_LOGIN, "EURUSD",
                      DealKind.OPEN, Side.BUY, EURUSD.to_volume("1"), NOW)
    (leg,) = copy_deal(deal, Master(D(1), D(1), EURUSD), Follower("F1", D(1), D(1), {"EURUSD": EURUSD}),
                       eff, NOW)
    assert leg.volume == 0 or leg.volume >= EURUSD.to_volume(eff.min_lots)
    assert leg.volume == 0
    assert leg.action is Action.NONE
    assert leg.reason is Reason.BELOW_MIN_TRADE_VOLUME


def test_risk_cut_below_min_lots_sends_nothing():
    # min_lots 0.5; the 2% risk cut allows only 0.48 lots
    leg = open_leg(CopySettings(mode=SizingMode.MULTIPLIER, min_lots=D("0.5"), max_trade_risk=D("0.02")),
                   lots="2", follower_balance="12000", price="1.10000", sl="1.09500")
    assert leg.volume == 0
    assert leg.reason is Reason.BELOW_MIN_TRADE_VOLUME


# -- venue rounding -----------------------------------------------------------------------

def test_symbol_maximum_clips():
    leg = open_leg(CopySettings(mode=SizingMode.MULTIPLIER, multiplier=D("3")), lots="20",
                   follower_spec=spec(max_lots="50"))
    assert lots(leg) == D("50")
    assert leg.ideal == EURUSD.to_volume("60")
    assert leg.reason is Reason.CLIPPED_TO_MAXIMUM


def test_floor_to_step_keeps_the_exact_ideal():
    # balance 3333 / 10000 of 1 lot = 0.3333 lots -> 0.33
    leg = open_leg(CopySettings(mode=SizingMode.BALANCE), lots="1", master_balance="10000", follower_balance="3333")
    assert lots(leg) == D("0.33")
    assert leg.ideal == D(3_333_000)
    assert ideal_lots(leg) == D("0.3333")
    assert leg.reason is Reason.FLOORED_TO_STEP


def test_floor_to_a_coarse_step():
    leg = open_leg(CopySettings(mode=SizingMode.MULTIPLIER, multiplier=D("1.5")), lots="1.5",
                   follower_spec=spec(min_lots="0.1", step="0.1"))
    # 2.25 -> 2.2
    assert lots(leg) == D("2.2")
    assert leg.ideal == EURUSD.to_volume("2.25")
    assert leg.reason is Reason.FLOORED_TO_STEP


def test_fractional_ideal_kept_exactly():
    # 1 lot x 1000 / 3000: a third of a lot
    leg = open_leg(CopySettings(mode=SizingMode.BALANCE), lots="1", master_balance="3000", follower_balance="1000")
    assert leg.ideal == D(10_000_000) / D(3)
    assert lots(leg) == D("0.33")
    assert leg.reason is Reason.FLOORED_TO_STEP


def test_exact_volume_has_no_reason():
    leg = open_leg(CopySettings(mode=SizingMode.MULTIPLIER), lots="0.37")
    assert lots(leg) == D("0.37")
    assert leg.ideal == leg.volume
    assert leg.reason is None


def test_zero_multiplier_is_not_sent():
    leg = open_leg(CopySettings(mode=SizingMode.MULTIPLIER, multiplier=D("0")))
    assert leg.volume == 0
    assert leg.reason is Reason.NO_WEIGHT
