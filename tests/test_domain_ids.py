"""Typed ids: platform- and kind-tagged, immutable, hashable, strict at construction."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.domain.ids import DealId, Login, OrderId, Platform, PositionId, ServerId

VENUE_KINDS = (PositionId, DealId, OrderId)


def server(platform: Platform = Platform.MT5, name: str = "Broker-Live") -> ServerId:
    return ServerId(platform, name)


def login(number: int = 123456, platform: Platform = Platform.MT5, name: str = "Broker-Live") -> Login:
    return Login(server(platform, name), number)


# -- venue ids: equality across platforms and kinds ---------------------------

def test_mt4_position_never_equals_ctrader_position_with_same_number():
    assert PositionId(Platform.MT4, 1001) != PositionId(Platform.CTRADER, 1001)
    assert not (PositionId(Platform.MT4, 1001) == PositionId(Platform.CTRADER, 1001))


@pytest.mark.parametrize("a", list(Platform))
@pytest.mark.parametrize("b", list(Platform))
def test_position_ids_equal_only_on_the_same_platform(a, b):
    assert (PositionId(a, 7) == PositionId(b, 7)) is (a is b)


def test_same_platform_and_number_is_equal_and_hashes_equal():
    assert PositionId(Platform.MT5, 42) == PositionId(Platform.MT5, 42)
    assert hash(PositionId(Platform.MT5, 42)) == hash(PositionId(Platform.MT5, 42))


@pytest.mark.parametrize("other", [DealId, OrderId])
def test_position_id_never_equals_deal_or_order_id(other):
    assert PositionId(Platform.MT5, 1001) != other(Platform.MT5, 1001)
    assert other(Platform.MT5, 1001) != PositionId(Platform.MT5, 1001)


def test_deal_id_never_equals_order_id():
    assert DealId(Platform.CTRADER, 5) != OrderId(Platform.CTRADER, 5)


@pytest.mark.parametrize("kind", VENUE_KINDS)
def test_venue_id_never_equals_raw_int_or_str(kind):
    venue_id = kind(Platform.MT4, 1001)
    assert venue_id != 1001
    assert 1001 != venue_id
    assert venue_id != "1001"
    assert venue_id != str(venue_id)


def test_ids_are_distinct_dict_keys():
    keys = [kind(platform, 1001) for kind in VENUE_KINDS for platform in Platform]
    table = {key: i for i, key in enumerate(keys)}
    assert len(table) == len(VENUE_KINDS) * len(Platform)
    for i, key in enumerate(keys):
        assert table[key] == i
    # an equal id built afresh finds the same entry
    assert table[DealId(Platform.CTRADER, 1001)] == keys.index(DealId(Platform.CTRADER, 1001))
    assert 1001 not in table


def test_ids_in_a_set_deduplicate_only_equal_ids():
    ids = {PositionId(Platform.MT4, 1), PositionId(Platform.MT4, 1), PositionId(Platform.MT5, 1), DealId(Platform.MT4, 1)}
    assert len(ids) == 3


@pytest.mark.parametrize("kind", VENUE_KINDS)
def test_venue_ids_are_immutable(kind):
    venue_id = kind(Platform.MT5, 3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        venue_id.value = 4  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        venue_id.platform = Platform.MT4  # type: ignore[misc]
    assert venue_id == kind(Platform.MT5, 3)


def test_str_names_platform_kind_and_number():
    assert str(PositionId(Platform.MT4, 1001)) == "mt4:PositionId:1001"
    assert str(DealId(Platform.CTRADER, 9)) == "ctrader:DealId:9"
    assert str(OrderId(Platform.MT5, 0)) == "mt5:OrderId:0"


# -- venue ids: construction refuses bad values --------------------------------

@pytest.mark.parametrize("kind", VENUE_KINDS)
@pytest.mark.parametrize("bad", [1001.0, 1.5, True, False, "1001", Decimal("1001"), None])
def test_venue_id_refuses_non_int_value(kind, bad):
    with pytest.raises(TypeError):
        kind(Platform.MT5, bad)


@pytest.mark.parametrize("kind", VENUE_KINDS)
@pytest.mark.parametrize("bad", [-1, -1001])
def test_venue_id_refuses_negative_number(kind, bad):
    with pytest.raises(ValueError, match="negative"):
        kind(Platform.MT5, bad)


@pytest.mark.parametrize("kind", VENUE_KINDS)
def test_venue_id_accepts_zero_and_large_numbers(kind):
    assert kind(Platform.MT5, 0).value == 0
    assert kind(Platform.MT5, 2**63).value == 2**63


@pytest.mark.parametrize("kind", VENUE_KINDS)
@pytest.mark.parametrize("bad", ["mt4", "MT4", 4, None])
def test_venue_id_refuses_non_platform(kind, bad):
    with pytest.raises(TypeError, match="Platform"):
        kind(bad, 1001)


# -- Platform ------------------------------------------------------------------

@pytest.mark.parametrize(
    "text, expected",
    [("mt4", Platform.MT4), ("MT5", Platform.MT5), (" cTrader ", Platform.CTRADER), ("sim", Platform.SIM)],
)
def test_platform_parse_accepts_any_case_and_surrounding_space(text, expected):
    assert Platform.parse(text) is expected


@pytest.mark.parametrize("bad", ["mt6", "", "meta trader", "c-trader"])
def test_platform_parse_error_names_the_bad_value(bad):
    with pytest.raises(ValueError) as info:
        Platform.parse(bad)
    message = str(info.value)
    assert repr(bad) in message
    for platform in Platform:
        assert platform.value in message


def test_platform_str_is_its_value():
    assert [str(p) for p in Platform] == ["mt4", "mt5", "ctrader", "sim"]


# -- ServerId and Login --------------------------------------------------------

def test_server_id_str_and_equality():
    assert str(server(Platform.MT5, "Broker-Live")) == "mt5/Broker-Live"
    assert server(Platform.MT5, "A") == server(Platform.MT5, "A")
    assert server(Platform.MT5, "A") != server(Platform.MT4, "A")
    assert server(Platform.MT5, "A") != server(Platform.MT5, "B")


@pytest.mark.parametrize("bad", ["", "   ", "Broker/Live", None, 5])
def test_server_id_refuses_bad_name(bad):
    with pytest.raises(ValueError):
        ServerId(Platform.MT5, bad)


def test_server_id_error_names_a_name_with_a_slash():
    with pytest.raises(ValueError, match="Broker/Live"):
        ServerId(Platform.MT5, "Broker/Live")


@pytest.mark.parametrize("bad", ["mt5", None, 5])
def test_server_id_refuses_non_platform(bad):
    with pytest.raises(TypeError):
        ServerId(bad, "Broker-Live")


def test_login_platform_and_str():
    account = login(123456, Platform.CTRADER, "Spotware")
    assert account.platform is Platform.CTRADER
    assert str(account) == "ctrader/Spotware/123456"


def test_login_equality_depends_on_server_and_number():
    assert login(1) == login(1)
    assert hash(login(1)) == hash(login(1))
    assert login(1) != login(2)
    assert login(1, Platform.MT4) != login(1, Platform.MT5)
    assert login(1, name="A") != login(1, name="B")
    assert len({login(1), login(1), login(2), login(1, Platform.MT4)}) == 3


@pytest.mark.parametrize("bad", [1.0, True, "123", None])
def test_login_refuses_non_int_number(bad):
    with pytest.raises(TypeError):
        Login(server(), bad)


def test_login_refuses_negative_number():
    with pytest.raises(ValueError, match="negative"):
        Login(server(), -5)


@pytest.mark.parametrize("bad", ["mt5/Broker-Live", ("mt5", "Broker-Live"), None])
def test_login_refuses_non_server(bad):
    with pytest.raises(TypeError):
        Login(bad, 1)


def test_login_is_immutable():
    account = login(1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        account.number = 2  # type: ignore[misc]


@pytest.mark.parametrize(
    "account",
    [login(0), login(123456), login(7, Platform.CTRADER, "Spotware Demo"), login(2**40, Platform.SIM, "x")],
)
def test_login_parse_round_trips_str(account):
    assert Login.parse(str(account)) == account


@settings(max_examples=100, deadline=None)
@given(
    platform=st.sampled_from(list(Platform)),
    name=st.text(alphabet=st.characters(codec="ascii", exclude_characters="/"), min_size=1, max_size=20).filter(
        lambda s: s.strip()
    ),
    number=st.integers(min_value=0, max_value=2**64),
)
def test_login_parse_round_trips_str_property(platform, name, number):
    account = Login(ServerId(platform, name), number)
    assert Login.parse(str(account)) == account


def test_login_parse_accepts_platform_in_any_case():
    assert Login.parse("MT4/Broker/55") == login(55, Platform.MT4, "Broker")


@pytest.mark.parametrize(
    "bad",
    ["mt5/Broker-Live", "mt5/Broker/Live/1", "mt5/Broker-Live/abc", "mt5/Broker-Live/-1", "mt5/Broker-Live/", "123"],
)
def test_login_parse_refuses_malformed_text(bad):
    with pytest.raises(ValueError, match="malformed"):
        Login.parse(bad)


def test_login_parse_refuses_unknown_platform_naming_it():
    with pytest.raises(ValueError, match="'mt9'"):
        Login.parse("mt9/Broker/1")


def test_login_parse_refuses_empty_server():
    with pytest.raises(ValueError):
        Login.parse("mt5//1")


def test_platform_parse_refuses_a_non_string_with_a_value_error():
    with pytest.raises(ValueError, match="platform must be a name"):
        Platform.parse(None)
