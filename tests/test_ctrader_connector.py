"""The cTrader connector (connectors/ctrader/) against the local cTrader server over real TLS on 127.0.0.1.

No mocks: the connector's own protocol and sessions talk to ``CTraderServer`` through the
global reactor; one ``task.Clock`` is both sides' time (rig: tests/ctrader_venue_rig.py).
The venue contract (tests/venue_contract.py) runs against it too, in test_venue_contract.py.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from allocation.leg import Action
from bridge.domain.deal import DealKind, Side
from connectors.ctrader.ratelimit import Budget
from connectors.ctrader.server import FaultConfig, local_identity
from connectors.ctrader.server.ratelimit import RateLimiter
from connectors.ctrader.tls import client_options
from connectors.interface import AmbiguousOutcome, OrderRequest, OrderStatus, VenueUnavailable, idempotency_key
from tests.ctrader_venue_rig import FOLLOWERS, HEDGER, MASTER, NETTER, CTraderHarness

LOT = 10_000_000
EURUSD = "EURUSD"


@pytest.fixture
def h():
    harness = CTraderHarness()
    yield harness
    harness.close()


def key(name: str, follower: str = "f", leg: int = 0) -> str:
    return idempotency_key(f"test:{name}", follower, leg)


def open_order(h, name, ctid=HEDGER, side=Side.BUY, volume=LOT // 10, **kw) -> OrderRequest:
    return OrderRequest(key(name, str(ctid)), h.login(ctid), Action.OPEN, EURUSD, side, volume, **kw)


def trades(h, ctid) -> int:
    return sum(1 for d in h.server.accounts[ctid].deals)


def watch(h, ctid=MASTER) -> list:
    seen: list = []
    h.result(h.venue.watch_deals(h.login(ctid), seen.append))
    return seen


def test_master_deals_open_partial_close_sltp_close_and_balance(h):
    seen = watch(h)
    position = h.manual(h.master, EURUSD, Side.BUY, "1.00")
    h.manual_close(h.master, position, "0.30")
    conn = h.trader()
    bid = h.server.market.quote(EURUSD).bid
    mid = conn.send("AmendPositionSLTPReq", ctidTraderAccountId=MASTER, positionId=position.value,
                    stopLoss=float(bid - Decimal("0.01")))
    conn.wait(lambda m, i: i == mid)
    h.server.deposit(MASTER, Decimal("250"))
    h.manual_close(h.master, position)
    h.pump(lambda: len(seen) >= 5)
    assert [d.kind for d in seen] == [DealKind.OPEN, DealKind.PARTIAL_CLOSE, DealKind.SLTP, DealKind.BALANCE,
                                      DealKind.CLOSE]
    opened, part, sltp, balance, close = seen
    assert (opened.volume, opened.side, opened.position_volume) == (LOT, Side.BUY, 0)
    # a balance operation's id is in its own range: its sequence is not the dealIds', and the journal is
    # unique per account and id, so a raw balanceHistoryId equal to a later dealId would lose that trade
    trade_ids = {d.deal_id.value for d in (opened, part, close)}
    assert balance.deal_id.value > 2 ** 63 > max(trade_ids) and balance.deal_id.value < sltp.deal_id.value
    assert (part.volume, part.position_volume, part.side) == (3 * LOT // 10, LOT, Side.BUY)
    assert sltp.sl == (bid - Decimal("0.01")) and sltp.position_volume == 7 * LOT // 10
    assert (close.volume, close.position_volume) == (7 * LOT // 10, 7 * LOT // 10)
    assert all(d.position_id == position for d in (opened, part, sltp, close))
    assert opened.price is not None and opened.symbol == EURUSD


def test_netted_add_and_reversal_and_a_server_side_stop_close(h):
    seen = watch(h, NETTER)
    position = h.manual(h.netter, EURUSD, Side.BUY, "1.00")
    h.manual(h.netter, EURUSD, Side.BUY, "0.50")
    h.manual(h.netter, EURUSD, Side.SELL, "2.00")  # 1.50 long -> 0.50 short
    h.pump(lambda: len(seen) >= 3)
    assert [d.kind for d in seen] == [DealKind.OPEN, DealKind.ADD, DealKind.REVERSAL]
    assert (seen[1].volume, seen[1].position_volume) == (LOT // 2, LOT)
    assert (seen[2].side, seen[2].volume, seen[2].position_volume) == (Side.SELL, LOT // 2, 3 * LOT // 2)
    ask = h.server.market.quote(EURUSD).ask
    done = h.result(h.venue.execute(OrderRequest(key("tp"), h.netter, Action.MODIFY, EURUSD, Side.SELL, 0, position,
                                                 tp=ask - Decimal("0.00100"))))
    assert done.status is OrderStatus.FILLED
    h.server.set_bid(EURUSD, ask - Decimal("0.00500"))  # the take-profit triggers on the server
    h.pump(lambda: len(seen) >= 5)
    assert [d.kind for d in seen[3:]] == [DealKind.SLTP, DealKind.CLOSE]
    assert seen[4].volume == LOT // 2 and seen[4].side is Side.SELL


def test_follower_orders_and_refusals_with_reasons(h):
    filled = h.result(h.venue.execute(open_order(h, "a")))
    assert filled.status is OrderStatus.FILLED and filled.volume == LOT // 10 and filled.deal_id is not None
    [held] = h.result(h.venue.positions(h.hedger))
    assert held.key == filled.key and held.position_id == filled.position_id
    poor = h.result(h.venue.execute(open_order(h, "rich", ctid=FOLLOWERS[0], volume=100 * LOT)))
    assert poor.status is OrderStatus.REJECTED and poor.reason == "no-money"
    h.server.engine.closed_markets.add(EURUSD)
    shut = h.result(h.venue.execute(open_order(h, "closed")))
    assert shut.status is OrderStatus.REJECTED and shut.reason == "market-closed"
    h.server.engine.closed_markets.clear()
    bad = h.result(h.venue.execute(OrderRequest(key("stops"), h.hedger, Action.MODIFY, EURUSD, Side.BUY, 0,
                                                filled.position_id, sl=filled.price + 1)))
    assert bad.status is OrderStatus.REJECTED and bad.reason == "invalid-stops"
    info = h.result(h.venue.account_info(h.hedger))
    assert info.currency == "USD" and info.hedging and info.equity != info.balance  # the open position's P/L


def test_a_fill_lost_after_execution_is_found_by_lookup_and_not_doubled():
    h = CTraderHarness(faults=FaultConfig(lose_fill_rate=Decimal(1)), timeout_s=2.0)
    try:
        order = open_order(h, "lost")
        d = h.venue.execute(order)
        h.pump(lambda: trades(h, HEDGER) == 1)  # executed on the server, the fill never comes back
        h.tick(2.5, until=lambda: d.called)
        with pytest.raises(AmbiguousOutcome):
            h.result(d)
        found = h.result(h.venue.lookup(h.hedger, order.key))
        assert found is not None and found.status is OrderStatus.FILLED and found.volume == order.volume
        assert found.deal_id is not None and found.price is not None
        again = h.result(h.venue.execute(order))  # the executor would not resend; even so, no second trade
        assert again.position_id == found.position_id and trades(h, HEDGER) == 1
    finally:
        h.close()


@pytest.mark.parametrize("action", [Action.CLOSE, Action.PARTIAL_CLOSE])
def test_a_close_whose_fill_is_lost_is_found_by_key_after_a_restart_and_not_repeated(action):
    h = CTraderHarness(timeout_s=2.0)
    try:
        opened = h.result(h.venue.execute(open_order(h, "to-close")))
        h.server.faults.config = FaultConfig(lose_fill_rate=Decimal(1))
        volume = LOT // 10 if action is Action.CLOSE else LOT // 25
        close = OrderRequest(key(f"close-{action}"), h.hedger, action, EURUSD, Side.BUY, volume, opened.position_id)
        d = h.venue.execute(close)
        h.pump(lambda: trades(h, HEDGER) == 2)  # the close executed; its fill never comes back
        h.tick(2.5, until=lambda: d.called)
        with pytest.raises(AmbiguousOutcome):
            h.result(d)
        h.server.faults.config = FaultConfig()
        h.restart()  # a brand-new venue: it never sent this key
        assert not h.venue.orders.sent and not h.venue.orders.filled
        found = h.result(h.venue.lookup(h.hedger, close.key))
        assert found is not None and found.status is OrderStatus.FILLED and found.key == close.key
        assert (found.volume, found.position_id) == (volume, opened.position_id)
        assert found.deal_id is not None and found.order_id is not None and found.price is not None
        assert h.result(h.venue.execute(close)) == found  # the executor would not resend; even so, no new close
        assert trades(h, HEDGER) == 2
        left = h.server.accounts[HEDGER].book.position(opened.position_id)
        assert (left.volume if left else 0) == LOT // 10 - volume
    finally:
        h.close()


def _resolve(h, order, outcome):
    """What bridge/executor.py does with a first outcome: on an unknown one, look the key up, and
    resend only when the venue has no record of it."""
    for _ in range(20):
        if not isinstance(outcome, Exception):
            return outcome
        while True:
            try:
                found = h.result(h.venue.lookup(order.account, order.key))
                break
            except VenueUnavailable:
                h.tick(1.0)
        if found is not None:
            return found
        outcome = h.result(h.venue.execute(order).addErrback(lambda f: f.value))
    raise AssertionError(f"{order.key} never resolved")


def test_reconnect_mid_fan_out_loses_nothing_and_doubles_nothing(h):
    orders = [open_order(h, f"fan-{i}", ctid=FOLLOWERS[i % len(FOLLOWERS)]) for i in range(30)]
    pending = [h.venue.execute(o) for o in orders[:15]]
    h.pump(lambda: sum(trades(h, f) for f in FOLLOWERS) >= 5)
    h.server.drop_connections()  # mid fan-out: some executed, some in flight, some not sent
    pending += [h.venue.execute(o) for o in orders[15:]]  # sent while reconnecting: VenueUnavailable
    outcomes = [h.result(p.addErrback(lambda f: f.value)) for p in pending]
    assert any(isinstance(o, (AmbiguousOutcome, VenueUnavailable)) for o in outcomes)
    h.tick(10.0, until=lambda: all(h.venue.streams[f].live for f in FOLLOWERS))
    results = [_resolve(h, o, first) for o, first in zip(orders, outcomes)]
    assert all(r.status is OrderStatus.FILLED for r in results)
    assert sum(trades(h, f) for f in FOLLOWERS) == 30  # each order executed exactly once
    held = [p for f in FOLLOWERS for p in h.result(h.venue.positions(h.login(f)))]
    assert sorted(p.key for p in held) == sorted(o.key for o in orders)


def test_a_hundred_orders_at_once_stay_under_the_rate_limit_and_use_the_whole_pool():
    h = CTraderHarness(pool_size=4)
    try:
        before = [s._proto.sent for s in h.venue.pool.sessions]
        orders = [open_order(h, f"burst-{i}", ctid=FOLLOWERS[i % len(FOLLOWERS)], volume=LOT // 100)
                  for i in range(100)]
        pending = [h.venue.execute(o) for o in orders]
        h.tick(3.0, until=lambda: all(p.called for p in pending))
        results = [h.result(p) for p in pending]
        errors = [r for r in results if r.status is not OrderStatus.FILLED]
        assert not errors, errors[:3]
        assert sum(trades(h, f) for f in FOLLOWERS) == 100
        sent = [s._proto.sent - b for s, b in zip(h.venue.pool.sessions, before)]
        assert sum(sent) == 100 and sum(1 for n in sent if n) == 4  # spread over every connection
    finally:
        h.close()


class Greedy(CTraderHarness):
    """A connector whose token bucket allows far above the server's 50 requests per second."""

    def connection_options(self):
        return {"live": Budget(500.0, 500)}


def test_requests_refused_as_too_frequent_are_sent_again_and_execute_exactly_once():
    h = Greedy(pool_size=1)
    try:
        session = h.venue.pool.sessions[0]
        orders = [open_order(h, f"greedy-{i}", ctid=FOLLOWERS[i % len(FOLLOWERS)], volume=LOT // 100)
                  for i in range(100)]
        pending = [h.venue.execute(o) for o in orders]
        h.tick(12.0, until=lambda: all(p.called for p in pending))
        results = [h.result(p) for p in pending]
        assert session.busy_refusals >= 50  # the server's own limiter refused the second half at least once
        assert [r.status for r in results] == [OrderStatus.FILLED] * 100
        assert sum(trades(h, f) for f in FOLLOWERS) == 100
        keys = [o.client_order_id for f in FOLLOWERS for o in h.server.accounts[f].orders.values()]
        assert sorted(keys) == sorted(o.key for o in orders)  # each order reached the venue once
    finally:
        h.close()


def test_a_request_refused_as_too_frequent_every_time_is_not_executed_and_fails_as_unavailable(h):
    session = h.venue.session_for(HEDGER)
    for s in h.server.sessions:
        s.limiter = RateLimiter(per_second=0, historical_per_second=0)  # this server refuses every request
    order = open_order(h, "never")
    d = h.venue.execute(order)
    h.tick(15.0, until=lambda: d.called)
    with pytest.raises(VenueUnavailable, match="REQUEST_FREQUENCY_EXCEEDED"):
        h.result(d)
    assert session.busy_refusals == 1 + session.busy_retries and trades(h, HEDGER) == 0
    for s in h.server.sessions:
        s.limiter = RateLimiter()
    assert h.result(h.venue.execute(order)).status is OrderStatus.FILLED and trades(h, HEDGER) == 1


def test_account_disconnect_then_token_refresh_reauthorise_and_lose_no_deal(h):
    seen = watch(h)
    resyncs = h.venue.resyncs
    h.server.disconnect_account(MASTER)  # AccountDisconnectEvent: authorise it again, backfill, reconcile
    position = h.manual(h.master, EURUSD, Side.BUY, "0.10")
    h.tick(1.0, until=lambda: h.venue.resyncs > resyncs and len(seen) == 1)
    assert seen[0].kind is DealKind.OPEN and seen[0].position_id == position
    token = h.venue.tokens.access(MASTER)
    new = h.result(h.venue.tokens.refresh(MASTER))  # AccountsTokenInvalidatedEvent on every connection
    assert new != token
    h.tick(1.0, until=lambda: all(s.ready == set(s.accounts) and set(s.authorised_with.values()) == {new}
                                  for s in h.venue.pool.sessions))
    assert h.result(h.venue.execute(open_order(h, "after-refresh"))).status is OrderStatus.FILLED
    assert h.result(h.venue.account_info(h.master)).login == h.master
    assert h.venue.tokens.refreshes == 1


def _all_ready(h) -> bool:
    return all(s.ready == set(s.accounts) for s in h.venue.pool.sessions)


def test_a_short_lived_token_is_refreshed_ahead_of_its_expiry_and_trading_goes_on():
    h = CTraderHarness(token_lifetime_s=60)  # the venue is told when tok-a expires
    try:
        results = []
        for i in range(8):  # 160 s: the token would have expired twice over
            h.pump(lambda: _all_ready(h))
            results.append(h.result(h.venue.execute(open_order(h, f"short-{i}", volume=LOT // 100))))
            h.tick(20.0)
        assert [r.status for r in results] == [OrderStatus.FILLED] * 8 and trades(h, HEDGER) == 8
        assert h.venue.tokens.refreshes >= 3  # every 48 s: ahead of each expiry by a fifth of its life
        assert all(s.token_refusals == 0 for s in h.venue.pool.sessions)  # never refused as expired
    finally:
        h.close()


def test_an_unannounced_expiry_is_refreshed_when_refused_and_the_request_sent_again():
    h = CTraderHarness(token_lifetime_s=60, known_expiry=False)
    try:
        assert h.result(h.venue.execute(open_order(h, "before"))).status is OrderStatus.FILLED
        h.tick(61.0)  # tok-a has expired on the server; the connector does not know
        after = h.result(h.venue.execute(open_order(h, "after")))
        assert after.status is OrderStatus.FILLED and trades(h, HEDGER) == 2
        assert sum(s.token_refusals for s in h.venue.pool.sessions) == 1 and h.venue.tokens.refreshes == 1
        h.tick(61.0)  # the refresh told the new token's lifetime: refreshed ahead of it this time
        h.pump(lambda: _all_ready(h))
        assert h.result(h.venue.execute(open_order(h, "later"))).status is OrderStatus.FILLED
        assert sum(s.token_refusals for s in h.venue.pool.sessions) == 1 and h.venue.tokens.refreshes == 2
    finally:
        h.close()


def test_a_symbol_changed_event_reloads_the_spec_the_server_now_enforces(h):
    def spec():
        return h.result(h.venue.symbol_spec(h.hedger, EURUSD))
    opened = h.result(h.venue.execute(open_order(h, "before-change", volume=LOT // 10)))
    assert (spec().min_volume, spec().step_volume) == (LOT // 100, LOT // 100)
    h.server.publish(h.server.engine.change_symbol(EURUSD, min_volume=LOT // 10, step_volume=LOT // 20))
    h.pump(lambda: spec().min_volume == LOT // 10)
    assert (spec().step_volume, spec().max_volume) == (LOT // 20, 100 * LOT)
    small = h.result(h.venue.execute(open_order(h, "too-small", volume=LOT // 100)))
    assert small.status is OrderStatus.REJECTED and small.reason == "invalid-volume"
    off_step = h.result(h.venue.execute(OrderRequest(key("off-step"), h.hedger, Action.PARTIAL_CLOSE, EURUSD,
                                                     Side.BUY, LOT // 100, opened.position_id)))
    assert off_step.status is OrderStatus.REJECTED and off_step.reason == "invalid-volume"
    assert h.result(h.venue.execute(open_order(h, "big-enough", volume=LOT // 10))).status is OrderStatus.FILLED


def test_deals_traded_while_disconnected_reach_the_watcher_once_in_order(h):
    seen = watch(h)
    first = h.manual(h.master, EURUSD, Side.BUY, "1.00")
    h.pump(lambda: len(seen) == 1)
    for s in h.venue.pool.sessions:
        s.drop("test")
    h.manual_close(h.master, first, "0.40")
    h.manual(h.master, EURUSD, Side.SELL, "0.20")
    h.manual_close(h.master, first)
    h.tick(10.0, until=lambda: len(seen) >= 4)
    h.tick(1.0)
    assert [d.kind for d in seen] == [DealKind.OPEN, DealKind.PARTIAL_CLOSE, DealKind.OPEN, DealKind.CLOSE]
    ids = [d.deal_id.value for d in seen]
    assert ids == sorted(set(ids))
    assert (seen[1].position_volume, seen[3].position_volume) == (LOT, 6 * LOT // 10)


@pytest.mark.parametrize("junk", [b"\x00\x00\x00\x05\xff\xff\xff\xff\xff", b"\x00\x10\x00\x00" + b"x" * 64])
def test_garbage_and_oversized_frames_reset_the_connection_cleanly(junk):
    class Small(CTraderHarness):
        def connection_options(self):
            return {"max_frame": 65_536}
    h = Small(pool_size=1)
    try:
        seen = watch(h)
        connects = h.venue.pool.sessions[0].connects
        for session in list(h.server.sessions):
            session.connection.transport.write(junk)
        h.pump(lambda: h.venue.pool.sessions[0].protocol is None)
        assert "frame" in (h.venue.pool.sessions[0].last_error or "")
        h.manual(h.master, EURUSD, Side.BUY, "0.10")  # traded while the connector is away
        h.tick(10.0, until=lambda: h.venue.pool.sessions[0].connects > connects and len(seen) == 1)
        assert seen[0].kind is DealKind.OPEN
        assert h.result(h.venue.execute(open_order(h, "after-junk"))).status is OrderStatus.FILLED
    finally:
        h.close()


@pytest.mark.parametrize("wrong", ["host name", "CA"])
def test_a_server_that_does_not_verify_is_refused_nothing_is_sent_and_it_is_retried(h, wrong, caplog):
    ca = h.server.identity.ca_pem
    tls = (client_options("127.0.0.2.example", ca) if wrong == "host name"
           else client_options("localhost", local_identity().ca_pem))
    venue = h.new_venue(tls=tls)
    started = venue.start()
    try:
        h.tick(4.0, until=lambda: all(s.failures >= 3 for s in venue.pool.sessions))
        assert not started.called
        for s in venue.pool.sessions:
            assert s.connects == 0 and s.protocol is None and s.factory.protocol.written == 0
            assert s.last_error.startswith("TLS handshake failed")
            lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith(f"ctrader {s.name}: ")]
            assert len(lines) == s.failures and all("\n" not in line for line in lines)
            assert all("TLS handshake failed" in line and "retrying in" in line for line in lines)
        with pytest.raises(VenueUnavailable):
            h.result(venue.execute(open_order(h, "unverified")))
        with pytest.raises(VenueUnavailable):
            h.result(venue.lookup(h.hedger, key("unverified", str(HEDGER))))
        assert trades(h, HEDGER) == 0
        assert all(s.attempt == s.failures for s in venue.pool.sessions)  # each failure backs off further
    finally:
        venue.stop()


def test_the_right_ca_and_host_name_connect_and_trade(h):
    venue = h.new_venue(tls=client_options("localhost", h.server.identity.ca_pem))
    try:
        h.result(venue.start())
        assert all(s.connects == 1 and s.failures == 0 for s in venue.pool.sessions)
        assert h.result(venue.execute(open_order(h, "verified"))).status is OrderStatus.FILLED
    finally:
        venue.stop()


def test_max_slippage_is_a_market_range_order_cancelled_as_a_requote(h):
    ask = h.server.market.quote(EURUSD).ask
    far = h.result(h.venue.execute(open_order(h, "far", reference_price=ask - Decimal("0.00050"),
                                              max_slippage_points=10)))
    assert far.status is OrderStatus.REJECTED and far.reason == "requote" and trades(h, HEDGER) == 0
    near = h.result(h.venue.execute(open_order(h, "near", reference_price=ask - Decimal("0.00005"),
                                               max_slippage_points=10)))
    assert near.status is OrderStatus.FILLED and trades(h, HEDGER) == 1


def test_account_figures_come_from_the_book_and_follow_balance_events(h):
    account = h.login(HEDGER)
    first = h.result(h.venue.account_info(account))
    sent = h.venue.session_for(HEDGER)._proto.sent
    again = h.result(h.venue.account_info(account))
    assert again == first and h.venue.session_for(HEDGER)._proto.sent == sent, "answered from the book"
    h.server.deposit(HEDGER, Decimal("250.50"))
    h.pump(lambda: h.result(h.venue.account_info(account)).balance == first.balance + Decimal("250.50"))
    # a close moves the balance by its profit, as the close's event says (no request)
    filled = h.result(h.venue.execute(open_order(h, "book-open")))
    h.server.set_bid(EURUSD, h.server.market.quote(EURUSD).bid + Decimal("0.00200"))
    h.result(h.venue.execute(OrderRequest(key("book-close"), account, Action.CLOSE, EURUSD, Side.SELL, LOT // 10,
                                          position_id=filled.position_id)))
    server_balance = h.server.accounts[HEDGER].book.balance
    h.pump(lambda: h.result(h.venue.account_info(account)).balance == server_balance)
    assert server_balance > first.balance + Decimal("250.50"), "the close made a profit"
    # figures older than figures_refresh_s are asked again, in the background: the caller is answered at once
    h.tick(h.venue.figures.refresh_s + 0.1)
    before = h.venue.session_for(HEDGER)._proto.sent
    d = h.venue.account_info(account)
    assert d.called, "answered from the book while the refresh is under way"
    h.tick(2.0, until=lambda: h.venue.session_for(HEDGER)._proto.sent >= before + 2
           and HEDGER not in h.venue.figures.asking)
    assert h.result(h.venue.account_info(account)).equity == h.server.accounts[HEDGER].book.equity()


def test_orders_leave_ahead_of_queued_queries():
    h = CTraderHarness(pool_size=1)
    try:
        # fill the connection's bucket and queue with account queries, then send one order
        queries = [h.venue.positions(h.login(f)) for f in FOLLOWERS for _ in range(6)]
        proto = h.venue.session_for(FOLLOWERS[0])._proto
        assert len(proto.queues[False]) > 10, "queries are waiting for tokens"
        queued, sent = len(proto.queues[False]), proto.sent
        order = h.venue.execute(open_order(h, "priority", ctid=FOLLOWERS[0], volume=LOT // 100))
        # the order leaves at once on a token the queries may not take; they still wait
        assert proto.sent == sent + 1 and len(proto.queues[False]) == queued
        h.tick(0.1, until=lambda: order.called)
        assert order.called and h.result(order).status is OrderStatus.FILLED
        assert sum(1 for q in queries if q.called) < len(queries), "the order went before queries queued earlier"
        h.tick(3.0, until=lambda: all(q.called for q in queries))
    finally:
        h.close()


def test_a_prefetching_venue_has_every_accounts_figures_before_the_first_deal(h):
    venue = h.new_venue(prefetch_figures=True)
    try:
        h.result(venue.start())
        h.tick(3.0, until=lambda: len(venue.figures.known) == len(venue.streams))
        sent = sum(s._proto.sent for s in venue.pool.sessions)
        infos = [h.result(venue.account_info(h.login(f))) for f in FOLLOWERS]
        assert sum(s._proto.sent for s in venue.pool.sessions) == sent, "answered from the book, no request"
        assert [i.balance for i in infos] == [h.server.accounts[f].book.balance for f in FOLLOWERS]
    finally:
        venue.stop()
