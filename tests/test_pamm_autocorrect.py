"""autocorrect: a withdrawal closes part of every open master position (money.md section 4)."""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from allocation.leg import Action, Reason
from allocation.pamm import PammError
from allocation.pamm.autocorrect import OpenPosition, autocorrect_closes, withdrawn_share
from bridge.domain.deal import Side
from bridge.domain.volume import SymbolSpec

EURUSD = SymbolSpec.from_lots("EURUSD", contract_size="100000", min_lots="0.01", max_lots="100", step_lots="0.01")
LOT = EURUSD.to_volume(Decimal(1))
STEP = EURUSD.step_volume


def pos(lots: str, pid: str = "p1", side: Side = Side.BUY) -> OpenPosition:
    return OpenPosition(pid, "EURUSD", side, EURUSD.to_volume(Decimal(lots)))


def only(share, *positions):
    legs = autocorrect_closes(list(positions), {"EURUSD": EURUSD}, Decimal(share))
    return [leg for _, leg in legs]


def test_share_is_payout_over_equity_before():
    assert withdrawn_share(Decimal("450.00"), Decimal("1450.00")) == Decimal("450") / Decimal("1450")
    assert withdrawn_share(Decimal("0.00"), Decimal("1450.00")) == 0
    with pytest.raises(PammError, match="exceed"):
        withdrawn_share(Decimal("2000.00"), Decimal("1450.00"))


def test_a_third_withdrawn_closes_a_third_floored_to_the_step():
    (leg,) = only(Decimal(1) / 3, pos("1.00"))
    assert leg.action is Action.PARTIAL_CLOSE
    assert EURUSD.to_lots(leg.volume) == Decimal("0.33")
    assert leg.reason is Reason.FLOORED_TO_STEP


def test_exact_share_needs_no_rounding_reason():
    (leg,) = only("0.25", pos("2.00"))
    assert (leg.action, EURUSD.to_lots(leg.volume), leg.reason) == (Action.PARTIAL_CLOSE, Decimal("0.5"), None)


def test_a_close_below_one_step_sends_nothing_and_says_why():
    (leg,) = only("0.004", pos("1.00"))
    assert (leg.action, leg.volume, leg.reason) == (Action.NONE, 0, Reason.PARTIAL_CLOSE_BELOW_STEP)


def test_a_remainder_below_the_minimum_closes_the_position():
    (leg,) = only("0.5", pos("0.03"))  # 0.015 -> 0.01 closed would leave 0.02: fine
    assert (leg.action, EURUSD.to_lots(leg.volume)) == (Action.PARTIAL_CLOSE, Decimal("0.01"))
    (leg,) = only("0.995", pos("1.00"))  # 0.995 -> 0.99 would leave 0.01 = min: fine
    assert leg.action is Action.PARTIAL_CLOSE
    (leg,) = only("0.999", pos("0.50"))  # 0.4995 -> 0.49 leaves 0.01: fine
    assert leg.action is Action.PARTIAL_CLOSE
    spec = SymbolSpec.from_lots("XAUUSD", contract_size="100", min_lots="0.10", max_lots="50", step_lots="0.01")
    p = OpenPosition("g", "XAUUSD", Side.SELL, spec.to_volume(Decimal("0.25")))
    ((_, leg),) = autocorrect_closes([p], {"XAUUSD": spec}, Decimal("0.7"))  # 0.175 -> 0.17 leaves 0.08 < 0.10
    assert (leg.action, leg.volume, leg.reason) == (Action.CLOSE, p.volume, Reason.REMAINDER_BELOW_MINIMUM)


def test_everyone_leaving_closes_everything_and_nothing_left_closes_nothing():
    legs = only(1, pos("1.00", "a"), pos("0.37", "b", Side.SELL))
    assert [(leg.action, leg.volume) for leg in legs] == [(Action.CLOSE, LOT), (Action.CLOSE, EURUSD.to_volume(Decimal("0.37")))]
    assert [leg.action for leg in only(0, pos("1.00"))] == [Action.NONE]


def test_bad_inputs_are_one_line_errors():
    with pytest.raises(PammError, match="share"):
        only("1.5", pos("1.00"))
    with pytest.raises(PammError, match="no symbol spec for GBPUSD"):
        autocorrect_closes([OpenPosition("x", "GBPUSD", Side.BUY, LOT)], {"EURUSD": EURUSD}, Decimal("0.1"))


@given(steps=st.integers(1, 100_000), share=st.fractions(0, 1).map(lambda f: Decimal(f.numerator) / Decimal(f.denominator)))
def test_never_more_than_the_share_unless_the_rest_would_be_dust(steps, share):
    p = OpenPosition("p", "EURUSD", Side.BUY, steps * STEP)
    (leg,) = only(share, p)
    remainder = p.volume - leg.volume
    assert leg.volume % STEP == 0 and 0 <= leg.volume <= p.volume
    assert remainder == 0 or remainder >= EURUSD.min_volume
    if leg.volume > Decimal(p.volume) * share:
        assert remainder == 0 and (leg.reason is Reason.REMAINDER_BELOW_MINIMUM or share == 1)
    else:
        assert Decimal(p.volume) * share - leg.volume < STEP
