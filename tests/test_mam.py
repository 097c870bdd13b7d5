"""MAM block allocation: money.md section 3 and the rules in allocation/mam.py's docstring."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from allocation.errors import AllocationError
from allocation.leg import Action, Reason
from allocation.mam import Allocation, Leftover, MamGroup, Method, SubAccount, allocate_block
from bridge.domain.deal import Side
from bridge.domain.volume import SymbolSpec
from tests.builders import spec

D = Decimal




EURUSD = spec()


def acct(name: str, *, equity: str = "0", balance: str = "0", setting: str = "0", sp: SymbolSpec = EURUSD) -> SubAccount:
    return SubAccount(name, sp, balance=D(balance), equity=D(equity), setting=D(setting))


def allocate(
    block_lots: str,
    method: Method,
    accounts: list[SubAccount],
    *,
    leftover: Leftover = Leftover.LARGEST_REMAINDER,
    force_minimum: bool = False,
    block_spec: SymbolSpec = EURUSD,
    side: Side = Side.BUY,
) -> Allocation:
    group = MamGroup(method, leftover, force_minimum)
    return allocate_block(block_spec.to_volume(block_lots), block_spec, side, group, accounts)


def lots(result: Allocation) -> dict[str, str]:
    """Account -> lots sent, as the leg's own spec formats them."""
    return {leg.account: leg.spec.format_lots(leg.volume) for leg in result.legs}


def reasons(result: Allocation) -> dict[str, Reason | None]:
    return {leg.account: leg.reason for leg in result.legs}


def leg(result: Allocation, account: str):
    (found,) = [x for x in result.legs if x.account == account]
    return found


# -- the worked examples of money.md section 3 -------------------------------------

def test_worked_example_ours_largest_remainder():
    # block 0.10, step 0.01, equities 4,500 / 3,500 / 2,000
    result = allocate(
        "0.10",
        Method.EQUITY,
        [acct("a", equity="4500"), acct("b", equity="3500"), acct("c", equity="2000")],
        leftover=Leftover.LARGEST_REMAINDER,
    )
    assert lots(result) == {"a": "0.05", "b": "0.03", "c": "0.02"}
    assert reasons(result) == {"a": Reason.LEFTOVER_STEP, "b": Reason.FLOORED_TO_STEP, "c": None}
    assert [x.ideal for x in result.legs] == [D(450_000), D(350_000), D(200_000)]
    assert result.allocated == result.block == 1_000_000


def test_worked_example_ours_is_the_default_policy():
    assert MamGroup(Method.EQUITY).leftover is Leftover.LARGEST_REMAINDER
    result = allocate("0.10", Method.EQUITY, [acct("a", equity="4500"), acct("b", equity="3500"), acct("c", equity="2000")])
    assert lots(result) == {"a": "0.05", "b": "0.03", "c": "0.02"}


def test_worked_example_never_over_allocates_like_half_up_would():
    result = allocate("0.10", Method.EQUITY, [acct("a", equity="4500"), acct("b", equity="3500"), acct("c", equity="2000")])
    assert sum(x.volume for x in result.legs) == EURUSD.to_volume("0.10")
    # half-up rounding of each ideal would have sent 0.11
    assert sum(EURUSD.to_volume(x) for x in ("0.05", "0.04", "0.02")) > result.block


def test_worked_example_fxclearing_largest_equity():
    # block 10 lots, equities 10,000 / 7,000 / 2,000 -> 5.27 / 3.68 / 1.05
    result = allocate(
        "10",
        Method.EQUITY,
        [acct("a", equity="10000"), acct("b", equity="7000"), acct("c", equity="2000")],
        leftover=Leftover.LARGEST_EQUITY,
    )
    assert lots(result) == {"a": "5.27", "b": "3.68", "c": "1.05"}
    assert reasons(result) == {"a": Reason.LEFTOVER_STEP, "b": Reason.FLOORED_TO_STEP, "c": Reason.FLOORED_TO_STEP}
    assert result.allocated == result.block == EURUSD.to_volume("10")


def test_fxclearing_example_under_largest_remainder_gives_the_step_elsewhere():
    # remainders: 5.263.. -> .0031, 3.684.. -> .0042, 1.052.. -> .0026: b has the largest remainder
    result = allocate("10", Method.EQUITY, [acct("a", equity="10000"), acct("b", equity="7000"), acct("c", equity="2000")])
    assert lots(result) == {"a": "5.26", "b": "3.69", "c": "1.05"}
    assert reasons(result)["b"] is Reason.LEFTOVER_STEP


# -- lot ----------------------------------------------------------------------------

def test_lot_method_multiplies_master_lots():
    result = allocate(
        "1",
        Method.LOT,
        [acct("a", setting="0.5", equity="1"), acct("b", setting="0.25", equity="1"), acct("c", setting="0.1", equity="1")],
    )
    assert lots(result) == {"a": "0.50", "b": "0.25", "c": "0.10"}
    assert reasons(result) == {"a": None, "b": None, "c": None}
    assert result.allocated == EURUSD.to_volume("0.85")


def test_lot_method_floors_to_the_account_step():
    result = allocate("0.05", Method.LOT, [acct("a", setting="0.5", equity="1")])
    assert lots(result) == {"a": "0.02"}
    assert leg(result, "a").ideal == D(250_000)
    assert reasons(result) == {"a": Reason.FLOORED_TO_STEP}


def test_lot_method_with_smaller_account_contract_size():
    # master trades standard lots (100,000); the account trades mini lots (10,000) with step 0.1
    mini = spec("EURUSD.mini", contract="10000", min_lots="0.1", max_lots="100", step="0.1")
    result = allocate("1", Method.LOT, [acct("a", setting="1", equity="1", sp=mini), acct("b", setting="2", equity="1", sp=mini)])
    assert lots(result) == {"a": "1.0", "b": "2.0"}  # the account's own lots: multiplier of master lots
    assert leg(result, "a").volume == 1_000_000 and leg(result, "b").volume == 2_000_000
    assert leg(result, "a").spec is mini and leg(result, "a").symbol == "EURUSD.mini"
    assert reasons(result) == {"a": None, "b": None}


def test_lot_method_with_larger_account_contract_size():
    # master trades a 10-oz gold contract; the account's venue trades 100 oz per lot
    gold10 = spec("XAUUSD", contract="10", min_lots="0.01", max_lots="100", step="0.01")
    gold100 = spec("XAUUSD.", contract="100", min_lots="0.01", max_lots="100", step="0.01")
    result = allocate("1", Method.LOT, [acct("a", setting="0.05", equity="1", sp=gold100)], block_spec=gold10)
    # 1 master lot x 0.05 = 0.05 account lots = 5 oz, half the block's 10 oz
    assert lots(result) == {"a": "0.05"}
    assert leg(result, "a").volume == 500
    assert result.block == 1000


def test_lot_method_block_caps_exposure_when_contract_sizes_differ():
    # 1 account lot of 100 oz is 10x the 10-oz block: the block (in base units) is what is left
    gold10 = spec("XAUUSD", contract="10", min_lots="0.01", max_lots="100", step="0.01")
    gold100 = spec("XAUUSD.", contract="100", min_lots="0.01", max_lots="100", step="0.01")
    result = allocate("1", Method.LOT, [acct("a", setting="1", equity="1", sp=gold100)], block_spec=gold10)
    assert lots(result) == {"a": "0.10"}
    assert result.allocated == result.block
    assert reasons(result) == {"a": Reason.BLOCK_EXHAUSTED}


def test_lot_method_block_exhausted_by_larger_equity_first():
    result = allocate("1", Method.LOT, [acct("small", setting="0.5", equity="3000"), acct("big", setting="1", equity="5000")])
    assert lots(result) == {"big": "1.00", "small": "0.00"}
    assert reasons(result) == {"big": None, "small": Reason.BLOCK_EXHAUSTED}
    assert leg(result, "small").action is Action.NONE


def test_lot_method_block_exhausted_account_gets_what_is_left_on_its_grid():
    result = allocate("1", Method.LOT, [acct("x", setting="0.7", equity="9000"), acct("y", setting="0.6", equity="1000")])
    assert lots(result) == {"x": "0.70", "y": "0.30"}
    assert reasons(result) == {"x": None, "y": Reason.BLOCK_EXHAUSTED}
    assert result.allocated == result.block


def test_lot_method_block_exhausted_ties_go_to_the_smaller_account_id():
    accounts = [acct("b", setting="0.7", equity="5000"), acct("a", setting="0.7", equity="5000")]
    result = allocate("1", Method.LOT, accounts)
    assert lots(result) == {"a": "0.70", "b": "0.30"}
    assert reasons(result) == {"a": None, "b": Reason.BLOCK_EXHAUSTED}


def test_lot_method_exhausted_remainder_below_minimum_sends_nothing():
    small_min = spec(min_lots="0.5")
    result = allocate("1", Method.LOT, [acct("x", setting="0.7", equity="9000"), acct("y", setting="1", equity="1000", sp=small_min)])
    assert lots(result) == {"x": "0.70", "y": "0.00"}
    assert reasons(result)["y"] is Reason.BLOCK_EXHAUSTED


def test_lot_method_exhausted_account_is_not_forced_to_minimum():
    min_half = spec(min_lots="0.5")
    result = allocate(
        "1", Method.LOT, [acct("x", setting="0.7", equity="9000"), acct("y", setting="1", equity="1000", sp=min_half)],
        force_minimum=True,
    )
    assert lots(result) == {"x": "0.70", "y": "0.00"}
    assert reasons(result)["y"] is Reason.BLOCK_EXHAUSTED


def test_lot_method_zero_multiplier_is_no_weight():
    result = allocate("1", Method.LOT, [acct("a", setting="0", equity="1"), acct("b", setting="0.5", equity="1")])
    assert lots(result) == {"a": "0.00", "b": "0.50"}
    assert reasons(result) == {"a": Reason.NO_WEIGHT, "b": None}


@pytest.mark.parametrize("method", [Method.LOT, Method.FIXED, Method.PERCENT])
def test_negative_setting_is_refused(method):
    accounts = [acct("a", setting="-10", equity="1"), acct("b", setting="110", equity="1")]
    with pytest.raises(AllocationError, match="'a'.*negative"):
        allocate("1", method, accounts)


def test_fixed_account_below_minimum_does_not_consume_the_block():
    # 'a' asks 0.015 lots -> 0.01 on its grid, below its minimum 0.02: skipped.
    # 'b' asks 0.10 of a 0.10 block; nothing else is sent, so 'b' should get all of it.
    min2 = spec(min_lots="0.02")
    result = allocate("0.10", Method.FIXED, [acct("a", setting="0.015", equity="9000", sp=min2), acct("b", setting="0.10", equity="1000")])
    assert reasons(result)["a"] is Reason.BELOW_MINIMUM
    assert lots(result) == {"a": "0.00", "b": "0.10"}
    assert reasons(result)["b"] is None


# -- percent ------------------------------------------------------------------------

def test_percent_method_splits_by_percentage():
    result = allocate("1", Method.PERCENT, [acct("a", setting="50"), acct("b", setting="30"), acct("c", setting="20")])
    assert lots(result) == {"a": "0.50", "b": "0.30", "c": "0.20"}
    assert reasons(result) == {"a": None, "b": None, "c": None}


def test_percent_method_with_fractional_percentages_hands_out_the_leftover():
    result = allocate("1", Method.PERCENT, [acct("a", setting="33.34"), acct("b", setting="33.33"), acct("c", setting="33.33")])
    # ideals 0.3334 / 0.3333 / 0.3333 -> floors 0.33 each -> the 0.01 left goes to the largest remainder
    assert lots(result) == {"a": "0.34", "b": "0.33", "c": "0.33"}
    assert reasons(result) == {"a": Reason.LEFTOVER_STEP, "b": Reason.FLOORED_TO_STEP, "c": Reason.FLOORED_TO_STEP}


def test_percent_method_ignores_balance_and_equity():
    result = allocate(
        "1", Method.PERCENT, [acct("a", setting="10", equity="90000", balance="90000"), acct("b", setting="90", equity="1", balance="1")]
    )
    assert lots(result) == {"a": "0.10", "b": "0.90"}


@pytest.mark.parametrize("percentages, total", [(["50", "49"], "99"), (["50", "50.01"], "100.01"), (["100", "1"], "101")])
def test_percent_method_must_sum_to_100(percentages, total):
    accounts = [acct(f"a{i}", setting=p) for i, p in enumerate(percentages)]
    with pytest.raises(AllocationError, match=rf"sum to {total}\b"):
        allocate("1", Method.PERCENT, accounts)


def test_percent_zero_share_is_no_weight():
    result = allocate("1", Method.PERCENT, [acct("a", setting="0"), acct("b", setting="100")])
    assert lots(result) == {"a": "0.00", "b": "1.00"}
    assert reasons(result) == {"a": Reason.NO_WEIGHT, "b": None}


# -- balance, equity, equal ----------------------------------------------------------

def test_balance_method_uses_balance_not_equity():
    result = allocate(
        "1",
        Method.BALANCE,
        [acct("a", balance="6000", equity="1000"), acct("b", balance="3000", equity="3000"), acct("c", balance="1000", equity="6000")],
    )
    assert lots(result) == {"a": "0.60", "b": "0.30", "c": "0.10"}


def test_equity_method_uses_equity_not_balance():
    result = allocate(
        "1",
        Method.EQUITY,
        [acct("a", balance="6000", equity="1000"), acct("b", balance="3000", equity="3000"), acct("c", balance="1000", equity="6000")],
    )
    assert lots(result) == {"a": "0.10", "b": "0.30", "c": "0.60"}


def test_balance_method_with_cents():
    result = allocate("1", Method.BALANCE, [acct("a", balance="0.75"), acct("b", balance="0.25")])
    assert lots(result) == {"a": "0.75", "b": "0.25"}


def test_largest_equity_policy_under_balance_method_follows_equity_not_balance():
    # documented rule: under largest-equity the leftover goes by equity even when the method weighs balances.
    # balances 4501 / 4499 / 1000 of 0.10 -> ideals 0.04501 / 0.04499 / 0.01 -> floors 0.04 / 0.04 / 0.01,
    # one step left: by remainder it goes to the richer balance, by equity to the poorer balance.
    accounts = [acct("rich", balance="4501", equity="100"), acct("poor", balance="4499", equity="200"), acct("z", balance="1000", equity="1")]
    assert lots(allocate("0.10", Method.BALANCE, accounts)) == {"poor": "0.04", "rich": "0.05", "z": "0.01"}
    assert lots(allocate("0.10", Method.BALANCE, accounts, leftover=Leftover.LARGEST_EQUITY)) == {
        "poor": "0.05", "rich": "0.04", "z": "0.01",
    }


def test_equal_method_splits_evenly():
    result = allocate("0.30", Method.EQUAL, [acct("a"), acct("b"), acct("c")])
    assert lots(result) == {"a": "0.10", "b": "0.10", "c": "0.10"}
    assert reasons(result) == {"a": None, "b": None, "c": None}


def test_equal_method_ignores_zero_equity():
    result = allocate("0.20", Method.EQUAL, [acct("a", equity="0"), acct("b", equity="5000")])
    assert lots(result) == {"a": "0.10", "b": "0.10"}
    assert reasons(result) == {"a": None, "b": None}


def test_equal_method_leftover_goes_to_larger_equity():
    result = allocate("0.10", Method.EQUAL, [acct("a", equity="100"), acct("b", equity="300"), acct("c", equity="200")])
    assert lots(result) == {"a": "0.03", "b": "0.04", "c": "0.03"}
    assert reasons(result) == {"a": Reason.FLOORED_TO_STEP, "b": Reason.LEFTOVER_STEP, "c": Reason.FLOORED_TO_STEP}


def test_equal_method_leftover_ties_go_to_smaller_account_id():
    accounts = [acct("c", equity="100"), acct("b", equity="100"), acct("a", equity="100")]
    result = allocate("0.10", Method.EQUAL, accounts)
    assert lots(result) == {"a": "0.04", "b": "0.03", "c": "0.03"}
    two_left = allocate("0.11", Method.EQUAL, accounts)
    assert lots(two_left) == {"a": "0.04", "b": "0.04", "c": "0.03"}


@pytest.mark.parametrize("policy", list(Leftover))
def test_leftover_tie_break_larger_equity_then_account_id(policy):
    # equal weights (equal method), equities 5 / 9 / 9: one step left -> the 9s tie -> smaller id "m"
    accounts = [acct("z", equity="9"), acct("m", equity="9"), acct("a", equity="5")]
    result = allocate("0.10", Method.EQUAL, accounts, leftover=policy)
    assert lots(result) == {"a": "0.03", "m": "0.04", "z": "0.03"}


def test_largest_remainder_beats_equity():
    # ideals 0.0369 / 0.0631 -> floors 0.03 / 0.06, remainders .0069 / .0031, one step left:
    # largest-remainder gives it to the smaller equity, largest-equity to the larger
    result = allocate("0.10", Method.EQUITY, [acct("a", equity="3690"), acct("b", equity="6310")])
    assert lots(result) == {"a": "0.04", "b": "0.06"}
    result = allocate("0.10", Method.EQUITY, [acct("a", equity="3690"), acct("b", equity="6310")], leftover=Leftover.LARGEST_EQUITY)
    assert lots(result) == {"a": "0.03", "b": "0.07"}


# -- fixed --------------------------------------------------------------------------

def test_fixed_method_sends_each_account_its_own_lots():
    result = allocate("1", Method.FIXED, [acct("a", setting="0.3", equity="1"), acct("b", setting="0.2", equity="2")])
    assert lots(result) == {"a": "0.30", "b": "0.20"}
    assert reasons(result) == {"a": None, "b": None}
    assert result.allocated == EURUSD.to_volume("0.5")


def test_fixed_lots_are_in_the_account_contract():
    gold = spec("XAUUSD", contract="100", min_lots="0.01", max_lots="50", step="0.01")
    result = allocate("1", Method.FIXED, [acct("a", setting="0.05", equity="1", sp=gold)], block_spec=spec("XAUUSD", contract="100"))
    assert lots(result) == {"a": "0.05"}
    assert leg(result, "a").volume == 500


def test_fixed_method_floors_to_step():
    result = allocate("1", Method.FIXED, [acct("a", setting="0.237", equity="1")])
    assert lots(result) == {"a": "0.23"}
    assert reasons(result) == {"a": Reason.FLOORED_TO_STEP}


def test_fixed_method_block_exhausted_in_order_of_equity_then_account_id():
    accounts = [
        acct("d", setting="0.4", equity="100"),
        acct("c", setting="0.4", equity="500"),
        acct("b", setting="0.4", equity="500"),
        acct("a", setting="0.4", equity="50"),
    ]
    result = allocate("1", Method.FIXED, accounts)
    # order: b (500), c (500), d (100), a (50): 0.4 + 0.4 + 0.2 left + nothing
    assert lots(result) == {"a": "0.00", "b": "0.40", "c": "0.40", "d": "0.20"}
    assert reasons(result) == {"a": Reason.BLOCK_EXHAUSTED, "b": None, "c": None, "d": Reason.BLOCK_EXHAUSTED}
    assert result.allocated == result.block


def test_fixed_method_clips_to_maximum():
    result = allocate("10", Method.FIXED, [acct("a", setting="3", equity="1", sp=spec(max_lots="2"))])
    assert lots(result) == {"a": "2.00"}
    assert reasons(result) == {"a": Reason.CLIPPED_TO_MAXIMUM}


def test_fixed_below_minimum_skipped_or_forced():
    min_half = spec(min_lots="0.5")
    accounts = [acct("a", setting="0.2", equity="1", sp=min_half)]
    skipped = allocate("1", Method.FIXED, accounts)
    assert lots(skipped) == {"a": "0.00"}
    assert reasons(skipped) == {"a": Reason.BELOW_MINIMUM}
    forced = allocate("1", Method.FIXED, accounts, force_minimum=True)
    assert lots(forced) == {"a": "0.50"}
    assert reasons(forced) == {"a": Reason.FORCED_TO_MINIMUM}
    no_room = allocate("0.4", Method.FIXED, accounts, force_minimum=True)
    assert lots(no_room) == {"a": "0.00"}
    assert reasons(no_room) == {"a": Reason.BELOW_MINIMUM}


def test_fixed_below_one_step_is_below_minimum():
    result = allocate("1", Method.FIXED, [acct("a", setting="0.005", equity="1")])
    assert lots(result) == {"a": "0.00"}
    assert reasons(result) == {"a": Reason.BELOW_MINIMUM}


# -- minimum and maximum --------------------------------------------------------------

def test_share_below_minimum_is_skipped():
    min5 = spec(min_lots="0.05")
    result = allocate("0.10", Method.EQUITY, [acct("a", equity="9000", sp=min5), acct("b", equity="1000", sp=min5)])
    assert lots(result) == {"a": "0.09", "b": "0.00"}
    assert reasons(result) == {"a": None, "b": Reason.BELOW_MINIMUM}
    assert leg(result, "b").action is Action.NONE and not leg(result, "b").sent
    assert leg(result, "b").ideal == D(100_000)


def test_force_minimum_never_goes_above_the_block():
    # the block has 0.01 left; forcing b to its minimum 0.05 would send 0.14 of a 0.10 block
    min5 = spec(min_lots="0.05")
    result = allocate("0.10", Method.EQUITY, [acct("a", equity="9000", sp=min5), acct("b", equity="1000", sp=min5)], force_minimum=True)
    assert lots(result) == {"a": "0.09", "b": "0.00"}
    assert reasons(result)["b"] is Reason.BELOW_MINIMUM
    assert result.allocated <= result.block


def test_force_minimum_when_the_block_has_room():
    # a is clipped to its maximum 0.80 (excess not redistributed), so 0.20 of the block is free
    big = spec(max_lots="0.8")
    min10 = spec(min_lots="0.1")
    accounts = [acct("a", equity="9500", sp=big), acct("b", equity="500", sp=min10)]
    skipped = allocate("1", Method.EQUITY, accounts)
    assert lots(skipped) == {"a": "0.80", "b": "0.00"}
    assert reasons(skipped) == {"a": Reason.CLIPPED_TO_MAXIMUM, "b": Reason.BELOW_MINIMUM}
    forced = allocate("1", Method.EQUITY, accounts, force_minimum=True)
    assert lots(forced) == {"a": "0.80", "b": "0.10"}
    assert reasons(forced) == {"a": Reason.CLIPPED_TO_MAXIMUM, "b": Reason.FORCED_TO_MINIMUM}
    assert leg(forced, "b").ideal == D(500_000)


def test_force_minimum_largest_share_first_when_room_is_short():
    # room for one forced minimum only: the larger share gets it
    big = spec(max_lots="0.8")
    min15 = spec(min_lots="0.15")
    accounts = [acct("a", equity="9000", sp=big), acct("b", equity="600", sp=min15), acct("c", equity="400", sp=min15)]
    result = allocate("1", Method.EQUITY, accounts, force_minimum=True)
    assert lots(result) == {"a": "0.80", "b": "0.15", "c": "0.00"}
    assert reasons(result) == {"a": Reason.CLIPPED_TO_MAXIMUM, "b": Reason.FORCED_TO_MINIMUM, "c": Reason.BELOW_MINIMUM}


def test_clip_to_maximum_excess_is_not_redistributed():
    half = spec(max_lots="0.5")
    result = allocate("1", Method.EQUITY, [acct("a", equity="8000", sp=half), acct("b", equity="2000")])
    assert lots(result) == {"a": "0.50", "b": "0.20"}
    assert reasons(result) == {"a": Reason.CLIPPED_TO_MAXIMUM, "b": None}
    assert result.allocated == EURUSD.to_volume("0.7") < result.block
    assert leg(result, "a").ideal == D(8_000_000)


@pytest.mark.parametrize("policy, expected", [(Leftover.LARGEST_REMAINDER, {"b": "0.25", "c": "0.25"}),
                                              (Leftover.LARGEST_EQUITY, {"b": "0.26", "c": "0.24"})])
def test_clipped_account_gets_no_leftover_step(policy, expected):
    # ideals 0.50 (clipped to 0.30) / 0.2505 / 0.2495 -> floors 0.25 / 0.24, one step left for b or c, never a
    accounts = [acct("a", equity="5000", sp=spec(max_lots="0.3")), acct("b", equity="2505"), acct("c", equity="2495")]
    result = allocate("1", Method.EQUITY, accounts, leftover=policy)
    assert lots(result) == {"a": "0.30", **expected}
    assert reasons(result)["a"] is Reason.CLIPPED_TO_MAXIMUM
    assert result.allocated == EURUSD.to_volume("0.80")


# -- no weight, bad inputs ----------------------------------------------------------------

def test_zero_equity_account_gets_no_weight():
    result = allocate("0.10", Method.EQUITY, [acct("a", equity="0"), acct("b", equity="5000")])
    assert lots(result) == {"a": "0.00", "b": "0.10"}
    assert reasons(result) == {"a": Reason.NO_WEIGHT, "b": None}
    assert leg(result, "a").ideal == 0


def test_negative_equity_account_gets_no_weight():
    result = allocate("0.10", Method.EQUITY, [acct("a", equity="-300"), acct("b", equity="5000")])
    assert lots(result) == {"a": "0.00", "b": "0.10"}
    assert reasons(result)["a"] is Reason.NO_WEIGHT


@pytest.mark.parametrize("method", [Method.EQUITY, Method.BALANCE])
def test_all_zero_weights_allocate_nothing(method):
    result = allocate("1", method, [acct("a"), acct("b")])
    assert lots(result) == {"a": "0.00", "b": "0.00"}
    assert reasons(result) == {"a": Reason.NO_WEIGHT, "b": Reason.NO_WEIGHT}
    assert result.allocated == 0


@pytest.mark.parametrize("method", list(Method))
def test_duplicate_account_is_refused(method):
    accounts = [acct("a", equity="1", balance="1", setting="50"), acct("a", equity="2", balance="2", setting="50")]
    with pytest.raises(AllocationError, match="duplicate account 'a'"):
        allocate("1", method, accounts)


@pytest.mark.parametrize("block", [0, -1, -10_000_000, True, D("1000000"), "1000000", 1_000_000.0])
def test_block_must_be_a_positive_integer(block):
    with pytest.raises(AllocationError, match="block"):
        allocate_block(block, EURUSD, Side.BUY, MamGroup(Method.EQUAL), [acct("a")])


def test_no_accounts_is_refused():
    with pytest.raises(AllocationError):
        allocate_block(1_000_000, EURUSD, Side.BUY, MamGroup(Method.EQUAL), [])


def test_allocation_error_is_a_value_error():
    assert issubclass(AllocationError, ValueError)


# -- result shape ---------------------------------------------------------------------------

@pytest.mark.parametrize("method", list(Method))
def test_legs_are_sorted_by_account_id(method):
    accounts = [
        acct(name, equity=str(i + 1), balance=str(i + 1), setting="25")
        for i, name in enumerate(["delta", "alpha", "charlie", "bravo"])
    ]
    result = allocate("1", method, accounts)
    assert [x.account for x in result.legs] == ["alpha", "bravo", "charlie", "delta"]


def test_legs_carry_side_symbol_and_action():
    result = allocate("0.10", Method.EQUITY, [acct("a", equity="1"), acct("b", equity="0")], side=Side.SELL)
    assert all(x.side is Side.SELL and x.symbol == "EURUSD" for x in result.legs)
    assert leg(result, "a").action is Action.OPEN and leg(result, "a").sent
    assert leg(result, "b").action is Action.NONE and not leg(result, "b").sent
    assert result.side is Side.SELL and result.block_spec is EURUSD


def test_as_dict_of_the_worked_example():
    result = allocate("0.10", Method.EQUITY, [acct("c", equity="2000"), acct("b", equity="3500"), acct("a", equity="4500")])
    common = {"action": "open", "side": "buy", "symbol": "EURUSD", "sl": None, "tp": None}
    assert result.as_dict() == {
        "block_lots": "0.10",
        "block_units": 1_000_000,
        "allocated_lots": "0.10",
        "allocated_units": 1_000_000,
        "legs": [
            {"account": "a", "lots": "0.05", "units": 500_000, "ideal_lots": "0.045", "reason": "leftover-step", **common},
            {"account": "b", "lots": "0.03", "units": 300_000, "ideal_lots": "0.035", "reason": "floored-to-step", **common},
            {"account": "c", "lots": "0.02", "units": 200_000, "ideal_lots": "0.02", "reason": None, **common},
        ],
    }
    assert json.loads(json.dumps(result.as_dict())) == result.as_dict()


def test_as_dict_types():
    result = allocate("1", Method.EQUAL, [acct("a"), acct("b"), acct("c", sp=spec(min_lots="0.5"))], side=Side.SELL)
    d = result.as_dict()
    assert isinstance(d["block_lots"], str) and isinstance(d["allocated_lots"], str)
    assert d["block_lots"] == "1.00"
    for item in d["legs"]:
        assert type(item["units"]) is int
        assert isinstance(item["lots"], str) and isinstance(item["ideal_lots"], str)
        assert item["side"] == "sell"
    # a third of a lot is shown to 10 places, not 28
    assert [item["ideal_lots"] for item in d["legs"]] == ["0.3333333333"] * 3
    c = d["legs"][2]
    assert c["account"] == "c" and c["lots"] == "0.00" and c["units"] == 0 and c["reason"] == "below-minimum"
    assert c["action"] == "none"
    assert d["allocated_units"] == sum(item["units"] for item in d["legs"])
    assert d["allocated_lots"] == "0.67"


def test_no_leftover_step_is_wasted_on_an_account_that_stays_below_its_minimum():
    # min 0.05, step 0.01; block 0.10 by equity 93 / 7: floors 0.09 / 0.00, one step left over.
    # B has the larger remainder (0.007 vs 0.003) but 0.01 would still leave it below 0.05,
    # so the step goes to A, who can trade it: nothing is left unallocated.
    spec = SymbolSpec.from_lots("EURUSD", contract_size="100000", min_lots="0.05", max_lots="100",
                                step_lots="0.01")
    accounts = [SubAccount("A", spec, equity=Decimal(93)), SubAccount("B", spec, equity=Decimal(7))]
    result = allocate_block(spec.to_volume("0.10"), spec, Side.BUY, MamGroup(Method.EQUITY), accounts)
    assert [(leg.account, leg.lots, leg.reason) for leg in result.legs] == [
        ("A", Decimal("0.1"), Reason.LEFTOVER_STEP), ("B", Decimal(0), Reason.BELOW_MINIMUM)]
