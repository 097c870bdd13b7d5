"""The simulated venue: orders, netting/hedging deals, the deal feed, idempotency, faults, determinism."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import datetime, timezone
from decimal import Decimal

import pytest
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from allocation.leg import Action
from bridge.domain.deal import DealKind, MasterDeal, Side
from bridge.domain.ids import Login, Platform, PositionId, ServerId
from connectors.interface import (
    AmbiguousOutcome,
    OrderRequest,
    OrderStatus,
    Venue,
    VenueUnavailable,
    idempotency_key,
)
from connectors.sim import SimConfig, SimRejected, SimVenue
from tests.sim_builders import HEDGER, LOT, MASTER, NETTER, make_venue



# -- helpers -------------------------------------------------------------------

def outcome(d):
    """What a Deferred fired with (a Failure for an error, then handled); fails the test if it has not fired.

    Call it once per Deferred: it consumes the result."""
    box = []
    d.addBoth(box.append)
    assert box, "the Deferred has not fired"
    return box[0]


def result_of(d):
    value = outcome(d)
    if isinstance(value, Failure):
        value.raiseException()
    return value


def failure_of(d, kind):
    value = outcome(d)
    assert isinstance(value, Failure), f"expected {kind.__name__}, got {value!r}"
    assert value.check(kind), value
    return value.value




def order(key: str, account=HEDGER, action=Action.OPEN, symbol="EURUSD", side=Side.BUY, volume=LOT,
          position_id=None, **kw) -> OrderRequest:
    return OrderRequest(key, account, action, symbol, side, volume, position_id, **kw)


def kinds(deals):
    return [(d.kind, d.side, d.volume, d.position_volume) for d in deals]


# -- the interface ----------------------------------------------------------------

def test_sim_venue_is_a_venue_with_utc_times():
    venue, clock = make_venue()
    members = [name for name in vars(Venue) if not name.startswith("_")] + list(Venue.__annotations__)
    assert {"execute", "lookup", "watch_deals", "platform", "name"} <= set(members)
    for name in members:
        assert hasattr(venue, name), name
    assert venue.platform is Platform.SIM and venue.name == "sim"
    assert venue.now() == datetime(2024, 3, 4, 12, 0, tzinfo=timezone.utc)
    result = result_of(venue.execute(order("k1")))
    assert result.time == venue.now() and result.time.tzinfo is not None


def test_symbol_specs_look_real():
    venue, _ = make_venue()
    eurusd = result_of(venue.symbol_spec(HEDGER, "EURUSD"))
    assert (eurusd.min_volume, eurusd.step_volume, eurusd.max_volume) == (100_000, 100_000, 1_000_000_000)
    assert result_of(venue.symbol_spec(HEDGER, "USDJPY")).digits == 3
    gold = result_of(venue.symbol_spec(HEDGER, "XAUUSD"))
    assert (gold.contract_size, gold.digits, gold.to_volume("1")) == (Decimal(100), 2, 10_000)
    assert result_of(venue.symbol_spec(HEDGER, "US500")).to_volume("0.01") == 1
    failure_of(venue.symbol_spec(HEDGER, "DOGEUSD"), KeyError)


def test_buys_fill_at_ask_sells_at_bid():
    venue, _ = make_venue()
    quote = venue.market.quote("EURUSD")
    assert quote.ask > quote.bid
    assert result_of(venue.execute(order("b"))).price == quote.ask
    assert result_of(venue.execute(order("s", side=Side.SELL))).price == quote.bid


# -- hedging ----------------------------------------------------------------------

def test_hedging_open_partial_close_close_keeps_the_position_id():
    venue, _ = make_venue()
    opened = result_of(venue.execute(order("open", sl=Decimal("1.07000"), tp=Decimal("1.10000"))))
    assert opened.status is OrderStatus.FILLED and opened.volume == LOT
    second = result_of(venue.execute(order("open2")))
    assert second.position_id != opened.position_id  # hedging: every open is a new position
    pid = opened.position_id

    part = result_of(venue.execute(order("part", action=Action.PARTIAL_CLOSE, volume=3 * LOT // 10,
                                         position_id=pid)))
    assert (part.status, part.position_id, part.volume) == (OrderStatus.FILLED, pid, 3 * LOT // 10)
    [position, _] = result_of(venue.positions(HEDGER))
    assert (position.position_id, position.volume, position.key) == (pid, 7 * LOT // 10, "open")
    assert (position.sl, position.tp) == (Decimal("1.07000"), Decimal("1.10000"))

    modified = result_of(venue.execute(order("mod", action=Action.MODIFY, volume=0, position_id=pid,
                                             sl=Decimal("1.08000"), tp=None)))
    assert modified.status is OrderStatus.FILLED
    closed = result_of(venue.execute(order("close", action=Action.CLOSE, position_id=pid)))
    assert (closed.position_id, closed.volume) == (pid, 7 * LOT // 10)
    assert [p.position_id for p in result_of(venue.positions(HEDGER))] == [second.position_id]

    deals = result_of(venue.deals_since(HEDGER, None))
    assert kinds(deals) == [
        (DealKind.OPEN, Side.BUY, LOT, 0),
        (DealKind.OPEN, Side.BUY, LOT, 0),
        (DealKind.PARTIAL_CLOSE, Side.BUY, 3 * LOT // 10, LOT),
        (DealKind.SLTP, Side.BUY, 0, 7 * LOT // 10),
        (DealKind.CLOSE, Side.BUY, 7 * LOT // 10, 7 * LOT // 10),
    ]
    assert deals[3].sl == Decimal("1.08000") and deals[3].tp is None
    assert all(d.position_id == pid for d in deals[2:])


def test_realised_profit_is_exact():
    venue, _ = make_venue()
    venue.market.set_bid("EURUSD", Decimal("1.10000"))
    pid = venue.trade(MASTER, "EURUSD", Side.BUY, "0.5")  # at the ask, 1.10012
    venue.market.set_bid("EURUSD", Decimal("1.10112"))
    info = result_of(venue.account_info(MASTER))
    assert info.equity == Decimal("10050.00") and info.balance == Decimal("10000")  # 100 points x 0.5 lot
    venue.close(MASTER, pid)
    assert result_of(venue.account_info(MASTER)).balance == Decimal("10050.00")
    # JPY profit converts at USDJPY: 1 lot x 1.000 JPY = 100,000 JPY
    venue.market.set_bid("USDJPY", Decimal("150.000"))
    sell = venue.trade(MASTER, "USDJPY", Side.SELL, "1")  # at the bid
    venue.market.set_bid("USDJPY", Decimal("148.986"))  # ask 149.000
    venue.close(MASTER, sell)
    assert venue.account(MASTER).balance == Decimal("10050.00") + (Decimal(100_000) / Decimal("148.993")).quantize(
        Decimal("0.01"))


# -- netting ----------------------------------------------------------------------

def test_netting_add_partial_close_and_reversal():
    venue, _ = make_venue()
    r1 = result_of(venue.execute(order("n1", account=NETTER)))
    r2 = result_of(venue.execute(order("n2", account=NETTER, volume=LOT // 2)))
    pid = r1.position_id
    assert r2.position_id == pid
    [p] = result_of(venue.positions(NETTER))
    assert p.volume == 3 * LOT // 2 and p.key == "n1"

    r3 = result_of(venue.execute(order("n3", account=NETTER, side=Side.SELL, volume=LOT // 2)))
    assert r3.position_id == pid
    r4 = result_of(venue.execute(order("n4", account=NETTER, side=Side.SELL, volume=3 * LOT)))
    assert (r4.position_id, r4.volume) == (pid, 3 * LOT)
    [p] = result_of(venue.positions(NETTER))
    assert (p.position_id, p.side, p.volume, p.key) == (pid, Side.SELL, 2 * LOT, "n4")

    r5 = result_of(venue.execute(order("n5", account=NETTER, side=Side.BUY, volume=2 * LOT)))
    assert r5.position_id == pid
    assert result_of(venue.positions(NETTER)) == []

    deals = result_of(venue.deals_since(NETTER, None))
    assert kinds(deals) == [
        (DealKind.OPEN, Side.BUY, LOT, 0),
        (DealKind.ADD, Side.BUY, LOT // 2, LOT),
        (DealKind.PARTIAL_CLOSE, Side.BUY, LOT // 2, 3 * LOT // 2),
        (DealKind.REVERSAL, Side.SELL, 2 * LOT, LOT),
        (DealKind.CLOSE, Side.SELL, 2 * LOT, 2 * LOT),
    ]


def test_netting_close_by_position_and_average_price():
    venue, _ = make_venue()
    venue.market.set_bid("EURUSD", Decimal("1.10000"))
    pid = venue.trade(NETTER, "EURUSD", Side.BUY, "1")  # 1.10012
    venue.market.set_bid("EURUSD", Decimal("1.10100"))
    venue.trade(NETTER, "EURUSD", Side.BUY, "2")  # 1.10112
    [p] = result_of(venue.positions(NETTER))
    assert p.open_price == Decimal("1.10078667")  # (1.10012 + 2 x 1.10112) / 3 to digits + 3
    deal = venue.close(NETTER, pid)
    assert (deal.kind, deal.position_volume) == (DealKind.CLOSE, 3 * LOT)


# -- the deal feed --------------------------------------------------------------

def test_watchers_get_every_deal_in_order_and_deals_since_backfills():
    venue, _ = make_venue()
    seen: list[MasterDeal] = []
    venue.watch_deals(MASTER, seen.append)
    others: list[MasterDeal] = []
    venue.watch_deals(HEDGER, others.append)
    a = venue.trade(MASTER, "EURUSD", Side.BUY, "1", sl=Decimal("1.05000"))
    venue.trade(HEDGER, "GBPUSD", Side.SELL, "0.1")
    venue.modify(MASTER, a, Decimal("1.06000"), Decimal("1.20000"))
    venue.close(MASTER, a, "0.25")
    venue.deposit(MASTER, Decimal("500"))
    venue.close(MASTER, a)
    assert [d.kind for d in seen] == [DealKind.OPEN, DealKind.SLTP, DealKind.PARTIAL_CLOSE, DealKind.BALANCE,
                                      DealKind.CLOSE]
    assert [d.kind for d in others] == [DealKind.OPEN]
    ids = [d.deal_id.value for d in seen]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert others[0].deal_id.value == ids[0] + 1  # one counter for the whole venue
    assert result_of(venue.deals_since(MASTER, None)) == seen
    assert result_of(venue.deals_since(MASTER, seen[1].deal_id)) == seen[2:]
    assert result_of(venue.deals_since(MASTER, seen[-1].deal_id)) == []
    assert venue.account(MASTER).balance == Decimal("10500") + sum(
        (venue.market.profit("EURUSD", Side.BUY, d.volume, seen[0].price, d.price, "USD") for d in seen[2::2]),
        Decimal(0))


def test_a_watcher_trading_from_its_callback_keeps_deal_order():
    venue, _ = make_venue()
    order_seen: list[tuple[str, int]] = []

    def copy(deal: MasterDeal) -> None:
        order_seen.append(("master", deal.deal_id.value))
        if deal.kind is DealKind.OPEN:
            result_of(venue.execute(order(idempotency_key(str(deal.deal_id), "f", 0))))

    venue.watch_deals(MASTER, copy)
    venue.watch_deals(HEDGER, lambda d: order_seen.append(("follower", d.deal_id.value)))
    pid = venue.trade(MASTER, "EURUSD", Side.BUY, "1")
    venue.close(MASTER, pid)
    assert order_seen == [("master", 1), ("follower", 2), ("master", 3)]


def test_stops_trigger_on_price_steps():
    venue, _ = make_venue()
    seen = []
    venue.watch_deals(MASTER, seen.append)
    venue.market.set_bid("EURUSD", Decimal("1.10000"))
    venue.trade(MASTER, "EURUSD", Side.BUY, "1", sl=Decimal("1.09999"))
    for _ in range(200):
        venue.step_prices()
        if not venue.account(MASTER).positions:
            break
    assert [d.kind for d in seen] == [DealKind.OPEN, DealKind.CLOSE]
    assert seen[1].price <= Decimal("1.09999")


# -- idempotency ------------------------------------------------------------------

def test_the_same_key_twice_trades_once_and_lookup_finds_it():
    venue, _ = make_venue()
    key = idempotency_key("sim:DealId:1", "F1", 0)
    first = result_of(venue.execute(order(key)))
    again = result_of(venue.execute(order(key, volume=5 * LOT)))
    assert again == first
    assert len(result_of(venue.positions(HEDGER))) == 1
    assert len(result_of(venue.deals_since(HEDGER, None))) == 1
    assert result_of(venue.lookup(HEDGER, key)) == first
    assert result_of(venue.lookup(HEDGER, "cb-never-sent")) is None
    assert result_of(venue.lookup(MASTER, key)) is None  # keys are per account


def test_the_same_key_in_flight_twice_trades_once():
    venue, clock = make_venue(fill_latency_us=50_000)
    d1 = venue.execute(order("dup"))
    d2 = venue.execute(order("dup"))
    clock.advance(0.05)
    assert result_of(d1) == result_of(d2)
    assert len(result_of(venue.positions(HEDGER))) == 1


# -- rejections -------------------------------------------------------------------

@pytest.mark.parametrize("volume", [LOT + 1, 50_000, 1001 * LOT])
def test_volumes_off_the_grid_or_outside_min_max_are_rejected(volume):
    venue, _ = make_venue()
    result = result_of(venue.execute(order("v", volume=volume)))
    assert (result.status, result.reason) == (OrderStatus.REJECTED, "invalid-volume")
    assert result_of(venue.lookup(HEDGER, "v")) is None
    assert result_of(venue.positions(HEDGER)) == []


def test_rejections_have_reason_codes():
    venue, _ = make_venue()
    pid = result_of(venue.execute(order("o"))).position_id
    missing = PositionId(Platform.SIM, 999)
    cases = {
        "position-not-found": order("c1", action=Action.CLOSE, position_id=missing),
        "unknown-symbol": order("c2", symbol="DOGEUSD"),
        "invalid-stops": order("c3", sl=Decimal("1.20000")),
        "unknown-account": order("c4", account=Login(ServerId(Platform.SIM, "sim"), 42)),
    }
    for reason, request in cases.items():
        result = result_of(venue.execute(request))
        assert (result.status, result.reason) == (OrderStatus.REJECTED, reason), reason
    too_much = result_of(venue.execute(order("c5", action=Action.PARTIAL_CLOSE, position_id=pid, volume=2 * LOT)))
    assert too_much.reason == "invalid-volume"
    wrong_side = result_of(venue.execute(order("c6", action=Action.CLOSE, side=Side.SELL, position_id=pid)))
    assert wrong_side.reason == "position-not-found"
    with pytest.raises(SimRejected) as raised:
        venue.close(HEDGER, missing)
    assert raised.value.reason == "position-not-found"


def test_requote_beyond_max_slippage():
    venue, _ = make_venue()
    ask = venue.market.quote("EURUSD").ask
    ok = result_of(venue.execute(order("r1", reference_price=ask - Decimal("0.00002"), max_slippage_points=2)))
    assert ok.status is OrderStatus.FILLED
    late = result_of(venue.execute(order("r2", reference_price=ask - Decimal("0.00003"), max_slippage_points=2)))
    assert (late.status, late.reason) == (OrderStatus.REJECTED, "requote")


def test_reject_rate_rejects_with_a_configured_reason_and_records_nothing():
    venue, _ = make_venue(reject_rate=Decimal(1))
    result = result_of(venue.execute(order("x")))
    assert result.status is OrderStatus.REJECTED and result.reason in SimConfig().reject_reasons
    assert result_of(venue.lookup(HEDGER, "x")) is None
    venue.config = SimConfig()
    assert result_of(venue.execute(order("x"))).status is OrderStatus.FILLED  # a rejected key may be resent


# -- faults ------------------------------------------------------------------------

def test_timeout_after_execute_is_ambiguous_but_the_order_executed():
    venue, _ = make_venue(timeout_after_execute_rate=Decimal(1))
    error = failure_of(venue.execute(order("t")), AmbiguousOutcome)
    assert error.key == "t"
    found = result_of(venue.lookup(HEDGER, "t"))
    assert found.status is OrderStatus.FILLED
    [p] = result_of(venue.positions(HEDGER))
    assert (p.position_id, p.key) == (found.position_id, "t")


def test_timeout_before_execute_is_ambiguous_and_nothing_executed():
    venue, _ = make_venue(timeout_before_execute_rate=Decimal(1))
    failure_of(venue.execute(order("t")), AmbiguousOutcome)
    assert result_of(venue.lookup(HEDGER, "t")) is None
    assert result_of(venue.positions(HEDGER)) == []
    assert result_of(venue.deals_since(HEDGER, None)) == []


def test_disconnected_venue_is_unavailable_and_feed_resumes_by_backfill():
    venue, _ = make_venue(disconnected=True)
    failure_of(venue.execute(order("d")), VenueUnavailable)
    failure_of(venue.lookup(HEDGER, "d"), VenueUnavailable)
    failure_of(venue.positions(HEDGER), VenueUnavailable)
    venue.disconnected = False
    assert result_of(venue.execute(order("d"))).status is OrderStatus.FILLED
    seen = []
    venue.watch_deals(MASTER, seen.append)
    venue.disconnected = True
    venue.trade(MASTER, "EURUSD", Side.BUY, "1")  # the master trades on while we are cut off
    assert seen == []
    venue.disconnected = False
    assert [d.kind for d in result_of(venue.deals_since(MASTER, None))] == [DealKind.OPEN]


def test_latency_delays_the_fill():
    venue, clock = make_venue(fill_latency_us=250_000)
    d = venue.execute(order("slow"))
    assert not d.called
    assert result_of(venue.lookup(HEDGER, "slow")) is None
    clock.advance(0.2)
    assert not d.called
    clock.advance(0.05)
    result = result_of(d)
    assert result.status is OrderStatus.FILLED
    assert result.time == datetime(2024, 3, 4, 12, 0, 0, 250_000, tzinfo=timezone.utc)


def test_disconnect_while_in_flight_is_ambiguous_and_does_not_execute():
    venue, clock = make_venue(fill_latency_us=1000)
    d = venue.execute(order("lost"))
    venue.disconnected = True
    clock.advance(0.001)
    failure_of(d, AmbiguousOutcome)
    venue.disconnected = False
    assert result_of(venue.lookup(HEDGER, "lost")) is None


def test_zero_config_fills_synchronously():
    venue, _ = make_venue()
    d = venue.execute(order("now"))
    assert d.called


def test_slippage_stays_within_the_configured_points():
    venue, _ = make_venue(slippage_points=5)
    point = Decimal("0.00001")
    prices = set()
    for i in range(50):
        ask = venue.market.quote("EURUSD").ask
        result = result_of(venue.execute(order(f"s{i}")))
        assert abs(result.price - ask) <= 5 * point
        prices.add(result.price - ask)
    assert len(prices) > 1


def test_price_feed_looping_call_steps_prices_on_the_clock():
    venue, clock = make_venue()
    before = venue.market.quote("XAUUSD")
    feed = venue.start_price_feed(1_000_000)
    clock.advance(1)
    clock.advance(1)
    assert venue.market.quote("XAUUSD") != before
    venue.stop_price_feed()
    assert not feed.running


# -- determinism -----------------------------------------------------------------

def _script(venue: SimVenue, clock: Clock) -> list:
    trail = []
    venue.watch_deals(MASTER, trail.append)
    venue.watch_deals(HEDGER, trail.append)
    pid = venue.trade(MASTER, "XAUUSD", Side.BUY, "0.3")
    for i in range(30):
        venue.step_prices()
        clock.advance(1)
        d = venue.execute(order(f"k{i}", side=Side.BUY if i % 3 else Side.SELL, volume=(i % 4 + 1) * LOT // 10))
        clock.advance(0.01)
        got = outcome(d)
        trail.append("fault" if isinstance(got, Failure) else got)
        trail.append(venue.market.quote("US500"))
    venue.close(MASTER, pid)
    trail.append(result_of(venue.account_info(MASTER)))
    trail.append(result_of(venue.account_info(HEDGER)))
    return trail


def test_same_seed_and_script_give_identical_prices_and_fills():
    config = dict(fill_latency_us=10_000, slippage_points=3, reject_rate=Decimal("0.2"),
                  timeout_after_execute_rate=Decimal("0.1"), timeout_before_execute_rate=Decimal("0.1"))
    one = _script(*make_venue(seed=42, **config))
    two = _script(*make_venue(seed=42, **config))
    assert one == two
    assert "fault" in one and any(getattr(x, "status", None) is OrderStatus.REJECTED for x in one)
    assert _script(*make_venue(seed=43, **config)) != one


def test_config_is_validated_and_float_free():
    with pytest.raises(TypeError):
        SimConfig(reject_rate=0.5)
    with pytest.raises(ValueError):
        SimConfig(reject_rate=Decimal("1.5"))
    with pytest.raises(ValueError):
        SimConfig(fill_latency_us=-1)
    assert replace(SimConfig(), reject_rate="0.25").reject_rate == Decimal("0.25")


def test_the_sim_venues_satisfy_the_venue_protocol():
    import zmq
    from twisted.internet.task import Clock as _Clock

    from connectors.interface import Venue
    from connectors.sim import SimVenue as _SimVenue
    from connectors.sim.remote import RemoteVenue

    assert isinstance(_SimVenue("v", _Clock(), random.Random(1)), Venue)
    ctx = zmq.Context()
    try:
        remote = RemoteVenue(ctx, "v", "tcp://127.0.0.1:1", _Clock())
        assert isinstance(remote, Venue)
        remote.close()
    finally:
        ctx.destroy(0)
