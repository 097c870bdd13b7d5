"""The simulated MetaTrader 5 terminal behaves like the MetaTrader5 package (spec section 1)."""

from __future__ import annotations

import random
from datetime import datetime, timezone
from decimal import Decimal

import pytest

from connectors.mt5.terminal import api as mt5
from connectors.mt5.terminal import constants as C
from connectors.mt5.terminal import records
from connectors.mt5.terminal.terminal import Faults, SimClock, SymbolSettings, Terminal

LOGIN, PASSWORD, SERVER = 5550001, "secret", "SimBroker-Demo"
START = 1_704_067_200  # 2024-01-01 00:00:00 UTC


def make(**kwargs) -> Terminal:
    kwargs.setdefault("clock", SimClock(START))
    kwargs.setdefault("rng", random.Random(7))
    t = Terminal(login=LOGIN, password=PASSWORD, server=SERVER, **kwargs)
    mt5.use(t)
    assert mt5.initialize(login=LOGIN, password=PASSWORD, server=SERVER)
    return t


@pytest.fixture(autouse=True)
def _unbind():
    yield
    mt5.use(None)


def deal(symbol="EURUSD", volume=0.1, type_=C.ORDER_TYPE_BUY, **extra):
    tick = mt5.symbol_info_tick(symbol)
    request = {"action": C.TRADE_ACTION_DEAL, "symbol": symbol, "volume": volume, "type": type_,
               "price": tick.ask if type_ == C.ORDER_TYPE_BUY else tick.bid, "deviation": 10, "magic": 42,
               "comment": "copy", "type_time": C.ORDER_TIME_GTC, "type_filling": C.ORDER_FILLING_FOK}
    request.update(extra)
    return mt5.order_send(request)


def all_deals():
    return mt5.history_deals_get(0, 2**40)


def test_constants_exact():
    assert (C.ORDER_TYPE_CLOSE_BY, C.ORDER_STATE_REQUEST_CANCEL, C.ORDER_FILLING_BOC) == (8, 9, 3)
    assert (C.TRADE_ACTION_SLTP, C.TRADE_ACTION_CLOSE_BY, C.DEAL_ENTRY_OUT_BY, C.DEAL_TAX) == (6, 10, 3, 17)
    assert (C.TRADE_RETCODE_DONE, C.TRADE_RETCODE_INVALID_CLOSE_VOLUME, C.TRADE_RETCODE_FIFO_CLOSE) == (
        10009, 10038, 10045)
    assert (C.RES_E_INTERNAL_FAIL_CONNECT, C.RES_E_INTERNAL_FAIL_TIMEOUT, C.RES_E_AUTO_TRADING_DISABLED) == (
        -10004, -10005, -8)
    assert (C.TIMEFRAME_H4, C.TIMEFRAME_D1, C.TIMEFRAME_W1, C.TIMEFRAME_MN1) == (0x4004, 0x4018, 0x8001, 0xC001)
    assert (C.DEAL_REASON_SPLIT, C.ORDER_REASON_SO, C.COPY_TICKS_ALL, C.TICK_FLAG_SELL) == (9, 6, -1, 64)
    assert mt5.TRADE_RETCODE_REQUOTE == 10004 and "DEAL_TYPE_BALANCE" in C.__all__


def test_not_initialized_and_auth():
    assert mt5.initialize() is False and mt5.last_error()[0] == C.RES_E_INTERNAL_FAIL_INIT
    mt5.use(Terminal(login=LOGIN, password=PASSWORD, server=SERVER))
    assert mt5.positions_get() is None and mt5.last_error() == (-10004, "No IPC connection")
    assert mt5.initialize(login=LOGIN, password="wrong", server=SERVER) is False
    assert mt5.last_error() == (C.RES_E_AUTH_FAILED, "Terminal: Authorization failed")
    assert mt5.initialize(login=LOGIN, password=PASSWORD, server=SERVER) is True
    assert mt5.last_error() == (1, "Success")
    assert mt5.version()[0] == 500 and mt5.login(LOGIN, password=PASSWORD, server=SERVER)
    mt5.shutdown()
    assert mt5.account_info() is None


def test_records_are_the_real_types_with_floats():
    make()
    acc = mt5.account_info()
    assert type(acc) is records.AccountInfo and acc.login == LOGIN and acc.balance == 10000.0
    assert acc.margin_mode == C.ACCOUNT_MARGIN_MODE_RETAIL_HEDGING and isinstance(acc.equity, float)
    info = mt5.terminal_info()
    assert type(info) is records.TerminalInfo and info.connected and info.trade_allowed
    sym = mt5.symbol_info("EURUSD")
    assert type(sym) is records.SymbolInfo and len(sym) == 96
    assert (sym.digits, sym.volume_min, sym.volume_step, sym.trade_contract_size) == (5, 0.01, 0.01, 100000.0)
    assert sym.filling_mode == 1 and sym.name == "EURUSD" and sym.currency_profit == "USD"
    assert mt5.symbols_total() == 5
    assert [s.name for s in mt5.symbols_get(group="*,!*JPY*,!XAU*")] == ["EURUSD", "GBPUSD", "US500"]
    assert mt5.symbol_info("NOPE") is None and mt5.last_error()[0] == C.RES_E_NOT_FOUND
    tick = mt5.symbol_info_tick("EURUSD")
    assert type(tick) is records.Tick and tick.ask > tick.bid and tick.time_msc == tick.time * 1000
    assert mt5.positions_get() == () and mt5.orders_get() == () and mt5.positions_total() == 0
    r = deal(volume=0.3)
    assert type(r) is records.OrderSendResult and type(r.request) is records.TradeRequest
    assert (r.retcode, r.comment, r.volume, r.price) == (10009, "Request executed", 0.3, tick.ask)
    (pos,) = mt5.positions_get()
    assert type(pos) is records.TradePosition and pos.ticket == pos.identifier == r.order
    assert isinstance(pos.volume, float) and pos.volume == 0.3 and pos.magic == 42
    d = mt5.history_deals_get(ticket=r.order)[0]
    assert type(d) is records.TradeDeal and d.ticket == r.deal and d.entry == C.DEAL_ENTRY_IN
    o = mt5.history_orders_get(ticket=r.order)[0]
    assert type(o) is records.TradeOrder and o.state == C.ORDER_STATE_FILLED and o.position_id == pos.ticket
    check = mt5.order_check({"action": 1, "symbol": "EURUSD", "volume": 0.1, "type": 0, "price": tick.ask,
                             "deviation": 5})
    assert type(check) is records.OrderCheckResult and (check.retcode, check.comment) == (0, "Done")
    assert check.margin > mt5.account_info().margin


def test_hedging_open_partial_close_close_same_ticket():
    make()
    r = deal(volume=0.3, comment="c" * 40)
    ticket = r.order
    (pos,) = mt5.positions_get(symbol="EURUSD")
    assert pos.comment == "c" * 31
    deal(volume=0.2)  # hedging: a second position
    assert mt5.positions_total() == 2
    mt5.use(mt5.current())
    mt5.current().set_bid("EURUSD", Decimal("1.08600"))
    r2 = deal(volume=0.1, type_=C.ORDER_TYPE_SELL, position=ticket)
    assert r2.retcode == 10009
    (pos,) = mt5.positions_get(ticket=ticket)
    assert pos.ticket == ticket and pos.volume == 0.2
    out = mt5.history_deals_get(position=ticket)
    assert [d.entry for d in out] == [C.DEAL_ENTRY_IN, C.DEAL_ENTRY_OUT]
    assert out[1].profit == pytest.approx(0.1 * 100000 * (1.086 - 1.08512))
    assert out[1].profit == 8.8
    assert deal(volume=0.3, type_=C.ORDER_TYPE_SELL, position=ticket).retcode == C.TRADE_RETCODE_INVALID_CLOSE_VOLUME
    assert deal(volume=0.2, type_=C.ORDER_TYPE_SELL, position=ticket).retcode == 10009
    assert mt5.positions_get(ticket=ticket) == () and mt5.positions_total() == 1
    assert mt5.account_info().balance == 10000.0 + 8.8 + 17.6
    assert deal(volume=0.1, type_=C.ORDER_TYPE_SELL, position=ticket).retcode == C.TRADE_RETCODE_POSITION_CLOSED


def test_netting_add_reduce_reverse_entries():
    make(hedging=False)
    assert mt5.account_info().margin_mode == C.ACCOUNT_MARGIN_MODE_RETAIL_NETTING
    r = deal(volume=0.1)
    ticket = r.order
    deal(volume=0.2)
    (pos,) = mt5.positions_get()
    assert pos.ticket == ticket and pos.volume == pytest.approx(0.3)
    deal(volume=0.1, type_=C.ORDER_TYPE_SELL)
    assert mt5.positions_get()[0].volume == 0.2
    rev = deal(volume=0.5, type_=C.ORDER_TYPE_SELL, magic=9)
    (pos,) = mt5.positions_get()
    assert pos.ticket == ticket and pos.type == C.POSITION_TYPE_SELL and pos.volume == 0.3 and pos.magic == 9
    entries = [(d.entry, d.volume) for d in mt5.history_deals_get(position=ticket)]
    assert entries == [(0, 0.1), (0, 0.2), (1, 0.1), (2, 0.5)]
    assert mt5.history_deals_get(ticket=rev.order)[0].entry == C.DEAL_ENTRY_INOUT
    deal(volume=0.3, type_=C.ORDER_TYPE_BUY)
    assert mt5.positions_get() == ()
    assert mt5.history_deals_get(position=ticket)[-1].entry == C.DEAL_ENTRY_OUT


def test_sltp_modify_and_server_side_closes():
    t = make()
    r = deal(volume=0.1)
    assert mt5.order_send({"action": C.TRADE_ACTION_SLTP, "position": r.order, "sl": 1.084, "tp": 1.087}).retcode \
        == 10009
    pos = mt5.positions_get()[0]
    assert (pos.sl, pos.tp) == (1.084, 1.087)
    assert mt5.order_send({"action": 6, "position": r.order, "sl": 1.086, "tp": 1.087}).retcode \
        == C.TRADE_RETCODE_INVALID_STOPS
    assert len(all_deals()) == 2  # deposit + open: SLTP makes no deal
    t.clock.advance(60)
    t.set_bid("EURUSD", Decimal("1.08390"))
    assert mt5.positions_get() == ()
    sl = all_deals()[-1]
    assert (sl.reason, sl.entry, sl.type, sl.price, sl.magic) == (C.DEAL_REASON_SL, 1, 1, 1.0839, 42)
    assert sl.comment == "[sl 1.08400]" and sl.time == START + 7200 + 60
    r = deal(volume=0.1, type_=C.ORDER_TYPE_SELL, tp=1.082)
    t.set_bid("EURUSD", Decimal("1.08180"))
    tp = all_deals()[-1]
    assert (tp.reason, tp.position_id, tp.price) == (C.DEAL_REASON_TP, r.order, 1.08192)


def test_balance_operation_deal():
    t = make(balance="0")
    t.balance_operation("2500.50", "Deposit")
    (d,) = all_deals()
    assert (d.type, d.order, d.symbol, d.profit, d.comment) == (C.DEAL_TYPE_BALANCE, 0, "", 2500.5, "Deposit")
    assert mt5.account_info().balance == 2500.5


def test_trade_retcodes():
    t = make(symbols={"GBPUSD": SymbolSettings(exemode=C.SYMBOL_TRADE_EXECUTION_REQUEST, filling_mode=3)})
    assert deal(volume=0.001).retcode == C.TRADE_RETCODE_INVALID_VOLUME
    assert deal(volume=0.015).retcode == C.TRADE_RETCODE_INVALID_VOLUME
    assert deal(volume=101.0).retcode == C.TRADE_RETCODE_INVALID_VOLUME
    assert deal(type_filling=C.ORDER_FILLING_IOC).retcode == C.TRADE_RETCODE_INVALID_FILL
    assert deal(symbol="GBPUSD", type_filling=C.ORDER_FILLING_IOC).retcode == 10009
    tick = mt5.symbol_info_tick("EURUSD")
    r = deal(price=tick.ask - 0.0002)
    assert (r.retcode, r.bid, r.ask) == (C.TRADE_RETCODE_REQUOTE, tick.bid, tick.ask)
    assert deal(price=tick.ask - 0.0001).retcode == 10009  # 10 points: inside the deviation
    g = mt5.symbol_info_tick("GBPUSD")
    assert deal(symbol="GBPUSD", price=g.ask + 0.001).retcode == C.TRADE_RETCODE_PRICE_CHANGED
    assert deal(volume=50.0).retcode == C.TRADE_RETCODE_NO_MONEY
    t.settings["EURUSD"].market_open = False
    assert deal().retcode == C.TRADE_RETCODE_MARKET_CLOSED
    t.settings["EURUSD"].market_open = True
    t.algo_trading = False
    assert deal().retcode == C.TRADE_RETCODE_CLIENT_DISABLES_AT and not mt5.terminal_info().trade_allowed
    t.algo_trading = True
    assert mt5.order_send({"action": 1, "symbol": "EURUSD", "volume": 1, "type": 0}) is None
    assert mt5.last_error() == (C.RES_E_INVALID_PARAMS, 'Invalid "volume" argument')
    assert mt5.order_calc_margin(C.ORDER_TYPE_BUY, "EURUSD", 1.0, 1.1) == 1100.0
    assert mt5.order_calc_profit(C.ORDER_TYPE_SELL, "EURUSD", 1.0, 1.1, 1.09) == 1000.0
    assert mt5.order_calc_profit(C.ORDER_TYPE_BUY, "USDJPY", 1.0, 150.0, 150.15) == pytest.approx(100.0, abs=0.1)


@pytest.mark.parametrize("code", [C.RES_E_INTERNAL_FAIL_CONNECT, C.RES_E_INTERNAL_FAIL_TIMEOUT])
def test_ipc_fault_before_vs_after_execution(code):
    t = make()
    t.faults = Faults(ipc_before=1.0, ipc_code=code)
    assert deal(magic=777, comment="key-1") is None and mt5.last_error()[0] == code
    assert [d for d in all_deals() if d.comment == "key-1"] == [] and mt5.positions_get() == ()
    t.faults = Faults(ipc_after=1.0, ipc_code=code)
    assert deal(magic=777, comment="key-2") is None and mt5.last_error()[0] == code
    t.faults = Faults()
    found = [d for d in all_deals() if d.magic == 777 and d.comment == "key-2"]
    assert len(found) == 1 and mt5.positions_get()[0].comment == "key-2"


def test_disconnected_requotes_and_call_cost():
    t = make()
    t.faults = Faults(connected=False)
    assert mt5.terminal_info().connected is False
    assert deal() is None and mt5.last_error()[0] == C.RES_E_INTERNAL_FAIL_CONNECT
    t.faults = Faults(requote=1.0)
    assert deal().retcode == C.TRADE_RETCODE_REQUOTE
    t.faults = Faults(call_cost_us=1500)
    before = t.clock()
    mt5.account_info()
    mt5.positions_get()
    assert t.clock() - before == Decimal("0.003")


def test_server_time_offset_and_history_filters():
    t = make(server_offset=3 * 3600)
    t.clock.advance(100)
    r = deal()
    d = mt5.history_deals_get(ticket=r.order)[0]
    assert d.time == START + 3 * 3600 + 100 and d.time_msc == d.time * 1000
    pos = mt5.positions_get()[0]
    assert pos.time == d.time and mt5.symbol_info_tick("EURUSD").time == START + 3 * 3600
    server = START + 3 * 3600 + 100
    assert mt5.history_deals_get(server, server + 1, group="EUR*") == (d,)
    assert mt5.history_deals_get(server + 1, server + 100) == ()
    assert mt5.history_deals_get(START, START + 3600) == ()  # a UTC window misses the server-time deal
    naive = datetime(2024, 1, 1, 3, 1, 40)  # wall clock read as server time
    assert mt5.history_deals_get(naive, naive) == (d,)
    aware = datetime(2024, 1, 1, 3, 1, 40, tzinfo=timezone.utc)
    assert mt5.history_deals_get(aware, aware) == (d,) and mt5.history_deals_total(aware, aware) == 1
    assert mt5.history_deals_get() is None and mt5.last_error()[0] == C.RES_E_INVALID_PARAMS


def run(seed: int):
    t = make(rng=random.Random(seed))
    out = []
    for i in range(20):
        t.step()
        t.clock.advance(1)
        r = deal(type_=i % 2, volume=0.01 * (1 + i % 3))
        out.append((r.retcode, r.price))
    assert {code for code, _ in out} == {10009}
    return out, mt5.history_deals_get(0, 2**40), mt5.account_info()


def test_seeded_determinism():
    a, b, c = run(11), run(11), run(12)
    assert a == b and a != c


def test_position_filters_and_unsupported():
    make()
    deal(symbol="EURUSD")
    deal(symbol="USDJPY")
    deal(symbol="XAUUSD", volume=0.01)
    assert [p.symbol for p in mt5.positions_get(group="*USD*,!*JPY*")] == ["EURUSD", "XAUUSD"]
    assert [p.symbol for p in mt5.positions_get(symbol="USDJPY")] == ["USDJPY"]
    assert mt5.positions_get(symbol="NOPE") == () and mt5.positions_total() == 3
    assert mt5.history_deals_get(0, 2**40, group="XAU*")[0].volume == 0.01
    assert mt5.copy_rates_from_pos("EURUSD", C.TIMEFRAME_M1, 0, 10) is None
    assert mt5.last_error()[0] == C.RES_E_UNSUPPORTED


def test_stop_out_closes_with_reason_so():
    t = make(balance="1000")
    assert deal(volume=0.8).retcode == 10009
    t.set_bid("EURUSD", Decimal("1.08000"))  # level still above 30 %
    assert mt5.positions_total() == 1 and mt5.account_info().margin_level > 30
    t.set_bid("EURUSD", Decimal("1.07500"))
    assert mt5.positions_get() == ()
    so = all_deals()[-1]
    assert (so.reason, so.entry, so.price, so.profit) == (C.DEAL_REASON_SO, C.DEAL_ENTRY_OUT, 1.075, -809.6)
    assert so.comment.startswith("[so ") and mt5.account_info().balance == 190.4


def test_fault_rates_are_seeded_and_leave_prices_alone():
    def trace(rate):
        t = make(rng=random.Random(5))
        t.faults = Faults(ipc_after=rate, requote=rate)
        codes = []
        for _ in range(30):
            t.step()
            r = deal()
            codes.append(None if r is None else r.retcode)
        return codes, mt5.symbol_info_tick("EURUSD")

    a, b, clean = trace(0.3), trace(0.3), trace(0.0)
    assert a == b and a[1] == clean[1]
    assert {None, C.TRADE_RETCODE_REQUOTE, 10009} <= set(a[0]) and set(clean[0]) == {10009}
