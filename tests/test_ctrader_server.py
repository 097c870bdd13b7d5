"""The local cTrader Open API server over real TLS sockets on 127.0.0.1, driven by the stock client.

Helpers in tests/ctrader_rig.py. The server's time is a ``task.Clock`` the tests advance;
the network is the global reactor, iterated by hand (no sleeps).
"""

from __future__ import annotations

import struct
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from ctrader_open_api import TcpProtocol
from ctrader_open_api.messages import OpenApiCommonMessages_pb2 as common
from ctrader_open_api.messages import OpenApiMessages_pb2 as oa
from ctrader_open_api.messages import OpenApiModelMessages_pb2 as E

from connectors.ctrader.server import Credentials, CredentialsError, FaultConfig
from connectors.ctrader.server.framing import encode
from tests.ctrader_rig import EURUSD, LOT, START, Rig, pump, settle

ROOT = Path(__file__).resolve().parents[1]
EXEC = "ProtoOAExecutionEvent"
BRIDGE = [sys.executable, "-c", "from bridge.cli.main import main; main()"]
FILLED, ACCEPTED, PARTIAL, REPLACED = E.ORDER_FILLED, E.ORDER_ACCEPTED, E.ORDER_PARTIAL_FILL, E.ORDER_REPLACED


@pytest.fixture
def rig():
    r = Rig()
    yield r
    r.close()


def kinds(conn, mid=False) -> list[int]:
    return [e.executionType for e in conn.of(EXEC, mid)]


def buy(conn, ctid=1001, volume=LOT // 10, side=E.BUY, **fields) -> str:
    return conn.send("NewOrderReq", ctidTraderAccountId=ctid, symbolId=EURUSD, orderType=E.MARKET,
                     tradeSide=side, volume=volume, **fields)


def filled(conn, mid):
    return conn.wait(lambda m, i: i == mid and m.DESCRIPTOR.name == EXEC and m.executionType == FILLED)


def answer(conn, mid):
    return conn.wait(lambda m, i: i == mid)


def error_code(message) -> str:
    return message.errorCode


# -- sessions -----------------------------------------------------------------------------

def test_application_auth_errors_then_success(rig):
    c = rig.connect()
    assert error_code(c.call("VersionReq")) == "CH_CLIENT_NOT_AUTHENTICATED"
    assert error_code(c.call("ApplicationAuthReq", clientId="app-1", clientSecret="wrong")) == "CH_CLIENT_AUTH_FAILURE"
    mid = c.send("ApplicationAuthReq", clientId="app-1", clientSecret="secret-1")
    assert c.wait(lambda m, i: i == mid).DESCRIPTOR.name == "ProtoOAApplicationAuthRes"
    assert error_code(c.call("ApplicationAuthReq", clientId="app-1", clientSecret="secret-1")) == \
        "CH_CLIENT_ALREADY_AUTHENTICATED"
    assert c.call("VersionReq").version


def test_the_unmodified_stock_client_connects_and_authenticates(rig):
    c = rig.connect(protocol=TcpProtocol)  # its 1-second send queue: this test takes up to a second
    assert c.call("ApplicationAuthReq", clientId="app-1", clientSecret="secret-1").DESCRIPTOR.name == \
        "ProtoOAApplicationAuthRes"
    assert c.of("ProtoHeartbeatEvent"), "the server answers the client's first heartbeat"


def test_account_list_and_two_accounts_on_one_connection(rig):
    c = rig.connect()
    c.auth()
    res = c.call("GetAccountListByAccessTokenReq", accessToken="tok-a")
    assert [(a.ctidTraderAccountId, a.traderLogin, a.isLive) for a in res.ctidTraderAccount] == [
        (1001, 5001, False), (1002, 5002, True), (1003, 5003, False)]
    assert error_code(c.call("GetAccountListByAccessTokenReq", accessToken="nope")) == "CH_ACCESS_TOKEN_INVALID"
    for ctid in (1001, 1002):
        assert c.call("AccountAuthReq", ctidTraderAccountId=ctid, accessToken="tok-a").ctidTraderAccountId == ctid
    refused = c.call("AccountAuthReq", ctidTraderAccountId=2001, accessToken="tok-a")
    assert (refused.errorCode, refused.ctidTraderAccountId) == ("ACCOUNT_NOT_AUTHORIZED", 2001)
    assert error_code(c.call("AccountAuthReq", ctidTraderAccountId=9, accessToken="tok-a")) == \
        "CH_CTID_TRADER_ACCOUNT_NOT_FOUND"
    assert error_code(c.call("TraderReq", ctidTraderAccountId=1003)) == "ACCOUNT_NOT_AUTHORIZED"
    traders = {ctid: c.call("TraderReq", ctidTraderAccountId=ctid).trader for ctid in (1001, 1002)}
    assert (traders[1001].accountType, traders[1002].accountType) == (E.HEDGED, E.NETTED)
    assert (traders[1001].balance, traders[1001].moneyDigits, traders[1001].traderLogin) == (1_000_000, 2, 5001)


def test_refreshing_a_token_invalidates_it_on_every_connection(rig):
    a, b = rig.connect(1001), rig.connect(1001, 1002)
    res = a.call("RefreshTokenReq", refreshToken="ref-a")
    assert res.tokenType == "bearer" and res.accessToken != "tok-a" and res.expiresIn == 2_628_000
    event = b.wait(lambda m, i: m.DESCRIPTOR.name == "ProtoOAAccountsTokenInvalidatedEvent")
    assert list(event.ctidTraderAccountIds) == [1001, 1002]
    assert error_code(b.call("TraderReq", ctidTraderAccountId=1001)) == "ACCOUNT_NOT_AUTHORIZED"
    assert error_code(b.call("AccountAuthReq", ctidTraderAccountId=1001, accessToken="tok-a")) == \
        "CH_ACCESS_TOKEN_INVALID"
    assert b.call("AccountAuthReq", ctidTraderAccountId=1001, accessToken=res.accessToken).ctidTraderAccountId == 1001
    assert error_code(a.call("RefreshTokenReq", refreshToken="ref-a")) == "CH_ACCESS_TOKEN_INVALID"


def test_an_expired_access_token_authorises_nothing_until_refreshed(rig):
    rig.server.tokens.grant("tok-a").expires_in = 20  # seconds from the server's start
    c = rig.connect(1001)
    filled(c, buy(c))
    rig.clock.advance(19)
    assert c.call("TraderReq", ctidTraderAccountId=1001).trader.ctidTraderAccountId == 1001
    rig.clock.advance(1)
    expired = answer(c, buy(c))
    assert (expired.DESCRIPTOR.name, expired.errorCode, expired.ctidTraderAccountId) == (
        "ProtoOAErrorRes", "OA_AUTH_TOKEN_EXPIRED", 1001)
    assert len(rig.server.accounts[1001].deals) == 1, "refused, not executed"
    assert error_code(c.call("TraderReq", ctidTraderAccountId=1001)) == "ACCOUNT_NOT_AUTHORIZED"
    assert error_code(c.call("AccountAuthReq", ctidTraderAccountId=1001, accessToken="tok-a")) == \
        "OA_AUTH_TOKEN_EXPIRED"
    assert error_code(c.call("GetAccountListByAccessTokenReq", accessToken="tok-a")) == "OA_AUTH_TOKEN_EXPIRED"
    res = c.call("RefreshTokenReq", refreshToken="ref-a")  # a refresh token does not expire
    assert res.DESCRIPTOR.name == "ProtoOARefreshTokenRes" and res.expiresIn == 20
    assert c.call("AccountAuthReq", ctidTraderAccountId=1001, accessToken=res.accessToken).ctidTraderAccountId == 1001
    filled(c, buy(c))
    rig.clock.advance(20)  # the new token lives 20 s from its refresh
    assert error_code(answer(c, buy(c))) == "OA_AUTH_TOKEN_EXPIRED"
    assert len(rig.server.accounts[1001].deals) == 2


def test_symbols_and_spots(rig):
    c = rig.connect(1001)
    names = {s.symbolName: s.symbolId for s in c.call("SymbolsListReq", ctidTraderAccountId=1001).symbol}
    assert names["EURUSD"] == EURUSD and len(names) == 5
    (eurusd,) = c.call("SymbolByIdReq", ctidTraderAccountId=1001, symbolId=[EURUSD]).symbol
    assert (eurusd.lotSize, eurusd.minVolume, eurusd.stepVolume, eurusd.maxVolume, eurusd.digits) == (
        LOT, LOT // 100, LOT // 100, 100 * LOT, 5)
    assert error_code(c.call("SymbolByIdReq", ctidTraderAccountId=1001, symbolId=[99])) == "SYMBOL_NOT_FOUND"
    assert c.call("SubscribeSpotsReq", ctidTraderAccountId=1001, symbolId=[EURUSD]).DESCRIPTOR.name == \
        "ProtoOASubscribeSpotsRes"
    first = c.wait(lambda m, i: m.DESCRIPTOR.name == "ProtoOASpotEvent")
    assert (first.bid, first.ask, first.timestamp) == (108500, 108512, START * 1000)
    rig.server.step_prices()
    pump(lambda: len(c.of("ProtoOASpotEvent")) == 2)
    second = c.of("ProtoOASpotEvent")[1]
    assert second.bid != first.bid and second.ask - second.bid == 12
    assert error_code(c.call("SubscribeSpotsReq", ctidTraderAccountId=1001, symbolId=[EURUSD])) == \
        "ALREADY_SUBSCRIBED"


# -- orders -------------------------------------------------------------------------------

def test_market_order_accepted_then_filled_and_seen_by_every_watcher(rig):
    trader, watcher = rig.connect(1001), rig.connect(1001)
    mid = buy(trader, clientOrderId="cb-key-1", label="cb-label", comment="copy of 42")
    fill = filled(trader, mid)
    assert kinds(trader, mid) == [ACCEPTED, FILLED]
    accepted = trader.of(EXEC, mid)[0]
    assert accepted.order.orderStatus == E.ORDER_STATUS_ACCEPTED and accepted.order.executedVolume == 0
    assert not accepted.HasField("position")
    assert (fill.order.clientOrderId, fill.order.tradeData.label, fill.order.tradeData.comment) == (
        "cb-key-1", "cb-label", "copy of 42")
    assert fill.order.orderStatus == E.ORDER_STATUS_FILLED and fill.order.executedVolume == LOT // 10
    assert fill.position.positionStatus == E.POSITION_STATUS_OPEN and fill.position.tradeData.label == "cb-label"
    assert fill.deal.filledVolume == LOT // 10 and fill.deal.executionPrice == 1.08512
    assert fill.deal.positionId == fill.position.positionId == fill.order.positionId
    assert not fill.isServerEvent and not fill.deal.HasField("closePositionDetail")
    pump(lambda: len(watcher.of(EXEC)) == 2)
    assert kinds(watcher, None) == [ACCEPTED, FILLED], "other connections get the events without a clientMsgId"


def test_partial_close_keeps_the_position_id(rig):
    c = rig.connect(1001)
    pid = filled(c, buy(c, volume=LOT // 10)).position.positionId
    part = filled(c, c.send("ClosePositionReq", ctidTraderAccountId=1001, positionId=pid, volume=LOT // 25))
    accepted = c.of(EXEC)[-2]
    assert accepted.executionType == ACCEPTED and accepted.order.closingOrder and accepted.order.positionId == pid
    assert part.position.positionId == pid and part.position.positionStatus == E.POSITION_STATUS_OPEN
    assert part.position.tradeData.volume == LOT // 10 - LOT // 25
    detail = part.deal.closePositionDetail
    assert (detail.closedVolume, detail.entryPrice, detail.moneyDigits) == (LOT // 25, 1.08512, 2)
    assert detail.grossProfit == -48 and detail.balance == 1_000_000 - 48  # 12 points x 40,000 units
    rest = filled(c, c.send("ClosePositionReq", ctidTraderAccountId=1001, positionId=pid, volume=LOT * 6 // 100))
    assert rest.position.positionStatus == E.POSITION_STATUS_CLOSED and rest.position.tradeData.volume == 0
    assert not c.call("ReconcileReq", ctidTraderAccountId=1001).position


def test_an_opposite_order_with_position_id_reduces_then_closes_that_position_and_keeps_its_key(rig):
    c, other = rig.connect(1001, 1002), rig.connect()
    other.auth(2001, token="tok-b")
    pid = filled(c, buy(c, volume=LOT // 10, label="cb-open")).position.positionId
    second = filled(c, buy(c, volume=LOT // 10)).position.positionId  # hedged: a second position, untouched
    mid = buy(c, side=E.SELL, volume=LOT // 25, positionId=pid, clientOrderId="cb-part", label="cb-part")
    part = filled(c, mid)
    assert kinds(c, mid) == [ACCEPTED, FILLED]
    accepted = c.of(EXEC, mid)[0]
    assert accepted.order.closingOrder and accepted.order.positionId == pid
    assert (part.order.clientOrderId, part.order.tradeData.label, part.order.closingOrder) == ("cb-part", "cb-part",
                                                                                              True)
    assert part.position.positionId == pid and part.position.tradeData.volume == LOT // 10 - LOT // 25
    assert part.position.tradeData.label == "cb-open", "the position keeps the label of the order that opened it"
    assert part.deal.closePositionDetail.closedVolume == LOT // 25 and part.deal.tradeSide == E.SELL
    too_much = answer(c, buy(c, side=E.SELL, volume=LOT // 10, positionId=pid))
    assert (too_much.DESCRIPTOR.name, too_much.errorCode, too_much.positionId) == (
        "ProtoOAOrderErrorEvent", "TRADING_BAD_VOLUME", pid)
    same_side = answer(c, buy(c, volume=LOT // 100, positionId=pid))
    assert (same_side.DESCRIPTOR.name, same_side.errorCode) == ("ProtoOAErrorRes", "INVALID_REQUEST")
    assert error_code(answer(c, buy(c, side=E.SELL, positionId=999_999))) == "POSITION_NOT_FOUND"
    theirs = filled(other, buy(other, ctid=2001, volume=LOT // 100)).position.positionId
    assert error_code(answer(c, buy(c, side=E.SELL, volume=LOT // 100, positionId=theirs))) == "POSITION_NOT_FOUND"
    rest = filled(c, buy(c, side=E.SELL, volume=LOT * 6 // 100, positionId=pid, clientOrderId="cb-close"))
    assert rest.position.positionStatus == E.POSITION_STATUS_CLOSED
    assert error_code(answer(c, buy(c, side=E.SELL, volume=LOT // 100, positionId=pid))) == "POSITION_NOT_FOUND"
    [held] = c.call("ReconcileReq", ctidTraderAccountId=1001).position
    assert (held.positionId, held.tradeData.volume) == (second, LOT // 10)
    orders = c.call("OrderListReq", ctidTraderAccountId=1001, fromTimestamp=START * 1000,
                    toTimestamp=START * 1000 + 60_000).order
    assert [o.clientOrderId for o in orders if o.closingOrder] == ["cb-part", "cb-close"]
    net = filled(c, buy(c, ctid=1002)).position.positionId  # netted: the same request closes its one position
    closed = filled(c, buy(c, ctid=1002, side=E.SELL, positionId=net, clientOrderId="cb-net"))
    assert closed.position.positionStatus == E.POSITION_STATUS_CLOSED and closed.order.clientOrderId == "cb-net"


def test_amend_sltp_then_a_server_side_stop_loss_reaches_a_second_connection(rig):
    trader, watcher = rig.connect(1001), rig.connect(1001)
    pid = filled(trader, buy(trader)).position.positionId
    bad = trader.call("AmendPositionSLTPReq", ctidTraderAccountId=1001, positionId=pid, stopLoss=1.09)
    assert (bad.DESCRIPTOR.name, bad.errorCode, bad.positionId) == ("ProtoOAOrderErrorEvent", "TRADING_BAD_STOPS", pid)
    amended = trader.call("AmendPositionSLTPReq", ctidTraderAccountId=1001, positionId=pid, stopLoss=1.08,
                          takeProfit=1.09)
    assert amended.executionType == REPLACED
    assert (amended.position.stopLoss, amended.position.takeProfit) == (1.08, 1.09)
    assert amended.order.orderType == E.STOP_LOSS_TAKE_PROFIT
    rig.server.set_bid("EURUSD", Decimal("1.07990"))
    close = watcher.wait(lambda m, i: m.DESCRIPTOR.name == EXEC and m.isServerEvent and m.executionType == FILLED)
    assert [i for i, m in watcher.frames if m.DESCRIPTOR.name == EXEC and m.isServerEvent] == [None, None]
    assert close.position.positionId == pid and close.position.positionStatus == E.POSITION_STATUS_CLOSED
    assert close.deal.executionPrice == 1.0799 and close.order.orderType == E.STOP_LOSS_TAKE_PROFIT
    pump(lambda: any(e.isServerEvent and e.executionType == FILLED for e in trader.of(EXEC, None)))


def test_rejections_carry_the_documented_codes(rig):
    c = rig.connect(1001, 1003)
    small = c.call("NewOrderReq", ctidTraderAccountId=1001, symbolId=EURUSD, orderType=E.MARKET,
                   tradeSide=E.BUY, volume=1000)
    assert (small.errorCode, small.description) == (
        "TRADING_BAD_VOLUME", "Order volume 10.00 is smaller than group minVolume=1000.00.")
    assert error_code(answer(c, buy(c, volume=LOT // 10 + 1))) == "TRADING_BAD_VOLUME"
    assert error_code(answer(c, buy(c, ctid=1003, volume=LOT))) == "NOT_ENOUGH_MONEY"
    assert error_code(c.call("ClosePositionReq", ctidTraderAccountId=1001, positionId=4, volume=LOT)) == \
        "POSITION_NOT_FOUND"
    absolute = c.call("NewOrderReq", ctidTraderAccountId=1001, symbolId=EURUSD, orderType=E.MARKET,
                      tradeSide=E.BUY, volume=LOT, stopLoss=1.0)
    assert absolute.DESCRIPTOR.name == "ProtoOAErrorRes" and absolute.errorCode == "INVALID_REQUEST"
    rig.server.engine.closed_markets.add("EURUSD")
    assert error_code(answer(c, buy(c))) == "MARKET_CLOSED"
    assert not c.of(EXEC), "a refused order has no execution events"


def test_partial_fills_and_relative_stops():
    r = Rig(FaultConfig(partial_fill_rate=Decimal(1)))
    try:
        c = r.connect(1001)
        mid = buy(c, volume=LOT // 10 + LOT // 100, relativeStopLoss=500)
        fill = filled(c, mid)
        assert kinds(c, mid) == [ACCEPTED, PARTIAL, FILLED]
        partial = c.of(EXEC, mid)[1]
        assert partial.deal.dealStatus == E.PARTIALLY_FILLED and partial.deal.filledVolume == LOT // 20
        assert partial.order.executedVolume == LOT // 20
        assert fill.deal.filledVolume == LOT // 20 + LOT // 100 and fill.order.executedVolume == LOT * 11 // 100
        assert fill.position.stopLoss == 1.08012
    finally:
        r.close()


def test_a_netted_account_adds_reduces_and_reverses_one_position(rig):
    c = rig.connect(1002)
    pid = filled(c, buy(c, ctid=1002)).position.positionId
    added = filled(c, buy(c, ctid=1002))
    assert added.position.positionId == pid and added.position.tradeData.volume == LOT // 5
    reversed_ = filled(c, buy(c, ctid=1002, side=E.SELL, volume=LOT // 2))
    assert reversed_.position.positionId == pid and reversed_.position.tradeData.tradeSide == E.SELL
    assert reversed_.position.tradeData.volume == LOT * 3 // 10
    assert reversed_.deal.closePositionDetail.closedVolume == LOT // 5
    (position,) = c.call("ReconcileReq", ctidTraderAccountId=1002).position
    assert (position.positionId, position.tradeData.volume) == (pid, LOT * 3 // 10)


def test_deal_list_pages_by_time_with_has_more(rig):
    c = rig.connect(1001)
    for _ in range(5):
        filled(c, buy(c))
        rig.clock.advance(1)
    deals, frm = [], START * 1000
    pages = []
    while True:
        res = c.call("DealListReq", ctidTraderAccountId=1001, fromTimestamp=frm, toTimestamp=frm + 3_600_000,
                     maxRows=2)
        pages.append((len(res.deal), res.hasMore))
        deals += res.deal
        if not res.hasMore:
            break
        frm = res.deal[-1].executionTimestamp + 1
    assert pages == [(2, True), (2, True), (1, False)]
    assert [d.dealId for d in deals] == sorted({d.dealId for d in deals}) and len(deals) == 5
    assert error_code(c.call("DealListReq", ctidTraderAccountId=1001, fromTimestamp=0,
                             toTimestamp=8 * 24 * 3_600_000)) == "INCORRECT_BOUNDARIES"


def test_rate_limits_per_connection(rig):
    c, other = rig.connect(), rig.connect()
    c.auth(1001)
    rig.clock.advance(1)
    mids = [c.send("VersionReq") for _ in range(55)]
    pump(lambda: all(any(i == mid for i, _ in c.frames) for mid in mids))
    answers = [m.DESCRIPTOR.name for i, m in c.frames if i in mids]
    assert answers.count("ProtoOAVersionRes") == 50
    refused = [m for i, m in c.frames if i in mids and m.DESCRIPTOR.name == "ProtoOAErrorRes"]
    assert len(refused) == 5 and {m.errorCode for m in refused} == {"REQUEST_FREQUENCY_EXCEEDED"}
    other.auth()
    assert other.call("VersionReq").version, "the limit is per connection"
    rig.clock.advance(1)
    assert c.call("VersionReq").version
    hist = [c.send("DealListReq", ctidTraderAccountId=1001, fromTimestamp=0, toTimestamp=1) for _ in range(6)]
    pump(lambda: all(any(i == mid for i, _ in c.frames) for mid in hist))
    assert [m.DESCRIPTOR.name for i, m in c.frames if i in hist].count("ProtoOAErrorRes") == 1


# -- faults and framing --------------------------------------------------------------------

def test_garbage_and_oversized_frames_reset_the_connection_and_others_go_on(rig):
    c = rig.connect(1001)
    raw = rig.raw()  # verifies the server's certificate against the local CA, for "localhost"
    raw.sendString(b"\xff" * 20)  # not a ProtoMessage
    pump(lambda: raw.lost)
    (wrapper, error), = raw.frames
    assert wrapper.payloadType == 50 and error.errorCode == "INVALID_REQUEST"
    big = rig.raw()
    big.transport.write(struct.pack(">I", 2 * rig.server.max_frame) + b"\x00" * 100)
    pump(lambda: big.lost)
    assert [m.errorCode for _, m in big.frames] == ["FRAME_TOO_LONG"]
    odd = rig.raw()
    odd.sendString(common.ProtoMessage(payloadType=9999, clientMsgId="x").SerializeToString())
    odd.sendString(common.ProtoMessage(payloadType=2106, payload=b"", clientMsgId="y").SerializeToString())
    pump(lambda: len(odd.frames) == 2)
    assert [(w.clientMsgId, m.errorCode) for w, m in odd.frames] == [("x", "UNSUPPORTED_MESSAGE"),
                                                                      ("y", "INVALID_REQUEST")]
    settle()
    assert not odd.lost, "a well-framed bad request leaves the connection up"
    assert filled(c, buy(c)).order.executedVolume == LOT // 10


def test_a_fill_lost_after_execution_is_still_in_the_deal_list_and_reconcile():
    r = Rig(FaultConfig(lose_fill_rate=Decimal(1)))
    try:
        trader, watcher = r.connect(1001), r.connect(1001)
        mid = buy(trader, clientOrderId="cb-lost")
        pump(lambda: len(watcher.of(EXEC)) == 2)
        settle()
        assert kinds(trader, mid) == [ACCEPTED], "the ORDER_FILLED never reached the requester"
        (deal,) = trader.call("DealListReq", ctidTraderAccountId=1001, fromTimestamp=START * 1000 - 1000,
                              toTimestamp=START * 1000).deal
        (position,) = trader.call("ReconcileReq", ctidTraderAccountId=1001).position
        assert deal.positionId == position.positionId and deal.filledVolume == LOT // 10
        assert watcher.of(EXEC)[1].order.clientOrderId == "cb-lost"
    finally:
        r.close()


def test_delayed_replies_keep_their_order_and_a_disconnect_fault_drops_the_connection():
    r = Rig(FaultConfig(reply_delay_ms=500))
    try:
        c = r.connect()
        mid = c.send("ApplicationAuthReq", clientId="app-1", clientSecret="secret-1")
        settle()
        assert not any(i == mid for i, _ in c.frames)
        r.clock.advance(0.5)
        c.wait(lambda m, i: i == mid)
        r.server.faults.config = FaultConfig(disconnect_rate=Decimal(1))
        c.send("VersionReq")
        pump(lambda: c.lost)
    finally:
        r.close()


def test_heartbeats_are_echoed_once_per_interval_and_an_idle_connection_is_closed(rig):
    raw = rig.raw()
    beat = encode(common.ProtoHeartbeatEvent())
    raw.sendString(beat)
    pump(lambda: raw.frames)
    raw.sendString(beat)
    raw.sendString(encode(oa.ProtoOAVersionReq(), "v"))
    pump(lambda: len(raw.frames) == 2)
    assert [w.payloadType for w, _ in raw.frames] == [51, 2142]  # one heartbeat echoed, then ProtoOAErrorRes (not authenticated)
    rig.clock.advance(rig.server.idle_timeout_s)
    pump(lambda: raw.lost)
    assert raw.frames[-1][1].DESCRIPTOR.name == "ProtoOAClientDisconnectEvent"


# -- configuration and command line --------------------------------------------------------

def test_the_example_credentials_file_loads_and_mistakes_are_one_line():
    creds = Credentials.load(ROOT / "config" / "ctrader-sim.toml")
    assert creds.application.client_id and len(creds.accounts) >= 2
    with pytest.raises(CredentialsError, match="unknown key 'colour'"):
        Credentials.parse({"application": {"client_id": "a", "client_secret": "b", "colour": 1},
                           "tokens": [], "accounts": []})
    with pytest.raises(CredentialsError, match="token 'x' is not in"):
        Credentials.parse({"application": {"client_id": "a", "client_secret": "b"},
                           "tokens": [{"access_token": "t", "refresh_token": "r"}],
                           "accounts": [{"ctid_trader_account_id": 1, "trader_login": 1, "token": "x",
                                         "balance": 1}]})


def test_bridge_sim_ctrader_prints_where_it_listens_and_refuses_a_bad_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[application]\nclient_id = 'a'\n")
    out = subprocess.run([*BRIDGE, "sim", "ctrader", "--port", "0",
                          "--accounts", str(bad)], capture_output=True, text=True, cwd=ROOT, timeout=30)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "bridge: error:" in out.stderr
    proc = subprocess.Popen([*BRIDGE, "sim", "ctrader", "--port", "0",
                             "--accounts", str(ROOT / "config" / "ctrader-sim.toml"), "--seed", "3"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        line = proc.stdout.readline()
        assert line.startswith("listening on ssl://127.0.0.1:"), line
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_a_stop_out_closes_the_account_with_server_events(rig):
    c = rig.connect(1001)
    pid = filled(c, buy(c, volume=9 * LOT)).position.positionId  # margin about 9,765 of 10,000 USD
    rig.server.set_bid("EURUSD", Decimal("1.07800"))  # equity falls below half the used margin
    out = c.wait(lambda m, i: m.DESCRIPTOR.name == EXEC and m.isServerEvent and m.executionType == E.ORDER_FILLED)
    assert out.order.isStopOut and out.position.positionId == pid
    assert out.position.positionStatus == E.POSITION_STATUS_CLOSED
    assert not c.call("ReconcileReq", ctidTraderAccountId=1001).position


def test_order_list_order_details_unrealized_pnl_and_deposits(rig):
    c = rig.connect(1001)
    mid = buy(c, clientOrderId="key-1", label="key-1")
    fill = filled(c, mid)
    now = START * 1000
    res = c.call("OrderListReq", ctidTraderAccountId=1001, fromTimestamp=now - 1000, toTimestamp=now + 1000)
    [order] = res.order
    assert (order.orderId, order.clientOrderId, order.orderStatus, res.hasMore) == (
        fill.order.orderId, "key-1", E.ORDER_STATUS_FILLED, False)
    assert error_code(c.call("OrderListReq", ctidTraderAccountId=1001, fromTimestamp=now,
                             toTimestamp=now - 1)) == "INCORRECT_BOUNDARIES"
    details = c.call("OrderDetailsReq", ctidTraderAccountId=1001, orderId=order.orderId)
    assert details.order.executedVolume == LOT // 10 and [d.dealId for d in details.deal] == [fill.deal.dealId]
    assert error_code(c.call("OrderDetailsReq", ctidTraderAccountId=1001, orderId=9)) == "ORDER_NOT_FOUND"
    pnl = c.call("GetPositionUnrealizedPnLReq", ctidTraderAccountId=1001)
    [p] = pnl.positionUnrealizedPnL
    assert p.positionId == fill.position.positionId and pnl.moneyDigits == 2 and p.grossUnrealizedPnL < 0  # spread
    rig.server.deposit(1001, Decimal("100"))
    event = c.wait(lambda m, i: m.DESCRIPTOR.name == EXEC and m.executionType == E.DEPOSIT_WITHDRAW)
    op = event.depositWithdraw
    assert (op.operationType, op.delta, op.balance, op.moneyDigits) == (E.BALANCE_DEPOSIT, 10_000, 1_010_000, 2)
    assert op.balanceHistoryId > fill.deal.dealId
