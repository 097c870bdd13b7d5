"""Copy settings chain: resolve() rules and settings_from_mapping() (money.md section 2, settings.py)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from allocation.copy.settings import (
    Basis,
    CloseOnly,
    CopySettings,
    Effective,
    Period,
    RiskLimit,
    SizingMode,
    TinyTrades,
    resolve,
    settings_from_mapping,
)
from allocation.errors import AllocationError
from bridge.domain.deal import Side

D = Decimal
BOTH = frozenset(Side)
BUY = frozenset({Side.BUY})
SELL = frozenset({Side.SELL})


def cs(**kwargs) -> CopySettings:
    return CopySettings(**kwargs)


def limit(period: Period = Period.DAY, basis: Basis = Basis.EQUITY, dd: str = "0.1", close: bool = False) -> RiskLimit:
    return RiskLimit(period, basis, D(dd), close)


# -- defaults -------------------------------------------------------------------------

def test_defaults_of_an_empty_chain():
    eff = resolve()
    assert eff.mode is SizingMode.BALANCE
    assert eff.multiplier == D(1)
    assert eff.max_risk_coefficient == D(5)
    assert eff.tiny is TinyTrades.SKIP
    assert eff.reverse is False
    assert eff.copy_sl is True and eff.copy_tp is True
    assert eff.skip_pending is False
    assert eff.close_only is None
    assert eff.sides == BOTH
    assert eff.min_lots is None and eff.max_lots is None
    assert eff.fixed_lots is None and eff.risk_fraction is None and eff.max_trade_risk is None
    assert eff.signal_lifetime is None
    assert eff.risk_limits == ()
    assert eff.maps == () and eff.includes == () and eff.excludes == ()
    assert eff.map_symbol("EURUSD") == "EURUSD"
    assert eff.symbol_allowed("ANYTHING")


def test_levels_that_say_nothing_change_nothing():
    assert resolve(cs(), cs(), cs(), cs()) == resolve() == Effective()


# -- overridable ----------------------------------------------------------------------

OVERRIDABLE = [
    ("mode", SizingMode.MULTIPLIER, SizingMode.FIXED, SizingMode.RISK, SizingMode.CONTRACT),
    ("fixed_lots", D("0.1"), D("0.2"), D("0.3"), D("0.4")),
    ("risk_fraction", D("0.01"), D("0.02"), D("0.03"), D("0.04")),
    ("tiny", TinyTrades.FORCE, TinyTrades.SKIP, TinyTrades.FORCE, TinyTrades.SKIP),
    ("max_risk_coefficient", D("2"), D("3"), D("4"), D("7")),
    ("max_trade_risk", D("0.01"), D("0.02"), D("0.03"), D("0.04")),
    ("signal_lifetime", timedelta(seconds=10), timedelta(seconds=20), timedelta(seconds=30), timedelta(seconds=40)),
]


@pytest.mark.parametrize("name, a, b, c, d", OVERRIDABLE, ids=[row[0] for row in OVERRIDABLE])
def test_overridable_most_specific_wins(name, a, b, c, d):
    strategy, subscription, follower, override = (cs(**{name: v}) for v in (a, b, c, d))
    assert getattr(resolve(strategy), name) == a
    assert getattr(resolve(strategy, subscription), name) == b
    assert getattr(resolve(strategy, subscription, follower), name) == c
    # a level that says nothing does not reset the value
    assert getattr(resolve(strategy, subscription, cs()), name) == b
    assert getattr(resolve(strategy, None, None), name) == a
    assert getattr(resolve(None, None, follower), name) == c
    # what-if overrides after the follower win over it
    assert getattr(resolve(strategy, subscription, follower, override), name) == d
    assert getattr(resolve(strategy, subscription, follower, cs(), override, cs()), name) == d


# -- multiplier -----------------------------------------------------------------------

def test_multiplier_multiplies_along_the_chain():
    eff = resolve(cs(multiplier=D("2")), cs(multiplier=D("1.5")), cs(multiplier=D("0.5")))
    assert eff.multiplier == D("1.5")


def test_multiplier_skips_levels_that_do_not_set_it_and_includes_overrides():
    assert resolve(cs(multiplier=D("2")), cs(), cs(multiplier=D("3"))).multiplier == D("6")
    assert resolve(None, cs(multiplier=D("0.5"))).multiplier == D("0.5")
    assert resolve(cs(multiplier=D("2")), None, None, cs(multiplier=D("0.25"))).multiplier == D("0.5")


def test_multiplier_zero_anywhere_gives_zero():
    assert resolve(cs(multiplier=D("4")), cs(multiplier=D("0"))).multiplier == D("0")


# -- reverse --------------------------------------------------------------------------

@pytest.mark.parametrize(
    "levels, expected",
    [
        ((True, None, None), True),
        ((None, None, True), True),
        ((True, True, None), False),  # two reverses cancel
        ((True, None, True), False),
        ((True, True, True), True),
        ((False, True, False), True),  # False is not a toggle
        ((True, False, None), True),
        ((False, False, False), False),
        ((None, None, None), False),
    ],
)
def test_reverse_xors_along_the_chain(levels, expected):
    eff = resolve(*(cs(reverse=v) for v in levels))
    assert eff.reverse is expected
    assert eff.follower_side(Side.BUY) is (Side.SELL if expected else Side.BUY)
    assert eff.follower_side(Side.SELL) is (Side.BUY if expected else Side.SELL)


def test_reverse_override_toggles_again():
    assert resolve(cs(reverse=True), None, None, cs(reverse=True)).reverse is False


# -- symbol mapping -------------------------------------------------------------------

def test_symbol_maps_chain_in_order():
    eff = resolve(
        cs(),
        cs(symbol_map=(("EURUSD", "EURUSD.m"),)),
        cs(symbol_map=(("EURUSD.m", "EURUSD.pro"),)),
    )
    assert eff.map_symbol("EURUSD") == "EURUSD.pro"
    assert eff.map_symbol("EURUSD.m") == "EURUSD.pro"
    assert eff.map_symbol("GBPUSD") == "GBPUSD"


def test_symbol_maps_apply_in_chain_order_not_any_order():
    # the follower's rename of EURUSD.m runs before the subscription produces EURUSD.m
    eff = resolve(cs(symbol_map=(("EURUSD.m", "EURUSD.pro"),)), cs(symbol_map=(("EURUSD", "EURUSD.m"),)))
    assert eff.map_symbol("EURUSD") == "EURUSD.m"


def test_one_level_renames_a_symbol_once():
    eff = resolve(cs(symbol_map=(("A", "B"), ("B", "C"))))
    assert eff.map_symbol("A") == "B"
    assert eff.map_symbol("B") == "C"


def test_levels_without_a_map_are_not_recorded():
    eff = resolve(cs(), cs(symbol_map=(("XAUUSD", "XAUUSD-"),)), cs())
    assert eff.maps == ((("XAUUSD", "XAUUSD-"),),)
    assert eff.map_symbol("XAUUSD") == "XAUUSD-"


# -- include / exclude -----------------------------------------------------------------

def test_every_include_filter_applies():
    eff = resolve(cs(include=frozenset({"EURUSD", "XAU*"})), None, cs(include=frozenset({"XAU*"})))
    assert eff.symbol_allowed("XAUUSD")
    assert eff.symbol_allowed("XAUEUR")
    assert not eff.symbol_allowed("EURUSD")  # the follower's include does not list it
    assert not eff.symbol_allowed("GBPUSD")


def test_patterns_match_shell_style_from_the_start():
    eff = resolve(cs(include=frozenset({"XAU*"})))
    assert eff.symbol_allowed("XAUUSD")
    assert eff.symbol_allowed("XAU")
    assert not eff.symbol_allowed("EURXAU")
    assert not eff.symbol_allowed("XAGUSD")


def test_every_exclude_filter_applies():
    eff = resolve(cs(exclude=frozenset({"BTC*"})), cs(exclude=frozenset({"XAUEUR"})), cs())
    assert not eff.symbol_allowed("BTCUSD")
    assert not eff.symbol_allowed("XAUEUR")
    assert eff.symbol_allowed("XAUUSD")


def test_exclude_beats_include():
    eff = resolve(cs(include=frozenset({"XAU*"})), cs(exclude=frozenset({"XAUEUR"})))
    assert eff.symbol_allowed("XAUUSD")
    assert not eff.symbol_allowed("XAUEUR")
    assert not eff.symbol_allowed("EURUSD")


# -- sides ----------------------------------------------------------------------------

def test_sides_intersect():
    assert resolve(cs(sides=BOTH), cs(), cs(sides=BUY)).sides == BUY
    assert resolve(cs(sides=SELL), cs(sides=BOTH)).sides == SELL
    assert resolve(None, cs(sides=SELL), cs(sides=BUY)).sides == frozenset()


# -- min / max ------------------------------------------------------------------------

def test_min_is_max_of_mins_and_max_is_min_of_maxes():
    eff = resolve(
        cs(min_lots=D("0.1"), max_lots=D("5")),
        cs(min_lots=D("0.3"), max_lots=D("2")),
        cs(min_lots=D("0.2"), max_lots=D("10")),
    )
    assert eff.min_lots == D("0.3")
    assert eff.max_lots == D("2")


def test_min_and_max_from_a_single_level():
    eff = resolve(cs(), cs(max_lots=D("1.5")), cs(min_lots=D("0.05")))
    assert eff.min_lots == D("0.05")
    assert eff.max_lots == D("1.5")


# -- copy SL / TP, skip pending -----------------------------------------------------------

@pytest.mark.parametrize("name", ["copy_sl", "copy_tp"])
def test_copy_stop_off_anywhere_is_off(name):
    assert getattr(resolve(cs(), cs(), cs()), name) is True
    assert getattr(resolve(cs(**{name: True}), cs(**{name: True}), cs(**{name: True})), name) is True
    for position in range(3):
        levels = [cs(**{name: True}) for _ in range(3)]
        levels[position] = cs(**{name: False})
        assert getattr(resolve(*levels), name) is False, position
    # the follower cannot switch it back on
    assert getattr(resolve(cs(**{name: False}), None, cs(**{name: True})), name) is False


def test_copy_sl_and_tp_are_independent():
    eff = resolve(cs(copy_sl=False), cs(copy_tp=True))
    assert eff.copy_sl is False and eff.copy_tp is True


def test_skip_pending_on_anywhere_is_on():
    assert resolve(cs(skip_pending=False), cs(), cs(skip_pending=False)).skip_pending is False
    for position in range(3):
        levels = [cs(skip_pending=False) for _ in range(3)]
        levels[position] = cs(skip_pending=True)
        assert resolve(*levels).skip_pending is True, position


# -- close only -----------------------------------------------------------------------

@pytest.mark.parametrize(
    "strategy, subscription, follower, expected",
    [
        (CloseOnly.IMMEDIATELY, CloseOnly.BY_POSITION, CloseOnly.BY_SYMBOL, CloseOnly.BY_POSITION),
        (CloseOnly.IMMEDIATELY, None, CloseOnly.BY_SYMBOL, CloseOnly.BY_SYMBOL),
        (CloseOnly.IMMEDIATELY, None, None, CloseOnly.IMMEDIATELY),
        (None, CloseOnly.BY_SYMBOL, CloseOnly.IMMEDIATELY, CloseOnly.BY_SYMBOL),
        (CloseOnly.BY_SYMBOL, CloseOnly.IMMEDIATELY, None, CloseOnly.IMMEDIATELY),
        (None, None, CloseOnly.BY_POSITION, CloseOnly.BY_POSITION),
        (None, None, None, None),
    ],
)
def test_close_only_subscription_beats_follower_beats_strategy(strategy, subscription, follower, expected):
    eff = resolve(cs(close_only=strategy), cs(close_only=subscription), cs(close_only=follower))
    assert eff.close_only is expected


def test_close_only_override_beats_follower_but_not_subscription():
    assert resolve(None, None, cs(close_only=CloseOnly.BY_SYMBOL),
                   cs(close_only=CloseOnly.IMMEDIATELY)).close_only is CloseOnly.IMMEDIATELY
    assert resolve(None, cs(close_only=CloseOnly.BY_POSITION), cs(close_only=CloseOnly.BY_SYMBOL),
                   cs(close_only=CloseOnly.IMMEDIATELY)).close_only is CloseOnly.BY_POSITION


# -- risk limits ----------------------------------------------------------------------

def test_risk_limits_concatenate_in_chain_order():
    a = limit(Period.DAY, dd="0.05")
    b = limit(Period.WEEK, Basis.BALANCE, dd="0.1")
    c = limit(Period.LIFETIME, dd="0.3", close=True)
    d = limit(Period.MONTH, dd="0.2")
    eff = resolve(cs(risk_limits=(a,)), cs(), cs(risk_limits=(b, c)), cs(risk_limits=(d,)))
    assert eff.risk_limits == (a, b, c, d)


# -- settings_from_mapping ---------------------------------------------------------------

WHERE = "followers.alice"

FROM_MAPPING = [
    ("mode", "risk", SizingMode.RISK),
    ("mode", "contract", SizingMode.CONTRACT),
    ("multiplier", "1.5", D("1.5")),
    ("multiplier", 2, D("2")),
    ("multiplier", D("0.25"), D("0.25")),
    ("fixed_lots", "0.10", D("0.10")),
    ("risk_fraction", "0.02", D("0.02")),
    ("reverse", True, True),
    ("reverse", False, False),
    ("symbol_map", {"EURUSD": "EURUSD.m", "XAUUSD": "XAUUSD-"}, (("EURUSD", "EURUSD.m"), ("XAUUSD", "XAUUSD-"))),
    ("include", ["EURUSD", "XAU*"], frozenset({"EURUSD", "XAU*"})),
    ("include", "EURUSD", frozenset({"EURUSD"})),
    ("exclude", ["BTC*"], frozenset({"BTC*"})),
    ("sides", "both", BOTH),
    ("sides", "buy", BUY),
    ("sides", "sell", SELL),
    ("min_lots", "0.05", D("0.05")),
    ("max_lots", "3", D("3")),
    ("tiny", "force", TinyTrades.FORCE),
    ("tiny", "skip", TinyTrades.SKIP),
    ("max_risk_coefficient", "3", D("3")),
    ("max_trade_risk", "0.05", D("0.05")),
    ("copy_sl", False, False),
    ("copy_tp", True, True),
    ("skip_pending", True, True),
    ("close_only", "by-position", CloseOnly.BY_POSITION),
    ("close_only", "by-symbol", CloseOnly.BY_SYMBOL),
    ("close_only", "immediately", CloseOnly.IMMEDIATELY),
    ("signal_lifetime", 90, timedelta(seconds=90)),
    ("max_slippage_points", 5, 5),
    (
        "risk_limits",
        [{"period": "week", "basis": "balance", "max_drawdown": "0.2", "close_positions": True},
         {"max_drawdown": "0.5"}],
        (RiskLimit(Period.WEEK, Basis.BALANCE, D("0.2"), True),
         RiskLimit(Period.LIFETIME, Basis.EQUITY, D("0.5"), False)),
    ),
]


@pytest.mark.parametrize("key, raw, expected", FROM_MAPPING, ids=[f"{r[0]}-{i}" for i, r in enumerate(FROM_MAPPING)])
def test_every_key_parses(key, raw, expected):
    settings = settings_from_mapping({key: raw}, WHERE)
    assert getattr(settings, key) == expected
    # nothing else is set
    assert settings == CopySettings(**{key: expected})


def test_every_known_key_is_covered_by_the_parse_table():
    from dataclasses import fields
    assert {row[0] for row in FROM_MAPPING} == {f.name for f in fields(CopySettings)}


def test_a_full_table_parses_to_one_level():
    settings = settings_from_mapping(
        {"mode": "balance", "multiplier": "0.5", "reverse": True, "sides": "sell", "min_lots": "0.02",
         "max_lots": "1", "copy_tp": False, "close_only": "by-symbol"},
        WHERE,
    )
    assert settings == CopySettings(
        mode=SizingMode.BALANCE, multiplier=D("0.5"), reverse=True, sides=SELL, min_lots=D("0.02"),
        max_lots=D("1"), copy_tp=False, close_only=CloseOnly.BY_SYMBOL,
    )


def test_empty_table_is_an_empty_level():
    assert settings_from_mapping({}, WHERE) == CopySettings()


def test_unknown_key_names_it_and_the_location():
    with pytest.raises(AllocationError) as exc:
        settings_from_mapping({"multiplier": "2", "multipler": "2"}, WHERE)
    message = str(exc.value)
    assert "multipler" in message
    assert WHERE in message


BAD_VALUES = [
    ("mode", "martingale"),
    ("mode", 3),
    ("tiny", "sometimes"),
    ("close_only", "by-account"),
    ("sides", "up"),
    ("sides", ["buy"]),
    ("multiplier", 1.5),  # a float from TOML is refused
    ("multiplier", "two"),
    ("multiplier", True),
    ("fixed_lots", "NaN"),
    ("min_lots", [1]),
    ("reverse", "yes"),
    ("reverse", 1),
    ("copy_sl", "false"),
    ("skip_pending", 0),
    ("include", [1, 2]),
    ("include", [""]),
    ("exclude", 5),
    ("symbol_map", ["EURUSD", "EURUSD.m"]),
    ("symbol_map", {"EURUSD": 5}),
    ("signal_lifetime", "60"),
    ("signal_lifetime", 0),
    ("signal_lifetime", True),
    ("signal_lifetime", 1.5),
    ("risk_limits", {"max_drawdown": "0.1"}),
    ("risk_limits", ["day"]),
    ("risk_limits", [{"period": "year", "max_drawdown": "0.1"}]),
    ("risk_limits", [{"basis": "margin", "max_drawdown": "0.1"}]),
    ("risk_limits", [{"max_drawdown": "0.1", "colour": "red"}]),
    ("risk_limits", [{"period": "day"}]),
    ("risk_limits", [{"max_drawdown": "1.5"}]),
    ("risk_limits", [{"max_drawdown": "0.1", "close_positions": "yes"}]),
]


@pytest.mark.parametrize("key, raw", BAD_VALUES, ids=[f"{k}-{i}" for i, (k, _) in enumerate(BAD_VALUES)])
def test_bad_value_names_the_key(key, raw):
    with pytest.raises(AllocationError) as exc:
        settings_from_mapping({key: raw}, WHERE)
    assert f"{WHERE}.{key}" in str(exc.value)


def test_risk_limit_entry_errors_name_the_entry():
    with pytest.raises(AllocationError) as exc:
        settings_from_mapping({"risk_limits": [{"max_drawdown": "0.1"}, {"max_drawdown": "0.1", "colour": "x"}]},
                              WHERE)
    assert "entry 1" in str(exc.value) and "colour" in str(exc.value)


@pytest.mark.parametrize(
    "data, word",
    [
        ({"multiplier": "-1"}, "multiplier"),
        ({"fixed_lots": "-0.01"}, "fixed_lots"),
        ({"risk_fraction": "1.01"}, "risk_fraction"),
        ({"max_trade_risk": "2"}, "max_trade_risk"),
        ({"min_lots": "2", "max_lots": "1"}, "min_lots"),
    ],
)
def test_level_validation_from_mapping_names_location_and_setting(data, word):
    with pytest.raises(AllocationError) as exc:
        settings_from_mapping(data, WHERE)
    assert WHERE in str(exc.value)
    assert word in str(exc.value)


# -- CopySettings validation ------------------------------------------------------------

@pytest.mark.parametrize(
    "kwargs",
    [
        {"multiplier": D("-1")},
        {"fixed_lots": D("-0.1")},
        {"min_lots": D("-0.1")},
        {"max_risk_coefficient": D("-5")},
        {"risk_fraction": D("1.5")},
        {"max_trade_risk": D("1.01")},
        {"min_lots": D("2"), "max_lots": D("1")},
        {"sides": frozenset()},
        {"signal_lifetime": timedelta(0)},
        {"signal_lifetime": timedelta(seconds=-1)},
    ],
    ids=lambda kw: ",".join(kw),
)
def test_copy_settings_validation(kwargs):
    with pytest.raises(AllocationError):
        CopySettings(**kwargs)


def test_copy_settings_refuses_a_non_decimal_multiplier():
    with pytest.raises(AllocationError, match="multiplier"):
        CopySettings(multiplier=2)  # type: ignore[arg-type]


def test_copy_settings_edge_values_are_valid():
    level = CopySettings(multiplier=D("0"), risk_fraction=D("1"), max_trade_risk=D("1"),
                         min_lots=D("1"), max_lots=D("1"), sides=BUY)
    assert level.min_lots == level.max_lots == D("1")


@pytest.mark.parametrize("dd", ["0", "-0.1", "1.0001"])
def test_risk_limit_drawdown_must_be_a_fraction(dd):
    with pytest.raises(AllocationError, match="max_drawdown"):
        RiskLimit(Period.DAY, Basis.EQUITY, D(dd))


def test_risk_limit_of_one_is_valid():
    assert RiskLimit(Period.DAY, Basis.EQUITY, D("1")).max_drawdown == D("1")


@pytest.mark.parametrize("key", ["include", "exclude"])
def test_an_empty_symbol_list_is_refused_rather_than_silently_matching_nothing(key):
    with pytest.raises(AllocationError, match=rf"where\.{key}: an empty list would match no symbol"):
        settings_from_mapping({key: []}, "where")


def test_max_slippage_points_is_overridable_and_checked():
    level = settings_from_mapping({"max_slippage_points": 5}, "where")
    assert resolve(CopySettings(max_slippage_points=20), None, level).max_slippage_points == 5
    assert resolve().max_slippage_points is None
    with pytest.raises(AllocationError, match="where.max_slippage_points: expected a whole number of points"):
        settings_from_mapping({"max_slippage_points": "5"}, "where")
