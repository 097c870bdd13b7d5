"""The simulated MT4 terminal and EA (``connectors/mt4/simulator``) at the protocol level.

A raw pyzmq DEALER (commands) and SUB (events) talk to an :class:`EAServer` on
tcp://127.0.0.1, driven in-process by a ``SelectReactor`` iterated by the test;
the terminal's clock is manual and its prices seeded. ``bridge sim mt4`` is
started as a process at the end.
"""

from __future__ import annotations

import json
import random
import select
import signal
import subprocess
from decimal import Decimal

import pytest
import zmq
from twisted.internet.selectreactor import SelectReactor
from twisted.internet.task import Clock

from connectors.mt4 import protocol as P
from connectors.mt4.simulator import EAServer, Faults, SimClock, SimulatedEA, Terminal, TradeError
from tests.processes import BRIDGE, ROOT, terminate

D = Decimal
TIMEOUT_S = 5.0


@pytest.fixture
def ctx():
    context = zmq.Context()
    yield context
    context.destroy(linger=0)


class Rig:
    """One EA served on 127.0.0.1 and a raw client: ``call`` a command, ``wait_events`` for events."""

    def __init__(self, ctx: zmq.Context, ea: SimulatedEA, heartbeat_ms: float = 20) -> None:
        self.ctx = ctx
        self.ea = ea
        self.terminal = ea.terminal
        self.reactor = SelectReactor()
        self.server = EAServer(ea, ctx, "tcp://127.0.0.1:*", "tcp://127.0.0.1:*", reactor=self.reactor,
                               heartbeat_ms=heartbeat_ms)
        self.server.start()
        self.dealer = ctx.socket(zmq.DEALER)
        self.sub = ctx.socket(zmq.SUB)
        for s in (self.dealer, self.sub):
            s.setsockopt(zmq.LINGER, 0)
        self.sub.setsockopt(zmq.SUBSCRIBE, b"")
        self.dealer.connect(self.server.command_endpoint)
        self.sub.connect(self.server.event_endpoint)
        self.n = 0
        self.replies: dict[int, dict] = {}
        self.events: list[dict] = []
        self.heartbeats: list[dict] = []
        self.pump(lambda: self.heartbeats)  # the SUB has joined: nothing published from now on is missed

    def pump(self, until, timeout_s: float = TIMEOUT_S) -> None:
        deadline = self.reactor.seconds() + timeout_s
        while not until():
            assert self.reactor.seconds() < deadline, "timed out"
            self.reactor.iterate(0.001)
            while self.dealer.poll(0):
                reply = P.decode(self.dealer.recv())
                self.replies[reply["id"]] = reply
            while self.sub.poll(0):
                topic, body = self.sub.recv_multipart()
                (self.events if topic == P.TOPIC_EVENT else self.heartbeats).append(P.decode(body))

    def send(self, cmd: str, **fields) -> int:
        self.n += 1
        self.dealer.send(P.encode({"id": self.n, "cmd": cmd, **fields}))
        return self.n

    def call(self, cmd: str, **fields) -> dict:
        ident = self.send(cmd, **fields)
        self.pump(lambda: ident in self.replies)
        return self.replies.pop(ident)

    def ok(self, cmd: str, **fields) -> dict:
        reply = self.call(cmd, **fields)
        assert reply["ok"], reply
        return reply["result"]

    def error(self, cmd: str, **fields):
        reply = self.call(cmd, **fields)
        assert not reply["ok"] and set(reply) == {"id", "ok", "error", "text"} and reply["text"], reply
        return reply["error"]

    def wait_events(self, n: int) -> list[dict]:
        self.pump(lambda: len(self.events) >= n)
        return self.events

    def settle(self) -> None:
        """Let a few timer ticks pass (events that would come have come)."""
        ticks = self.reactor.seconds() + 0.03
        self.pump(lambda: self.reactor.seconds() >= ticks)

    def close(self) -> None:
        self.server.stop()
        self.dealer.close()
        self.sub.close()


def make_terminal(faults: Faults | None = None, **options) -> Terminal:
    return Terminal(login=4001, clock=SimClock(), rng=random.Random(11), faults=faults, **options)


@pytest.fixture
def rig(ctx):
    made = []

    def start(terminal: Terminal | None = None, **ea_options) -> Rig:
        r = Rig(ctx, SimulatedEA(terminal or make_terminal(), **ea_options))
        made.append(r)
        return r

    yield start
    for r in made:
        r.close()


def open_cmd(rig: Rig, key: str, lots="0.10", type=P.OP_BUY, symbol="EURUSD", slippage=10, **extra) -> dict:
    quote = rig.terminal.market.quote(symbol)
    price = quote.ask if type == P.OP_BUY else quote.bid
    return dict(key=key, symbol=symbol, type=type, lots=D(lots), price=price, slippage=slippage, sl=0, tp=0,
                magic=123456789, **extra)


# -- commands -----------------------------------------------------------------------------------------

def test_ping_and_heartbeats_name_the_epoch_and_the_last_seq(rig):
    r = rig()
    ping = r.ok("PING")
    assert ping["epoch"] == r.ea.epoch and ping["seq"] == 0
    assert ping["time"] == "2024.01.01 02:00:00" and ping["time_msc"] == 1704074400000  # server time: UTC + 2 h
    assert set(r.heartbeats[0]) == {"epoch", "seq", "time", "time_msc"} and r.heartbeats[0]["seq"] == 0
    r.terminal.open("EURUSD", P.OP_BUY, "0.01")
    r.wait_events(1)
    r.pump(lambda: r.heartbeats[-1]["seq"] == 1)
    assert r.ok("PING")["seq"] == 1


def test_open_then_partial_close_reopens_the_remainder_under_a_new_ticket(rig):
    r = rig()
    result = r.ok("OPEN", **open_cmd(r, "cb0000000000000001a", lots="0.10"))
    ticket = result["ticket"]
    assert result["lots"] == D("0.1") and result["comment"] == "cb0000000000000001a"
    assert result["magic"] == 123456789 and result["price"] == r.terminal.market.quote("EURUSD").ask
    opened = r.wait_events(1)[0]
    assert (opened["ev"], opened["seq"], opened["epoch"], opened["ticket"]) == ("open", 1, r.ea.epoch, ticket)

    bid = r.terminal.market.quote("EURUSD").bid
    closed = r.ok("CLOSE", key="cb0000000000000002a", ticket=ticket, lots=D("0.04"), price=bid, slippage=10)
    remainder = closed["remainder"]
    assert closed["closed_lots"] == D("0.04") and closed["remainder_lots"] == D("0.06") and remainder > ticket
    partial = r.wait_events(2)[1]
    assert partial["ev"] == "partial" and partial["seq"] == 2
    assert (partial["ticket"], partial["remainder"], partial["closed_lots"], partial["remainder_lots"]) == (
        ticket, remainder, D("0.04"), D("0.06"))
    [trade] = r.ok("TRADES")["trades"]
    assert (trade["ticket"], trade["comment"], trade["lots"], trade["open_price"]) == (
        remainder, f"from #{ticket}", D("0.06"), result["price"])
    history = r.ok("HISTORY", after_ticket=ticket - 1)["orders"]
    assert [(h["ticket"], h["comment"], h["lots"]) for h in history] == [(ticket, f"to #{remainder}", D("0.04"))]

    # a full close (lots 0) of the remainder: a close event, reason client
    closed = r.ok("CLOSE", key="cb0000000000000003a", ticket=remainder, lots=0)
    assert closed["remainder"] == 0 and closed["closed_lots"] == D("0.06")
    close = r.wait_events(3)[2]
    assert (close["ev"], close["ticket"], close["reason"], close["lots"]) == ("close", remainder, "client", D("0.06"))
    assert r.ok("TRADES")["trades"] == []


def test_a_resent_key_is_answered_from_the_journal_without_trading_twice(rig):
    r = rig()
    command = open_cmd(r, "cb0000000000000010a")
    first = r.call("OPEN", **command)
    again = r.call("OPEN", **command)
    assert again["repeat"] is True and "repeat" not in first and again["result"] == first["result"]
    assert len(r.ok("TRADES")["trades"]) == 1
    ticket = first["result"]["ticket"]
    close = dict(key="cb0000000000000011a", ticket=ticket, lots=0)
    assert r.call("CLOSE", **close)["ok"] and r.call("CLOSE", **close)["repeat"] is True
    modify = r.call("MODIFY", key="cb0000000000000012a", ticket=ticket, sl=0, tp=0)
    assert modify == {"id": modify["id"], "ok": False, "error": "not-found", "text": modify["text"]}
    r.settle()
    assert [e["ev"] for e in r.events] == ["open", "close"]
    assert r.ok("LOOKUP", key="cb0000000000000010a") == {"found": True, "cmd": "OPEN", "reply": first["result"]}
    assert r.ok("LOOKUP", key="cb0000000000000011a")["cmd"] == "CLOSE"
    assert r.ok("LOOKUP", key="cb0000000000000099a") == {"found": False}


def test_refusals_carry_the_mql4_code_and_trade_nothing(rig):
    t = make_terminal(balance="1000")
    r = rig(t)
    assert r.error("FLY") == "unknown-command"
    assert r.error("OPEN", **open_cmd(r, "k1", symbol="EURUSD") | {"symbol": "NOPE"}) == "unknown-symbol"
    assert r.error("SYMBOL", symbol="NOPE") == "unknown-symbol"
    assert r.error("OPEN", **open_cmd(r, "k2", lots="0.009")) == P.ERR_INVALID_TRADE_VOLUME  # rounds down to 0
    assert r.error("OPEN", **open_cmd(r, "k3", lots="101")) == P.ERR_INVALID_TRADE_VOLUME  # above max: refused
    assert r.error("OPEN", **open_cmd(r, "k4", lots="5")) == P.ERR_NOT_ENOUGH_MONEY
    assert r.error("OPEN", **open_cmd(r, "k5") | {"type": 2}) == P.ERR_INVALID_TRADE_PARAMETERS
    far = open_cmd(r, "k6") | {"price": t.market.quote("EURUSD").ask - D("0.00011")}  # 11 points worse
    assert r.error("OPEN", **far) == P.ERR_REQUOTE
    bid = t.market.quote("EURUSD").bid
    assert r.error("OPEN", **open_cmd(r, "k7") | {"sl": bid}) == P.ERR_INVALID_STOPS
    assert r.error("CLOSE", key="k8", ticket=999999, lots=0) == "not-found"
    assert r.error("MODIFY", key="k9", ticket=999999, sl=0, tp=0) == "not-found"
    t.faults.connected = False
    assert r.error("OPEN", **open_cmd(r, "k10")) == P.ERR_NO_CONNECTION
    assert r.ok("ACCOUNT")["balance"] == D("1000")  # queries still answer
    t.faults.connected, t.faults.busy = True, 1.0
    assert r.error("OPEN", **open_cmd(r, "k11")) == P.ERR_TRADE_CONTEXT_BUSY
    t.faults.busy, t.faults.requote = 0.0, 1.0
    assert r.error("OPEN", **open_cmd(r, "k12")) == P.ERR_REQUOTE
    assert r.ok("TRADES")["trades"] == [] and r.ok("LOOKUP", key="k12") == {"found": False}
    t.faults.requote = 0.0
    assert r.ok("OPEN", **open_cmd(r, "k12"))["lots"] == D("0.1")  # a refusal is not journalled: the key trades now
    r.settle()
    assert [e["ev"] for e in r.events] == ["open"]


def test_lots_round_down_to_the_step(rig):
    r = rig()
    opened = r.ok("OPEN", **open_cmd(r, "k1", lots="0.157"))
    assert opened["lots"] == D("0.15")
    assert r.error("CLOSE", key="k2", ticket=opened["ticket"], lots=D("0.004")) == P.ERR_INVALID_TRADE_VOLUME
    assert r.error("CLOSE", key="k3", ticket=opened["ticket"], lots=D("0.2")) == P.ERR_INVALID_TRADE_VOLUME
    closed = r.ok("CLOSE", key="k4", ticket=opened["ticket"], lots=D("0.057"))
    assert (closed["closed_lots"], closed["remainder_lots"]) == (D("0.05"), D("0.1"))


def test_modify_sets_sl_tp_unchanged_is_success_and_a_stop_closes_with_its_reason(rig):
    r = rig()
    ticket = r.ok("OPEN", **open_cmd(r, "k1"))["ticket"]
    bid = r.terminal.market.quote("EURUSD").bid
    sl, tp = bid - D("0.00100"), bid + D("0.00200")
    assert r.ok("MODIFY", key="k2", ticket=ticket, sl=sl, tp=tp) == {"ticket": ticket, "sl": sl, "tp": tp}
    assert r.ok("MODIFY", key="k3", ticket=ticket, sl=sl, tp=tp) == {"ticket": ticket, "sl": sl, "tp": tp}
    assert r.error("MODIFY", key="k4", ticket=ticket, sl=bid + D("0.001"), tp=0) == P.ERR_INVALID_STOPS
    modify = r.wait_events(2)[1]
    assert (modify["ev"], modify["ticket"], modify["sl"], modify["tp"]) == ("modify", ticket, sl, tp)
    r.terminal.set_bid("EURUSD", sl - D("0.00001"))
    close = r.wait_events(3)[2]
    assert (close["ev"], close["ticket"], close["reason"], close["close_price"]) == ("close", ticket, "sl",
                                                                                     sl - D("0.00001"))
    assert r.ok("HISTORY", after_ticket=ticket - 1)["orders"][0]["comment"] == "k1[sl]"
    r.settle()
    assert len(r.events) == 3


def test_manual_trades_and_balance_operations_produce_events(rig):
    r = rig()
    manual = r.ok("MANUAL_OPEN", symbol="GBPUSD", type=P.OP_SELL, lots=D("0.30"), sl=0, tp=0)
    assert (manual["magic"], manual["comment"], manual["lots"]) == (0, "", D("0.3"))
    ticket = manual["ticket"]
    ask = r.terminal.market.quote("GBPUSD").ask
    assert r.ok("MANUAL_MODIFY", ticket=ticket, sl=ask + D("0.005"), tp=0)["sl"] == ask + D("0.005")
    part = r.ok("MANUAL_CLOSE", ticket=ticket, lots=D("0.1"))
    r.ok("MANUAL_CLOSE", ticket=part["remainder"], lots=0)
    by_hand = r.terminal.open("USDJPY", P.OP_BUY, "1.00")
    deposit = r.terminal.balance_operation("250.50", "top-up")
    events = r.wait_events(6)
    assert [e["ev"] for e in events] == ["open", "modify", "partial", "close", "open", "balance"]
    assert [e["seq"] for e in events] == [1, 2, 3, 4, 5, 6]
    assert (events[2]["remainder"], events[3]["ticket"], events[4]["ticket"]) == (part["remainder"],
                                                                                 part["remainder"], by_hand)
    assert (events[5]["ticket"], events[5]["amount"], events[5]["comment"]) == (deposit, D("250.5"), "top-up")
    assert r.ok("LOOKUP", key="") == {"found": False}  # manual trades carry no key
    assert r.error("MANUAL_CLOSE", ticket=999, lots=0) == "not-found"


def test_replay_heals_a_dropped_event_and_the_heartbeat_reveals_it(rig):
    t = make_terminal(Faults(drop_events=1.0))
    r = rig(t)
    t.open("EURUSD", P.OP_BUY, "0.01")
    r.pump(lambda: r.heartbeats[-1]["seq"] == 1)
    assert r.events == []  # not published...
    replay = r.ok("REPLAY", after_seq=0)  # ...but held
    assert replay["epoch"] == r.ea.epoch and [(e["ev"], e["seq"]) for e in replay["events"]] == [("open", 1)]
    assert r.ok("REPLAY", after_seq=1) == {"epoch": r.ea.epoch, "events": []}


def test_replay_beyond_the_ring_answers_gap(rig):
    r = rig(ring=3)
    for _ in range(5):
        r.terminal.open("EURUSD", P.OP_BUY, "0.01")
        r.pump(lambda: r.heartbeats[-1]["seq"] == r.ea.ring.seq and r.ea.ring.seq > 0)
    r.wait_events(5)
    assert r.ok("REPLAY", after_seq=1) == {"epoch": r.ea.epoch, "gap": True}
    assert [e["seq"] for e in r.ok("REPLAY", after_seq=2)["events"]] == [3, 4, 5]


def test_a_lost_reply_is_found_by_lookup_and_a_resend_does_not_trade_again(rig):
    t = make_terminal(Faults(timeout_after=1.0))
    r = rig(t)
    command = open_cmd(r, "cb0000000000000020a")
    ident = r.send("OPEN", **command)
    r.wait_events(1)
    r.settle()
    assert ident not in r.replies and r.ea.swallowed == 1  # traded, never answered
    found = r.ok("LOOKUP", key="cb0000000000000020a")
    assert found["found"] and found["reply"]["ticket"] == r.events[0]["ticket"]
    t.faults.timeout_after = 0.0
    assert r.call("OPEN", **command)["repeat"] is True and len(t.open_orders()) == 1

    # the EA died before its journal line: LOOKUP finds the order by its comment
    t.faults.timeout_before_journal = 1.0
    r.send("OPEN", **open_cmd(r, "cb0000000000000021a"))
    r.wait_events(2)
    found = r.ok("LOOKUP", key="cb0000000000000021a")
    assert found == {"found": True, "cmd": "OPEN", "reply": found["reply"]}
    assert found["reply"]["ticket"] == r.events[1]["ticket"] and found["reply"]["comment"] == "cb0000000000000021a"


def test_a_restarted_ea_has_a_new_epoch_and_answers_repeats_from_its_journal_file(ctx, rig, tmp_path):
    journal = tmp_path / "copybridge-4001.journal"
    t = make_terminal()
    first = rig(t, journal_path=journal)
    command = open_cmd(first, "cb0000000000000030a")
    opened = first.ok("OPEN", **command)
    first.wait_events(1)
    first.close()
    t.open("EURUSD", P.OP_SELL, "0.02")  # while no EA runs: the new one's snapshot, no event
    second = rig(t, journal_path=journal)
    assert second.ea.epoch != first.ea.epoch and second.ok("PING")["seq"] == 0
    again = second.call("OPEN", **command)
    assert again["repeat"] is True and again["result"]["ticket"] == opened["ticket"]
    second.terminal.open("EURUSD", P.OP_BUY, "0.03")
    event = second.wait_events(1)[0]
    assert (event["epoch"], event["seq"], event["lots"]) == (second.ea.epoch, 1, D("0.03"))
    assert json.loads(journal.read_text().splitlines()[0])["key"] == "cb0000000000000030a"


@pytest.mark.parametrize("frame,answer", [
    (b"not json", None),
    (b"[1, 2]", None),
    (b'{"cmd": "PING"}', None),
    (b'{"id": 41}', "bad-frame"),
    (b'{"id": 42, "cmd": "OPEN", "key": "k", "symbol": "EURUSD", "type": 0, "lots": "x"}', "bad-frame"),
    (b'{"id": 43, "cmd": "OPEN", "symbol": "EURUSD", "type": 0, "lots": 0.1}', "bad-frame"),
    (b'{"id": 44, "cmd": "PING", "nested": {"a": 1}}', "bad-frame"),
    (b'{"id": 45, "cmd": "REPLAY"}', "bad-frame"),
])
def test_bad_frames_are_answered_or_dropped_and_the_server_goes_on(rig, frame, answer):
    r = rig()
    r.dealer.send(frame)
    if answer is None:
        r.pump(lambda: r.server.bad_frames + r.ea.bad_frames == 1)
    else:
        ident = json.loads(frame)["id"]
        r.pump(lambda: ident in r.replies)
        assert r.replies[ident]["error"] == answer and r.replies[ident]["text"]
    assert r.ok("PING")["epoch"] == r.ea.epoch


def test_account_symbol_and_history_fields(rig):
    r = rig()
    account = r.ok("ACCOUNT")
    assert account == {"login": 4001, "currency": "USD", "balance": D("10000"), "equity": D("10000"),
                       "margin": 0, "free_margin": D("10000"), "leverage": 100, "server": "SimBroker-MT4",
                       "company": "Sim Broker Ltd", "name": "Sim Trader"}
    symbol = r.ok("SYMBOL", symbol="EURUSD")
    assert symbol["digits"] == 5 and symbol["point"] == D("0.00001") and symbol["contract_size"] == 100000
    assert (symbol["min_lot"], symbol["lot_step"], symbol["max_lot"]) == (D("0.01"), D("0.01"), 100)
    assert symbol["tick_value"] == 1 and symbol["trade_allowed"] is True and symbol["ask"] > symbol["bid"]
    [deposit] = r.ok("HISTORY", after_ticket=0)["orders"]
    assert (deposit["type"], deposit["symbol"], deposit["profit"], deposit["comment"]) == (6, "", 10000, "Deposit")
    ticket = r.ok("OPEN", **open_cmd(r, "k1"))["ticket"]
    r.terminal.clock.advance(60)
    r.ok("CLOSE", key="k2", ticket=ticket, lots=0)
    # an order opened before after_ticket and closed later: found by its close time
    later = r.terminal.balance_operation("5")
    orders = r.ok("HISTORY", after_ticket=later, since_msc=r.terminal.now_msc())["orders"]
    assert [o["ticket"] for o in orders] == [ticket, later]
    assert orders[0]["close_time"] == "2024.01.01 02:01:00" and orders[0]["open_time"] == "2024.01.01 02:00:00"
    assert r.ok("ACCOUNT")["margin"] == 0


def test_the_server_runs_on_a_plain_clock_by_its_timer(ctx):
    clock = Clock()
    ea = SimulatedEA(make_terminal())
    server = EAServer(ea, ctx, "tcp://127.0.0.1:*", "tcp://127.0.0.1:*", reactor=clock)
    server.start()
    dealer = ctx.socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.connect(server.command_endpoint)
    try:
        dealer.send(P.encode({"id": 1, "cmd": "PING"}))
        for _ in range(5000):
            clock.advance(0.001)
            if dealer.poll(1):
                break
        assert P.decode(dealer.recv())["result"]["epoch"] == ea.epoch
    finally:
        dealer.close()
        server.stop()


def test_reply_delay_holds_a_trading_reply_after_the_trade_while_the_rest_goes_on(rig):
    """``reply_delay_ms`` (bridge sim mt4 --reply-delay-ms): the trade is done, journalled and its event
    published at once; only its reply comes late, and queries meanwhile are answered at once."""
    r = rig()
    r.server.reply_delay_ms = 300
    sent_at = r.reactor.seconds()
    opening = r.send("OPEN", **open_cmd(r, "cb0000000000000020a"))
    [trade] = r.ok("TRADES")["trades"]  # asked after the OPEN, answered before its reply
    assert opening not in r.replies and trade["comment"] == "cb0000000000000020a"
    assert r.wait_events(1)[0]["ticket"] == trade["ticket"] and opening not in r.replies
    assert r.ok("LOOKUP", key="cb0000000000000020a")["found"] is True  # journalled before the reply
    assert r.reactor.seconds() - sent_at < 0.3 and opening not in r.replies
    r.pump(lambda: opening in r.replies)
    assert r.reactor.seconds() - sent_at >= 0.3
    reply = r.replies.pop(opening)
    assert reply["ok"] and "repeat" not in reply and reply["result"]["ticket"] == trade["ticket"]
    r.server.reply_delay_ms = 0
    assert r.ok("CLOSE", key="cb0000000000000021a", ticket=trade["ticket"], lots=0)["closed_lots"] == D("0.1")


# -- the terminal and the scan without sockets --------------------------------------------------------

def test_an_order_opened_and_closed_between_two_scans_is_reported_both_ways():
    t = make_terminal()
    ea = SimulatedEA(t)
    ticket = t.open("XAUUSD", P.OP_BUY, "0.50")
    remainder = t.close(ticket, "0.20")
    t.close(remainder)
    events = ea.scan()
    assert [(e["ev"], e["ticket"]) for e in events] == [("open", ticket), ("partial", ticket), ("close", remainder)]
    assert events[0]["lots"] == D("0.50") and events[1]["remainder_lots"] == D("0.30")
    assert ea.scan() == []


def test_stop_out_closes_the_most_losing_order_with_so_in_its_comment():
    t = make_terminal(balance="600")
    ea = SimulatedEA(t)
    with pytest.raises(TradeError) as refused:
        t.open("EURUSD", P.OP_BUY, "1.00")  # margin 100000 * 1.085 / 100 = 1085 > 600
    assert refused.value.code == P.ERR_NOT_ENOUGH_MONEY
    t.balance_operation("10000")
    ticket = t.open("EURUSD", P.OP_BUY, "5.00")
    t.set_bid("EURUSD", D("1.06600"))  # -0.019 * 500000 = -9,500: equity about 1,100 for 5,400 of margin
    [closed] = [h for h in t.history_orders() if h.ticket == ticket]
    assert closed.comment.startswith("so: ") and t.open_orders() == []
    assert [(e["ev"], e.get("reason")) for e in ea.scan()][-1] == ("close", "so")


# -- bridge sim mt4 -----------------------------------------------------------------------------------

@pytest.mark.parametrize("argv,message", [
    (["--login", "1"], "Missing option '--endpoint'"),
    (["--endpoint", "127.0.0.1:5000", "--login", "1"], "is not tcp://HOST:PORT"),
    (["--endpoint", "tcp://127.0.0.1:65535", "--login", "1"], "at most 65534"),
    (["--endpoint", "tcp://127.0.0.1:0", "--login", "0"], "--login"),
    (["--endpoint", "tcp://127.0.0.1:0", "--login", "1", "--balance", "lots"], "not a non-negative amount"),
])
def test_bridge_sim_mt4_usage_errors_exit_2_with_one_line(argv, message):
    done = subprocess.run([BRIDGE, "sim", "mt4", *argv], capture_output=True, text=True, cwd=ROOT, timeout=30)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith("bridge: error: ") and done.stderr.count("\n") == 1 and message in done.stderr


def test_bridge_sim_mt4_answers_ping_and_stops_on_sigterm(ctx, tmp_path):
    sim = subprocess.Popen([BRIDGE, "sim", "mt4", "--endpoint", "tcp://127.0.0.1:0", "--login", "4007",
                            "--journal", str(tmp_path / "j.journal"), "--tick-interval-ms", "10"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        ready, _, _ = select.select([sim.stdout], [], [], 30)
        line = sim.stdout.readline() if ready else ""
        assert line.startswith("listening on tcp://127.0.0.1:"), (line, sim.poll())
        port = int(line.split("tcp://127.0.0.1:", 1)[1].split()[0])
        assert line.strip() == (f"listening on tcp://127.0.0.1:{port} (events tcp://127.0.0.1:{port + 1}; "
                                f"MT4 simulator, login 4007)")
        dealer, sub = ctx.socket(zmq.DEALER), ctx.socket(zmq.SUB)
        for s in (dealer, sub):
            s.setsockopt(zmq.LINGER, 0)
        sub.setsockopt(zmq.SUBSCRIBE, P.TOPIC_HEARTBEAT)
        dealer.connect(f"tcp://127.0.0.1:{port}")
        sub.connect(f"tcp://127.0.0.1:{port + 1}")
        dealer.send(P.encode({"id": 7, "cmd": "PING"}))
        assert dealer.poll(10_000)
        reply = P.decode(dealer.recv())
        assert reply["id"] == 7 and reply["ok"] and reply["result"]["seq"] == 0
        assert sub.poll(10_000) and P.decode(sub.recv_multipart()[1])["epoch"] == reply["result"]["epoch"]
        dealer.close()
        sub.close()
        sim.send_signal(signal.SIGTERM)
        assert sim.wait(timeout=10) == 0
    finally:
        terminate(sim)
        sim.stdout.close()
        sim.stderr.close()
