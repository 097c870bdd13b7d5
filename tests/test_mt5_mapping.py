"""The MT5 connector's pure core: conversions, retcodes, order requests, lookup and deal classification,
on the MetaTrader5 package's record types."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from allocation.leg import Action
from bridge.domain.deal import DealKind, Side
from bridge.domain.ids import DealId, Login, OrderId, Platform, PositionId, ServerId
from bridge.domain.volume import SymbolSpec
from connectors.interface import (AmbiguousOutcome, OrderRequest, OrderStatus, VenuePosition, VenueUnavailable,
                                  magic_number)
from connectors.mt5 import codes as c
from connectors.mt5 import convert, deals, requests, retcodes
from connectors.mt5.retcodes import Outcome
from connectors.mt5.terminal.records import (AccountInfo, OrderSendResult, SymbolInfo, Tick, TradeDeal,
                                             TradePosition)

P = Platform.MT5
LOGIN = Login(ServerId(P, "Broker-Demo"), 5001)
OFFSET = timedelta(hours=2)
CLOCK = convert.ServerClock(OFFSET)
T0 = 1_700_000_000  # server seconds
KEY = "cb0123456789abcdef0"


def info(**kw) -> SymbolInfo:
    fields = dict.fromkeys(SymbolInfo._fields, 0)
    fields.update(name="EURUSD", digits=5, point=0.00001, trade_contract_size=100000.0, volume_min=0.01,
                  volume_max=100.0, volume_step=0.01, filling_mode=1, bid=1.1, ask=1.10002)
    fields.update(kw)
    return SymbolInfo(**fields)


EURUSD = info()
XAUUSD = info(name="XAUUSD", digits=2, point=0.01, trade_contract_size=100.0, volume_step=0.01)
BTCUSD = info(name="BTCUSD", digits=2, point=0.01, trade_contract_size=1.0, volume_min=0.01, volume_step=0.01)
SYMBOLS = {s.name: s for s in (EURUSD, XAUUSD, BTCUSD)}
LOT = 10_000_000  # one EURUSD lot in canonical units


def deal(ticket, *, type=c.DEAL_TYPE_BUY, entry=c.DEAL_ENTRY_IN, position_id=None, volume=0.1, price=1.1,
         symbol="EURUSD", time_msc=None, comment="", magic=0, order=None) -> TradeDeal:
    ms = time_msc if time_msc is not None else (T0 + ticket) * 1000
    return TradeDeal(ticket, order if order is not None else ticket + 1000, ms // 1000, ms, type, entry, magic,
                     position_id if position_id is not None else ticket, 0, volume, price, 0.0, 0.0, 0.0, 0.0,
                     symbol, comment, "")


def position(ticket, *, type=c.POSITION_TYPE_BUY, volume=0.1, sl=0.0, tp=0.0, symbol="EURUSD", update_msc=None,
             comment="", magic=0) -> TradePosition:
    ms = update_msc if update_msc is not None else T0 * 1000
    return TradePosition(ticket, ms // 1000, ms, ms // 1000, ms, type, magic, ticket, 0, volume, 1.1, sl, tp, 1.1,
                         0.0, 0.0, symbol, comment, "")


def account(**kw) -> AccountInfo:
    fields = dict.fromkeys(AccountInfo._fields, 0)
    fields.update(login=5001, margin_mode=2, currency_digits=2, balance=10000.0, equity=10012.35, currency="USD",
                  name="", server="Broker-Demo", company="")
    fields.update(kw)
    return AccountInfo(**fields)


def utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=timezone.utc)


# -- convert ------------------------------------------------------------------------
@pytest.mark.parametrize("value, places, expected", [
    (0.1, 2, "0.10"),
    (0.30000000000000004, 2, "0.30"),  # binary noise from double arithmetic
    (1.12345, 5, "1.12345"),
    (1.1234500000000001, 5, "1.12345"),
    (100000.0, 0, "100000"),
    (7, 2, "7.00"),
])
def test_exact_drops_only_binary_noise(value, places, expected):
    assert str(convert.exact(value, places, "x")) == expected


@pytest.mark.parametrize("value, places", [(0.015, 2), (1.123456, 5), (0.001, 2), (float("nan"), 2)])
def test_exact_refuses_figures_off_the_grid(value, places):
    with pytest.raises(ValueError):
        convert.exact(value, places, "x")


def test_exact_refuses_non_numbers():
    with pytest.raises(TypeError):
        convert.exact(True, 2, "x")
    with pytest.raises(TypeError):
        convert.exact("0.1", 2, "x")


@pytest.mark.parametrize("symbol, lots, volume", [
    (EURUSD, 0.05, 500_000),
    (EURUSD, 0.07, 700_000),
    (EURUSD, 1.1, 11_000_000),
    (EURUSD, 0.1 + 0.2, 3_000_000),  # 0.30000000000000004
    (XAUUSD, 0.01, 100),
    (BTCUSD, 0.01, 1),
    (BTCUSD, 2.5, 250),
])
def test_lots_to_canonical_volume_exactly(symbol, lots, volume):
    assert convert.volume_of(lots, symbol) == volume


def test_a_lot_figure_that_is_not_a_whole_hundredth_is_an_error():
    tiny = info(name="TINY", trade_contract_size=0.1)
    with pytest.raises(ValueError):
        convert.volume_of(0.01, tiny)  # 0.001 of a unit
    with pytest.raises(ValueError):
        convert.volume_of(0.015, EURUSD)  # off the step's decimals
    with pytest.raises(ValueError):
        convert.volume_of(-0.01, EURUSD)


@pytest.mark.parametrize("symbol", [EURUSD, XAUUSD, BTCUSD])
def test_volumes_round_trip_through_the_float_the_package_takes(symbol):
    spec = convert.spec(symbol)
    for steps in range(1, 2001):
        volume = steps * spec.step_volume
        assert convert.volume_of(convert.lots_of(volume, spec), symbol) == volume


def test_symbol_info_to_spec():
    assert convert.spec(EURUSD) == SymbolSpec("EURUSD", Decimal(100000), 100_000, 1_000_000_000, 100_000, 5)
    assert convert.spec(BTCUSD) == SymbolSpec("BTCUSD", Decimal(1), 1, 10_000, 1, 2)
    odd = convert.spec(info(name="DAX", trade_contract_size=0.5, volume_min=0.1, volume_max=50.0, volume_step=0.1,
                            digits=1))
    assert (odd.contract_size, odd.min_volume, odd.step_volume, odd.digits) == (Decimal("0.5"), 5, 5, 1)


@pytest.mark.parametrize("value, digits, expected", [(1.1, 5, "1.10000"), (2034.56, 2, "2034.56"),
                                                     (0.0, 5, None), (1.23457, 5, "1.23457")])
def test_stops_and_prices_at_the_symbols_digits(value, digits, expected):
    got = convert.stop(value, digits)
    assert (None if got is None else str(got)) == expected


def test_average_price_is_not_rounded():
    assert convert.average_price(1.123456) == Decimal("1.123456")


@pytest.mark.parametrize("margin_mode, hedging", [(0, False), (1, False), (2, True)])
def test_account_info(margin_mode, hedging):
    got = convert.account_info(account(margin_mode=margin_mode, balance=10000.0, equity=10012.349999999999), LOGIN)
    assert (got.login, got.currency, got.balance, got.equity, got.hedging) == (
        LOGIN, "USD", Decimal("10000.00"), Decimal("10012.35"), hedging)


def test_account_money_off_the_currency_digits_is_an_error():
    with pytest.raises(ValueError):
        convert.account_info(account(balance=100.005), LOGIN)


def test_server_clock_converts_both_ways():
    assert CLOCK.utc(T0) == utc(T0 - 7200)
    assert CLOCK.utc_ms(T0 * 1000 + 250) == utc(T0 - 7200) + timedelta(milliseconds=250)
    assert CLOCK.server_seconds(utc(T0 - 7200)) == T0
    assert CLOCK.server_seconds(utc(T0 - 7200) + timedelta(milliseconds=999)) == T0  # down: a lower bound
    assert CLOCK.server_ms(CLOCK.utc_ms(T0 * 1000 + 7)) == T0 * 1000 + 7
    assert convert.ServerClock(timedelta(hours=-5)).utc(T0) == utc(T0 + 5 * 3600)
    with pytest.raises(ValueError):
        CLOCK.server_seconds(datetime(2024, 1, 1))


@pytest.mark.parametrize("comment, magic, key", [
    (KEY, magic_number(KEY), KEY),
    (KEY, 0, None),  # a look-alike comment on a manual trade
    ("manual", 0, None),
    (KEY[:12], magic_number(KEY), None),
])
def test_bridge_key(comment, magic, key):
    assert convert.bridge_key(comment, magic) == key


def test_venue_position():
    p = position(42, type=1, volume=0.3, sl=1.2, comment=KEY, magic=magic_number(KEY))._replace(
        price_open=1.1234567, identifier=41)
    got = convert.venue_position(p, LOGIN, EURUSD)
    assert got == VenuePosition(PositionId(P, 41), LOGIN, "EURUSD", Side.SELL, 3 * LOT // 10, Decimal("1.1234567"),
                                Decimal("1.20000"), None, KEY)


@pytest.mark.parametrize("kind, side", [(0, Side.BUY), (1, Side.SELL)])
def test_sides(kind, side):
    assert convert.side_of(kind) is side
    assert convert.order_type(side) == kind


def test_a_type_that_is_no_side():
    with pytest.raises(ValueError):
        convert.side_of(2)


# -- codes ----------------------------------------------------------------------------
@pytest.mark.parametrize("name, value", [
    ("TRADE_RETCODE_DONE", 10009), ("TRADE_RETCODE_FIFO_CLOSE", 10045), ("TRADE_RETCODE_INVALID_CLOSE_VOLUME", 10038),
    ("DEAL_ENTRY_OUT_BY", 3), ("DEAL_TAX", 17), ("ORDER_FILLING_BOC", 3), ("TRADE_ACTION_CLOSE_BY", 10),
    ("RES_E_INTERNAL_FAIL_TIMEOUT", -10005), ("RES_E_AUTO_TRADING_DISABLED", -8), ("ORDER_TYPE_CLOSE_BY", 8),
])
def test_constants_match_the_package(name, value):
    assert getattr(c, name) == value


# -- retcodes -----------------------------------------------------------------------
def test_every_retcode_has_a_verdict():
    for name in dir(c):
        if name.startswith("TRADE_RETCODE_"):
            assert getattr(c, name) in retcodes.RETCODES, name


@pytest.mark.parametrize("retcode, outcome, reason", [
    (10009, Outcome.FILLED, None),
    (10010, Outcome.FILLED, None),
    (10004, Outcome.RETRY, "requote"),
    (10020, Outcome.RETRY, "price-changed"),
    (10021, Outcome.RETRY, "requote"),
    (10019, Outcome.REJECTED, "no-money"),
    (10018, Outcome.REJECTED, "market-closed"),
    (10014, Outcome.REJECTED, "invalid-volume"),
    (10030, Outcome.REJECTED, "invalid-fill"),
    (10027, Outcome.REJECTED, "autotrading-disabled"),
    (10016, Outcome.REJECTED, "invalid-stops"),
    (10036, Outcome.REJECTED, "position-not-found"),
    (10017, Outcome.REJECTED, "trading-disabled"),
    (10008, Outcome.AMBIGUOUS, None),
    (10012, Outcome.AMBIGUOUS, None),
    (10031, Outcome.NOT_SENT, None),
    (10024, Outcome.NOT_SENT, None),
    (10099, Outcome.REJECTED, "mt5-10099"),
])
def test_retcode_verdicts(retcode, outcome, reason):
    assert retcodes.verdict(retcode) == retcodes.Verdict(outcome, reason)


def test_retry_reasons_are_the_ones_the_executor_retries():
    from bridge.results import REQUOTES
    retry = {v.reason for v in retcodes.RETCODES.values() if v.outcome is Outcome.RETRY}
    assert retry <= REQUOTES


@pytest.mark.parametrize("error, outcome, reason", [
    ((-10004, "No IPC connection"), Outcome.AMBIGUOUS, None),
    ((-10005, "IPC timeout"), Outcome.AMBIGUOUS, None),
    ((-10001, "IPC send failed"), Outcome.AMBIGUOUS, None),
    ((-10002, "IPC recv failed"), Outcome.AMBIGUOUS, None),
    ((-2, 'Invalid "volume" argument'), Outcome.NOT_SENT, "bad-request"),
    ((-8, "Autotrading disabled"), Outcome.NOT_SENT, "autotrading-disabled"),
    ((-6, "Terminal: Authorization failed"), Outcome.NOT_SENT, None),
    ((-10003, "IPC initialize failed"), Outcome.NOT_SENT, None),
    ((-1, "generic fail"), Outcome.NOT_SENT, None),
])
def test_order_send_returning_none(error, outcome, reason):
    assert retcodes.send_verdict(None, error) == retcodes.Verdict(outcome, reason)


def sent(retcode, volume=0.1, price=1.10002, deal=7001, order=8001, comment="Request executed"):
    return OrderSendResult(retcode, deal, order, volume, price, 1.1, 1.10002, comment, 1, 0, None)


def outcome(result, *, modify=False, error=(1, "Success"), position=None):
    return retcodes.order_outcome(KEY, modify, result, error, utc(T0), position=position,
                                  volume_of=lambda lots: convert.volume_of(lots, EURUSD),
                                  price_of=lambda p: convert.price(p, EURUSD.digits))


def test_filled_result():
    got = outcome(sent(10009))
    assert (got.status, got.order_id, got.position_id, got.deal_id, got.volume, got.price) == (
        OrderStatus.FILLED, OrderId(P, 8001), PositionId(P, 8001), DealId(P, 7001), 1_000_000, Decimal("1.10002"))
    assert outcome(sent(10009), position=555).position_id == PositionId(P, 555)


def test_partial_fill_carries_its_volume():
    got = outcome(sent(10010, volume=0.04))
    assert (got.status, got.volume) == (OrderStatus.FILLED, 400_000)


def test_refusals_are_results_with_reasons():
    got = outcome(sent(10019, deal=0, order=0, comment="No money"))
    assert (got.status, got.reason, got.message) == (OrderStatus.REJECTED, "no-money", "No money")
    assert outcome(sent(10004, deal=0, order=0)).reason == "requote"
    assert outcome(None, error=(-2, 'Invalid "volume" argument')).reason == "bad-request"


def test_no_changes_is_done_for_stops_only():
    got = outcome(sent(10025, deal=0, order=0, volume=0.0, price=0.0), modify=True, position=4242)
    assert (got.status, got.position_id, got.volume) == (OrderStatus.FILLED, PositionId(P, 4242), 0)
    assert outcome(sent(10025, deal=0, order=0), modify=False).status is OrderStatus.REJECTED


@pytest.mark.parametrize("result, error", [(None, (-10005, "IPC timeout")), (None, (-10002, "recv")),
                                           (sent(10012, deal=0, order=0), (1, "Success"))])
def test_ambiguous_answers_raise(result, error):
    with pytest.raises(AmbiguousOutcome):
        outcome(result, error=error)


@pytest.mark.parametrize("result, error", [(None, (-6, "Terminal: Authorization failed")),
                                           (sent(10031, deal=0, order=0), (1, "Success"))])
def test_nothing_sent_raises_unavailable(result, error):
    with pytest.raises(VenueUnavailable):
        outcome(result, error=error)


# -- requests ---------------------------------------------------------------------------
TICK = Tick(T0, 1.1, 1.10002, 0.0, 0, T0 * 1000, 6, 0.0)
SPEC = convert.spec(EURUSD)


def order(action=Action.OPEN, side=Side.BUY, volume=500_000, **kw) -> OrderRequest:
    if action is not Action.OPEN:
        kw.setdefault("position_id", PositionId(P, 4242))
    return OrderRequest(KEY, LOGIN, action, "EURUSD", side, volume, **kw)


@pytest.mark.parametrize("mode, filling", [(0, c.ORDER_FILLING_RETURN), (1, c.ORDER_FILLING_FOK),
                                           (2, c.ORDER_FILLING_IOC), (3, c.ORDER_FILLING_FOK)])
def test_filling_from_the_symbols_bitmask(mode, filling):
    assert requests.filling(info(filling_mode=mode)) == filling


def test_open_request():
    got = requests.order_request(order(sl=Decimal("1.09"), tp=Decimal("1.12")), EURUSD, SPEC, TICK)
    assert got == {"action": 1, "symbol": "EURUSD", "volume": 0.05, "type": 0, "price": 1.10002,
                   "deviation": requests.ANY_DEVIATION, "type_filling": 0, "type_time": 0,
                   "magic": magic_number(KEY), "comment": KEY, "sl": 1.09, "tp": 1.12}
    sell = requests.order_request(order(side=Side.SELL), EURUSD, SPEC, TICK)
    assert (sell["type"], sell["price"]) == (1, 1.1) and "position" not in sell and "sl" not in sell


@pytest.mark.parametrize("action, side, type_, price", [
    (Action.CLOSE, Side.BUY, 1, 1.1),  # closing a buy sells at the bid
    (Action.PARTIAL_CLOSE, Side.BUY, 1, 1.1),
    (Action.CLOSE, Side.SELL, 0, 1.10002),
])
def test_close_requests(action, side, type_, price):
    got = requests.order_request(order(action, side, 200_000), EURUSD, SPEC, TICK)
    assert (got["action"], got["type"], got["price"], got["position"], got["volume"]) == (1, type_, price, 4242, 0.02)


def test_sltp_request():
    got = requests.order_request(order(Action.MODIFY, volume=0, sl=Decimal("1.09")), EURUSD, SPEC, TICK)
    assert got == {"action": 6, "symbol": "EURUSD", "position": 4242, "sl": 1.09, "tp": 0.0,
                   "magic": magic_number(KEY), "comment": KEY}


@pytest.mark.parametrize("action, side, reference, limit, quote, expected", [
    (Action.OPEN, Side.BUY, None, None, "1.10002", requests.ANY_DEVIATION),
    (Action.OPEN, Side.BUY, None, 10, "1.10002", 10),
    (Action.OPEN, Side.BUY, "1.09999", 10, "1.10002", 7),  # 3 points worse already
    (Action.OPEN, Side.BUY, "1.10010", 10, "1.10002", 10),  # better: the whole limit
    (Action.OPEN, Side.BUY, "1.099995", 10, "1.10002", 7),  # 2.5 points worse: 7.5 left, down to 7
    (Action.OPEN, Side.SELL, "1.10005", 10, "1.10000", 5),
    (Action.CLOSE, Side.BUY, "1.10005", 10, "1.10000", 5),  # closing a buy sells
    (Action.CLOSE, Side.SELL, "1.10005", 10, "1.10000", 10),  # closing a sell buys, cheaper: fine
    (Action.OPEN, Side.BUY, "1.09992", 10, "1.10002", 0),
])
def test_deviation(action, side, reference, limit, quote, expected):
    o = order(action, side, reference_price=None if reference is None else Decimal(reference),
              max_slippage_points=limit)
    assert requests.deviation(o, Decimal(quote), 5) == expected


def test_beyond_the_slippage_limit_nothing_is_sent():
    o = order(reference_price=Decimal("1.09990"), max_slippage_points=10)
    with pytest.raises(requests.BeyondSlippage) as caught:
        requests.order_request(o, EURUSD, SPEC, TICK)
    assert caught.value.points == 2


def test_comment_length():
    assert requests.comment("x" * 31) == "x" * 31
    with pytest.raises(ValueError):
        requests.comment("x" * 32)


@pytest.mark.parametrize("comment, magic, found", [
    (KEY, 0, True),
    (KEY[:12], magic_number(KEY), True),  # shortened by the server, magic intact
    (KEY[:12], 0, False),
    ("", magic_number(KEY), False),
    ("manual", magic_number(KEY), False),
    ("cb0123456789abcdef1", magic_number(KEY), False),
])
def test_a_record_carries_a_key(comment, magic, found):
    assert requests.carries(deal(1, comment=comment, magic=magic), KEY) is found
    assert requests.carries(position(1, comment=comment, magic=magic), KEY) is found


def test_lookup_result_from_deals():
    history = [deal(10, comment="other"), deal(11, comment=KEY, volume=0.05, price=1.1, order=900, position_id=77)]
    got = requests.lookup_result(KEY, history, EURUSD, CLOCK)
    assert (got.status, got.order_id, got.position_id, got.deal_id, got.volume, got.price, got.time) == (
        OrderStatus.FILLED, OrderId(P, 900), PositionId(P, 77), DealId(P, 11), 500_000, Decimal("1.10000"),
        utc(T0 + 11 - 7200))
    assert requests.lookup_result("cb" + "0" * 17, history, EURUSD, CLOCK) is None


def test_lookup_adds_up_partial_fills():
    history = [deal(11, comment=KEY, volume=0.01, price=1.1, order=900),
               deal(12, comment=KEY, volume=0.03, price=1.10004, order=900)]
    got = requests.lookup_result(KEY, history, EURUSD, CLOCK)
    assert (got.volume, got.price, got.deal_id) == (400_000, Decimal("1.10003"), DealId(P, 12))


# -- deals ------------------------------------------------------------------------------
def classify(history, open_positions):
    return deals.classify(history, open_positions, LOGIN, SYMBOLS.__getitem__, CLOCK)


def summary(found):
    return [(m.deal_id.value, m.position_id.value, m.kind, m.side, m.volume, m.position_volume) for m in found]


B, S = c.DEAL_TYPE_BUY, c.DEAL_TYPE_SELL
IN, OUT, INOUT, OUT_BY = c.DEAL_ENTRY_IN, c.DEAL_ENTRY_OUT, c.DEAL_ENTRY_INOUT, c.DEAL_ENTRY_OUT_BY


@pytest.mark.parametrize("name, history, now, expected", [
    ("hedging open", [deal(1, type=B, entry=IN, volume=0.1)], [position(1, volume=0.1)],
     [(1, 1, DealKind.OPEN, Side.BUY, LOT // 10, 0)]),
    ("sell open", [deal(1, type=S, entry=IN, volume=0.2)], [position(1, type=1, volume=0.2)],
     [(1, 1, DealKind.OPEN, Side.SELL, LOT // 5, 0)]),
    ("partial close", [deal(2, type=S, entry=OUT, position_id=1, volume=0.04)], [position(1, volume=0.06)],
     [(2, 1, DealKind.PARTIAL_CLOSE, Side.BUY, 400_000, LOT // 10)]),
    ("close", [deal(2, type=S, entry=OUT, position_id=1, volume=0.1)], [],
     [(2, 1, DealKind.CLOSE, Side.BUY, LOT // 10, LOT // 10)]),
    ("netting add", [deal(2, type=B, entry=IN, position_id=1, volume=0.1)], [position(1, volume=0.3)],
     [(2, 1, DealKind.ADD, Side.BUY, LOT // 10, 2 * LOT // 10)]),
    ("netting reversal", [deal(2, type=S, entry=INOUT, position_id=1, volume=0.5)], [position(1, type=1, volume=0.3)],
     [(2, 1, DealKind.REVERSAL, Side.SELL, 3 * LOT // 10, 2 * LOT // 10)]),
    ("close by", [deal(5, type=S, entry=OUT_BY, position_id=1, volume=0.1),
                  deal(6, type=B, entry=OUT_BY, position_id=2, volume=0.1)], [position(2, type=1, volume=0.1)],
     [(5, 1, DealKind.CLOSE, Side.BUY, LOT // 10, LOT // 10),
      (6, 2, DealKind.PARTIAL_CLOSE, Side.SELL, LOT // 10, 2 * LOT // 10)]),
    ("open, partial close, close in one poll",
     [deal(1, type=B, entry=IN, volume=0.3), deal(3, type=S, entry=OUT, position_id=1, volume=0.1),
      deal(4, type=S, entry=OUT, position_id=1, volume=0.2)], [],
     [(1, 1, DealKind.OPEN, Side.BUY, 3 * LOT // 10, 0),
      (3, 1, DealKind.PARTIAL_CLOSE, Side.BUY, LOT // 10, 3 * LOT // 10),
      (4, 1, DealKind.CLOSE, Side.BUY, 2 * LOT // 10, 2 * LOT // 10)]),
    ("gold and balance", [deal(1, type=B, entry=IN, volume=0.01, symbol="XAUUSD", price=2034.56),
                          deal(2, type=c.DEAL_TYPE_BALANCE, entry=IN, position_id=0, volume=0.0, symbol="")],
     [position(1, volume=0.01, symbol="XAUUSD")],
     [(1, 1, DealKind.OPEN, Side.BUY, 100, 0), (2, 0, DealKind.BALANCE, Side.BUY, 0, 0)]),
    ("costs and cancelled deals are not master deals",
     [deal(1, type=c.DEAL_TYPE_COMMISSION, symbol=""), deal(2, type=c.DEAL_TYPE_BUY_CANCELED),
      deal(3, type=c.DEAL_DIVIDEND, symbol="")], [], []),
])
def test_classify(name, history, now, expected):
    assert summary(classify(history, now)) == expected


def test_deal_fields():
    (m,) = classify([deal(1, volume=0.1, price=1.10002, time_msc=T0 * 1000 + 5)],
                    [position(1, volume=0.1, sl=1.09, tp=1.12)])
    assert (m.account, m.symbol, m.price, m.time, m.sl, m.tp) == (
        LOGIN, "EURUSD", Decimal("1.10002"), utc(T0 - 7200) + timedelta(milliseconds=5), Decimal("1.09000"),
        Decimal("1.12000"))
    (b,) = classify([deal(2, type=c.DEAL_TYPE_CREDIT, symbol="", volume=0.0)], [])
    assert (b.kind, b.symbol, b.position_id, b.time) == (DealKind.BALANCE, "", PositionId(P, 0), utc(T0 + 2 - 7200))


def test_only_a_positions_newest_deal_takes_its_stops():
    found = classify([deal(1, volume=0.1), deal(2, position_id=1, volume=0.1)], [position(1, volume=0.2, sl=1.09)])
    assert [(m.kind, m.sl) for m in found] == [(DealKind.OPEN, None), (DealKind.ADD, Decimal("1.09000"))]


@pytest.mark.parametrize("history, now", [
    ([deal(2, type=S, entry=OUT, position_id=1, volume=0.1)], [position(1, type=1, volume=0.1)]),  # says open
    ([deal(1, type=B, entry=IN, volume=0.1)], []),  # the open, but the position read says closed
    ([deal(2, type=S, entry=INOUT, position_id=1, volume=0.1)], []),
])
def test_entry_and_volumes_disagree(history, now):
    with pytest.raises(deals.Inconsistent):
        classify(history, now)


def test_sltp_changes_from_two_reads():
    before = {p.identifier: p for p in (position(1), position(2, sl=1.08), position(3))}
    after = [position(1, sl=1.09, update_msc=T0 * 1000 + 500), position(2, sl=1.08, update_msc=T0 * 1000 + 900),
             position(3, tp=1.2, update_msc=T0 * 1000 + 100), position(4, sl=1.0)]
    found = deals.sltp_changes(before, after, LOGIN, SYMBOLS.__getitem__, CLOCK, None)
    assert [(m.position_id.value, m.kind, m.sl, m.tp, m.volume, m.position_volume) for m in found] == [
        (3, DealKind.SLTP, None, Decimal("1.20000"), 0, LOT // 10),
        (1, DealKind.SLTP, Decimal("1.09000"), None, 0, LOT // 10)]
    assert [m.deal_id.value for m in found] == [deals.SLTP_IDS + (T0 * 1000 + 100) * 1000 + 3,
                                                deals.SLTP_IDS + (T0 * 1000 + 500) * 1000 + 1]
    assert found[0].time == utc(T0 - 7200) + timedelta(milliseconds=100)


def test_sltp_ids_increase_and_never_collide():
    a = position(1001, update_msc=5000)
    b = position(2001, update_msc=5000)  # same ms, same ticket mod 1000
    first = deals.sltp_id(a, None)
    second = deals.sltp_id(b, first)
    assert second == first + 1
    assert deals.sltp_id(position(7, update_msc=6000), second) > second
    assert first > 10 ** 16  # above any deal ticket


@pytest.mark.parametrize("after, point", [
    (None, None),
    (DealId(P, 12345), ("ticket", 12345)),
    (DealId(P, deals.SLTP_IDS + 5_000_000 * 1000 + 7), ("time_msc", 5_000_000 - 1000)),
])
def test_resume_point(after, point):
    assert deals.resume_point(after) == point


def test_poll_dedupes_and_orders_by_time():
    poll = deals.AccountPoll(LOGIN, SYMBOLS.__getitem__, CLOCK)
    poll.baseline([position(1, volume=0.1)], seen_deals=[deal(1)])
    assert poll.newest_msc == (T0 + 1) * 1000
    # the window overlaps: deal 1 again; deal 3 opens position 3; position 1's SL moved between the two deals
    window = [deal(1), deal(3, volume=0.2, time_msc=(T0 + 10) * 1000)]
    now = [position(1, volume=0.1, sl=1.09, update_msc=(T0 + 5) * 1000), position(3, volume=0.2)]
    found = poll.poll(window, now)
    assert [(m.kind, m.position_id.value) for m in found] == [(DealKind.SLTP, 1), (DealKind.OPEN, 3)]
    assert poll.poll(window, now) == []  # nothing new: nothing twice
    assert poll.newest_msc == (T0 + 10) * 1000


def test_an_inconsistent_read_consumes_nothing():
    poll = deals.AccountPoll(LOGIN, SYMBOLS.__getitem__, CLOCK)
    poll.baseline([])
    with pytest.raises(deals.Inconsistent):
        poll.poll([deal(1, volume=0.1)], [])  # positions read before the deal
    assert [m.kind for m in poll.poll([deal(1, volume=0.1)], [position(1)])] == [DealKind.OPEN]


def test_no_sltp_changes_against_no_baseline():
    poll = deals.AccountPoll(LOGIN, SYMBOLS.__getitem__, CLOCK)
    assert poll.poll([], [position(1, sl=1.09)]) == []
    assert [m.kind for m in poll.poll([], [position(1, sl=1.08)])] == [DealKind.SLTP]
