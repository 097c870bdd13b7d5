"""The bus: frames, and in-order exactly-once delivery over real sockets on 127.0.0.1."""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from decimal import Decimal

import pytest
import zmq
from twisted.internet.selectreactor import SelectReactor

from bridge.bus.channel import Publisher, Subscriber
from bridge.bus.frame import Frame, FrameError, Header, decode, deal_body, deal_from_body, deal_topic
from bridge.bus.reactor import ReactorDriver
from bridge.domain.deal import DealKind, MasterDeal, Side
from bridge.domain.ids import DealId, PositionId, Platform
from tests.builders import MASTER_LOGIN

ANY = "tcp://127.0.0.1:*"


def a_deal(n: int = 1) -> MasterDeal:
    return MasterDeal(DealId(Platform.SIM, n), PositionId(Platform.SIM, 7), MASTER_LOGIN, "EURUSD",
                      DealKind.PARTIAL_CLOSE, Side.BUY, 300_000, datetime(2026, 1, 5, 9, 30, tzinfo=timezone.utc),
                      position_volume=1_000_000, price=Decimal("1.08515"), sl=Decimal("1.08000"), tp=None)


@pytest.fixture
def ctx():
    context = zmq.Context()
    yield context
    context.destroy(linger=0)


def pump(*channels, until, timeout: float = 5.0) -> None:
    """Drive channels with a zmq.Poller until ``until()`` holds; fail after ``timeout`` seconds.

    Publishers heartbeat on every idle poll, as the daemon's timer does."""
    poller = zmq.Poller()
    for channel in channels:
        for socket in channel.sockets:
            poller.register(socket, zmq.POLLIN)
    deadline = time.monotonic() + timeout
    while not until():
        assert time.monotonic() < deadline, f"condition not reached in time: {_state(channels)}"
        if not poller.poll(10):
            for channel in channels:
                if isinstance(channel, Publisher):
                    channel.heartbeat()
        for channel in channels:
            channel.on_readable()


def _state(channels) -> str:
    return "; ".join(
        f"expected={c.expected} pending={len(c.pending)} replaying={c.replaying} dup={c.duplicates}"
        if isinstance(c, Subscriber) else f"pub seq={c.seq} bad={c.bad_requests}" for c in channels)


class Recorder:
    def __init__(self) -> None:
        self.frames: list[Frame] = []
        self.lost: list[tuple] = []

    def deliver(self, frame: Frame) -> None:
        self.frames.append(frame)

    def on_lost(self, epoch, first, last) -> None:
        self.lost.append((epoch, first, last))

    @property
    def seqs(self) -> list[int]:
        return [f.header.seq for f in self.frames]


def pair(ctx, rec: Recorder, *, history: int = 1000, resume=None, sub_hwm: int = 1000, pub_hwm: int = 1000):
    pub = Publisher(ctx, ANY, ANY, "connector-sim", history=history, hwm=pub_hwm)
    sub = Subscriber(ctx, pub.endpoint, pub.replay_endpoint, ["deal."], rec.deliver, resume=resume,
                     on_lost=rec.on_lost, hwm=sub_hwm)
    return pub, sub


# -- frames ---------------------------------------------------------------------------

def test_frame_round_trip_and_documented_header():
    deal = a_deal()
    frame = Frame(deal_topic(deal), Header("c1", "e1", 42, 1_000, 900), deal_body(deal))
    parts = frame.encode()
    assert parts[0] == b"deal.sim/master/1001"
    header = json.loads(parts[1])
    assert header == {"v": 1, "src": "c1", "epoch": "e1", "seq": 42, "id": "c1:e1:42", "ts": 1000, "origin": 900}
    again = decode(parts)
    assert again == frame
    assert deal_from_body(again.body) == deal


BAD_FRAMES = {
    "two parts": [b"deal.x", b"{}"],
    "header not json": [b"deal.x", b"{nope", b"{}"],
    "header not object": [b"deal.x", b"[1]", b"{}"],
    "wrong version": [b"deal.x", json.dumps({"v": 9}).encode(), b"{}"],
    "missing seq": [b"deal.x", json.dumps({"v": 1, "src": "s", "epoch": "e", "ts": 1, "origin": 1}).encode(), b"{}"],
    "seq zero": [b"deal.x", json.dumps({"v": 1, "src": "s", "epoch": "e", "seq": 0, "id": "s:e:0", "ts": 1,
                                        "origin": 1}).encode(), b"{}"],
    "id mismatch": [b"deal.x", json.dumps({"v": 1, "src": "s", "epoch": "e", "seq": 1, "id": "x", "ts": 1,
                                           "origin": 1}).encode(), b"{}"],
    "topic not utf-8": [b"\xff", b"{}", b"{}"],
}


@pytest.mark.parametrize("parts", BAD_FRAMES.values(), ids=BAD_FRAMES.keys())
def test_bad_frames_raise_frame_error(parts):
    with pytest.raises(FrameError):
        decode(parts)


@pytest.mark.parametrize("field,value,message", [
    ("price", "1.2.3", "price '1.2.3' is not a decimal"),
    ("price", 1.5, "price must be a decimal string"),
    ("volume", -1, "volume must be an integer >= 0"),
    ("kind", "teleport", "'teleport' is not a valid DealKind"),
    ("deal_id", "sim:x", "deal_id must look like platform:number"),
    ("account", "nope", "malformed account"),
])
def test_bad_deal_bodies_name_the_field(field, value, message):
    body = deal_body(a_deal())
    body[field] = value
    with pytest.raises(FrameError, match=message.replace(".", r"\.").replace("(", r"\(").replace("'", "'")):
        deal_from_body(body)


# -- delivery over sockets ----------------------------------------------------------------

def test_slow_joiner_gets_everything_published_before_it_connected(ctx):
    rec = Recorder()
    pub, sub = pair(ctx, rec)
    for n in range(1, 51):
        pub.publish(deal_topic(a_deal(n)), deal_body(a_deal(n)))
    sub.start()
    pump(pub, sub, until=lambda: len(rec.frames) == 50)
    assert rec.seqs == list(range(1, 51))
    assert [deal_from_body(f.body).deal_id.value for f in rec.frames] == list(range(1, 51))
    pub.publish("deal.x", {"n": 51})
    pump(pub, sub, until=lambda: len(rec.frames) == 51)
    assert rec.seqs == list(range(1, 52))
    pub.close(), sub.close()


def test_high_water_mark_drops_are_healed_by_replay_in_order_without_duplicates(ctx):
    rec = Recorder()
    pub, sub = pair(ctx, rec, sub_hwm=2, pub_hwm=2, history=5000)
    sub.start()
    pump(pub, sub, until=lambda: not sub.replaying)
    for n in range(1, 2001):  # far faster than a subscriber with a 2-frame queue can keep up
        pub.publish("deal.x", {"n": n})
    pump(pub, sub, until=lambda: len(rec.frames) == 2000, timeout=20)
    assert rec.lost == []
    assert rec.seqs == list(range(1, 2001))
    assert [f.body["n"] for f in rec.frames] == list(range(1, 2001))
    pub.close(), sub.close()


def test_resume_after_a_subscriber_restart_delivers_only_what_it_had_not_processed(ctx):
    rec = Recorder()
    pub, sub = pair(ctx, rec)
    for n in range(1, 11):
        pub.publish("deal.x", {"n": n})
    sub.close()  # the worker dies having processed up to seq 6
    rec2 = Recorder()
    sub2 = Subscriber(ctx, pub.endpoint, pub.replay_endpoint, ["deal."], rec2.deliver,
                      resume=(pub.epoch, 6), on_lost=rec2.on_lost)
    sub2.start()
    pump(pub, sub2, until=lambda: len(rec2.frames) == 4)
    assert rec2.seqs == [7, 8, 9, 10] and rec2.lost == []
    pub.close(), sub2.close()


def test_publisher_restart_reports_the_lost_range_and_continues_with_the_new_epoch(ctx):
    rec = Recorder()
    pub, sub = pair(ctx, rec)
    sub.start()
    for n in range(1, 4):
        pub.publish("deal.x", {"n": n})
    pump(pub, sub, until=lambda: len(rec.frames) == 3)
    old_epoch = pub.epoch
    pub.close()
    pub2 = Publisher(ctx, pub.endpoint, pub.replay_endpoint, "connector-sim")
    assert pub2.epoch != old_epoch
    for n in range(1, 3):
        pub2.publish("deal.x", {"n": 100 + n})
    pump(pub2, sub, until=lambda: len(rec.frames) == 5, timeout=10)
    assert rec.lost == [(old_epoch, 4, None)]  # anything after seq 3 of the old epoch: recover from the venue
    assert [f.body["n"] for f in rec.frames] == [1, 2, 3, 101, 102]
    pub2.close(), sub.close()


def test_history_too_short_reports_what_cannot_be_replayed(ctx):
    rec = Recorder()
    pub, sub = pair(ctx, rec, history=5)
    for n in range(1, 21):
        pub.publish("deal.x", {"n": n})
    sub2 = Subscriber(ctx, pub.endpoint, pub.replay_endpoint, ["deal."], rec.deliver, resume=(pub.epoch, 3),
                      on_lost=rec.on_lost)
    sub2.start()
    pump(pub, sub2, until=lambda: len(rec.frames) == 5)
    assert rec.lost == [(pub.epoch, 4, 15)]
    assert rec.seqs == [16, 17, 18, 19, 20]
    pub.close(), sub.close(), sub2.close()


def test_a_garbage_frame_is_counted_and_dropped_and_delivery_goes_on(ctx):
    rec = Recorder()
    raw = ctx.socket(zmq.PUB)
    raw.bind(ANY)
    router = ctx.socket(zmq.ROUTER)
    router.bind(ANY)
    sub = Subscriber(ctx, raw.getsockopt_string(zmq.LAST_ENDPOINT), router.getsockopt_string(zmq.LAST_ENDPOINT),
                     ["deal."], rec.deliver)
    first = Frame("deal.x", Header("s", "e", 1, 1, 1), {"n": 1}).encode()
    deadline = time.monotonic() + 5
    while not rec.frames:  # a raw PUB has no replay to heal a slow join: resend until it lands
        assert time.monotonic() < deadline
        raw.send_multipart(first)
        if sub.sub.poll(10):
            sub.on_readable()
    raw.send_multipart([b"deal.x", b"\x00garbage", b"{}"])
    raw.send_multipart([b"deal.x"])
    raw.send_multipart(Frame("deal.x", Header("s", "e", 2, 1, 1), {"n": 2}).encode())
    pump(sub, until=lambda: len(rec.frames) == 2)
    assert sub.bad_frames == 2
    assert rec.seqs == [1, 2]
    raw.close(0), router.close(0), sub.close()


def test_commands_reach_the_publishers_owner(ctx):
    asked = []
    pub = Publisher(ctx, ANY, ANY, "connector-sim", on_command=lambda name, args: asked.append((name, args)))
    sub = Subscriber(ctx, pub.endpoint, pub.replay_endpoint, ["deal."], lambda f: None)
    sub.command("backfill", {"account": "sim/master/1001", "after": "sim:41"})
    pump(pub, sub, until=lambda: bool(asked))
    assert asked == [("backfill", {"account": "sim/master/1001", "after": "sim:41"})]
    pub.close(), sub.close()


def test_malformed_replay_requests_are_counted_not_fatal(ctx):
    pub = Publisher(ctx, ANY, ANY, "connector-sim")
    dealer = ctx.socket(zmq.DEALER)
    dealer.connect(pub.replay_endpoint)
    dealer.send_multipart([b"replay", b"not json"])
    dealer.send_multipart([b"explode", b"{}"])
    dealer.send_multipart([b"replay", json.dumps({"from": 1}).encode()])
    poller = zmq.Poller()
    poller.register(dealer, zmq.POLLIN)
    deadline = time.monotonic() + 5
    reply = None
    while reply is None and time.monotonic() < deadline:
        pub.on_readable()
        if poller.poll(10):
            reply = dealer.recv_multipart()
    assert reply is not None and reply[0] == b"end"
    assert pub.bad_requests == 2
    dealer.close(0), pub.close()


def test_twisted_driver_delivers_over_the_reactor(ctx):
    reactor = SelectReactor()
    rec = Recorder()
    pub, sub = pair(ctx, rec)
    drivers = [ReactorDriver(reactor, pub), ReactorDriver(reactor, sub)]
    for d in drivers:
        d.start()
    sub.start()
    for n in range(1, 101):
        pub.publish("deal.x", {"n": n})
    deadline = time.monotonic() + 5
    while len(rec.frames) < 100 and time.monotonic() < deadline:
        reactor.iterate(0.01)
    assert rec.seqs == list(range(1, 101))
    for d in drivers:
        d.stop()
    pub.close(), sub.close()


def test_the_heartbeat_alone_reveals_frames_lost_at_the_tail(ctx):
    rec = Recorder()
    pub, sub = pair(ctx, rec)
    for n in range(1, 6):  # published before the subscriber's connection existed: all five lost
        pub.publish("deal.x", {"n": n})
    # no sub.start(): nothing asks for a replay, and no later frame reveals the gap; only the heartbeat can
    pump(pub, sub, until=lambda: len(rec.frames) == 5)
    assert rec.seqs == [1, 2, 3, 4, 5] and rec.lost == []
    pub.close(), sub.close()


def test_a_balance_deal_with_no_symbol_crosses_the_bus_but_a_trade_without_one_does_not():
    deposit = MasterDeal(DealId(Platform.SIM, 9), PositionId(Platform.SIM, 0), MASTER_LOGIN, "", DealKind.BALANCE,
                         Side.BUY, 0, datetime(2026, 1, 5, tzinfo=timezone.utc))
    assert deal_from_body(deal_body(deposit)) == deposit
    body = deal_body(a_deal())
    body["symbol"] = ""
    with pytest.raises(FrameError, match="symbol must be a non-empty string"):
        deal_from_body(body)


def test_an_unanswered_replay_request_is_sent_again(ctx):
    now = [0.0]
    raw = ctx.socket(zmq.PUB)
    raw.bind(ANY)
    router = ctx.socket(zmq.ROUTER)
    router.bind(ANY)
    rec = Recorder()
    sub = Subscriber(ctx, raw.getsockopt_string(zmq.LAST_ENDPOINT), router.getsockopt_string(zmq.LAST_ENDPOINT),
                     ["deal."], rec.deliver, clock=lambda: now[0], replay_timeout_s=1.0)
    sub.start()
    assert router.poll(5000)
    router.recv_multipart()  # the publisher goes away without answering
    heartbeat = Frame("bus.heartbeat", Header("s", "e", 3, 1, 1), {}).encode()

    def feed_until(condition) -> None:
        deadline = time.monotonic() + 5
        while not condition():
            assert time.monotonic() < deadline
            raw.send_multipart(heartbeat)
            if sub.sub.poll(10):
                sub.on_readable()

    feed_until(lambda: sub.epoch == "e")  # heartbeats are arriving (the subscriber learnt the epoch)...
    feed_until(lambda: sub.epoch == "e" and not router.poll(50))  # ...and within the timeout nothing is asked
    assert sub.replaying
    now[0] = 2.0  # then the request is a second overdue: the next frame asks again
    feed_until(lambda: router.poll(0))
    identity, command, body = router.recv_multipart()
    assert command == b"replay" and json.loads(body)["from"] == 1
    raw.close(0), router.close(0), sub.close()
