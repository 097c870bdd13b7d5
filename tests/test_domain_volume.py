"""Volumes (canonical integers, SymbolSpec) and Money: exact, float-free arithmetic."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.domain.money import Money
from bridge.domain.volume import UNITS_PER_BASE, SymbolSpec, format_lots, lots_to_volume, parse_decimal
from tests.builders import spec




def D(text: str) -> Decimal:
    return Decimal(text)


# -- conversions -----------------------------------------------------------------

def test_canonical_unit_is_hundredths_of_base_asset():
    assert UNITS_PER_BASE == 100
    assert spec().to_volume("1") == 10_000_000


@pytest.mark.parametrize(
    "lots, volume",
    [("0.05", 500_000), ("0.01", 100_000), ("1", 10_000_000), ("2.37", 23_700_000), ("100", 1_000_000_000)],
)
def test_eurusd_lots_to_volume_is_exact(lots, volume):
    s = spec()
    assert s.to_volume(lots) == volume
    assert s.to_volume(D(lots)) == volume
    assert isinstance(s.to_volume(lots), int)


def test_from_lots_stores_canonical_integers():
    s = spec(min_lots="0.01", max_lots="50", step="0.01")
    assert (s.min_volume, s.max_volume, s.step_volume) == (100_000, 500_000_000, 100_000)
    assert s.contract_size == D("100000")
    assert all(type(v) is int for v in (s.min_volume, s.max_volume, s.step_volume))


def test_contract_size_one_xau_style():
    s = spec("XAUUSD", contract="1", min_lots="0.01", max_lots="1000", step="0.01")
    assert (s.min_volume, s.step_volume, s.max_volume) == (1, 1, 100_000)
    assert s.to_volume("1") == 100
    assert s.to_volume("0.37") == 37
    assert s.to_lots(37) == D("0.37")


def test_fractional_contract_size():
    s = spec("US30.cash", contract="0.1", min_lots="0.1", max_lots="500", step="0.1")
    assert (s.min_volume, s.step_volume) == (1, 1)
    assert s.to_volume("1") == 10
    assert s.to_volume("2.5") == 25
    assert s.to_lots(25) == D("2.5")
    with pytest.raises(ValueError, match="not a whole"):
        s.to_volume("0.05")  # 0.05 x 0.1 x 100 = 0.5 unit


def test_from_lots_refuses_step_that_is_not_a_whole_unit():
    with pytest.raises(ValueError, match="not a whole"):
        spec("US30.cash", contract="0.1", min_lots="0.1", max_lots="10", step="0.01")


@pytest.mark.parametrize("lots", ["0.00000001", "0.000000123", "0.0500000001"])
def test_lots_that_are_not_a_whole_unit_raise(lots):
    with pytest.raises(ValueError, match="not a whole"):
        spec().to_volume(lots)


def test_lots_to_volume_error_names_lots_and_contract():
    with pytest.raises(ValueError) as info:
        lots_to_volume(D("0.123"), D("1"), what="XAUUSD")
    message = str(info.value)
    assert "XAUUSD" in message and "0.123" in message and "1" in message


@pytest.mark.parametrize(
    "contract, lots",
    [("100000", "0.05"), ("100000", "12.34"), ("1", "0.01"), ("1", "7"), ("0.1", "3.7"), ("100", "0.25")],
)
def test_to_lots_round_trips(contract, lots):
    s = spec(contract=contract, min_lots="0.1" if contract == "0.1" else "0.01", step="0.1" if contract == "0.1" else "0.01")
    assert s.to_lots(s.to_volume(lots)) == D(lots)


@settings(max_examples=100, deadline=None)
@given(
    contract=st.sampled_from(["100000", "10000", "1000", "100", "1"]),
    hundredths=st.integers(min_value=0, max_value=10**7),
)
def test_to_lots_round_trip_property(contract, hundredths):
    s = spec(contract=contract)
    lots = Decimal(hundredths).scaleb(-2)
    volume = s.to_volume(lots)
    assert s.to_lots(volume) == lots
    assert s.to_volume(s.to_lots(volume)) == volume


def test_to_lots_is_normalized():
    assert str(spec().to_lots(500_000)) == "0.05"
    assert str(spec().to_lots(10_000_000)) == "1"


# -- floats and non-numbers refused --------------------------------------------------

@pytest.mark.parametrize("bad", [0.05, 1.0, float("nan")])
def test_parse_decimal_refuses_floats(bad):
    with pytest.raises(TypeError, match="float"):
        parse_decimal(bad, "lots")


@pytest.mark.parametrize("bad", [True, False, None, [1], b"1"])
def test_parse_decimal_refuses_non_numbers(bad):
    with pytest.raises(TypeError):
        parse_decimal(bad, "lots")


@pytest.mark.parametrize("bad", ["abc", "", "1,5", "NaN", "Infinity", "-inf"])
def test_parse_decimal_refuses_bad_or_non_finite_text(bad):
    with pytest.raises(ValueError, match="lots"):
        parse_decimal(bad, "lots")


def test_parse_decimal_refuses_non_finite_decimal():
    with pytest.raises(ValueError):
        parse_decimal(Decimal("NaN"), "x")
    with pytest.raises(ValueError):
        parse_decimal(Decimal("Infinity"), "x")


@pytest.mark.parametrize("value, expected", [("0.05", "0.05"), (" 1.10 ", "1.10"), (3, "3"), (Decimal("2.5"), "2.5")])
def test_parse_decimal_accepts_str_int_decimal(value, expected):
    result = parse_decimal(value, "x")
    assert isinstance(result, Decimal)
    assert result == D(expected)


def test_to_volume_refuses_float():
    with pytest.raises(TypeError, match="float"):
        spec().to_volume(0.05)


@pytest.mark.parametrize("field", ["contract", "min_lots", "max_lots", "step"])
def test_from_lots_refuses_float_anywhere(field):
    kwargs = {"contract": "100000", "min_lots": "0.01", "max_lots": "100", "step": "0.01"}
    kwargs[field] = float(kwargs[field])
    with pytest.raises(TypeError, match="float"):
        spec(**kwargs)


def test_symbol_spec_refuses_float_or_bool_volumes():
    with pytest.raises(TypeError, match="min_volume"):
        SymbolSpec("EURUSD", D("100000"), 100_000.0, 10**9, 100_000)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="step_volume"):
        SymbolSpec("EURUSD", D("100000"), 100_000, 10**9, True)  # type: ignore[arg-type]


def test_symbol_spec_refuses_non_decimal_contract_size():
    with pytest.raises(ValueError, match="contract size"):
        SymbolSpec("EURUSD", 100000, 100_000, 10**9, 100_000)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="contract size"):
        SymbolSpec("EURUSD", 100000.0, 100_000, 10**9, 100_000)  # type: ignore[arg-type]


# -- spec validation -------------------------------------------------------------------

def test_min_above_max_names_both():
    with pytest.raises(ValueError) as info:
        spec(min_lots="2", max_lots="1", step="0.01")
    message = str(info.value)
    assert "EURUSD" in message and "min 2" in message and "max 1" in message


@pytest.mark.parametrize("step", ["0", "0.00"])
def test_zero_step_raises(step):
    with pytest.raises(ValueError, match="step"):
        spec(step=step)


def test_zero_step_volume_raises_on_direct_construction():
    with pytest.raises(ValueError, match="step must be positive"):
        SymbolSpec("EURUSD", D("100000"), 100_000, 10**9, 0)


@pytest.mark.parametrize("field, name", [("min_lots", "min"), ("max_lots", "max"), ("step", "step")])
def test_negative_lot_figures_raise_naming_the_field(field, name):
    kwargs = {field: "-0.01"}
    with pytest.raises(ValueError, match=rf"EURUSD: {name} must be positive"):
        spec(**kwargs)


@pytest.mark.parametrize("contract", ["0", "-100000"])
def test_non_positive_contract_size_raises(contract):
    with pytest.raises(ValueError, match="contract size"):
        spec(contract=contract)


def test_negative_min_volume_raises_on_direct_construction():
    with pytest.raises(ValueError, match="min must be positive"):
        SymbolSpec("EURUSD", D("100000"), -100_000, 10**9, 100_000)


def test_min_not_on_step_grid_raises_naming_min_and_step():
    with pytest.raises(ValueError) as info:
        spec(min_lots="0.015", max_lots="100", step="0.01")
    message = str(info.value)
    assert "min 0.015" in message and "step grid 0.01" in message


def test_max_not_on_step_grid_raises_naming_max():
    with pytest.raises(ValueError, match=r"max 10\.05 lots is not on the step grid 0\.1"):
        spec(min_lots="0.1", max_lots="10.05", step="0.1")


@pytest.mark.parametrize("symbol", ["", "   "])
def test_empty_symbol_raises(symbol):
    with pytest.raises(ValueError, match="symbol"):
        spec(symbol=symbol)


@pytest.mark.parametrize("digits", [-1, 11])
def test_digits_out_of_range_raise(digits):
    with pytest.raises(ValueError, match="digits"):
        SymbolSpec.from_lots("EURUSD", contract_size="100000", min_lots="0.01", max_lots="1", step_lots="0.01", digits=digits)


def test_spec_is_immutable():
    s = spec()
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.step_volume = 1  # type: ignore[misc]


# -- grid --------------------------------------------------------------------------

def test_floor_rounds_down_to_step():
    s = spec()
    assert s.floor(550_000) == 500_000
    assert s.floor(599_999) == 500_000
    assert s.floor(500_000) == 500_000
    assert s.floor(99_999) == 0
    assert s.floor(0) == 0


def test_on_grid():
    s = spec()
    assert s.on_grid(0)
    assert s.on_grid(300_000)
    assert not s.on_grid(300_001)
    assert not s.on_grid(50_000)


def test_tradable_requires_grid_and_range():
    s = spec(min_lots="0.1", max_lots="5", step="0.01")
    assert s.tradable(1_000_000)  # 0.10 = min
    assert s.tradable(50_000_000)  # 5 = max
    assert s.tradable(1_100_000)
    assert not s.tradable(900_000)  # below min, on grid
    assert not s.tradable(50_100_000)  # above max, on grid
    assert not s.tradable(1_050_000)  # inside range, off grid
    assert not s.tradable(0)


# -- formatting -------------------------------------------------------------------

@pytest.mark.parametrize(
    "volume, text",
    [(1_000_000, "0.10"), (500_000, "0.05"), (10_000_000, "1.00"), (0, "0.00"), (1_000_000_000, "100.00"), (123_400_000, "12.34")],
)
def test_format_lots_step_001(volume, text):
    assert spec().format_lots(volume) == text


def test_format_lots_step_01_and_1():
    assert spec(min_lots="0.1", step="0.1").format_lots(10_000_000) == "1.0"
    assert spec(min_lots="1", step="1").format_lots(30_000_000) == "3"
    assert spec(min_lots="1", step="1").format_lots(1_000_000_000) == "100"


def test_format_lots_keeps_extra_places_instead_of_rounding():
    assert format_lots(D("0.045"), 2) == "0.045"
    assert format_lots(D("0.1"), 2) == "0.10"
    assert format_lots(D("1E+2"), 2) == "100.00"
    assert format_lots(D("5"), 0) == "5"


@pytest.mark.parametrize("step, places", [("0.01", 2), ("0.1", 1), ("1", 0), ("10", 0), ("0.001", 3)])
def test_lot_places_follow_step(step, places):
    assert spec(min_lots=step, max_lots="1000", step=step).lot_places == places


# -- Money ------------------------------------------------------------------------

def test_money_same_currency_add_and_sub():
    assert Money("100.50", "USD") + Money("0.25", "USD") == Money("100.75", "USD")
    assert Money("100.50", "USD") - Money("0.75", "USD") == Money("99.75", "USD")
    assert (Money("0.1", "EUR") + Money("0.2", "EUR")).amount == D("0.3")


def test_money_amount_is_decimal_and_currency_upper():
    m = Money("1.10", "usd")
    assert isinstance(m.amount, Decimal)
    assert m.amount == D("1.10")
    assert m.currency == "USD"
    assert repr(m) == "Money('1.10', 'USD')"
    assert str(m) == "1.10 USD"


@pytest.mark.parametrize("op", ["add", "sub", "lt", "ge"])
def test_money_mismatched_currency_raises(op):
    usd, eur = Money("1", "USD"), Money("1", "EUR")
    with pytest.raises(ValueError, match="USD vs EUR"):
        {"add": lambda: usd + eur, "sub": lambda: usd - eur, "lt": lambda: usd < eur, "ge": lambda: usd >= eur}[op]()


def test_money_different_currencies_are_not_equal():
    assert Money("1", "USD") != Money("1", "EUR")


@pytest.mark.parametrize("other", [1, D("1"), "1"])
def test_money_refuses_adding_non_money(other):
    with pytest.raises(TypeError):
        Money("1", "USD") + other


def test_money_refuses_float_amount_and_factor():
    with pytest.raises(TypeError, match="float"):
        Money(1.5, "USD")
    with pytest.raises(TypeError, match="float"):
        Money("1.5", "USD") * 1.5
    with pytest.raises(TypeError):
        1.5 * Money("1.5", "USD")


@pytest.mark.parametrize("currency", ["US", "USDT", "U5D", "", None, 840])
def test_money_refuses_bad_currency(currency):
    with pytest.raises(ValueError, match="currency"):
        Money("1", currency)


@pytest.mark.parametrize(
    "factor, expected", [(D("1.5"), "150.75"), ("2", "201.00"), (3, "301.50"), ("0.001", "0.1005"), (D("-1"), "-100.50")]
)
def test_money_multiplies_by_decimal_str_int(factor, expected):
    m = Money("100.50", "USD")
    assert m * factor == Money(expected, "USD")
    assert factor * m == Money(expected, "USD")


def test_money_refuses_money_times_money():
    with pytest.raises(TypeError):
        Money("2", "USD") * Money("3", "USD")


def test_money_refuses_bool_factor():
    with pytest.raises(TypeError):
        Money("2", "USD") * True


@pytest.mark.parametrize(
    "amount, places, expected",
    [("1.239", 2, "1.23"), ("1.231", 2, "1.23"), ("1.2399999", 2, "1.23"), ("0.009", 2, "0.00"), ("5.99", 0, "5"),
     ("1.23", 2, "1.23"), ("7", 2, "7.00"), ("1.23456", 4, "1.2345")],
)
def test_money_quantize_rounds_down(amount, places, expected):
    result = Money(amount, "USD").quantize(places)
    assert result == Money(expected, "USD")
    assert str(result.amount) == expected


def test_money_quantize_default_is_cents_and_toward_zero_for_negatives():
    assert Money("10.999", "USD").quantize() == Money("10.99", "USD")
    assert Money("-1.239", "USD").quantize() == Money("-1.23", "USD")


def test_money_comparisons_and_negation():
    assert Money("1.00", "USD") < Money("1.01", "USD")
    assert Money("1.01", "USD") > Money("1.00", "USD")
    assert Money("1.0", "USD") <= Money("1.00", "USD")
    assert Money("1.0", "USD") >= Money("1.00", "USD")
    assert Money("1.0", "USD") == Money("1.00", "USD")
    assert -Money("2.5", "EUR") == Money("-2.5", "EUR")


def test_money_is_immutable():
    m = Money("1", "USD")
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.amount = D("2")  # type: ignore[misc]


@settings(max_examples=100, deadline=None)
@given(a=st.integers(-10**12, 10**12), b=st.integers(-10**12, 10**12), places=st.integers(0, 4))
def test_money_add_sub_exact_property(a, b, places):
    x = Money(Decimal(a).scaleb(-places), "USD")
    y = Money(Decimal(b).scaleb(-places), "USD")
    assert (x + y).amount == Decimal(a + b).scaleb(-places)
    assert (x + y) - y == x
    q = (x * "0.333").quantize(places)
    assert abs(q.amount) <= abs(x.amount * D("0.333"))


def test_negative_lots_are_refused():
    spec = SymbolSpec.from_lots("EURUSD", contract_size="100000", min_lots="0.01", max_lots="100", step_lots="0.01")
    with pytest.raises(ValueError, match="cannot be negative"):
        spec.to_volume("-0.05")
