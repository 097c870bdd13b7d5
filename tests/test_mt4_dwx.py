"""The DWX compatibility mode (connectors/mt4/dwx/, DWX.md): the reply parser, and the DwxVenue against
simulated DWX servers (the MT4 simulator's Terminal behind the DWX text protocol) over tcp://127.0.0.1."""

from __future__ import annotations

import logging
from decimal import Decimal

import pytest

from allocation.leg import Action
from bridge.domain.deal import DealKind, MasterDeal, Side
from bridge.domain.ids import Platform, PositionId
from connectors.interface import AmbiguousOutcome, OrderRequest, OrderStatus, idempotency_key, magic_number
from connectors.mt4.dwx import protocol as D
from connectors.mt4.dwx.reply import MAX_CHARS, ReplyError, parse
from tests.mt4_dwx_rig import HEDGER, MASTER, DwxRig

M4 = Platform.MT4
LOT = 10_000_000  # 1.00 lot of EURUSD in canonical units

TRADES = ("{'_action': 'OPEN_TRADES', '_trades': {1003: {'_magic': 0, '_symbol': 'EURUSD', '_lots': 0.60000000, "
          "'_type': 0, '_open_price': 1.08512000, '_open_time': '2024.03.04 14:00:00', '_SL': 0.00000000, "
          "'_TP': 1.10000000, '_pnl': -3.60000000, '_comment': 'from #1002'}, 1001: {'_magic': 7, "
          "'_symbol': 'USDJPY', '_lots': 0.01000000, '_type': 1, '_open_price': 150.00100000, "
          "'_open_time': '2024.03.04 13:59:59', '_SL': 0.00000000, '_TP': 0.00000000, '_pnl': 0.00000000, "
          "'_comment': ''}, }}")


# -- the parser ---------------------------------------------------------------------------
def test_good_replies_parse_to_exact_values():
    reply = parse(TRADES)
    assert reply["_action"] == "OPEN_TRADES" and list(reply["_trades"]) == [1003, 1001]
    entry = reply["_trades"][1003]
    assert entry["_lots"] == Decimal("0.6") and isinstance(entry["_lots"], Decimal)
    assert entry["_pnl"] == Decimal("-3.6") and entry["_magic"] == 0 and entry["_comment"] == "from #1002"
    assert parse(b"{'_action': 'heartbeat', '_response': 'loud and clear!'}")["_response"] == "loud and clear!"
    assert parse("{'_action': 'EXECUTION', '_ticket': 5}}") == {"_action": "EXECUTION", "_ticket": 5}  # DMA off


def test_a_key_written_twice_keeps_the_last_and_every_value():
    reply = parse("{'_action': 'CLOSE', '_ticket': 9, '_response': '138', '_response_value': 'requote', "
                  "'_response': 'CLOSE_MARKET', '_response_value': 'SUCCESS'}")
    assert reply["_response"] == "CLOSE_MARKET" and reply.every("_response") == ["138", "CLOSE_MARKET"]
    assert D.refusal(reply) == "requote"
    assert D.refusal(parse("{'_action': 'CLOSE', '_response': 'NOT_FOUND'}")) == "position-not-found"
    assert D.refusal(parse("{'_response': 'TRADE_CONTEXT_BUSY__ABORTED_COMMAND'}")) == "busy"
    assert D.refusal(parse("{'_action': 'EXECUTION', '_response': '128'}")) == "ambiguous"


@pytest.mark.parametrize("text", [
    "__import__('os').system('touch /tmp/pwned')",
    "{'a': __import__('os')}",
    "{'a': [1, 2]}",
    "{'a': True}",
    "{'a': None}",
    "{'a': 1e5}",
    "{'a': (1,)}",
    "{'a': 'x' + 'y'}",
    "{'a': lambda: 1}",
    "{**{}}",
    "{'_comment': 'it's'}",  # a quote in an order comment: the EA does not escape it
    "{'a': 1} {'b': 2}",
    "{'a': 1}}}",
    "{'a': 1.5.5}",
    "{'a': -}",
    "{1.5: 'x'}",
    "{{'a': 1}: 2}",
    "{'a': {'b': {'c': {'d': {'e': 1}}}}}",
    '{"a": 1}',
    "",
    "   ",
    "nan",
    b"{'a': '\xff'}",
])
def test_hostile_text_is_one_line_error(text):
    with pytest.raises(ReplyError) as caught:
        parse(text)
    assert "\n" not in str(caught.value) and str(caught.value)


def test_every_truncation_of_a_good_reply_is_refused():
    for end in range(len(TRADES.rstrip("}")) + 1):
        with pytest.raises(ReplyError):
            parse(TRADES[:end])


def test_a_reply_over_the_size_cap_is_refused_before_reading():
    with pytest.raises(ReplyError, match="over the"):
        parse("{'a': '" + "x" * MAX_CHARS + "'}")


@pytest.mark.parametrize("entry, words", [
    ({"_lots": "0.10"}, "_lots must be a number"),
    ({"_type": "0"}, "_type must be an integer"),
    ({"_magic": Decimal("1.5")}, "_magic must be an integer"),
    ({"_open_time": "yesterday"}, "is not YYYY.MM.DD HH:MM:SS"),
    ({"_symbol": 5}, "must be strings"),
])
def test_open_trades_of_the_wrong_types_are_one_line_errors(entry, words):
    reply = parse(TRADES)
    reply["_trades"][1003].update(entry)
    with pytest.raises(D.DwxRecordError, match=words) as caught:
        D.open_trades(reply)
    assert "\n" not in str(caught.value)
    with pytest.raises(D.DwxRecordError, match="not a ticket"):
        D.open_trades({"_action": "OPEN_TRADES", "_trades": {"x": {}}})
    with pytest.raises(D.DwxRecordError, match="not an OPEN_TRADES reply"):
        D.open_trades({"_action": "EXECUTION"})


def test_open_trades_become_trade_records_by_ticket():
    records = D.open_trades(parse(TRADES))
    assert [r["ticket"] for r in records] == [1001, 1003]
    assert records[1]["sl"] == 0 and records[1]["tp"] == Decimal("1.1") and records[1]["comment"] == "from #1002"


def test_a_command_field_cannot_carry_a_separator():
    with pytest.raises(ValueError, match="cannot hold ';'"):
        D.trade(D.OPEN, comment="a;b")


# -- the venue over simulated DWX servers ----------------------------------------------------
@pytest.fixture
def rig():
    r = DwxRig()
    yield r
    r.close()


def _copy(rig, deal: MasterDeal, follower, positions: dict) -> OrderStatus:
    """A one-to-one copy of a master deal to ``follower`` (what the executor would send)."""
    key = idempotency_key(str(deal.deal_id.value), "follower", 0)
    if deal.kind is DealKind.OPEN:
        order = OrderRequest(key, follower, Action.OPEN, deal.symbol, deal.side, deal.volume, sl=deal.sl, tp=deal.tp)
    elif deal.kind is DealKind.SLTP:
        order = OrderRequest(key, follower, Action.MODIFY, deal.symbol, deal.side, 0, positions[deal.position_id],
                             sl=deal.sl, tp=deal.tp)
    else:
        action = Action.CLOSE if deal.kind is DealKind.CLOSE else Action.PARTIAL_CLOSE
        order = OrderRequest(key, follower, action, deal.symbol, deal.side, deal.volume, positions[deal.position_id])
    result = rig.result(rig.venue.execute(order))
    if deal.kind is DealKind.OPEN:
        positions[deal.position_id] = result.position_id
    return result.status


def test_a_master_on_dwx_is_copied_open_partial_close_modify_close(rig):
    master, follower = rig.login(MASTER), rig.login(HEDGER)
    seen: list[MasterDeal] = []
    rig.result(rig.venue.watch_deals(master, seen.append))
    t = rig.terminals[HEDGER]
    position = rig.manual(master, "EURUSD", Side.BUY, "1.00")
    rig.pump(lambda: len(seen) == 1)
    rig.manual_close(master, position, "0.40")
    rig.pump(lambda: len(seen) == 2)
    rig.manual_sltp(master, position, "1.07000", "1.10000")
    rig.pump(lambda: len(seen) == 3)
    copied: dict = {}
    assert [_copy(rig, d, follower, copied) for d in seen] == [OrderStatus.FILLED] * 3
    [held] = t.open_orders()
    assert (held.lots, held.sl, held.tp, held.comment) == (Decimal("0.60"), Decimal("1.07000"), Decimal("1.10000"),
                                                           f"from #{copied[position].value}")
    rig.manual_close(master, position)
    rig.pump(lambda: len(seen) == 4)
    assert _copy(rig, seen[3], follower, copied) is OrderStatus.FILLED and t.open_orders() == []
    assert [d.kind for d in seen] == [DealKind.OPEN, DealKind.PARTIAL_CLOSE, DealKind.SLTP, DealKind.CLOSE]
    assert all(d.position_id == position for d in seen)
    # the ids the MT4 connector gives the same deals: open 2 T, the partial close 2 T + 1, the remainder R's close
    # 2 R + 1
    root = position.value
    remainder = int(rig.terminals[MASTER].order(root).comment.removeprefix("to #"))
    assert [seen[0].deal_id.value, seen[1].deal_id.value, seen[3].deal_id.value] == \
        [2 * root, 2 * root + 1, 2 * remainder + 1]
    assert seen[1].volume == 4 * LOT // 10 and seen[1].position_volume == LOT and seen[3].volume == 6 * LOT // 10
    # deals_since: what this process polled, resumed after any of them
    assert [d.deal_id for d in rig.result(rig.venue.deals_since(master, seen[1].deal_id))] == \
        [d.deal_id for d in seen[2:]]


def test_a_follower_open_carries_its_key_and_a_repeat_does_not_trade_twice_while_open(rig):
    follower = rig.login(HEDGER)
    key = idempotency_key("repeat", "follower", 0)
    order = OrderRequest(key, follower, Action.OPEN, "EURUSD", Side.BUY, LOT // 10, sl=Decimal("1.07000"))
    first = rig.result(rig.venue.execute(order))
    [held] = rig.terminals[HEDGER].open_orders()
    assert (held.comment, held.magic, held.sl, held.tp) == (key, magic_number(key), Decimal("1.07000"), 0)
    rig.venue.orders.filled.clear()  # what a restarted process knows: nothing
    again = rig.result(rig.venue.execute(order))
    assert again.position_id == first.position_id and len(rig.terminals[HEDGER].open_orders()) == 1
    [position] = rig.result(rig.venue.positions(follower))
    assert position.key == key and position.volume == LOT // 10 and position.sl == Decimal("1.07000")


def test_a_lost_reply_is_resolved_by_lookup_and_the_position_being_gone(rig):
    follower = rig.login(HEDGER)
    server = rig.servers[HEDGER]
    server.lose_reply = 1.0
    key = idempotency_key("lost", "follower", 0)
    with pytest.raises(AmbiguousOutcome):
        rig.result(rig.venue.execute(OrderRequest(key, follower, Action.OPEN, "EURUSD", Side.SELL, LOT)))
    found = rig.result(rig.venue.lookup(follower, key))
    assert found.status is OrderStatus.FILLED and found.volume == LOT
    assert [o.ticket for o in rig.terminals[HEDGER].open_orders()] == [found.position_id.value]
    close_key = idempotency_key("lost-close", "follower", 0)
    close = OrderRequest(close_key, follower, Action.CLOSE, "EURUSD", Side.SELL, LOT, found.position_id)
    with pytest.raises(AmbiguousOutcome):
        rig.result(rig.venue.execute(close))
    assert rig.terminals[HEDGER].open_orders() == []  # it did close; the reply was lost
    server.lose_reply = 0.0
    again = rig.result(rig.venue.execute(close))  # sent again without a lookup first
    assert again.status is OrderStatus.FILLED and "position is gone" in again.message
    assert server.commands[D.CLOSE] == 1  # the first attempt only: the second read the trades and stopped
    assert rig.result(rig.venue.lookup(follower, close_key)).status is OrderStatus.FILLED
    assert rig.result(rig.venue.lookup(follower, idempotency_key("never", "follower", 0))) is None


def test_after_a_timeout_the_link_drops_the_late_reply_and_resyncs(rig):
    from connectors.interface import VenueUnavailable

    follower = rig.login(HEDGER)
    link = rig.venue.links[HEDGER]
    server = rig.servers[HEDGER]
    server.timer.stop()  # the EA stalls: commands wait in its socket
    key = idempotency_key("late", "follower", 0)
    order = OrderRequest(key, follower, Action.OPEN, "EURUSD", Side.BUY, LOT)
    with pytest.raises(VenueUnavailable, match="no answer to GET_OPEN_TRADES"):  # the look before the OPEN
        rig.result(rig.venue.execute(order))
    assert rig.terminals[HEDGER].open_orders() == [] and not link.up
    server.timer.start(server.timer_ms / 1000, now=False)  # it wakes up and answers, late
    filled = rig.result(rig.venue.execute(order))
    assert filled.status is OrderStatus.FILLED and len(rig.terminals[HEDGER].open_orders()) == 1
    assert link.stale >= 1 and link.resyncs >= 1 and link.up  # the late OPEN_TRADES was not taken as an answer


def test_refusals_of_the_ea_are_results_with_reasons():
    r = DwxRig(inputs={"max_orders": 1, "max_lot_size": "0.50"})
    try:
        follower = r.login(HEDGER)

        def open_(name, volume):
            key = idempotency_key(name, "follower", 0)
            return r.result(r.venue.execute(OrderRequest(key, follower, Action.OPEN, "EURUSD", Side.BUY, volume)))

        big = open_("big", LOT)
        assert (big.status, big.reason) == (OrderStatus.REJECTED, "dwx-max-lot-size")
        assert open_("one", LOT // 10).status is OrderStatus.FILLED
        two = open_("two", LOT // 10)
        assert (two.status, two.reason) == (OrderStatus.REJECTED, "limit-positions")
        unknown = r.result(r.venue.execute(OrderRequest(idempotency_key("x", "f", 0), follower, Action.OPEN,
                                                        "NOSUCH", Side.BUY, LOT)))
        assert unknown.reason == "unknown-symbol"
        gone = r.result(r.venue.execute(OrderRequest(idempotency_key("y", "f", 0), follower, Action.CLOSE, "EURUSD",
                                                     Side.BUY, LOT, PositionId(M4, 999))))
        assert gone.reason == "position-not-found"
    finally:
        r.close()


def test_a_hostile_comment_stalls_the_feed_with_one_line_until_that_order_is_gone(rig, caplog):
    master = rig.login(MASTER)
    seen: list[MasterDeal] = []
    rig.result(rig.venue.watch_deals(master, seen.append))
    t = rig.terminals[MASTER]
    with caplog.at_level(logging.WARNING):
        bad = t.open("EURUSD", 0, "0.10", comment="it's")
        rig.wait(0.5)
        assert seen == []
        warnings = [r for r in caplog.records if "poll failed" in r.getMessage()]
        assert len(warnings) == 1 and "\n" not in warnings[0].getMessage()
        t.close(bad)
        good = rig.manual(master, "EURUSD", Side.SELL, "0.20")
        rig.pump(lambda: len(seen) == 1)
    assert seen[0].position_id == good and seen[0].kind is DealKind.OPEN


def test_a_trade_opened_and_closed_between_two_polls_is_not_seen(rig):
    master = rig.login(MASTER)
    seen: list[MasterDeal] = []
    rig.result(rig.venue.watch_deals(master, seen.append))
    position = rig.manual(master, "EURUSD", Side.BUY, "0.10")
    rig.manual_close(master, position)
    rig.wait(0.3)
    assert seen == [] and rig.result(rig.venue.deals_since(master, None)) == []


@pytest.mark.parametrize("poll_ms", [100, 10])
def test_a_master_deal_arrives_within_one_poll(poll_ms):
    r = DwxRig(poll_ms=poll_ms)
    try:
        master = r.login(MASTER)
        seen: list = []
        r.result(r.venue.watch_deals(master, lambda d: seen.append((r.ms, d))))
        delays = []
        for n in range(5):
            r.wait(0.0137 * (n + 1))  # trades at times unrelated to the poll's phase
            start = r.ms
            r.manual(master, "EURUSD", Side.BUY, "0.10")
            r.pump(lambda: len(seen) == n + 1)
            delays.append(seen[-1][0] - start)
        assert max(delays) <= poll_ms + 5  # a poll, and the EA's 1 ms timer for the command and the reply
    finally:
        r.close()


def test_account_info_is_refused_in_one_line_and_specs_come_from_the_table(rig):
    from connectors.interface import VenueUnavailable

    with pytest.raises(VenueUnavailable, match="no account command"):
        rig.result(rig.venue.account_info(rig.login(HEDGER)))
    spec = rig.result(rig.venue.symbol_spec(rig.login(HEDGER), "USDJPY"))
    assert (spec.digits, spec.to_volume("1.00")) == (3, LOT)
    with pytest.raises(KeyError):
        rig.result(rig.venue.symbol_spec(rig.login(HEDGER), "NOSUCH"))


def test_bridge_sim_mt4_dwx_speaks_the_dwx_text_protocol_and_stops_on_sigterm():
    import select
    import signal
    import subprocess

    import zmq

    from tests.processes import BRIDGE, ROOT, terminate

    sim = subprocess.Popen([BRIDGE, "sim", "mt4", "--dwx", "--endpoint", "tcp://127.0.0.1:0", "--login", "4009",
                            "--dwx-max-orders", "5", "--dwx-max-lot-size", "1"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    ctx = zmq.Context()
    try:
        ready, _, _ = select.select([sim.stdout], [], [], 30)
        line = sim.stdout.readline() if ready else ""
        assert line.startswith("listening on tcp://127.0.0.1:"), (line, sim.poll())
        port = int(line.split("tcp://127.0.0.1:", 1)[1].split()[0])
        assert f"DWX: replies tcp://127.0.0.1:{port + 1}, prices tcp://127.0.0.1:{port + 2}" in line
        push, pull = ctx.socket(zmq.PUSH), ctx.socket(zmq.PULL)
        for s in (push, pull):
            s.setsockopt(zmq.LINGER, 0)
        push.connect(f"tcp://127.0.0.1:{port}")
        pull.connect(f"tcp://127.0.0.1:{port + 1}")

        def ask(text: str):
            push.send_string(text)
            while True:
                assert pull.poll(10_000), text
                frame = pull.recv()
                if frame:  # the EA sends an empty frame after each reply
                    return parse(frame)

        assert ask("HEARTBEAT")["_response"] == "loud and clear!"
        opened = ask("TRADE;OPEN;1;EURUSD;0;300;600;by-hand;0.5;42;0")
        assert opened["_action"] == "EXECUTION" and opened["_magic"] == 42
        point = Decimal("0.00001")
        assert opened["_sl"] == opened["_open_price"] + 300 * point  # a sell's SL: points above the open
        assert opened["_tp"] == opened["_open_price"] - 600 * point
        [entry] = ask(D.trade(D.GET_OPEN_TRADES))["_trades"].values()
        assert (entry["_lots"], entry["_type"], entry["_comment"]) == (Decimal("0.5"), 1, "by-hand")
        assert ask("TRADE;OPEN;0;EURUSD;0;0;0;x;2;0;0")["_response"] == "LOT_SIZE_ERROR"
        push.close()
        pull.close()
        sim.send_signal(signal.SIGTERM)
        assert sim.wait(timeout=10) == 0
    finally:
        terminate(sim)
        sim.stdout.close()
        sim.stderr.close()
        ctx.destroy(linger=0)


def test_a_trade_that_does_not_fit_its_spec_is_left_out_with_one_line_and_the_feed_goes_on(rig, caplog):
    from bridge.domain.volume import SymbolSpec

    master = rig.login(MASTER)
    rig.venue.symbol_specs["EURUSD"] = SymbolSpec.from_lots("EURUSD", contract_size="100000", min_lots="0.01",
                                                            max_lots="100", step_lots="0.01", digits=4)
    seen: list[MasterDeal] = []
    rig.result(rig.venue.watch_deals(master, seen.append))
    with caplog.at_level(logging.WARNING):
        rig.manual(master, "EURUSD", Side.BUY, "0.10")  # a 5-digit price: not on a 4-digit spec
        good = rig.manual(master, "GBPUSD", Side.SELL, "0.20")
        rig.pump(lambda: len(seen) == 1)
        rig.wait(0.3)
    assert [(d.position_id, d.symbol) for d in seen] == [(good, "GBPUSD")]
    lines = [r.getMessage() for r in caplog.records if "does not fit" in r.getMessage()]
    assert len(lines) == 1 and "\n" not in lines[0]
