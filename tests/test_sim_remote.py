"""The simulated venue in another process: wire codecs, SimServer and RemoteVenue over real tcp://127.0.0.1 sockets.

Sockets are pumped with a ``zmq.Poller`` (as in tests/test_bus.py); Deferreds
with timeouts run on ``twisted.internet.task.Clock`` objects the tests advance.
"""

from __future__ import annotations

import json
import select
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest
import zmq
from twisted.internet.selectreactor import SelectReactor
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from allocation.leg import Action
from bridge.domain.deal import DealKind, Side
from bridge.domain.ids import DealId, Login, Platform, PositionId, ServerId
from connectors.interface import AmbiguousOutcome, OrderRequest, OrderStatus, VenueUnavailable, idempotency_key
from connectors.sim import SimConfig, SimRejected
from connectors.sim.remote import RemoteError, RemoteVenue, UnknownName
from connectors.sim.server import SimServer
from connectors.sim.wire import (
    WireError,
    account_info_from_json,
    account_info_to_json,
    order_from_json,
    order_to_json,
    position_from_json,
    position_to_json,
    result_from_json,
    result_to_json,
    spec_from_json,
    spec_to_json,
)
from tests.sim_builders import HEDGER, LOT, MASTER, NETTER, make_venue

ANY = "tcp://127.0.0.1:*"
ROOT = Path(__file__).resolve().parents[1]
STRANGER = Login(ServerId(Platform.SIM, "sim"), 9999)


# -- helpers ----------------------------------------------------------------------------

@pytest.fixture
def ctx():
    context = zmq.Context()
    yield context
    context.destroy(linger=0)




@pytest.fixture
def rig(ctx):
    """A venue behind a SimServer, and a RemoteVenue to it whose timeouts run on its own Clock."""
    venue, venue_clock = make_venue()
    server = SimServer(ctx, venue, ANY)
    remote_clock = Clock()
    remote = RemoteVenue(ctx, "sim", server.endpoint, remote_clock, timeout_s=5)
    yield venue, venue_clock, server, remote, remote_clock
    remote.close()
    server.close()


def pump(*channels, until, timeout: float = 5.0) -> None:
    """Drive channels with a zmq.Poller until ``until()`` holds; fail after ``timeout`` seconds of wall time.

    Channels' sockets are re-read every turn (a RemoteVenue's grow when its deal stream starts);
    servers heartbeat their deal feed on every idle poll, as ``serve()``'s timer does."""
    deadline = time.monotonic() + timeout
    while not until():
        assert time.monotonic() < deadline, "condition not reached in time"
        poller = zmq.Poller()
        for channel in channels:
            for socket in channel.sockets:
                poller.register(socket, zmq.POLLIN)
        if not poller.poll(10):
            for channel in channels:
                if isinstance(channel, SimServer):
                    channel.heartbeat()
        for channel in channels:
            channel.on_readable()


def settle(d, *channels, timeout: float = 5.0):
    """Pump until the Deferred fires; its value, or its Failure (handled)."""
    box = []
    d.addBoth(box.append)
    pump(*channels, until=lambda: bool(box), timeout=timeout)
    return box[0]


def result_of(d, *channels):
    value = settle(d, *channels)
    if isinstance(value, Failure):
        value.raiseException()
    return value


def failure_of(d, kind, *channels):
    value = settle(d, *channels)
    assert isinstance(value, Failure), f"expected {kind.__name__}, got {value!r}"
    assert value.check(kind), value
    return value.value


def local(d):
    """The value of an already-fired Deferred of the local venue."""
    box = []
    d.addBoth(box.append)
    assert box and not isinstance(box[0], Failure), box
    return box[0]


def an_order(key: str, account=HEDGER, action=Action.OPEN, symbol="EURUSD", side=Side.BUY, volume=LOT,
             position_id=None, **kw) -> OrderRequest:
    return OrderRequest(key, account, action, symbol, side, volume, position_id, **kw)


# -- wire codecs ---------------------------------------------------------------------------

def test_codecs_round_trip_exactly_with_decimals_as_strings(rig):
    venue, _, _, _, _ = rig
    order = an_order("cb1", sl=Decimal("1.07000"), tp=Decimal("1.10000"), reference_price=Decimal("1.08500"),
                     max_slippage_points=20)
    encoded = order_to_json(order)
    assert encoded["sl"] == "1.07000" and encoded["volume"] == LOT and encoded["account"] == "sim/sim/2001"
    assert order_from_json(json.loads(json.dumps(encoded))) == order
    result = local(venue.execute(order))
    assert result_from_json(json.loads(json.dumps(result_to_json(result)))) == result
    assert result_to_json(result)["position_id"] == "sim:1"
    [position] = local(venue.positions(HEDGER))
    assert position_from_json(json.loads(json.dumps(position_to_json(position)))) == position
    info = local(venue.account_info(NETTER))
    assert account_info_from_json(json.loads(json.dumps(account_info_to_json(info)))) == info
    spec = local(venue.symbol_spec(HEDGER, "XAUUSD"))
    assert spec_from_json(json.loads(json.dumps(spec_to_json(spec)))) == spec


@pytest.mark.parametrize("field,value,message", [
    ("volume", "10000000", "order.volume must be an integer"),
    ("volume", True, "order.volume must be an integer"),
    ("sl", 1.07, "order.sl must be a decimal string"),
    ("sl", "1.0.7", "order.sl '1.0.7' is not a decimal"),
    ("account", "nope", "order.account: malformed account"),
    ("action", "teleport", "order.action 'teleport' is not one of"),
    ("side", None, "order.side is missing"),
    ("position_id", "sim:x", "order.position_id must look like platform:number"),
    ("action", "close", "order: order cb1: close needs a position id"),
])
def test_bad_order_json_names_the_field(field, value, message):
    encoded = order_to_json(an_order("cb1"))
    encoded[field] = value
    with pytest.raises(WireError, match="^" + message.replace(".", r"\.")):
        order_from_json(encoded)


def test_bad_result_json_names_the_field():
    with pytest.raises(ValueError, match=r"result\.time 'yesterday' is not an ISO-8601 time"):
        result_from_json({"key": "k", "status": "filled", "time": "yesterday", "volume": 0})
    with pytest.raises(ValueError, match=r"result must be a JSON object"):
        result_from_json([])


# -- the Venue interface over sockets -----------------------------------------------------------

def test_round_trips_equal_the_local_venues_answers(rig):
    venue, _, server, remote, _ = rig
    key = idempotency_key("sim:1", str(HEDGER), 0)
    filled = result_of(remote.execute(an_order(key, sl=Decimal("1.07000"))), server, remote)
    assert filled.status is OrderStatus.FILLED and filled.volume == LOT and isinstance(filled.price, Decimal)
    assert filled == local(venue.lookup(HEDGER, key))
    assert result_of(remote.lookup(HEDGER, key), server, remote) == filled
    assert result_of(remote.lookup(HEDGER, "cb-never-sent"), server, remote) is None
    # the same key again: the recorded result, no second trade
    assert result_of(remote.execute(an_order(key)), server, remote) == filled
    # a refusal is a REJECTED result, not an error
    refused = result_of(remote.execute(an_order("cb2", volume=LOT + 1)), server, remote)
    assert refused.status is OrderStatus.REJECTED and refused.reason == "invalid-volume"
    result_of(remote.execute(an_order("cb3", account=NETTER, side=Side.SELL, volume=LOT // 2)), server, remote)

    for account in (HEDGER, NETTER, MASTER):
        assert result_of(remote.positions(account), server, remote) == local(venue.positions(account))
        assert result_of(remote.account_info(account), server, remote) == local(venue.account_info(account))
        assert result_of(remote.deals_since(account, None), server, remote) == local(venue.deals_since(account, None))
    assert result_of(remote.deals_since(NETTER, DealId(Platform.SIM, 1)), server, remote) == \
        local(venue.deals_since(NETTER, DealId(Platform.SIM, 1)))
    for symbol in ("EURUSD", "XAUUSD"):
        assert result_of(remote.symbol_spec(HEDGER, symbol), server, remote) == local(venue.symbol_spec(HEDGER, symbol))

    unknown = failure_of(remote.account_info(STRANGER), KeyError, server, remote)
    assert isinstance(unknown, UnknownName) and unknown.code == "unknown-account"
    assert failure_of(remote.symbol_spec(HEDGER, "NOPE"), KeyError, server, remote).code == "unknown-symbol"


def test_execute_replies_only_when_the_venues_latency_has_passed(rig):
    venue, venue_clock, server, remote, _ = rig
    venue.config = SimConfig(fill_latency_us=250_000)
    d = remote.execute(an_order("cb-slow"))
    fired = []
    d.addBoth(fired.append)
    pump(server, remote, until=lambda: bool(venue_clock.getDelayedCalls()))  # the order is at the venue
    remote.on_readable()
    assert fired == [] and remote.pending == 1
    venue_clock.advance(0.25)  # Clock time is float seconds (time, not money)
    pump(server, remote, until=lambda: bool(fired))
    assert fired[0].status is OrderStatus.FILLED
    assert fired[0].time == venue.now()


def test_ambiguous_outcomes_are_reported_and_lookup_resolves_them(rig):
    venue, _, server, remote, _ = rig
    venue.config = SimConfig(timeout_after_execute_rate=Decimal(1))  # executes, then the reply is lost
    lost_reply = failure_of(remote.execute(an_order("cb-after")), AmbiguousOutcome, server, remote)
    assert lost_reply.key == "cb-after" and "reply was lost" in lost_reply.why
    venue.config = SimConfig(timeout_before_execute_rate=Decimal(1))  # never executes
    never = failure_of(remote.execute(an_order("cb-before")), AmbiguousOutcome, server, remote)
    assert never.key == "cb-before" and "never reached" in never.why
    venue.config = SimConfig()
    found = result_of(remote.lookup(HEDGER, "cb-after"), server, remote)
    assert found.status is OrderStatus.FILLED and found == local(venue.lookup(HEDGER, "cb-after"))
    assert result_of(remote.lookup(HEDGER, "cb-before"), server, remote) is None
    [position] = result_of(remote.positions(HEDGER), server, remote)
    assert position.key == "cb-after"


def test_a_disconnected_venue_is_unavailable(rig):
    venue, _, server, remote, _ = rig
    venue.disconnected = True
    failure_of(remote.execute(an_order("cb-x")), VenueUnavailable, server, remote)
    failure_of(remote.positions(HEDGER), VenueUnavailable, server, remote)
    venue.disconnected = False
    assert result_of(remote.positions(HEDGER), server, remote) == []


def test_no_reply_in_time_is_ambiguous_for_execute_and_late_replies_are_dropped(rig):
    venue, _, server, remote, remote_clock = rig
    execute = remote.execute(an_order("cb-late"))
    read = remote.positions(HEDGER)
    outcomes = []
    execute.addBoth(outcomes.append)
    read.addBoth(outcomes.append)
    remote_clock.advance(5)  # the server was never pumped: nothing came back in time
    assert len(outcomes) == 2 and remote.pending == 0
    assert outcomes[0].check(AmbiguousOutcome) and outcomes[0].value.key == "cb-late"
    assert outcomes[1].check(VenueUnavailable)
    pump(server, remote, until=lambda: remote.dropped_replies == 2)  # the requests arrive late; replies ignored
    assert len(outcomes) == 2
    # the late order did execute: exactly why a timeout is ambiguous and lookup comes first
    assert result_of(remote.lookup(HEDGER, "cb-late"), server, remote).status is OrderStatus.FILLED


def test_garbage_requests_are_counted_and_the_server_goes_on(ctx, rig):
    venue, _, server, remote, _ = rig
    raw = ctx.socket(zmq.DEALER)
    raw.setsockopt(zmq.LINGER, 0)
    raw.connect(server.endpoint)
    raw.send_multipart([b"1", b"explode", b"{}"])
    raw.send_multipart([b"2", b"execute", b"{not json"])
    raw.send_multipart([b"3", b"execute", json.dumps({"key": "k"}).encode()])
    raw.send_multipart([b"4", b"positions", b"[]"])
    raw.send_multipart([b"5"])
    raw.send_multipart([b""])  # no request id: nothing to answer
    replies = {}

    class Raw:
        sockets = (raw,)

        @staticmethod
        def on_readable():
            while True:
                try:
                    rid, status, body = raw.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    return
                replies[rid] = (status, json.loads(body))

    pump(server, Raw, until=lambda: len(replies) == 5)
    assert all(status == b"error" and body["code"] == "bad-request" for status, body in replies.values())
    assert "unknown method" in replies[b"1"][1]["message"]
    assert replies[b"3"][1]["message"] == "order.account is missing"
    pump(server, until=lambda: server.bad_requests == 6)
    # the server still answers, and a garbage reply to the remote venue is dropped, not fatal
    assert result_of(remote.account_info(HEDGER), server, remote) == local(venue.account_info(HEDGER))
    bad = failure_of(remote.call("positions", {"account": 42}), RemoteError, server, remote)
    assert bad.code == "bad-request" and "positions.account must be a string" in bad.message
    assert server.bad_requests == 7 and server.errors == 0
    raw.close(0)


# -- deals ---------------------------------------------------------------------------------------

def test_manual_trades_on_the_server_reach_a_watcher_through_the_remote_venue(rig):
    venue, _, server, remote, _ = rig
    got = []
    watched = result_of(remote.watch_deals(MASTER, got.append), server, remote)
    assert watched["topic"] == f"deal.{MASTER}"
    pump(server, remote, until=lambda: remote.subscriber is not None and not remote.subscriber.replaying)
    position = venue.trade(MASTER, "EURUSD", Side.BUY, "0.10")  # by hand, on the venue's side
    venue.trade(HEDGER, "EURUSD", Side.BUY, "0.10")  # not watched: published to nobody
    remote_position = result_of(remote.trade(MASTER, "GBPUSD", Side.SELL, "0.20"), server, remote)
    result_of(remote.modify(MASTER, position, Decimal("1.05000"), None), server, remote)
    closing = result_of(remote.close_position(MASTER, remote_position), server, remote)
    deposit = result_of(remote.deposit(MASTER, Decimal("250.50")), server, remote)
    pump(server, remote, until=lambda: len(got) == 5)
    assert got == list(venue.account(MASTER).deals)
    assert [d.kind for d in got] == [DealKind.OPEN, DealKind.OPEN, DealKind.SLTP, DealKind.CLOSE, DealKind.BALANCE]
    assert got[3] == closing and got[4] == deposit and got[1].volume == 2 * LOT // 10
    assert remote.deal_position == (server.publisher.epoch, 5)
    rejected = failure_of(remote.trade(MASTER, "EURUSD", Side.BUY, "0.001"), SimRejected, server, remote)
    assert rejected.reason == "invalid-volume"


def test_a_restarted_bridge_resumes_the_deal_stream_where_it_stopped(ctx, rig):
    venue, _, server, remote, remote_clock = rig
    got = []
    saved = []

    def on_deal(deal):
        got.append(deal)
        saved.append(remote.deal_position)  # inside the callback: the position of this deal

    remote.watch_deals(MASTER, on_deal)
    pump(server, remote, until=lambda: remote.subscriber is not None and not remote.subscriber.replaying)
    first = venue.trade(MASTER, "EURUSD", Side.BUY, "0.10")
    pump(server, remote, until=lambda: len(got) == 1)
    remote.close()  # the bridge dies here
    venue.trade(MASTER, "USDJPY", Side.SELL, "0.10")
    venue.close(MASTER, first)
    again = RemoteVenue(ctx, "sim", server.endpoint, remote_clock, timeout_s=5)
    resumed = []
    again.watch_deals(MASTER, resumed.append, resume=saved[-1])
    with pytest.raises(ValueError, match="already started"):
        again.watch_deals(HEDGER, resumed.append, resume=(saved[-1][0], 0))
    pump(server, again, until=lambda: len(resumed) == 2)
    assert resumed == venue.account(MASTER).deals[1:]
    assert again.deal_position == (server.publisher.epoch, 3)
    again.close()


def test_the_twisted_driver_serves_and_calls_over_the_reactor(ctx):
    reactor = SelectReactor()
    venue, _ = make_venue()
    server = SimServer(ctx, venue, ANY)
    server.serve(reactor, heartbeat_s=0.05)
    remote = RemoteVenue(ctx, "sim", server.endpoint, reactor, timeout_s=5)
    remote.attach(reactor)
    got, results = [], []
    remote.watch_deals(MASTER, got.append)
    remote.execute(an_order("cb-reactor")).addBoth(results.append)
    deadline = time.monotonic() + 5
    while not (results and remote.subscriber is not None and not remote.subscriber.replaying):
        assert time.monotonic() < deadline
        reactor.iterate(0.01)
    venue.trade(MASTER, "EURUSD", Side.SELL, "0.30")
    while not got:
        assert time.monotonic() < deadline
        reactor.iterate(0.01)
    assert results[0] == local(venue.lookup(HEDGER, "cb-reactor"))
    assert got == venue.account(MASTER).deals
    remote.close()
    server.close()
    for call in reactor.getDelayedCalls():
        call.cancel()


# -- the serve entry point in its own process ----------------------------------------------------------

ACCOUNTS = """\
[venue]
name = "demo"

[[accounts]]
login = 1001
balance = "10000"
currency = "USD"
hedging = true

[[accounts]]
login = 2001
balance = 5000.25
hedging = false
"""


def read_line(stream, timeout: float) -> str:
    """One line from a child's stdout, or fail after ``timeout`` seconds (no sleeping)."""
    ready, _, _ = select.select([stream], [], [], timeout)
    assert ready, "the child printed nothing in time"
    return stream.readline().decode()


def test_serve_runs_the_venue_in_another_process_and_stops_on_sigterm(ctx, tmp_path):
    accounts = tmp_path / "accounts.toml"
    accounts.write_text(ACCOUNTS)
    stderr = open(tmp_path / "serve.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "connectors.sim.serve", "--endpoint", ANY, "--deals-endpoint",
                             ANY, "--replay-endpoint", ANY, "--accounts", str(accounts), "--seed", "7"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=stderr)
    try:
        line = read_line(proc.stdout, 20)
        word, endpoint, deals, replay = line.split()
        assert word == "ready" and all(e.startswith("tcp://127.0.0.1:") for e in (endpoint, deals, replay))
        master = Login(ServerId(Platform.SIM, "demo"), 1001)
        follower = Login(ServerId(Platform.SIM, "demo"), 2001)
        remote = RemoteVenue(ctx, "demo", endpoint, Clock(), timeout_s=10)
        info = result_of(remote.account_info(follower), remote)
        assert info.balance == Decimal("5000.25") and info.hedging is False
        got = []
        result_of(remote.watch_deals(master, got.append), remote)
        pump(remote, until=lambda: not remote.subscriber.replaying)
        position = result_of(remote.trade(master, "EURUSD", Side.BUY, "0.10"), remote)
        filled = result_of(remote.execute(an_order("cb-child", account=follower, volume=LOT // 10)), remote)
        assert filled.status is OrderStatus.FILLED and filled.volume == LOT // 10
        pump(remote, until=lambda: len(got) == 1, timeout=10)
        assert got[0].position_id == position and got[0].kind is DealKind.OPEN and got[0].account == master
        assert result_of(remote.lookup(follower, "cb-child"), remote) == filled
        [held] = result_of(remote.positions(follower), remote)
        assert held.key == "cb-child" and held.position_id == filled.position_id != PositionId(Platform.SIM, 0)
        remote.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        stderr.close()
