"""The MT4 connector (connectors/mt4): pure conversions and classification, then MT4Venue against simulated
terminals running the EA, each served on tcp://127.0.0.1 (tests/mt4_rig.py)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from allocation.leg import Action
from bridge.domain.deal import DealKind, Side
from bridge.domain.ids import DealId, Login, Platform, PositionId, ServerId
from connectors.interface import AmbiguousOutcome, OrderRequest, OrderStatus, idempotency_key, magic_number
from connectors.mt4 import convert, deals, errors
from connectors.mt4 import protocol as P
from tests.mt4_rig import HEDGER, MASTER, OTHER, Rig

D = Decimal
ACCOUNT = Login(ServerId(Platform.MT4, "mt4"), 1)
EURUSD = {"symbol": "EURUSD", "digits": 5, "point": D("0.00001"), "contract_size": D("100000.0"),
          "min_lot": D("0.01"), "lot_step": D("0.01"), "max_lot": 100, "tick_value": 1, "tick_size": D("0.00001")}
SPEC = convert.spec(EURUSD)
CLOCK = convert.ServerClock(timedelta(hours=2))


def key(name: str) -> str:
    return idempotency_key(f"mt4-test:{name}", "follower", 0)


# -- pure: errors, conversions, classification ---------------------------------------------------------
@pytest.mark.parametrize("code, reason", [
    (2, "bad-request"), (3, "bad-request"), (4, "busy"), (137, "busy"), (146, "busy"), (6, "not-sent"),
    (128, errors.AMBIGUOUS), (129, "requote"), (135, "requote"), (136, "requote"), (138, "requote"),
    (130, "invalid-stops"), (131, "invalid-volume"), (132, "market-closed"), (133, "trading-disabled"),
    (134, "no-money"), (148, "limit-positions"), (4108, "position-not-found"), (4109, "autotrading-disabled"),
    (4110, "side-not-allowed"), (4111, "side-not-allowed"), ("not-found", "position-not-found"),
    ("unknown-symbol", "unknown-symbol"), ("bad-frame", "bad-request"), ("unknown-command", "bad-request"),
    (999, "mt4-999"), (True, "mt4-True")])
def test_every_error_of_the_protocol_table_has_its_reason(code, reason):
    assert errors.reason(code) == reason


def test_symbol_records_lots_prices_and_keys_convert_exactly():
    assert (SPEC.contract_size, SPEC.min_volume, SPEC.step_volume, SPEC.digits) == (D(100000), 100_000, 100_000, 5)
    assert convert.volume_of(D("0.1"), SPEC) == 1_000_000 and convert.volume_of(1, SPEC) == 10_000_000
    assert convert.lots_of(1_500_000, SPEC) == D("0.15")
    with pytest.raises(ValueError):
        convert.volume_of(0.1, SPEC)  # a float never crosses
    with pytest.raises(ValueError):
        convert.price(D("1.100001"), 5)  # off the digits: refused, not rounded
    assert convert.stop(0, 5) is None and convert.stop(D("1.1"), 5) == D("1.10000")
    k = key("k")
    assert convert.bridge_key(k, magic_number(k)) == k and convert.bridge_key(k + "[sl]", magic_number(k)) == k
    assert convert.bridge_key(k, 0) is None and convert.bridge_key("from #12", 0) is None
    assert convert.parent_of("from #12[tp]") == 12 and convert.child_of("to #13") == 13
    assert convert.quote_to_account(EURUSD) == D(1)


def _trade(ticket, lots, comment="", type=P.OP_BUY, open_msc=1000, **extra):
    return {"ticket": ticket, "symbol": "EURUSD", "type": type, "lots": D(lots), "open_price": D("1.10000"),
            "open_time_msc": open_msc, "sl": 0, "tp": 0, "magic": 0, "comment": comment, **extra}


def _closed(ticket, lots, comment, close_msc, **extra):
    return _trade(ticket, lots, comment, close_price=D("1.10010"), close_time_msc=close_msc, **extra)


def test_the_history_classifies_opens_partial_closes_closes_and_balances_by_root():
    history = [{"ticket": 1, "type": P.OP_BALANCE, "symbol": "", "lots": 0, "profit": D(100), "comment": "",
                "close_time_msc": 500},
               _closed(2, "0.40", "to #4", 2000),        # 1.00 opened at 1000, 0.40 closed: remainder 4
               _closed(4, "0.10", "to #5", 3000),        # 0.10 of the remainder: remainder 5
               _closed(3, "0.50", "", 3500, open_msc=1500)]  # another position, closed whole
    trades = [_trade(5, "0.50", "from #4")]
    chains = deals.Chains()
    found = deals.classify(history, trades, ACCOUNT, {"EURUSD": SPEC}.__getitem__, CLOCK, chains)
    summary = [(d.deal_id.value, d.kind, d.position_id.value, d.volume, d.position_volume) for d in found]
    assert summary == [(2, DealKind.BALANCE, 0, 0, 0),
                       (4, DealKind.OPEN, 2, 10_000_000, 0),
                       (6, DealKind.OPEN, 3, 5_000_000, 0),
                       (5, DealKind.PARTIAL_CLOSE, 2, 4_000_000, 10_000_000),
                       (9, DealKind.PARTIAL_CLOSE, 2, 1_000_000, 6_000_000),
                       (7, DealKind.CLOSE, 3, 5_000_000, 5_000_000)]
    assert chains.root(5) == 2 and chains.root(3) == 3
    assert [d.deal_id.value for d in deals.after(found, DealId(Platform.MT4, 6), CLOCK)] == [5, 9, 7]
    assert found[1].time == CLOCK.utc_ms(1000)


# -- the venue over simulated EAs -----------------------------------------------------------------------
@pytest.fixture
def rig():
    made = []

    def build(*args, **kw) -> Rig:
        r = Rig(*args, **kw)
        made.append(r)
        return r

    yield build
    for r in made:
        r.close()


def order(r: Rig, name: str, action=Action.OPEN, side=Side.BUY, lots="1.00", position=None, login=HEDGER, **kw):
    volume = SPEC.to_volume(lots) if action is not Action.MODIFY else 0
    return OrderRequest(key(name), r.login(login), action, "EURUSD", side, volume, position, **kw)


def run(r: Rig, o: OrderRequest):
    return r.result(r.venue.execute(o))


def test_open_partial_close_and_close_keep_the_root_ticket_and_its_key(rig):
    r = rig()
    opened = run(r, order(r, "open"))
    root = opened.position_id
    assert opened.status is OrderStatus.FILLED and opened.volume == 10_000_000 and opened.deal_id.value == 2 * root.value
    assert opened.quote_to_account == D(1)
    part = run(r, order(r, "part", Action.PARTIAL_CLOSE, lots="0.30", position=root))
    assert part.status is OrderStatus.FILLED and part.position_id == root and part.volume == 3_000_000
    part2 = run(r, order(r, "part2", Action.PARTIAL_CLOSE, lots="0.20", position=root))
    assert part2.position_id == root
    [held] = r.result(r.venue.positions(r.login(HEDGER)))
    assert held.position_id == root and held.volume == 5_000_000 and held.key == key("open")
    assert r.open_ticket(r.login(HEDGER), root) != root.value  # the remainder's own ticket is new
    close = run(r, order(r, "close", Action.CLOSE, lots="0.50", position=root))
    assert close.status is OrderStatus.FILLED and close.volume == 5_000_000 and close.position_id == root
    assert r.result(r.venue.positions(r.login(HEDGER))) == []
    # the follower's own history, as deals
    history = r.result(r.venue.deals_since(r.login(HEDGER), None))
    assert [(d.kind, d.position_id) for d in history if d.kind is not DealKind.BALANCE] == [
        (DealKind.OPEN, root), (DealKind.PARTIAL_CLOSE, root), (DealKind.PARTIAL_CLOSE, root), (DealKind.CLOSE, root)]
    assert [d.deal_id for d in history[-3:]] == [part.deal_id, part2.deal_id, close.deal_id]


def test_modify_sets_the_stops_of_the_remainder_and_a_hedging_account_holds_both_sides(rig):
    r = rig()
    buy = run(r, order(r, "buy"))
    sell = run(r, order(r, "sell", side=Side.SELL, lots="2.00"))
    run(r, order(r, "cut", Action.PARTIAL_CLOSE, lots="0.50", position=buy.position_id))
    sl, tp = buy.price - D("0.01000"), buy.price + D("0.01000")
    done = run(r, order(r, "stops", Action.MODIFY, position=buy.position_id, sl=sl, tp=tp))
    assert done.status is OrderStatus.FILLED and done.position_id == buy.position_id
    held = {p.position_id: p for p in r.result(r.venue.positions(r.login(HEDGER)))}
    assert set(held) == {buy.position_id, sell.position_id}
    assert (held[buy.position_id].side, held[buy.position_id].volume) == (Side.BUY, 5_000_000)
    assert (held[buy.position_id].sl, held[buy.position_id].tp) == (sl, tp)
    assert (held[sell.position_id].side, held[sell.position_id].volume) == (Side.SELL, 20_000_000)
    info = r.result(r.venue.account_info(r.login(HEDGER)))
    assert info.hedging is True and info.currency == "USD" and isinstance(info.balance, Decimal)


def test_definite_refusals_are_rejected_results_with_the_tables_reasons(rig):
    r = rig((MASTER, HEDGER, OTHER), balance="100")
    t = r.terminals[HEDGER]
    assert run(r, order(r, "money", lots="10.00")).reason == "no-money"
    ok = run(r, order(r, "small", lots="0.01"))
    assert run(r, order(r, "bad-stops", Action.MODIFY, lots="0", position=ok.position_id,
                        sl=ok.price + D("0.01"))).reason == "invalid-stops"
    assert run(r, order(r, "grid", lots="0.015")).reason == "invalid-volume"  # off the step: not sent
    gone = PositionId(Platform.MT4, 999_999)
    assert run(r, order(r, "gone", Action.CLOSE, lots="0.01", position=gone)).reason == "position-not-found"
    unknown = OrderRequest(key("sym"), r.login(HEDGER), Action.OPEN, "NOSUCH", Side.BUY, 1000)
    assert run(r, unknown).reason == "unknown-symbol"
    with pytest.raises(KeyError):
        r.result(r.venue.symbol_spec(r.login(HEDGER), "NOSUCH"))
    t.faults.requote = 1.0
    assert run(r, order(r, "requoted", lots="0.01")).reason == "requote"
    t.faults.requote, t.faults.busy = 0.0, 1.0
    assert run(r, order(r, "busy", lots="0.01")).reason == "busy"
    t.faults.busy, t.faults.connected = 0.0, False
    assert run(r, order(r, "offline", lots="0.01")).reason == "not-sent"
    t.faults.connected = True
    # a price beyond the order's max slippage: the EA refuses 138 -> requote, nothing traded
    far = r.market.quote("EURUSD").ask - D("0.00100")
    assert run(r, order(r, "slipped", lots="0.01", reference_price=far, max_slippage_points=5)).reason == "requote"
    assert len(r.result(r.venue.positions(r.login(HEDGER)))) == 1
    # refusals are not journalled: the same key is tried again, and fills
    assert run(r, order(r, "requoted", lots="0.01")).status is OrderStatus.FILLED


def test_a_timeout_is_ambiguous_then_lookup_finds_it_and_a_resend_trades_nothing_twice(rig):
    r = rig(timeout_s=0.2)
    t = r.terminals[HEDGER]
    t.faults.timeout_after = 1.0
    with pytest.raises(AmbiguousOutcome):
        run(r, order(r, "lost-reply"))
    t.faults.timeout_after = 0.0
    r.venue.filled.clear()
    found = r.result(r.venue.lookup(r.login(HEDGER), key("lost-reply")))
    assert found is not None and found.status is OrderStatus.FILLED and found.volume == 10_000_000
    r.venue.filled.clear()  # a new process: only the EA's journal knows the key
    again = run(r, order(r, "lost-reply"))
    assert again.status is OrderStatus.FILLED and again.position_id == found.position_id
    assert len(t.open_orders()) == 1
    assert r.result(r.venue.lookup(r.login(HEDGER), key("never"))) is None
    # a close whose reply is lost: looked up from the journal, with its root
    t.faults.timeout_after = 1.0
    with pytest.raises(AmbiguousOutcome):
        run(r, order(r, "lost-close", Action.PARTIAL_CLOSE, lots="0.40", position=found.position_id))
    t.faults.timeout_after = 0.0
    closed = r.result(r.venue.lookup(r.login(HEDGER), key("lost-close")))
    assert closed.position_id == found.position_id and closed.volume == 4_000_000
    assert run(r, order(r, "lost-close", Action.PARTIAL_CLOSE, lots="0.40", position=found.position_id)) == closed
    assert [o.lots for o in t.open_orders()] == [D("0.60")]
    status = {s["login"]: s for s in r.venue.connection_status()}
    assert status[HEDGER]["timeouts"] >= 2 and status[HEDGER]["up"]


def _watch(r: Rig, login=MASTER):
    seen = []
    r.result(r.venue.watch_deals(r.login(login), seen.append))
    return seen


def test_master_trades_by_hand_reach_the_watcher_as_deals_with_the_root(rig):
    r = rig()
    master = r.login(MASTER)
    seen = _watch(r)
    position = r.manual(master, "EURUSD", Side.SELL, "1.00")
    r.pump(lambda: len(seen) >= 1)
    r.wait(0.01)
    r.manual_close(master, position, "0.30")
    r.pump(lambda: len(seen) >= 2)
    bid = r.market.quote("EURUSD").bid
    r.manual_sltp(master, position, sl=bid + D("0.01000"), tp=bid - D("0.01000"))
    r.pump(lambda: len(seen) >= 3)
    r.terminals[MASTER].balance_operation("250")
    r.manual_close(master, position)
    r.pump(lambda: len(seen) >= 5)
    assert [(d.kind, d.position_id) for d in seen] == [
        (DealKind.OPEN, position), (DealKind.PARTIAL_CLOSE, position), (DealKind.SLTP, position),
        (DealKind.BALANCE, PositionId(Platform.MT4, 0)), (DealKind.CLOSE, position)]
    assert seen[1].position_volume == 10_000_000 and seen[1].volume == 3_000_000
    assert seen[2].sl == bid + D("0.01000") and seen[2].volume == 0 and seen[2].position_volume == 7_000_000
    assert seen[4].volume == 7_000_000
    assert seen[0].time.utcoffset() == timedelta(0) and abs(seen[0].time - r.venue.now()) < timedelta(seconds=1)
    history = r.result(r.venue.deals_since(master, None))
    trades = [d for d in seen if d.kind is not DealKind.SLTP]
    assert [d.deal_id for d in history][-4:] == [d.deal_id for d in trades]


def test_dropped_events_are_healed_by_replay_in_order(rig):
    r = rig()
    master = r.login(MASTER)
    seen = _watch(r)
    r.terminals[MASTER].faults.drop_events = 0.5
    positions = []
    for n in range(6):
        positions.append(r.manual(master, "EURUSD", Side.BUY, "0.10"))
        r.wait(0.003)
    for p in positions:
        r.manual_close(master, p)
        r.wait(0.003)
    r.pump(lambda: len(seen) >= 12)
    assert r.servers[MASTER].ea.dropped > 0 and r.venue.links[MASTER].replays > 0
    assert [d.kind for d in seen] == [DealKind.OPEN] * 6 + [DealKind.CLOSE] * 6
    assert [d.position_id for d in seen] == positions + positions
    r.wait(1.5)
    assert len(seen) == 12


def test_an_ea_restart_resyncs_from_the_history_without_loss_or_duplicate(rig, tmp_path):
    r = rig(journal_dir=tmp_path)
    master = r.login(MASTER)
    seen = _watch(r)
    first = r.manual(master, "EURUSD", Side.BUY, "1.00")
    r.pump(lambda: len(seen) >= 1)
    r.servers[MASTER].stop()
    # while the EA is down: a partial close, a new position, a stop set by hand
    r.wait(0.01)
    r.manual_close(master, first, "0.25")
    r.wait(0.002)  # within one millisecond the venue order puts opens first (as the EA's scan does)
    second = r.manual(master, "EURUSD", Side.SELL, "0.50")
    bid = r.market.quote("EURUSD").bid
    r.manual_sltp(master, first, sl=bid - D("0.01000"))
    r.wait(0.01)
    r.restart_ea(MASTER, epoch="restarted")
    r.pump(lambda: len(seen) >= 4)
    assert [(d.kind, d.position_id) for d in seen] == [
        (DealKind.OPEN, first), (DealKind.PARTIAL_CLOSE, first), (DealKind.OPEN, second), (DealKind.SLTP, first)]
    assert seen[3].sl == bid - D("0.01000")
    r.manual_close(master, first)
    r.pump(lambda: len(seen) >= 5)
    assert (seen[4].kind, seen[4].position_id) == (DealKind.CLOSE, first)
    r.wait(1.5)
    assert len(seen) == 5 and len({d.deal_id for d in seen}) == 5
    assert r.venue.links[MASTER].resyncs == 1 and r.venue.watches[MASTER].resyncs == 1
    status = {s["login"]: s for s in r.venue.connection_status()}
    assert status[MASTER]["epoch"] == "restarted" and status[MASTER]["up"]


def test_the_follower_side_copies_a_master_partial_close_then_close(rig):
    r = rig()
    master, follower = r.login(MASTER), r.login(HEDGER)
    seen = _watch(r)
    position = r.manual(master, "EURUSD", Side.BUY, "2.00")
    r.pump(lambda: len(seen) >= 1)
    r.manual_close(master, position, "0.50")
    r.pump(lambda: len(seen) >= 2)
    r.manual_close(master, position)
    r.pump(lambda: len(seen) >= 3)
    copy = None
    for deal in seen:  # a follower at half the master's size
        volume = deal.volume // 2
        action = {DealKind.OPEN: Action.OPEN, DealKind.PARTIAL_CLOSE: Action.PARTIAL_CLOSE,
                  DealKind.CLOSE: Action.CLOSE}[deal.kind]
        o = OrderRequest(idempotency_key(str(deal.deal_id), "f", 0), follower, action, "EURUSD", deal.side, volume,
                         copy)
        result = run(r, o)
        assert result.status is OrderStatus.FILLED, result
        copy = copy or result.position_id
        assert result.position_id == copy
    assert r.result(r.venue.positions(follower)) == []
    kinds = [d.kind for d in r.result(r.venue.deals_since(follower, None)) if d.kind is not DealKind.BALANCE]
    assert kinds == [DealKind.OPEN, DealKind.PARTIAL_CLOSE, DealKind.CLOSE]


def test_on_a_real_reactor_the_links_are_driven_by_the_sockets_readiness():
    """The daemon's path: a reactor with addReader (ReactorDriver), real time, EAs on tcp://127.0.0.1."""
    import random

    import zmq
    from twisted.internet.selectreactor import SelectReactor

    from connectors.mt4.simulator import EAServer, SimulatedEA, Terminal
    from connectors.mt4.venue import MT4Venue

    reactor = SelectReactor()
    ctx = zmq.Context()
    terminal = Terminal(login=HEDGER, clock=lambda: D(repr(reactor.seconds())), rng=random.Random(3))
    server = EAServer(SimulatedEA(terminal), ctx, "tcp://127.0.0.1:*", "tcp://127.0.0.1:*", reactor=reactor)
    server.start()
    venue = MT4Venue("mt4", {HEDGER: (server.command_endpoint, server.event_endpoint)}, ctx=ctx, reactor=reactor,
                     clock=reactor, server_offset_s=7200, timeout_s=2.0)

    def wait(d):
        box = []
        d.addBoth(box.append)
        deadline = reactor.seconds() + 5
        while not box and reactor.seconds() < deadline:
            reactor.iterate(0.001)
        assert box, "no answer"
        return box[0]

    try:
        assert wait(venue.start()) is venue
        login = venue.login(HEDGER)
        seen = []
        wait(venue.watch_deals(login, seen.append))
        filled = wait(venue.execute(OrderRequest(key("real"), login, Action.OPEN, "EURUSD", Side.BUY, 1_000_000)))
        assert filled.status is OrderStatus.FILLED
        deadline = reactor.seconds() + 5
        while not seen and reactor.seconds() < deadline:
            reactor.iterate(0.001)
        assert [(d.kind, d.position_id) for d in seen] == [(DealKind.OPEN, filled.position_id)]
    finally:
        venue.stop()
        server.stop()
        ctx.destroy(linger=0)
