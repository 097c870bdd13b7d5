"""Copying master deals to a follower through copy_deal() (money.md section 2, allocation/copy/follower.py)."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from allocation.copy import Follower, LinkedPosition, Master, close_all, copy_deal, resolve
from allocation.copy.settings import CloseOnly, CopySettings, Effective, SizingMode
from allocation.leg import Action, Leg, Reason
from bridge.domain.deal import DealKind, MasterDeal, Side
from bridge.domain.ids import DealId, Platform, PositionId
from bridge.domain.volume import SymbolSpec
from tests.builders import MASTER_LOGIN, NOW, spec

D = Decimal




EURUSD = spec()
XAUUSD = spec("XAUUSD", contract="100")
GBPUSD = spec("GBPUSD")
# multiplier 1: the follower copies the master's lots, so volumes are easy to read
MULT = CopySettings(mode=SizingMode.MULTIPLIER)


def deal(
    kind: DealKind = DealKind.OPEN,
    lots: str = "1",
    *,
    side: Side = Side.BUY,
    symbol: str = "EURUSD",
    position_lots: str = "0",
    price: str | None = None,
    sl: str | None = None,
    tp: str | None = None,
    time: datetime = NOW,
) -> MasterDeal:
    sp = spec(symbol)
    return MasterDeal(
        DealId(Platform.SIM, 7), PositionId(Platform.SIM, 70), MASTER_LOGIN, symbol, kind, side,
        sp.to_volume(lots), time, sp.to_volume(position_lots),
        None if price is None else D(price), None if sl is None else D(sl), None if tp is None else D(tp),
    )


def master(symbol: str = "EURUSD") -> Master:
    return Master(D("10000"), D("10000"), spec(symbol))


def follower(
    *specs: SymbolSpec,
    linked: LinkedPosition | None = None,
    held: frozenset[str] = frozenset(),
    copying: bool = True,
    stopped_out: bool = False,
) -> Follower:
    specs = specs or (EURUSD, XAUUSD, GBPUSD)
    return Follower("F1", D("10000"), D("10000"), {s.symbol: s for s in specs}, linked, held, copying, stopped_out)


def linked(lots: str, *, symbol: str = "EURUSD", side: Side = Side.BUY, sp: SymbolSpec | None = None) -> LinkedPosition:
    return LinkedPosition(symbol, side, (sp or spec(symbol)).to_volume(lots))


def copy(d: MasterDeal, f: Follower | None = None, *levels: CopySettings, now: datetime = NOW,
         m: Master | None = None) -> list[Leg]:
    eff: Effective = resolve(*(levels or (MULT,)))
    legs = copy_deal(d, m or master(d.symbol), f or follower(), eff, now)
    assert legs, "copy_deal never returns an empty list"
    for leg in legs:
        check_leg(leg)
    return legs


def check_leg(leg: Leg) -> None:
    """Every leg: a difference between ideal and sent is explained; a sent volume is tradable."""
    if leg.action is Action.MODIFY:
        assert leg.volume == 0
        return
    if leg.volume != leg.ideal:
        assert leg.reason is not None, leg
    if leg.action is Action.NONE:
        assert leg.volume == 0 and leg.reason is not None, leg
    else:
        assert leg.volume > 0 and leg.spec.on_grid(leg.volume), leg


def one(legs: list[Leg]) -> Leg:
    assert len(legs) == 1, legs
    return legs[0]


def lots(leg: Leg) -> Decimal:
    return leg.spec.to_lots(leg.volume)


# -- plain opens, reverse, SL/TP ------------------------------------------------------------

def test_open_copies_side_volume_and_stops():
    leg = one(copy(deal(lots="0.5", price="1.10000", sl="1.09000", tp="1.12000")))
    assert leg.action is Action.OPEN
    assert leg.account == "F1"
    assert leg.symbol == "EURUSD" and leg.side is Side.BUY
    assert lots(leg) == D("0.5")
    assert (leg.sl, leg.tp) == (D("1.09000"), D("1.12000"))
    assert leg.price is None
    assert leg.reason is None


def test_add_is_copied_like_an_open():
    leg = one(copy(deal(DealKind.ADD, lots="0.3", position_lots="1")))
    assert leg.action is Action.OPEN
    assert lots(leg) == D("0.3")


@pytest.mark.parametrize("master_side", list(Side))
def test_reverse_flips_side_and_swaps_sl_tp(master_side):
    sl, tp = ("1.09000", "1.12000") if master_side is Side.BUY else ("1.12000", "1.09000")
    leg = one(copy(deal(side=master_side, price="1.10000", sl=sl, tp=tp), None, MULT, CopySettings(reverse=True)))
    assert leg.action is Action.OPEN
    assert leg.side is master_side.opposite
    assert leg.sl == D(tp) and leg.tp == D(sl)


def test_two_reverses_cancel():
    leg = one(copy(deal(sl="1.09000", tp="1.12000"), None, CopySettings(mode=SizingMode.MULTIPLIER, reverse=True),
                   CopySettings(reverse=True)))
    assert leg.side is Side.BUY
    assert (leg.sl, leg.tp) == (D("1.09000"), D("1.12000"))


def test_copy_sl_off_drops_the_stop_loss():
    leg = one(copy(deal(sl="1.09000", tp="1.12000"), None, MULT, CopySettings(copy_sl=False)))
    assert leg.sl is None and leg.tp == D("1.12000")


def test_copy_tp_off_drops_the_take_profit():
    leg = one(copy(deal(sl="1.09000", tp="1.12000"), None, MULT, CopySettings(copy_tp=False)))
    assert leg.sl == D("1.09000") and leg.tp is None


def test_copy_sl_off_with_reverse_drops_the_followers_stop_loss():
    # reversed, the follower's SL is the master's TP: that one is dropped
    leg = one(copy(deal(sl="1.09000", tp="1.12000"), None, MULT, CopySettings(reverse=True, copy_sl=False)))
    assert leg.side is Side.SELL
    assert leg.sl is None and leg.tp == D("1.09000")


# -- filters, mapping, sides --------------------------------------------------------------

def test_symbol_filter_include():
    leg = one(copy(deal(symbol="GBPUSD"), None, MULT, CopySettings(include=frozenset({"EURUSD", "XAU*"}))))
    assert leg.action is Action.NONE and leg.volume == 0
    assert leg.reason is Reason.SYMBOL_FILTERED
    assert one(copy(deal(symbol="XAUUSD"), None, MULT, CopySettings(include=frozenset({"XAU*"})))).action \
        is Action.OPEN


def test_symbol_filter_exclude():
    leg = one(copy(deal(symbol="XAUUSD"), None, MULT, CopySettings(exclude=frozenset({"XAU*"}))))
    assert leg.reason is Reason.SYMBOL_FILTERED
    assert leg.volume == 0


def test_symbol_filter_applies_to_the_masters_symbol_before_mapping():
    eur_m = spec("EURUSD.m")
    settings = CopySettings(symbol_map=(("EURUSD", "EURUSD.m"),), include=frozenset({"EURUSD"}))
    leg = one(copy(deal(), follower(eur_m), MULT, settings))
    assert leg.action is Action.OPEN
    assert leg.symbol == "EURUSD.m"
    assert leg.spec is eur_m


def test_symbol_maps_chain_to_the_followers_symbol():
    pro = spec("EURUSD.pro")
    leg = one(copy(deal(lots="0.2"), follower(pro), MULT, CopySettings(symbol_map=(("EURUSD", "EURUSD.m"),)),
                   CopySettings(symbol_map=(("EURUSD.m", "EURUSD.pro"),))))
    assert leg.action is Action.OPEN
    assert leg.symbol == "EURUSD.pro"
    assert lots(leg) == D("0.2")


def test_mapped_symbol_missing_on_the_follower_is_unknown():
    leg = one(copy(deal(), follower(EURUSD), MULT, CopySettings(symbol_map=(("EURUSD", "EURUSD.m"),))))
    assert leg.action is Action.NONE and leg.volume == 0
    assert leg.symbol == "EURUSD.m"
    assert leg.reason is Reason.UNKNOWN_SYMBOL


def test_unmapped_symbol_missing_on_the_follower_is_unknown():
    leg = one(copy(deal(symbol="XAUUSD"), follower(EURUSD)))
    assert leg.reason is Reason.UNKNOWN_SYMBOL


def test_side_not_allowed():
    leg = one(copy(deal(side=Side.SELL), None, MULT, CopySettings(sides=frozenset({Side.BUY}))))
    assert leg.action is Action.NONE
    assert leg.reason is Reason.SIDE_NOT_ALLOWED
    assert one(copy(deal(side=Side.BUY), None, MULT, CopySettings(sides=frozenset({Side.BUY})))).action \
        is Action.OPEN


def test_sides_apply_to_the_followers_side_after_reverse():
    buy_only = CopySettings(sides=frozenset({Side.BUY}), reverse=True)
    # master sells -> follower buys: allowed
    assert one(copy(deal(side=Side.SELL), None, MULT, buy_only)).action is Action.OPEN
    # master buys -> follower sells: not allowed
    assert one(copy(deal(side=Side.BUY), None, MULT, buy_only)).reason is Reason.SIDE_NOT_ALLOWED


# -- close only ---------------------------------------------------------------------------

@pytest.mark.parametrize("kind", [DealKind.OPEN, DealKind.ADD])
def test_close_only_by_position_blocks_opens_and_adds(kind):
    leg = one(copy(deal(kind, position_lots="1" if kind is DealKind.ADD else "0"), follower(held=frozenset({"EURUSD"})),
                   MULT, CopySettings(close_only=CloseOnly.BY_POSITION)))
    assert leg.action is Action.NONE and leg.volume == 0
    assert leg.reason is Reason.CLOSE_ONLY


@pytest.mark.parametrize("mode", list(CloseOnly))
def test_close_only_never_blocks_closes(mode):
    f = follower(linked=linked("0.4"))
    leg = one(copy(deal(DealKind.CLOSE, lots="1", position_lots="1"), f, MULT, CopySettings(close_only=mode)))
    assert leg.action is Action.CLOSE
    assert lots(leg) == D("0.4")
    partial = one(copy(deal(DealKind.PARTIAL_CLOSE, lots="0.5", position_lots="1"), f, MULT,
                       CopySettings(close_only=mode)))
    assert partial.action is Action.PARTIAL_CLOSE
    assert lots(partial) == D("0.2")


def test_close_only_by_symbol_opens_only_in_held_symbols():
    settings = CopySettings(close_only=CloseOnly.BY_SYMBOL)
    f = follower(held=frozenset({"EURUSD"}))
    assert one(copy(deal(), f, MULT, settings)).action is Action.OPEN
    assert one(copy(deal(DealKind.ADD, position_lots="1"), f, MULT, settings)).action is Action.OPEN
    leg = one(copy(deal(symbol="XAUUSD"), f, MULT, settings))
    assert leg.action is Action.NONE
    assert leg.reason is Reason.CLOSE_ONLY


def test_close_only_by_symbol_uses_the_mapped_names():
    eur_m = spec("EURUSD.m")
    settings = CopySettings(mode=SizingMode.MULTIPLIER, symbol_map=(("EURUSD", "EURUSD.m"),),
                            close_only=CloseOnly.BY_SYMBOL)
    assert one(copy(deal(), follower(eur_m, held=frozenset({"EURUSD.m"})), settings)).action is Action.OPEN
    leg = one(copy(deal(), follower(eur_m, held=frozenset({"EURUSD"})), settings))
    assert leg.reason is Reason.CLOSE_ONLY


def test_close_only_immediately_blocks_opens_even_in_held_symbols():
    leg = one(copy(deal(), follower(held=frozenset({"EURUSD"})), MULT,
                   CopySettings(close_only=CloseOnly.IMMEDIATELY)))
    assert leg.action is Action.NONE
    assert leg.reason is Reason.CLOSE_ONLY


def test_close_all_closes_every_listed_position():
    positions = [linked("0.2", symbol="XAUUSD", side=Side.SELL), linked("0.5"), linked("1.25", symbol="GBPUSD")]
    specs = {"EURUSD": EURUSD, "XAUUSD": XAUUSD, "GBPUSD": GBPUSD}
    legs = close_all("F1", positions, specs, Reason.CLOSE_ONLY)
    assert len(legs) == 3
    assert all(leg.action is Action.CLOSE and leg.reason is Reason.CLOSE_ONLY and leg.account == "F1"
               for leg in legs)
    got = {(leg.symbol, leg.side, leg.volume) for leg in legs}
    assert got == {(p.symbol, p.side, p.volume) for p in positions}
    for leg in legs:
        assert leg.spec is specs[leg.symbol]
        assert leg.ideal == leg.volume
    # deterministic order whatever the input order
    assert close_all("F1", list(reversed(positions)), specs, Reason.CLOSE_ONLY) == legs


def test_close_all_of_nothing_is_nothing():
    assert close_all("F1", [], {}, Reason.STOPPED_OUT) == []


# -- follower control, stop-out, lifetime ---------------------------------------------------

def test_copying_stopped_blocks_opens():
    leg = one(copy(deal(), follower(copying=False)))
    assert leg.action is Action.NONE
    assert leg.reason is Reason.COPYING_STOPPED


def test_stopped_out_blocks_opens():
    leg = one(copy(deal(), follower(stopped_out=True)))
    assert leg.action is Action.NONE
    assert leg.reason is Reason.STOPPED_OUT


@pytest.mark.parametrize("state", [{"copying": False}, {"stopped_out": True}])
def test_stopped_follower_still_follows_the_master_out(state):
    f = follower(linked=linked("0.7"), **state)
    leg = one(copy(deal(DealKind.CLOSE, lots="1", position_lots="1"), f))
    assert leg.action is Action.CLOSE
    assert lots(leg) == D("0.7")


def test_signal_lifetime_exceeded_expires_the_open():
    settings = CopySettings(mode=SizingMode.MULTIPLIER, signal_lifetime=timedelta(seconds=30))
    old = deal(time=NOW - timedelta(seconds=31))
    leg = one(copy(old, None, settings))
    assert leg.action is Action.NONE
    assert leg.reason is Reason.SIGNAL_EXPIRED


def test_signal_at_its_lifetime_is_still_copied():
    settings = CopySettings(mode=SizingMode.MULTIPLIER, signal_lifetime=timedelta(seconds=30))
    assert one(copy(deal(time=NOW - timedelta(seconds=30)), None, settings)).action is Action.OPEN
    assert one(copy(deal(time=NOW - timedelta(seconds=5)), None, settings)).action is Action.OPEN


def test_closes_of_old_deals_are_still_copied():
    settings = CopySettings(mode=SizingMode.MULTIPLIER, signal_lifetime=timedelta(seconds=30))
    f = follower(linked=linked("0.6"))
    old = NOW - timedelta(hours=5)
    close = one(copy(deal(DealKind.CLOSE, lots="1", position_lots="1", time=old), f, settings))
    assert close.action is Action.CLOSE and lots(close) == D("0.6")
    partial = one(copy(deal(DealKind.PARTIAL_CLOSE, lots="0.5", position_lots="1", time=old), f, settings))
    assert partial.action is Action.PARTIAL_CLOSE and lots(partial) == D("0.3")


def test_no_signal_lifetime_never_expires():
    assert one(copy(deal(time=NOW - timedelta(days=30)))).action is Action.OPEN


# -- pending orders, balance deals -----------------------------------------------------------

def test_pending_order_becomes_a_pending_leg_with_its_price():
    leg = one(copy(deal(DealKind.PENDING, lots="0.4", price="1.08000", sl="1.07000", tp="1.10000")))
    assert leg.action is Action.PENDING
    assert leg.price == D("1.08000")
    assert lots(leg) == D("0.4")
    assert (leg.sl, leg.tp) == (D("1.07000"), D("1.10000"))


def test_pending_orders_skipped_with_skip_pending():
    leg = one(copy(deal(DealKind.PENDING, price="1.08000"), None, MULT, CopySettings(skip_pending=True)))
    assert leg.action is Action.NONE and leg.volume == 0
    assert leg.reason is Reason.PENDING_SKIPPED


def test_skip_pending_does_not_skip_market_opens():
    assert one(copy(deal(), None, MULT, CopySettings(skip_pending=True))).action is Action.OPEN


def test_pending_that_sizes_to_nothing_is_not_placed():
    leg = one(copy(deal(DealKind.PENDING, lots="0.004", price="1.08000"), None,
                   CopySettings(mode=SizingMode.MULTIPLIER)))
    assert leg.action is Action.NONE
    assert leg.reason is Reason.BELOW_MINIMUM


@pytest.mark.parametrize("settings", [MULT, CopySettings(mode=SizingMode.BALANCE, reverse=True)])
def test_balance_deals_are_not_copied(settings):
    leg = one(copy(deal(DealKind.BALANCE, lots="0"), follower(linked=linked("1")), settings))
    assert leg.action is Action.NONE and leg.volume == 0
    assert leg.reason is Reason.NOT_COPIED


# -- closes ---------------------------------------------------------------------------------

def test_full_close_closes_the_whole_linked_volume():
    f = follower(linked=linked("0.37", side=Side.SELL))
    leg = one(copy(deal(DealKind.CLOSE, lots="1", side=Side.BUY, position_lots="1"), f))
    assert leg.action is Action.CLOSE
    assert leg.volume == EURUSD.to_volume("0.37")
    assert leg.side is Side.SELL  # the follower's own position
    assert leg.symbol == "EURUSD"
    assert leg.reason is None


def test_full_close_uses_the_linked_symbol():
    pro = spec("EURUSD.pro")
    f = follower(pro, linked=linked("0.2", symbol="EURUSD.pro"))
    leg = one(copy(deal(DealKind.CLOSE, lots="1", position_lots="1"), f))
    assert leg.symbol == "EURUSD.pro"
    assert leg.spec is pro
    assert lots(leg) == D("0.2")


def test_partial_close_floored_to_step():
    # master 1.00 closes 0.30; follower 0.33 -> 0.099 -> 0.09
    f = follower(linked=linked("0.33"))
    leg = one(copy(deal(DealKind.PARTIAL_CLOSE, lots="0.30", position_lots="1.00"), f))
    assert leg.action is Action.PARTIAL_CLOSE
    assert lots(leg) == D("0.09")
    assert leg.ideal == EURUSD.to_volume("0.099")
    assert leg.reason is Reason.FLOORED_TO_STEP


def test_partial_close_exact_fraction_has_no_reason():
    f = follower(linked=linked("0.40"))
    leg = one(copy(deal(DealKind.PARTIAL_CLOSE, lots="0.25", position_lots="1.00"), f))
    assert lots(leg) == D("0.10")
    assert leg.reason is None


def test_second_partial_close_works_from_the_new_volumes():
    first = one(copy(deal(DealKind.PARTIAL_CLOSE, lots="0.30", position_lots="1.00"),
                     follower(linked=linked("0.33"))))
    remaining = EURUSD.to_volume("0.33") - first.volume
    assert remaining == EURUSD.to_volume("0.24")
    # master 0.70 left, closes half of it: follower closes half of its 0.24
    second = one(copy(deal(DealKind.PARTIAL_CLOSE, lots="0.35", position_lots="0.70"),
                      follower(linked=LinkedPosition("EURUSD", Side.BUY, remaining))))
    assert second.action is Action.PARTIAL_CLOSE
    assert lots(second) == D("0.12")
    assert second.reason is None


def test_partial_close_remainder_below_minimum_closes_all():
    sp = spec(min_lots="0.10", step="0.01")
    f = follower(sp, linked=linked("0.15", sp=sp))
    # half of 0.15 = 0.075 -> 0.07, leaving 0.08 < minimum 0.10
    leg = one(copy(deal(DealKind.PARTIAL_CLOSE, lots="0.5", position_lots="1"), f))
    assert leg.action is Action.CLOSE
    assert lots(leg) == D("0.15")
    assert leg.reason is Reason.REMAINDER_BELOW_MINIMUM


def test_partial_close_below_one_step_is_not_sent():
    f = follower(linked=linked("0.50"))
    # 1% of 0.50 = 0.005 < step 0.01
    leg = one(copy(deal(DealKind.PARTIAL_CLOSE, lots="0.01", position_lots="1.00"), f))
    assert leg.action is Action.NONE
    assert leg.volume == 0
    assert leg.reason is Reason.PARTIAL_CLOSE_BELOW_STEP
    assert leg.ideal == EURUSD.to_volume("0.005")


def test_partial_close_below_the_minimum_is_not_sent():
    sp = spec(min_lots="0.10", step="0.01")
    f = follower(sp, linked=linked("1.00", sp=sp))
    leg = one(copy(deal(DealKind.PARTIAL_CLOSE, lots="0.05", position_lots="1.00"), f))
    assert leg.action is Action.NONE
    assert leg.reason is Reason.BELOW_MINIMUM


@pytest.mark.parametrize(
    "d",
    [
        deal(DealKind.CLOSE, lots="1", position_lots="1"),
        deal(DealKind.PARTIAL_CLOSE, lots="0.5", position_lots="1"),
        deal(DealKind.SLTP, lots="0", sl="1.09000", tp="1.12000"),
    ],
    ids=["close", "partial-close", "sltp"],
)
def test_not_linked_position_is_never_reopened(d):
    # the follower closed its copy by hand: nothing links it any more
    leg = one(copy(d, follower(linked=None)))
    assert leg.action is Action.NONE
    assert leg.volume == 0
    assert leg.reason is Reason.NOT_LINKED


def test_reversal_closes_then_opens_the_new_side():
    f = follower(linked=linked("0.5", side=Side.BUY))
    legs = copy(deal(DealKind.REVERSAL, lots="0.8", side=Side.SELL, position_lots="0.5"), f)
    assert len(legs) == 2
    close, open_ = legs
    assert close.action is Action.CLOSE
    assert close.side is Side.BUY
    assert lots(close) == D("0.5")
    assert open_.action is Action.OPEN
    assert open_.side is Side.SELL
    assert lots(open_) == D("0.8")  # sized from the deal volume, not the closed position


def test_reversal_open_is_sized_by_the_followers_mode():
    f = follower(linked=linked("0.5", side=Side.BUY))
    legs = copy(deal(DealKind.REVERSAL, lots="0.8", side=Side.SELL, position_lots="0.5"), f,
                CopySettings(mode=SizingMode.MULTIPLIER, multiplier=D("0.5")))
    assert [leg.action for leg in legs] == [Action.CLOSE, Action.OPEN]
    assert lots(legs[0]) == D("0.5")
    assert lots(legs[1]) == D("0.4")


def test_reversal_with_reverse_setting():
    f = follower(linked=linked("0.5", side=Side.SELL))
    legs = copy(deal(DealKind.REVERSAL, lots="0.8", side=Side.SELL, position_lots="0.5"), f, MULT,
                CopySettings(reverse=True))
    assert legs[0].action is Action.CLOSE and legs[0].side is Side.SELL
    assert legs[1].action is Action.OPEN and legs[1].side is Side.BUY


def test_sltp_deal_modifies_the_linked_position():
    f = follower(linked=linked("0.5"))
    leg = one(copy(deal(DealKind.SLTP, lots="0", sl="1.09000", tp="1.12000"), f))
    assert leg.action is Action.MODIFY
    assert leg.sent
    assert (leg.sl, leg.tp) == (D("1.09000"), D("1.12000"))
    assert leg.symbol == "EURUSD" and leg.side is Side.BUY


def test_sltp_deal_with_reverse_swaps():
    f = follower(linked=linked("0.5", side=Side.SELL))
    leg = one(copy(deal(DealKind.SLTP, lots="0", sl="1.09000", tp="1.12000"), f, MULT, CopySettings(reverse=True)))
    assert leg.action is Action.MODIFY
    assert (leg.sl, leg.tp) == (D("1.12000"), D("1.09000"))
    assert leg.side is Side.SELL


def test_sltp_deal_with_copy_sl_off_keeps_only_tp():
    f = follower(linked=linked("0.5"))
    leg = one(copy(deal(DealKind.SLTP, lots="0", sl="1.09000", tp="1.12000"), f, MULT, CopySettings(copy_sl=False)))
    assert leg.action is Action.MODIFY
    assert (leg.sl, leg.tp) == (None, D("1.12000"))


def test_sltp_deal_with_both_off_is_not_copied():
    f = follower(linked=linked("0.5"))
    leg = one(copy(deal(DealKind.SLTP, lots="0", sl="1.09000", tp="1.12000"), f, MULT,
                   CopySettings(copy_sl=False, copy_tp=False)))
    assert leg.action is Action.NONE
    assert not leg.sent
    assert leg.reason is Reason.NOT_COPIED


def test_copy_deal_is_pure_and_deterministic():
    f = follower(linked=linked("0.33"))
    d = deal(DealKind.PARTIAL_CLOSE, lots="0.30", position_lots="1.00")
    assert copy(d, f) == copy(d, f)
    assert f.linked == linked("0.33")
