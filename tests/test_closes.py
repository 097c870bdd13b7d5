"""Closes on removal (``--close-positions``): planned with the removal, each sent exactly once by the daemon.

In one process, on a test clock: the real worker and executor copy two
hedging masters' trades to a hedging follower and a netting one (which copies
both masters, so its venue nets their copies into one position); then the
closes of one follower's copies of one master are planned
(:meth:`~bridge.store.orders.AccountOrderStore.plan_closes`) and sent by the
daemon's :class:`~bridge.daemon.closes.CloseService`: a lost reply is resolved
by lookup, a venue that is down is waited for, a position closed by hand is
final, a restart after the venue executed sends nothing again. Every count is
the venue's own deal history.
"""

from __future__ import annotations

import random
from dataclasses import replace
from decimal import Decimal

import pytest
from twisted.internet.task import Clock

from allocation.copy import CopySettings, resolve
from allocation.leg import Action
from allocation.copy.settings import SizingMode
from bridge.daemon.closes import CloseService
from bridge.domain.deal import DealKind, Side
from bridge.executor import Executor
from bridge.store import Store
from bridge.worker.planning import CopyRoute
from bridge.worker.routes import Routes
from bridge.worker.worker import Worker
from connectors.interface import OrderRequest, OrderStatus
from connectors.sim import SimConfig, SimVenue

LOT = 10_000_000


class Session:
    def __init__(self, path) -> None:
        self.clock = Clock()
        self.clock.advance(1_767_225_600)
        self.venue = v = SimVenue("cv", self.clock, random.Random(5), SimConfig())
        self.m1, self.m2, self.hedger, self.netter = v.login(1000), v.login(1100), v.login(2001), v.login(3001)
        for login, hedging in ((self.m1, True), (self.m2, True), (self.hedger, True), (self.netter, False)):
            v.add_account(login, Decimal(100_000), hedging=hedging)
        self.one = one = resolve(CopySettings(mode=SizingMode.MULTIPLIER))
        routes = Routes(copy={self.m1: [CopyRoute(self.hedger, one), CopyRoute(self.netter, one)],
                              self.m2: [CopyRoute(self.netter, one)]})
        self.path = path
        self.store = Store.open(path)
        venues = {v.server: v}
        self.worker = Worker(self.store, Executor(self.store, venues), routes, venues)
        for master in (self.m1, self.m2):
            v.watch_deals(master, self.worker.accept)
        self.service: CloseService | None = None

    def copy_session(self) -> None:
        """m1: EURUSD buy 1.00, GBPUSD sell 0.50, EURUSD buy 0.30 (a second position); m2: EURUSD buy 0.40."""
        v = self.venue
        v.trade(self.m1, "EURUSD", Side.BUY, "1.00")
        v.trade(self.m1, "GBPUSD", Side.SELL, "0.50")
        v.trade(self.m1, "EURUSD", Side.BUY, "0.30")
        v.trade(self.m2, "EURUSD", Side.BUY, "0.40")
        assert self.volumes(self.hedger) == [3_000_000, 5_000_000, LOT]
        assert self.volumes(self.netter) == [5_000_000, 17_000_000]

    def plan(self, follower, master, origin="unsubscribe", owner="s1"):
        with self.store.transaction():
            return self.store.plan_closes(follower, master, origin, owner)

    def start(self) -> CloseService:
        """A close service on the store's file (a connection of its own), beside this session's worker."""
        self.service = CloseService(self.clock, {self.venue.server: self.venue}, self.path,
                                    worker=lambda: self.worker)
        self.service.startService()
        return self.service

    def unsubscribe_hedger(self) -> list:
        """What ``bridge copy unsubscribe --close-positions`` does to the hedging follower of m1: the closes
        planned (and the request recorded) in one transaction, then the worker told its new routes."""
        closes = self.plan(self.hedger, self.m1)
        self.worker.use_routes(Routes(copy={self.m1: [CopyRoute(self.netter, self.one)],
                                            self.m2: [CopyRoute(self.netter, self.one)]}))
        return closes

    def run(self, seconds: int) -> None:
        for _ in range(seconds):
            self.clock.advance(1)

    def intent_states(self, follower) -> list[str]:
        return [r["state"] for r in self.store.db.query(
            "SELECT state FROM intents WHERE follower_id = ? ORDER BY deal_seq", (str(follower),))]

    def closes_per_position(self, login) -> dict[str, int]:
        counts: dict[str, int] = {}
        for deal in self.closes_at_venue(login):
            counts[str(deal.position_id)] = counts.get(str(deal.position_id), 0) + 1
        return counts

    def stop(self) -> None:
        if self.service is not None and self.service.running:
            self.service.stopService()

    def volumes(self, login) -> list[int]:
        return sorted(p.volume for p in self.venue.positions(login).result)

    def closes_at_venue(self, login) -> list:
        return [d for d in self.venue.deals_since(login, None).result
                if d.kind in (DealKind.CLOSE, DealKind.PARTIAL_CLOSE)]

    def links(self, follower) -> dict[str, int]:
        return {r["state"]: r["n"] for r in self.store.db.query(
            "SELECT state, COUNT(*) AS n FROM links WHERE follower_id = ? GROUP BY state", (str(follower),))}


@pytest.fixture
def s(tmp_path):
    session = Session(tmp_path / "bridge.sqlite")
    session.copy_session()
    yield session
    session.stop()
    session.store.close()


def test_the_plan_is_one_close_per_follower_position_and_a_shared_netting_position_loses_only_its_share(s):
    closes = s.plan(s.hedger, s.m1)
    assert sorted((o.symbol, o.side, o.volume, o.action) for o in closes) == [
        ("EURUSD", "buy", 3_000_000, "close"), ("EURUSD", "buy", LOT, "close"), ("GBPUSD", "sell", 5_000_000, "close")]
    assert all(o.state == "planned" and o.origin == "unsubscribe" and len(o.links) == 1 for o in closes)
    netting = s.plan(s.netter, s.m1, owner="s2")
    assert sorted((o.symbol, o.volume, o.action, len(o.links)) for o in netting) == [
        ("EURUSD", 13_000_000, "partial-close", 2), ("GBPUSD", 5_000_000, "close", 1)]
    assert len({o.key for o in closes + netting}) == 5
    assert s.plan(s.hedger, s.m1, owner="s3") == []  # already being closed: not planned twice
    assert s.plan(s.hedger, s.m2) == []  # nothing of m2's


def test_each_close_is_sent_once_and_a_lost_reply_is_resolved_by_lookup(s):
    s.plan(s.hedger, s.m1)
    s.plan(s.netter, s.m1, owner="s2")
    master_before = s.volumes(s.m1)
    s.venue.config = replace(s.venue.config, timeout_after_execute_rate="1")  # every reply is lost
    service = s.start()
    assert [o.state for o in s.store.account_orders()] == ["filled"] * 5
    assert s.volumes(s.hedger) == [] and s.volumes(s.netter) == [4_000_000]  # m2's copy stays
    assert len(s.closes_at_venue(s.hedger)) == 3 and len(s.closes_at_venue(s.netter)) == 2
    assert s.volumes(s.m1) == master_before  # the master's positions are not touched
    assert service.orders.sent == 5 and service.orders.resolved_by_lookup == 5
    assert s.links(s.hedger) == {"closed": 3}
    assert s.store.open_links(str(s.netter))[0].volume == 4_000_000  # m2's link, still open
    s.venue.config = replace(s.venue.config, timeout_after_execute_rate="0")
    s.clock.advance(5)  # later ticks send nothing more
    assert service.orders.sent == 5 and len(s.closes_at_venue(s.hedger)) == 3


def test_a_venue_down_is_waited_for_and_nothing_is_sent_blind(s):
    s.plan(s.hedger, s.m1)
    s.venue.disconnected = True
    service = s.start()
    for _ in range(10):
        s.clock.advance(1)
    assert {o.state for o in s.store.account_orders()} == {"unknown"} and service.orders.sent == 3
    s.venue.disconnected = False
    for _ in range(5):
        s.clock.advance(1)
    assert {o.state for o in s.store.account_orders()} == {"filled"}
    assert s.volumes(s.hedger) == [] and len(s.closes_at_venue(s.hedger)) == 3
    assert service.orders.sent == 6  # each sent again once, after its lookup found nothing


def test_a_position_closed_by_hand_is_final_and_unlinked(s):
    s.plan(s.hedger, s.m1)
    gbp = next(p for p in s.venue.positions(s.hedger).result if p.symbol == "GBPUSD")
    s.venue.close(s.hedger, gbp.position_id)  # the follower closes one itself before the daemon does
    s.start()
    states = {o.symbol + o.position_id: (o.state, o.detail.split(":")[0]) for o in s.store.account_orders()}
    assert sorted(states.values()) == [("filled", ""), ("filled", ""), ("rejected", "position-not-found")]
    assert s.volumes(s.hedger) == [] and len(s.closes_at_venue(s.hedger)) == 3  # 2 by the bridge, 1 by hand
    assert s.links(s.hedger) == {"closed": 2, "unlinked": 1}


def test_a_restart_after_the_venue_executed_sends_nothing_again(s):
    (first, *rest) = s.plan(s.hedger, s.m1)
    # the daemon marked one sent and the venue executed it, then the daemon died before the reply
    s.store.mark_account_order(first.key, "sent")
    s.venue.execute(OrderRequest(first.key, s.hedger, Action(first.action), first.symbol, Side(first.side),
                                 first.volume, first.position()))
    s.store.mark_account_order(rest[0].key, "sent")  # marked sent, died before the venue was asked
    service = s.start()
    assert {o.state for o in s.store.account_orders()} == {"filled"}
    assert len(s.closes_at_venue(s.hedger)) == 3 and s.volumes(s.hedger) == []
    assert service.orders.resolved_by_lookup == 1 and service.orders.sent == 2


def test_a_close_filled_short_plans_one_order_for_the_rest(s):
    (order,) = [o for o in s.plan(s.netter, s.m1) if o.symbol == "EURUSD"]
    assert (order.volume, order.action) == (13_000_000, "partial-close")
    s.store.mark_account_order(order.key, "sent")
    # the venue fills 0.90 of the 1.30 asked (a partly-filled close, as a venue with little liquidity may)
    short = s.venue.execute(OrderRequest(order.key, s.netter, Action.PARTIAL_CLOSE, order.symbol, Side(order.side),
                                         9_000_000, order.position())).result
    assert short.status is OrderStatus.FILLED and short.volume == 9_000_000
    s.store.finish_account_order(order, short, {"status": "filled", "volume": 9_000_000})
    (rest,) = s.store.account_orders(states=("planned",), origins=("unsubscribe",), owner="s1")[-1:]
    assert (rest.reason, rest.volume, rest.action, rest.position_id) == ("rest", 4_000_000, "partial-close",
                                                                         order.position_id)
    eur = sorted(link.volume for link in s.store.open_links(str(s.netter)) if link.symbol == "EURUSD")
    assert eur == [1_000_000, 3_000_000, 4_000_000]  # m1's oldest link 1.00 -> 0.10, its 0.30 left; m2's 0.40
    s.start()  # the rest goes out like any close
    assert s.volumes(s.netter) == [4_000_000]  # GBPUSD closed, EURUSD down to m2's copy
    assert sorted(link.volume for link in s.store.open_links(str(s.netter))) == [4_000_000]


# -- a copy in flight at the removal: closed once it fills, exactly once ------------------------------

HELD_S = 5  # the venue answers every order 5 seconds after it arrives


def _open_in_flight(s) -> None:
    """m1 opens EURUSD buy 0.20; the followers' copies reach the venue, which holds them unanswered."""
    s.venue.config = replace(s.venue.config, fill_latency_us=HELD_S * 1_000_000)
    s.venue.trade(s.m1, "EURUSD", Side.BUY, "0.20")
    assert s.intent_states(s.hedger)[-1] == "sent" and s.volumes(s.hedger) == [3_000_000, 5_000_000, LOT]


def test_a_copy_in_flight_at_the_removal_is_closed_once_it_fills(s):
    _open_in_flight(s)
    master_before = s.venue.positions(s.m1).result
    closes = s.unsubscribe_hedger()
    assert len(closes) == 3  # the linked positions; the copy at the venue has no link yet
    (request,) = s.store.close_requests()
    assert (request["state"], request["follower"], request["master"], len(request["pending"])) == \
        ("waiting", str(s.hedger), str(s.m1), 1)
    service = s.start()
    s.run(HELD_S + 1)  # the copy fills (its link is made), and so do the three closes
    s.run(HELD_S + 2)  # then the request is settled: the new position is closed
    assert s.volumes(s.hedger) == []
    assert service.late == 1 and service.orders.sent == 4 and service.orders.filled == 4
    assert s.store.close_requests(("done",))[0]["detail"] == "1 copy(ies) in flight at the removal; 1 late close(s)"
    assert sorted(s.closes_per_position(s.hedger).values()) == [1, 1, 1, 1]  # four positions, each closed once
    assert s.links(s.hedger) == {"closed": 4}
    s.run(10)  # later ticks plan and send nothing more
    assert service.orders.sent == 4 and len(s.closes_at_venue(s.hedger)) == 4
    assert s.venue.positions(s.m1).result == master_before  # the master keeps its positions
    assert s.volumes(s.netter) == [5_000_000, 19_000_000]  # still copying m1: its copy of the 0.20 came too


def test_a_restart_while_the_copy_is_in_flight_still_closes_it_once(s):
    _open_in_flight(s)
    first = {o.key for o in s.unsubscribe_hedger()}
    s.start()
    s.run(1)
    s.stop()  # the daemon's close service stops with the copy (and the three closes) at the venue
    s.run(HELD_S + 1)  # the copy fills meanwhile; the closes come back to nobody
    s.start()  # a new service, a new connection to the same store: the closes are looked up, the copy closed
    s.run(2)
    late = [o for o in s.store.account_orders() if o.key not in first]
    assert len(late) == 1 and late[0].state in ("sent", "planned")
    s.stop()  # and once more with the late close itself at the venue unanswered
    s.start()
    s.run(2 * HELD_S + 2)
    assert s.volumes(s.hedger) == [] and sorted(s.closes_per_position(s.hedger).values()) == [1, 1, 1, 1]
    assert {o.state for o in s.store.account_orders()} == {"filled"} and len(s.store.account_orders()) == 4
    assert [r["state"] for r in s.store.close_requests()] == ["done"]


def test_a_request_waits_while_the_worker_may_still_copy_along_the_removed_route(s):
    s.plan(s.hedger, s.m1)  # the CLI removed the route; the worker has not been told yet
    service = s.start()
    s.run(2)
    assert service.waiting == 1 and s.volumes(s.hedger) == []
    s.venue.trade(s.m1, "GBPUSD", Side.BUY, "0.10")  # copied along the old routes: after the removal
    assert s.volumes(s.hedger) == [1_000_000]
    s.worker.use_routes(Routes(copy={s.m2: [CopyRoute(s.netter, s.one)]}))  # the reload reaches the worker
    s.run(2)
    assert s.volumes(s.hedger) == [] and service.late == 1 and service.waiting == 0
    assert sorted(s.closes_per_position(s.hedger).values()) == [1, 1, 1, 1]


def test_following_the_master_again_seals_the_request(s):
    s.plan(s.hedger, s.m1)
    with s.store.transaction():  # bridge copy subscribe of the same pair, before the daemon heard of either
        assert s.store.seal_close_requests(s.hedger, s.m1) == 1
    s.venue.trade(s.m1, "GBPUSD", Side.BUY, "0.10")  # copied along the new route: not the request's
    service = s.start()
    s.run(2)
    assert service.late == 0 and service.waiting == 0
    assert s.volumes(s.hedger) == [1_000_000]  # only the three positions of the old route were closed


def test_a_netting_followers_copy_in_flight_loses_only_this_masters_share(s):
    _open_in_flight(s)  # the netting follower's copy adds 0.20 to its EURUSD position, at the venue unanswered
    closes = s.plan(s.netter, s.m1, owner="s2")
    s.worker.use_routes(Routes(copy={s.m1: [CopyRoute(s.hedger, s.one)], s.m2: [CopyRoute(s.netter, s.one)]}))
    assert sorted((o.symbol, o.volume, o.action) for o in closes) == [
        ("EURUSD", 13_000_000, "partial-close"), ("GBPUSD", 5_000_000, "close")]
    service = s.start()
    s.run(2 * HELD_S + 3)
    assert service.late == 1
    (late,) = [o for o in s.store.account_orders() if o.key not in {c.key for c in closes}]
    assert (late.symbol, late.volume, late.action, late.state) == ("EURUSD", 2_000_000, "partial-close", "filled")
    assert s.volumes(s.netter) == [4_000_000]  # m2's copy stays
    assert [(link.volume, link.state) for link in s.store.open_links(str(s.netter))] == [(4_000_000, "open")]
