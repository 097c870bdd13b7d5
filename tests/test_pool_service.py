"""PAMM pools in the daemon: scheduled rollovers from the venue's equity, autocorrect, the pool stop,
each pool order exactly once (a lost reply, a restart with orders in flight), the manual rollover."""

from __future__ import annotations

import random
from datetime import datetime, timezone
from decimal import Decimal

import pytest
from twisted.internet.task import Clock

from allocation.pamm import PoolSettings
from bridge.daemon.pools import PoolService
from bridge.domain.deal import Side
from bridge.domain.ids import Login, Platform, ServerId
from bridge.pools.book import PoolBook
from bridge.store import Store
from connectors.sim import SimConfig, SimVenue

MASTER = Login(ServerId(Platform.SIM, "pamm"), 1000)
T0 = 1_767_225_600  # 2026-01-01T00:00Z
LOT = 10_000_000


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(T0 + seconds, timezone.utc)


class Rig:
    def __init__(self, tmp_path, *, handling="autocorrect", schedule="every 1h", **settings) -> None:
        self.clock = Clock()
        self.clock.advance(T0)
        self.venue = SimVenue("pamm", self.clock, random.Random(3), SimConfig())
        self.venue.add_account(MASTER, Decimal("0"))
        self.path = tmp_path / "bridge.db"
        self.store = Store.open(self.path)
        self.book = PoolBook(self.store)
        self.book.create("alpha", str(MASTER), PoolSettings(manager="M", **settings), handling=handling,
                         schedule=schedule, opened_at=at(0))
        self.service = None

    def start(self) -> PoolService:
        self.service = PoolService(self.clock, {MASTER.server: self.venue}, self.path)
        self.service.startService()
        return self.service

    def restart(self) -> PoolService:
        self.service.stopService()
        return self.start()

    def advance_to(self, seconds: float) -> None:
        while self.clock.seconds() < T0 + seconds:
            self.clock.advance(min(10.0, T0 + seconds - self.clock.seconds()))

    def fund(self, rollover: int) -> None:
        """The back office moves the due cash onto the master account, then confirms it."""
        due = {s.rollover: s for s in self.book.settlements("alpha")}[rollover]
        self.venue.deposit(MASTER, Decimal(due.amount))
        self.book.settle("alpha", rollover, datetime.fromtimestamp(self.clock.seconds(), timezone.utc))

    def half_withdrawn_after_one_lot(self) -> None:
        """M and A put in 5,000 each (rollover #1, funded); the master buys 1 lot; A asks for 2,500 back."""
        self.book.deposit("alpha", "M", Decimal("5000.00"), at(1))
        self.book.deposit("alpha", "A", Decimal("5000.00"), at(2))
        self.start()
        self.advance_to(3600)
        self.fund(1)
        self.venue.trade(MASTER, "EURUSD", Side.BUY, "1.00")
        self.book.withdraw("alpha", "A", Decimal("2500.00"), at(3700))

    def rollover_while_down(self, seconds: float):
        """The rollover applied to the store with no service running: its orders stay planned."""
        equity = self.venue.account(MASTER).equity().quantize(Decimal("0.01"))
        positions = self.venue.positions(MASTER).result
        specs = {p.symbol: self.venue.market.spec(p.symbol) for p in positions}
        return self.book.rollover("alpha", at(seconds), equity, source="test", orders_for=lambda r: (
            self.service._orders_for(self.book.pool("alpha"), MASTER, r, positions, specs)))

    def open_volumes(self) -> list[int]:
        return sorted(p.volume for p in self.venue.positions(MASTER).result)


@pytest.fixture
def rig(tmp_path):
    r = Rig(tmp_path)
    yield r
    if r.service is not None and r.service.running:
        r.service.stopService()
    r.store.close()


def test_a_scheduled_rollover_reads_the_equity_from_the_venue_and_leaves_cash_to_settle(rig):
    rig.book.deposit("alpha", "M", Decimal("1000.00"), at(1))
    rig.book.deposit("alpha", "A", Decimal("9000.00"), at(2))
    rig.start()
    assert rig.book.load("alpha").rollovers == 0  # not due before 01:00
    rig.advance_to(3600)
    pool = rig.book.load("alpha")
    assert pool.rollovers == 1 and pool.equity == Decimal("10000.00")
    assert [(s.rollover, Decimal(s.amount), s.state) for s in rig.book.settlements("alpha")] == \
        [(1, Decimal("10000.00"), "due")]
    # until the back office moves the money, the pool counts it: the next rollover sees no loss
    rig.advance_to(7200)
    assert rig.book.load("alpha").nav == Decimal("1.00")
    rig.fund(1)
    rig.venue.trade(MASTER, "EURUSD", Side.BUY, "1.00")
    rig.venue.market.set_bid("EURUSD", rig.venue.market.quote("EURUSD").bid + Decimal("0.0050"))
    rig.advance_to(3 * 3600)
    pool = rig.book.load("alpha")
    assert pool.rollovers == 3
    assert pool.equity == rig.venue.account(MASTER).equity().quantize(Decimal("0.01"))
    assert pool.nav > Decimal("1.0")


def test_autocorrect_closes_the_withdrawn_share_of_every_position_once(rig):
    rig.book.deposit("alpha", "M", Decimal("5000.00"), at(1))
    rig.book.deposit("alpha", "A", Decimal("5000.00"), at(2))
    rig.start()
    rig.advance_to(3600)
    rig.fund(1)
    rig.venue.trade(MASTER, "EURUSD", Side.BUY, "1.00")
    rig.venue.trade(MASTER, "GBPUSD", Side.SELL, "0.30")
    rig.book.withdraw("alpha", "A", None, at(3700))  # everything: about half the pool
    rig.advance_to(7200)
    orders = rig.book.orders("alpha")
    assert {o.reason for o in orders} == {"autocorrect"} and len(orders) == 2
    assert all(o.state == "filled" for o in orders)
    volumes = rig.open_volumes()
    # about half of each position is left: 1.00 -> 0.51 or so, 0.30 -> 0.16 or so (floored closes)
    assert volumes[0] in range(LOT * 15 // 100, LOT * 17 // 100)
    assert volumes[1] in range(LOT * 50 // 100, LOT * 52 // 100)
    # the next rollover sends nothing more
    rig.advance_to(3 * 3600)
    assert len(rig.book.orders("alpha")) == 2 and rig.open_volumes() == volumes


def test_a_lost_reply_is_resolved_by_lookup_not_by_sending_again(rig):
    rig.half_withdrawn_after_one_lot()
    rig.venue.config = SimConfig(timeout_after_execute_rate=Decimal(1))  # the order executes; its reply is lost
    rig.advance_to(7200)
    rig.venue.config = SimConfig()
    rig.advance_to(7210)
    (order,) = rig.book.orders("alpha")
    assert order.state == "filled"
    assert rig.service.orders.resolved_by_lookup == 1
    assert rig.open_volumes() == [LOT - order.volume]
    assert len([d for d in rig.venue.deals_since(MASTER, None).result if d.symbol == "EURUSD"]) == 2


def test_orders_planned_before_a_crash_are_sent_once_after_the_restart(rig):
    rig.half_withdrawn_after_one_lot()
    rig.venue.disconnected = True  # the rollover is applied, its order cannot go out
    rig.service.stopService()
    rig.venue.disconnected = False
    # the rollover by hand, as the store sees it, with the daemon down: the orders wait, planned
    result = rig.rollover_while_down(7200)
    assert result.report.number == 2
    (order,) = rig.book.orders("alpha")
    assert order.state == "planned"
    rig.start()  # startup is recovery: the planned order is looked up, then sent, once
    rig.advance_to(7300)
    rig.restart()
    rig.advance_to(7400)
    (order,) = rig.book.orders("alpha")
    assert order.state == "filled"
    assert rig.open_volumes() == [LOT - order.volume]


def test_the_pool_stop_closes_every_position_and_keeps_the_pool_flat(tmp_path):
    r = Rig(tmp_path, handling="reallocate", stop_drawdown=Decimal("20"))
    try:
        r.book.deposit("alpha", "M", Decimal("2000.00"), at(1))
        r.book.deposit("alpha", "A", Decimal("8000.00"), at(2))
        r.start()
        r.advance_to(3600)
        r.fund(1)
        r.venue.trade(MASTER, "EURUSD", Side.BUY, "2.00")
        r.venue.trade(MASTER, "USDJPY", Side.SELL, "1.00")
        bid = r.venue.market.quote("EURUSD").bid
        r.venue.market.set_bid("EURUSD", bid - Decimal("0.0150"))  # 2 lots x 150 pips = -3000: 30 % down
        r.advance_to(7200)
        pool = r.book.load("alpha")
        assert pool.halted and "drawdown" in pool.halted
        assert {o.reason for o in r.book.orders("alpha")} == {"pool-stop"}
        assert r.open_volumes() == []
        # the manager trades on; the next rollover closes it again
        r.venue.trade(MASTER, "EURUSD", Side.BUY, "0.50")
        r.advance_to(3 * 3600)
        assert r.open_volumes() == []
        assert len(r.book.orders("alpha")) == 3
    finally:
        r.service.stopService()
        r.store.close()


def test_a_venue_that_cannot_answer_postpones_the_rollover(rig):
    rig.book.deposit("alpha", "M", Decimal("1000.00"), at(1))
    rig.start()
    rig.venue.disconnected = True
    rig.advance_to(3605)
    assert rig.book.load("alpha").rollovers == 0
    assert "disconnected" in rig.service.status()["errors"]["alpha"]
    rig.venue.disconnected = False
    rig.advance_to(3607)
    assert rig.book.load("alpha").rollovers == 1
    assert rig.service.status()["errors"] == {}


def test_a_manual_rollover_runs_now_and_a_second_one_at_once_is_refused(rig):
    rig.book.deposit("alpha", "M", Decimal("1000.00"), at(1))
    rig.start()
    rig.clock.advance(10)
    d = rig.service.rollover_now("alpha")
    result, orders = d.result
    assert result.report.number == 1 and orders == []
    unknown = rig.service.rollover_now("nope")
    failure = []
    unknown.addErrback(failure.append)
    assert "unknown pool" in failure[0].getErrorMessage()


def test_a_venue_down_at_startup_holds_no_schedule_and_its_orders_go_out_when_it_is_back(rig):
    rig.half_withdrawn_after_one_lot()
    rig.service.stopService()
    rig.rollover_while_down(7200)
    rig.venue.disconnected = True
    service = rig.start()
    rig.advance_to(7230)
    assert service.ticker.running  # the schedule runs while the order waits for its venue
    # refused at once (never reached the venue), then only looked up until the venue answers: never sent blind
    assert [o.state for o in rig.book.orders("alpha")] == ["unknown"] and service.orders.sent == 1
    rig.venue.disconnected = False
    rig.advance_to(7260)
    (order,) = rig.book.orders("alpha")
    assert order.state == "filled" and rig.open_volumes() == [LOT - order.volume]
