"""The MT5 connector (connectors/mt5/venue.py, pool.py, watch.py, providers.py) over simulated terminals.

Everything a test asserts about trades reads the terminals' own records (their deal history).
The rig (tests/mt5_rig.py) runs the venue inline on a Twisted test clock; the threaded tests run
the terminal workers on real threads, with a reactor stand-in that runs what the threads hand back.
"""

from __future__ import annotations

import queue
import random
import threading
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from twisted.internet.task import Clock

from allocation.copy import CopySettings, resolve
from allocation.copy.settings import SizingMode
from allocation.leg import Action
from bridge.domain.deal import DealKind, Side
from bridge.executor import Executor
from bridge.store import Store
from bridge.worker.planning import CopyRoute
from bridge.worker.routes import Routes
from bridge.worker.worker import Worker
from connectors.interface import (
    AmbiguousOutcome,
    OrderRequest,
    OrderStatus,
    VenueUnavailable,
    idempotency_key,
    magic_number,
)
from connectors.mt5 import providers
from connectors.mt5.pool import HEALTH_S, WrongAccount
from connectors.mt5.terminal import constants as C
from connectors.mt5.terminal.terminal import Faults, Terminal
from connectors.mt5.venue import MT5Venue
from tests.mt5_rig import HEDGER, MASTER, NET_MASTER, NETTER, POLL_S, Rig

LOT = 10_000_000
SL, TP = Decimal("1.07000"), Decimal("1.10000")


def key(name: str) -> str:
    return idempotency_key(f"mt5:{name}", "follower", 0)


def keyed_deals(t: Terminal, k: str) -> list:
    return [d for d in t.history_deals_get(0, 2**40) if d.comment == k and d.magic == magic_number(k)]


def trades(t: Terminal) -> list:
    return [d for d in t.history_deals_get(0, 2**40) if d.type in (C.DEAL_TYPE_BUY, C.DEAL_TYPE_SELL)]


def watch(rig: Rig, login: int) -> list:
    seen: list = []
    rig.result(rig.venue.watch_deals(rig.login(login), seen.append))
    return seen


def settle(rig: Rig, seen: list, n: int) -> None:
    """Poll until ``n`` deals arrived, then many more polls: nothing else may arrive."""
    rig.pump(until=lambda: len(seen) >= n)
    for _ in range(50):
        rig.clock.advance(POLL_S)
    assert len(seen) == n, [(d.kind, d.deal_id) for d in seen]


@pytest.fixture
def rig():
    r = Rig()
    yield r
    r.close()


# -- master deals ----------------------------------------------------------------------------------
def test_a_hedging_master_gives_every_deal_kind_once_in_order(rig):
    m = rig.login(MASTER)
    t = rig.terminals[MASTER]
    seen = watch(rig, MASTER)
    first = rig.manual(m, "EURUSD", Side.BUY, "1.00")
    rig.pump(until=lambda: len(seen) == 1)
    rig.manual_sltp(m, first, SL, TP)
    rig.pump(until=lambda: len(seen) == 2)
    rig.manual_close(m, first, "0.40")
    second = rig.manual(m, "GBPUSD", Side.SELL, "0.50")  # a second position, same poll
    rig.pump(until=lambda: len(seen) == 4)
    t.balance_operation("500", "deposit")
    rig.manual_close(m, first)
    t.set_bid("GBPUSD", "1.30000")  # no stops on the second: nothing happens
    rig.manual_close(m, second)
    settle(rig, seen, 7)
    assert [d.kind for d in seen] == [DealKind.OPEN, DealKind.SLTP, DealKind.PARTIAL_CLOSE, DealKind.OPEN,
                                      DealKind.BALANCE, DealKind.CLOSE, DealKind.CLOSE]
    opened, sltp, part, opened2, balance, close1, close2 = seen
    assert (opened.volume, opened.side, opened.symbol, opened.position_id) == (LOT, Side.BUY, "EURUSD", first)
    assert (sltp.sl, sltp.tp, sltp.volume, sltp.position_volume) == (SL, TP, 0, LOT)
    assert (part.volume, part.position_volume, part.position_id) == (4 * LOT // 10, LOT, first)
    assert (opened2.position_id, opened2.side, opened2.volume) == (second, Side.SELL, LOT // 2)
    assert (balance.symbol, balance.volume) == ("", 0)
    assert (close1.position_id, close1.volume) == (first, 6 * LOT // 10)
    assert (close2.position_id, close2.side, close2.volume) == (second, Side.SELL, LOT // 2)
    trade_ids = [d.deal_id.value for d in seen if d.kind is not DealKind.SLTP]
    assert trade_ids == sorted(trade_ids)
    assert [d.time for d in seen] == sorted(d.time for d in seen)


def test_a_netting_master_adds_reduces_reverses_and_its_stops_trigger(rig):
    m = rig.login(NET_MASTER)
    t = rig.terminals[NET_MASTER]
    seen = watch(rig, NET_MASTER)
    position = rig.manual(m, "EURUSD", Side.BUY, "1.00")
    rig.pump(until=lambda: len(seen) == 1)
    assert rig.manual(m, "EURUSD", Side.BUY, "0.50") == position  # an add: the same position
    rig.pump(until=lambda: len(seen) == 2)
    rig.manual_close(m, position, "0.60")
    rig.pump(until=lambda: len(seen) == 3)
    rig.manual_sltp(m, position, SL, TP)
    rig.pump(until=lambda: len(seen) == 4)
    rig.manual(m, "EURUSD", Side.SELL, "2.00")  # 0.90 long -> 1.10 short (INOUT); the server drops the stops
    rig.pump(until=lambda: len(seen) >= 6)
    rig.manual_sltp(m, position, Decimal("1.09000"), Decimal("1.06000"))  # stops of the short
    rig.pump(until=lambda: len(seen) == 7)
    t.set_bid("EURUSD", "1.05900")  # the take-profit of the short closes it (deal reason 5)
    settle(rig, seen, 8)
    kinds = [d.kind for d in seen]
    assert kinds == [DealKind.OPEN, DealKind.ADD, DealKind.PARTIAL_CLOSE, DealKind.SLTP, DealKind.REVERSAL,
                     DealKind.SLTP, DealKind.SLTP, DealKind.CLOSE]
    assert all(d.position_id == position for d in seen)
    opened, add, part, sltp, reversal, dropped, sltp2, close = seen
    assert (dropped.sl, dropped.tp, reversal.sl, reversal.tp) == (None, None, None, None)
    assert (sltp2.sl, sltp2.tp, sltp2.side, sltp2.position_volume) == (Decimal("1.09000"), Decimal("1.06000"),
                                                                       Side.SELL, 11 * LOT // 10)
    assert (add.volume, add.position_volume) == (LOT // 2, LOT)
    assert (part.volume, part.position_volume, part.side) == (6 * LOT // 10, 15 * LOT // 10, Side.BUY)
    assert (sltp.sl, sltp.tp) == (SL, TP)
    assert (reversal.side, reversal.volume, reversal.position_volume) == (Side.SELL, 11 * LOT // 10, 9 * LOT // 10)
    assert (close.side, close.volume) == (Side.SELL, 11 * LOT // 10)
    # deals_since reads the same trades from the history (SL/TP changes have no history on MT5)
    history = rig.result(rig.venue.deals_since(m, None))
    assert [d.deal_id for d in history if d.kind is not DealKind.BALANCE] == [
        d.deal_id for d in seen if d.kind is not DealKind.SLTP]
    assert [d.deal_id for d in rig.result(rig.venue.deals_since(m, reversal.deal_id))] == [close.deal_id]
    # after an SL/TP id the history resumes a second before the change (re-read deals are the worker's
    # duplicates; every trade after the change is there)
    resumed = [d.deal_id.value for d in rig.result(rig.venue.deals_since(m, sltp.deal_id))]
    assert resumed[-2:] == [reversal.deal_id.value, close.deal_id.value] and resumed == sorted(resumed)


@pytest.mark.parametrize("offset", [0, 7200, -18000])
def test_deal_times_are_utc_whatever_the_trade_servers_zone(offset):
    rig = Rig({MASTER: True}, server_offset=offset)
    m = rig.login(MASTER)
    seen = watch(rig, MASTER)
    rig.clock.advance(0.25)
    at = datetime.fromtimestamp(rig.clock.seconds(), timezone.utc)
    rig.manual(m, "EURUSD", Side.BUY, "1.00")
    rig.pump(until=lambda: seen)
    [deal] = seen
    assert abs(deal.time - at) < timedelta(milliseconds=1)
    [raw] = trades(rig.terminals[MASTER])
    assert raw.time_msc == int(at.timestamp() * 1000) + offset * 1000  # the terminal speaks server time
    [again] = [d for d in rig.result(rig.venue.deals_since(m, None)) if d.kind is DealKind.OPEN]
    assert again.time == deal.time
    rig.close()


def test_a_watcher_added_late_hears_only_new_deals_and_unwatch_stops_it(rig):
    m = rig.login(MASTER)
    rig.manual(m, "EURUSD", Side.BUY, "0.10")  # before the watch: deals_since's business
    seen = watch(rig, MASTER)
    rig.manual(m, "EURUSD", Side.BUY, "0.20")
    settle(rig, seen, 1)
    rig.venue.unwatch_deals(m, seen.append)
    rig.manual(m, "EURUSD", Side.BUY, "0.30")
    settle(rig, seen, 1)


# -- follower orders -----------------------------------------------------------------------------
def open_order(rig: Rig, name: str, login: int = HEDGER, **kw) -> OrderRequest:
    return OrderRequest(key(name), rig.login(login), Action.OPEN, "EURUSD", kw.pop("side", Side.BUY),
                        kw.pop("volume", LOT), **kw)


def test_an_order_carries_its_key_filling_and_deviation(rig):
    done = rig.result(rig.venue.execute(open_order(rig, "o", reference_price=Decimal("1.08510"),
                                                   max_slippage_points=5)))
    t = rig.terminals[HEDGER]
    [deal] = keyed_deals(t, key("o"))
    [order] = [o for o in t.history_orders_get(0, 2**40) if o.ticket == deal.order]
    assert order.type_filling == C.ORDER_FILLING_FOK and order.comment == key("o")
    assert done.status is OrderStatus.FILLED and done.price == Decimal("1.08512") and done.volume == LOT
    assert done.quote_to_account == 1 and done.deal_id.value == deal.ticket


def test_netting_open_reports_the_position_it_added_to(rig):
    first = rig.result(rig.venue.execute(open_order(rig, "n1", NETTER)))
    second = rig.result(rig.venue.execute(open_order(rig, "n2", NETTER, volume=LOT // 2)))
    assert second.position_id == first.position_id and second.order_id != first.order_id


@pytest.mark.parametrize("code", [C.RES_E_INTERNAL_FAIL_TIMEOUT, C.RES_E_INTERNAL_FAIL_CONNECT])
def test_an_ipc_failure_after_execution_is_resolved_by_lookup_without_a_second_deal(code):
    rig = Rig({HEDGER: True}, faults={HEDGER: Faults(ipc_after=1.0, ipc_code=code)})
    t = rig.terminals[HEDGER]
    with pytest.raises(AmbiguousOutcome):
        rig.result(rig.venue.execute(open_order(rig, "ipc-after")))
    assert len(keyed_deals(t, key("ipc-after"))) == 1  # it did execute
    t.faults.ipc_after = 0.0
    found = rig.result(rig.venue.lookup(rig.login(HEDGER), key("ipc-after")))
    assert found.status is OrderStatus.FILLED and found.volume == LOT
    assert found.position_id.value == keyed_deals(t, key("ipc-after"))[0].position_id
    again = rig.result(rig.venue.execute(open_order(rig, "ipc-after")))  # a resend of a found key: no trade
    assert again == found and len(keyed_deals(t, key("ipc-after"))) == 1 and len(trades(t)) == 1
    rig.close()


def test_an_ipc_failure_before_execution_then_a_resend_is_exactly_one_deal():
    rig = Rig({HEDGER: True}, faults={HEDGER: Faults(ipc_before=1.0)})
    t = rig.terminals[HEDGER]
    with pytest.raises(AmbiguousOutcome):
        rig.result(rig.venue.execute(open_order(rig, "ipc-before")))
    assert rig.result(rig.venue.lookup(rig.login(HEDGER), key("ipc-before"))) is None  # never executed
    t.faults.ipc_before = 0.0
    done = rig.result(rig.venue.execute(open_order(rig, "ipc-before")))
    assert done.status is OrderStatus.FILLED
    assert len(keyed_deals(t, key("ipc-before"))) == 1 and len(trades(t)) == 1
    rig.close()


@pytest.mark.parametrize("setting, reason", [
    (dict(market_open=False), "market-closed"),
    (dict(trade_mode=C.SYMBOL_TRADE_MODE_DISABLED), "trading-disabled"),
])
def test_refusals_are_rejected_with_a_reason(rig, setting, reason):
    for name, value in setting.items():
        setattr(rig.terminals[HEDGER].settings["EURUSD"], name, value)
    done = rig.result(rig.venue.execute(open_order(rig, reason)))
    assert done.status is OrderStatus.REJECTED and done.reason == reason


def test_no_money_is_rejected(rig):
    done = rig.result(rig.venue.execute(open_order(rig, "big", volume=90 * LOT)))
    assert done.status is OrderStatus.REJECTED and done.reason == "no-money"
    assert rig.result(rig.venue.execute(OrderRequest(key("sym"), rig.login(HEDGER), Action.OPEN, "NOPE", Side.BUY,
                                                     LOT))).reason == "unknown-symbol"


def test_a_price_already_beyond_the_slippage_limit_is_a_requote_without_a_send(rig):
    t = rig.terminals[HEDGER]
    sent = t._next_request
    done = rig.result(rig.venue.execute(open_order(rig, "far", reference_price=Decimal("1.08400"),
                                                   max_slippage_points=5)))
    assert done.status is OrderStatus.REJECTED and done.reason == "requote"
    assert t._next_request == sent and not trades(t)  # nothing reached the terminal's server


def copy_session(rig: Rig, tmp_path, max_slippage_points: int):
    master, follower = rig.login(MASTER), rig.login(HEDGER)
    routes = Routes(copy={master: [CopyRoute(follower, resolve(CopySettings(
        mode=SizingMode.MULTIPLIER, max_slippage_points=max_slippage_points)))]})
    store = Store.open(tmp_path / "b.sqlite")
    venues = {rig.venue.server: rig.venue}
    executor = Executor(store, venues, slippage_limit=routes.max_slippage_points)
    worker = Worker(store, executor, routes, venues)
    rig.result(rig.venue.watch_deals(master, worker.accept))
    return store


def test_requotes_are_retried_within_the_slippage_limit_then_given_up(tmp_path):
    rig = Rig({MASTER: True, HEDGER: True}, faults={HEDGER: Faults(requote=1.0)})
    store = copy_session(rig, tmp_path, 10)
    t = rig.terminals[HEDGER]
    rig.manual(rig.login(MASTER), "EURUSD", Side.BUY, "1.00")
    rig.pump(until=lambda: store.intents_in_state("rejected"))
    [rejected] = store.intents_in_state("rejected")
    assert rejected.reject_reason == "max-slippage-exceeded" and rejected.attempts == 4
    assert t._next_request - 1 == 4 and not trades(t)  # four sends, each requoted (10004); no deal
    store.close()
    rig.close()


def test_a_requote_then_a_fill_within_the_limit(tmp_path):
    rig = Rig({MASTER: True, HEDGER: True}, faults={HEDGER: Faults(requote=0.5)})
    t = rig.terminals[HEDGER]
    seed = next(s for s in range(100) if (lambda r: r.random() < 0.5 <= r.random())(random.Random(s)))
    t.fault_rng = random.Random(seed)  # the first send is requoted, the second is not
    store = copy_session(rig, tmp_path, 10)
    rig.manual(rig.login(MASTER), "EURUSD", Side.BUY, "1.00")
    rig.pump(until=lambda: store.intents_in_state("filled"))
    [filled] = store.intents_in_state("filled")
    assert filled.attempts == 2 and len(trades(t)) == 1
    store.close()
    rig.close()


# -- terminals going down -------------------------------------------------------------------------
def test_a_dead_terminal_is_reported_down_and_its_deals_are_backfilled_after_reconnect(rig):
    m, t = rig.login(MASTER), rig.terminals[MASTER]
    seen = watch(rig, MASTER)
    position = rig.manual(m, "EURUSD", Side.BUY, "1.00")
    rig.pump(until=lambda: len(seen) == 1)
    rig.manual_sltp(m, position, SL, TP)
    rig.pump(until=lambda: len(seen) == 2)
    t.shutdown()  # the terminal's pipe is gone: every call fails with -10004
    rig.clock.advance(POLL_S)
    [status] = [s for s in rig.venue.terminal_status() if s["login"] == MASTER]
    assert not status["up"] and "-10004" in status["down"]
    with pytest.raises(VenueUnavailable):
        rig.result(rig.venue.account_info(m))
    with pytest.raises(VenueUnavailable):
        rig.result(rig.venue.execute(open_order(rig, "while-down", MASTER)))
    assert rig.result(rig.venue.account_info(rig.login(HEDGER))).login == rig.login(HEDGER)  # others unaffected
    t.set_bid("EURUSD", "1.06990")  # meanwhile the stop-loss closes the position at the server
    t.balance_operation("-100", "withdrawal")
    rig.clock.advance(HEALTH_S)  # the health check initialises the terminal again
    settle(rig, seen, 4)
    assert [d.kind for d in seen[2:]] == [DealKind.CLOSE, DealKind.BALANCE]
    [status] = [s for s in rig.venue.terminal_status() if s["login"] == MASTER]
    assert status["up"] and status["failures"] == 1 and status["connects"] == 2
    assert rig.result(rig.venue.execute(open_order(rig, "after", MASTER))).status is OrderStatus.FILLED


def test_a_terminal_without_its_trade_server_is_down_until_it_reconnects(rig):
    t = rig.terminals[HEDGER]
    t.faults.connected = False
    rig.clock.advance(HEALTH_S)
    assert rig.venue.pool.worker(HEDGER).down == "terminal not connected to its trade server"
    with pytest.raises(VenueUnavailable):
        rig.result(rig.venue.execute(open_order(rig, "x")))
    rig.clock.advance(HEALTH_S)
    assert rig.venue.pool.worker(HEDGER).down is not None  # still not connected: still down
    t.faults.connected = True
    rig.clock.advance(HEALTH_S)
    assert rig.venue.pool.worker(HEDGER).down is None
    assert rig.result(rig.venue.execute(open_order(rig, "x"))).status is OrderStatus.FILLED


def test_a_terminal_logged_in_to_another_account_is_refused():
    clock = Clock()
    venue = MT5Venue("mt5", {777: Terminal(login=778)}, reactor=clock, clock=clock, threads=False)
    d = venue.start()
    failures = []
    d.addErrback(failures.append)
    assert failures and failures[0].check(WrongAccount)
    venue.stop()


# -- threads ---------------------------------------------------------------------------------------
class ThreadedClock(Clock):
    """A test clock that also takes calls from threads (``callFromThread``), run by ``run_pending``."""

    def __init__(self) -> None:
        super().__init__()
        self.from_threads: queue.Queue = queue.Queue()

    def callFromThread(self, f, *args, **kwargs) -> None:
        self.from_threads.put((f, args, kwargs))

    def run_pending(self, wait: float = 0.01) -> None:
        try:
            f, args, kwargs = self.from_threads.get(timeout=wait)
        except queue.Empty:
            return
        f(*args, **kwargs)


class HungTerminal(Terminal):
    """A terminal whose ``order_send`` blocks until released (a stuck IPC pipe)."""

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.release = threading.Event()
        self.entered = threading.Event()

    def order_send(self, request):
        self.entered.set()
        self.release.wait(10)
        return super().order_send(request)


def threaded_result(reactor: ThreadedClock, d, seconds: float = 5.0):
    box = []
    d.addBoth(box.append)
    for _ in range(int(seconds / 0.01)):
        if box:
            break
        reactor.run_pending()
    assert box, "no answer"
    return box[0]


def test_threaded_workers_never_block_the_reactor_or_each_other_and_a_hung_call_is_ambiguous():
    reactor = ThreadedClock()
    reactor.advance(1_709_553_600)
    hung = HungTerminal(login=1, clock=reactor.seconds, server_offset=0)
    fine = Terminal(login=2, market=hung.market, clock=reactor.seconds, server_offset=0)
    venue = MT5Venue("mt5", {1: hung, 2: fine}, reactor=reactor, clock=reactor, timeout_s=3.0)
    try:
        assert threaded_result(reactor, venue.start()) is venue
        one, two = venue.login(1), venue.login(2)
        pending = venue.execute(OrderRequest(key("hung"), one, Action.OPEN, "EURUSD", Side.BUY, LOT))
        assert hung.entered.wait(5)
        info = threaded_result(reactor, venue.account_info(two))  # another terminal answers meanwhile
        assert info.login == two and not pending.called
        done = threaded_result(reactor, venue.execute(OrderRequest(key("ok"), two, Action.OPEN, "EURUSD", Side.SELL,
                                                                   LOT)))
        assert done.status is OrderStatus.FILLED
        reactor.advance(3.0)  # the injected clock passes the timeout
        failure = threaded_result(reactor, pending)
        assert failure.check(AmbiguousOutcome) and venue.pool.worker(1).down
        hung.release.set()  # the call completes late: the order did execute
        for _ in range(50):  # health checks reconnect the terminal
            reactor.advance(HEALTH_S)
            for _ in range(20):
                reactor.run_pending()
            if venue.pool.worker(1).down is None:
                break
        assert venue.pool.worker(1).down is None
        found = threaded_result(reactor, venue.lookup(one, key("hung")))
        assert found.status is OrderStatus.FILLED and len(keyed_deals(hung, key("hung"))) == 1
    finally:
        hung.release.set()
        venue.stop()


# -- providers -------------------------------------------------------------------------------------
def test_the_simulator_provider_is_the_terminal_itself():
    t = Terminal(login=3)
    assert providers.simulator(t) is t


def test_native_off_windows_fails_in_one_clear_line():
    try:
        import MetaTrader5  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("the MetaTrader5 package is installed here")
    with pytest.raises(providers.ProviderError) as e:
        providers.native(login=5002, password="pw", server="Broker-Live")
    text = str(e.value)
    assert "\n" not in text and "MetaTrader5" in text and "mt5linux" in text and "pw" not in text


def test_an_unreachable_mt5linux_terminal_is_reported_down_and_retried():
    pytest.importorskip("rpyc")
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    provider = providers.mt5linux(host="127.0.0.1", port=port, login=9, password="pw", timeout_s=2.0)
    clock = Clock()
    venue = MT5Venue("mt5", {9: provider}, reactor=clock, clock=clock, threads=False)
    started = venue.start()
    [status] = venue.terminal_status()
    assert not started.called and not status["up"] and "cannot reach" in status["last_error"]
    clock.advance(HEALTH_S)  # tried again, still unreachable
    assert not started.called and "cannot reach" in venue.terminal_status()[0]["last_error"]
    failures = []
    venue.account_info(venue.login(9)).addErrback(failures.append)
    assert failures[0].check(VenueUnavailable)
    venue.stop()
    started.cancel()


def test_the_venue_over_mt5linux_against_bridge_sim_mt5_trades_and_relinks_after_a_restart():
    """The venue on real threads over the mt5linux provider, against ``bridge sim mt5`` (rpyc classic on
    127.0.0.1 in a subprocess); the server is killed (down: calls fail at once) and started again on the
    same port (the health check links anew)."""
    pytest.importorskip("rpyc")
    import socket

    from tests.test_mt5_rpyc import start_server, stop_server

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = ("--port", str(port), "--login", "6101", "--hedging", "--tick-interval-ms", "0")
    proc, _ = start_server(*args)
    reactor = ThreadedClock()
    reactor.advance(datetime.now(timezone.utc).timestamp())  # the server runs on the real clock
    provider = providers.mt5linux(host="127.0.0.1", port=port, login=6101, password="password",
                                  server="SimBroker-Demo", timeout_s=5.0)
    venue = MT5Venue("mt5", {6101: provider}, reactor=reactor, clock=reactor, timeout_s=5.0)
    try:
        assert threaded_result(reactor, venue.start()) is venue
        account = venue.login(6101)
        assert threaded_result(reactor, venue.symbol_spec(account, "EURUSD")).min_volume == LOT // 100
        done = threaded_result(reactor, venue.execute(OrderRequest(key("rpyc"), account, Action.OPEN, "EURUSD",
                                                                   Side.BUY, LOT // 10)))
        assert done.status is OrderStatus.FILLED and done.volume == LOT // 10
        venue.filled.clear()  # forget it here: the lookup must find it at the terminal
        found = threaded_result(reactor, venue.lookup(account, key("rpyc")))
        assert found.position_id == done.position_id and found.volume == done.volume
        [held] = threaded_result(reactor, venue.positions(account))
        assert held.key == key("rpyc")
        stop_server(proc)
        failure = threaded_result(reactor, venue.account_info(account))
        assert failure.check(VenueUnavailable) and venue.pool.worker(6101).down
        proc, _ = start_server(*args)
        for _ in range(50):
            reactor.advance(HEALTH_S)
            for _ in range(20):
                reactor.run_pending()
            if venue.pool.worker(6101).down is None:
                break
        assert venue.terminal_status()[0]["up"] and venue.terminal_status()[0]["connects"] == 2
        info = threaded_result(reactor, venue.account_info(account))
        assert info.login == account and info.hedging
    finally:
        venue.stop()
        stop_server(proc)
