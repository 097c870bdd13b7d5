"""The pipeline in one process: sim venue -> worker (journal, plan) -> executor -> sim venue.

Every assertion about what was traded reads the venue's own records (its
positions and its per-account deal history), not the bridge's.
"""

from __future__ import annotations

import random
from decimal import Decimal

import pytest
from twisted.internet.task import Clock

from allocation.copy import CopySettings, resolve
from allocation.copy.settings import SizingMode
from allocation.mam import MamGroup, Method
from bridge.domain.deal import DealKind, Side
from bridge.executor import Executor
from bridge.store import Store
from bridge.worker.planning import CopyRoute, MamRoute
from bridge.worker.routes import Routes
from bridge.worker.worker import Worker
from connectors.sim import SimConfig, SimVenue

SL, TP = Decimal("1.00000"), Decimal("1.50000")


class Session:
    """A netting master copied by two copy followers and a three-account MAM group, all on one sim venue."""

    def __init__(self, path, config: SimConfig = SimConfig(), seed: int = 7,
                 first_copy: CopySettings = CopySettings(mode=SizingMode.MULTIPLIER)) -> None:
        self.clock = Clock()
        self.venue = SimVenue("demo", self.clock, random.Random(seed), config)
        v = self.venue
        self.master = v.login(1000)
        v.add_account(self.master, Decimal(50_000), hedging=False)
        self.copy_followers = [v.login(2001), v.login(2002)]
        self.mam_members = [v.login(3001), v.login(3002), v.login(3003)]
        for login in self.copy_followers:
            v.add_account(login, Decimal(10_000), hedging=False)
        for login, equity in zip(self.mam_members, (4_500, 3_500, 2_000)):
            v.add_account(login, Decimal(equity), hedging=False)
        self.path = path
        self.routes = Routes(
            copy={self.master: [
                CopyRoute(self.copy_followers[0], resolve(first_copy)),
                CopyRoute(self.copy_followers[1], resolve(CopySettings(mode=SizingMode.BALANCE, reverse=True))),
            ]},
            mam={self.master: [MamRoute("alpha", MamGroup(Method.EQUITY),
                                        tuple((m, Decimal(0)) for m in self.mam_members))]},
        )
        self.start()
        v.watch_deals(self.master, self.watcher)

    def watcher(self, deal) -> None:
        self.worker.accept(deal)

    def start(self) -> None:
        """(Re)start the bridge side on the same database file: the recovery path is the startup path."""
        self.store = Store.open(self.path)
        venues = {self.venue.server: self.venue}
        self.executor = Executor(self.store, venues, slippage_limit=self.routes.max_slippage_points)
        self.worker = Worker(self.store, self.executor, self.routes, venues)

    @property
    def followers(self):
        return [*self.copy_followers, *self.mam_members]

    def net(self, login) -> int:
        """The account's net EURUSD exposure at the venue: + long, - short, canonical units."""
        positions = self.venue.positions(login).result
        return sum(p.volume if p.side is Side.BUY else -p.volume for p in positions if p.symbol == "EURUSD")

    def venue_trades(self, login) -> int:
        deals = self.venue.deals_since(login, None).result
        return sum(1 for d in deals if d.kind is not DealKind.BALANCE)

    def filled(self, login) -> list:
        return [r for r in self.store.intents_in_state("filled") if r.follower_id == str(login)]


@pytest.fixture
def session(tmp_path):
    s = Session(tmp_path / "bridge.sqlite")
    yield s
    s.store.close()


def script(s: Session) -> None:
    """Open, add, partial close, SL/TP, reversal, close: every master deal kind of a netting account."""
    v, m = s.venue, s.master
    position = v.trade(m, "EURUSD", Side.BUY, "1.00")
    v.trade(m, "EURUSD", Side.BUY, "0.50")
    v.close(m, position, "0.60")
    v.modify(m, position, SL, TP)
    v.trade(m, "EURUSD", Side.SELL, "2.00")  # 0.90 long -> 1.10 short: a reversal
    v.close(m, position)


def test_a_scripted_session_is_copied_exactly_once(session):
    s, v, m = session, session.venue, session.master
    position = v.trade(m, "EURUSD", Side.BUY, "1.00")
    assert s.net(s.copy_followers[0]) == 10_000_000  # multiplier 1: one lot
    assert s.net(s.copy_followers[1]) == -2_000_000  # balance 10k/50k, reversed: 0.20 short
    assert [s.net(f) for f in s.mam_members] == [4_500_000, 3_500_000, 2_000_000]

    v.trade(m, "EURUSD", Side.BUY, "0.50")  # an add on the netting master
    assert s.net(s.copy_followers[0]) == 15_000_000
    assert [s.net(f) for f in s.mam_members] == [6_800_000, 5_200_000, 3_000_000]  # 0.50 split 0.23/0.17/0.10

    v.close(m, position, "0.60")  # 40% of 1.50
    assert s.net(s.copy_followers[0]) == 9_000_000
    assert [s.net(f) for f in s.mam_members] == [4_100_000, 3_200_000, 1_800_000]  # 40% floored to 0.01

    v.modify(m, position, SL, TP)
    [p] = v.positions(s.copy_followers[0]).result
    assert (p.sl, p.tp) == (SL, TP)
    [p] = v.positions(s.copy_followers[1]).result
    assert (p.sl, p.tp) == (TP, SL)  # reversed: SL and TP swap

    v.trade(m, "EURUSD", Side.SELL, "2.00")  # reversal: 0.90 long -> 1.10 short
    assert s.net(s.copy_followers[0]) == -11_000_000
    assert s.net(s.copy_followers[1]) == 2_200_000
    assert [s.net(f) for f in s.mam_members] == [-4_900_000, -3_900_000, -2_200_000]  # 1.10 split by equity

    v.close(m, position)
    assert all(s.net(f) == 0 for f in s.followers)
    assert all(not v.positions(f).result for f in s.followers)
    # nothing doubled, nothing lost: every filled intent is exactly one trade in the venue's own history
    for follower in s.followers:
        assert s.venue_trades(follower) == len(s.filled(follower)) > 0
    assert s.store.intents_in_state("planned", "sent", "unknown") == []


def test_the_same_deal_delivered_twice_is_copied_once(session):
    s = session
    s.venue.trade(s.master, "EURUSD", Side.BUY, "1.00")
    [deal] = s.venue.deals_since(s.master, None).result
    assert s.worker.accept(deal) is False  # a second delivery, e.g. a replay after reconnect
    assert s.worker.duplicates == 1
    assert s.net(s.copy_followers[0]) == 10_000_000
    assert s.venue_trades(s.copy_followers[0]) == 1


def test_a_venue_that_times_out_after_executing_is_resolved_by_lookup_not_resent(tmp_path):
    s = Session(tmp_path / "b.sqlite", SimConfig(timeout_after_execute_rate=Decimal(1)))
    s.venue.trade(s.master, "EURUSD", Side.BUY, "1.00")
    assert s.net(s.copy_followers[0]) == 10_000_000
    assert s.venue_trades(s.copy_followers[0]) == 1
    assert s.executor.resolved_by_lookup == 5  # every follower's order: executed, reported ambiguous, found
    assert len(s.store.intents_in_state("filled")) == 5
    s.store.close()


def test_a_venue_that_times_out_before_executing_gets_the_order_again(tmp_path):
    s = Session(tmp_path / "b.sqlite", SimConfig(timeout_before_execute_rate=Decimal("0.5")), seed=3)
    script(s)
    assert all(s.net(f) == 0 for f in s.followers)
    for follower in s.followers:
        assert s.venue_trades(follower) == len(s.filled(follower))
    assert max(r.attempts for r in s.store.intents_in_state("filled")) >= 2
    s.store.close()


def test_worker_restart_mid_fan_out_loses_nothing_and_doubles_nothing(tmp_path):
    # orders take 50 ms at the venue; the bridge dies while they are in flight
    s = Session(tmp_path / "b.sqlite", SimConfig(fill_latency_us=50_000))
    s.venue.trade(s.master, "EURUSD", Side.BUY, "1.00")
    assert {r.state.value for r in s.store.intents_of_deal(1)} == {"sent"}
    s.store.close()  # the process is gone: nothing it held in memory survives
    s.clock.advance(0.05)  # the venue goes on and fills what reached it
    s.start()
    s.worker.kick()
    s.clock.advance(0.05)
    assert s.net(s.copy_followers[0]) == 10_000_000
    assert [s.net(f) for f in s.mam_members] == [4_500_000, 3_500_000, 2_000_000]
    assert all(s.venue_trades(f) == 1 for f in s.followers)
    assert s.executor.resolved_by_lookup == 5 and s.executor.sent == 0
    s.store.close()


def test_results_arriving_after_the_worker_stopped_are_left_to_the_next_start(tmp_path, caplog):
    s = Session(tmp_path / "b.sqlite", SimConfig(fill_latency_us=50_000))
    s.venue.trade(s.master, "EURUSD", Side.BUY, "1.00")
    s.worker.stopping = s.executor.closed = True  # as WorkerService.stopService does, before it closes the store
    s.store.close()
    with caplog.at_level("WARNING"):
        s.clock.advance(0.05)  # the fills come back to a stopped worker: not written, no error
    assert caplog.text.count("arrived after the store closed") == 5
    assert not [r for r in caplog.records if r.levelname == "ERROR" or r.exc_info]
    s.start()
    s.worker.kick()
    s.clock.advance(0.05)
    assert all(s.venue_trades(f) == 1 for f in s.followers)
    assert s.executor.resolved_by_lookup == 5 and s.executor.sent == 0
    s.store.close()


def test_deals_made_while_the_bridge_was_down_are_backfilled_at_restart(tmp_path):
    s = Session(tmp_path / "b.sqlite")
    position = s.venue.trade(s.master, "EURUSD", Side.BUY, "1.00")
    s.store.close()
    s.venue.unwatch_deals(s.master, s.watcher)  # the bridge is down: nobody hears the master
    s.venue.close(s.master, position, "0.50")
    s.venue.close(s.master, position)
    s.start()
    backfill = s.venue.deals_since(s.master, s.store.last_deal_id(s.master)).result
    assert [d.kind for d in backfill] == [DealKind.PARTIAL_CLOSE, DealKind.CLOSE]
    for deal in backfill:
        s.worker.accept(deal)
    assert all(s.net(f) == 0 for f in s.followers)
    for follower in s.followers:
        assert s.venue_trades(follower) == len(s.filled(follower))
    s.store.close()


def test_a_position_the_follower_closed_by_hand_is_unlinked_and_never_reopened(session):
    s, v, m = session, session.venue, session.master
    hand = s.copy_followers[0]
    position = v.trade(m, "EURUSD", Side.BUY, "1.00")
    [copied] = v.positions(hand).result
    v.close(hand, copied.position_id)  # the follower closes its copy by hand
    drifts = s.worker.recover().result  # reconnect / startup: reconcile finds it gone
    [drift] = [d for d in drifts if d.follower == hand]
    assert drift.closed_outside == [position]
    v.trade(m, "EURUSD", Side.BUY, "0.50")  # an add on the same master position
    v.close(m, position, "0.60")
    v.close(m, position)
    assert not v.positions(hand).result  # nothing was reopened for the follower
    assert s.venue_trades(hand) == 2  # the copy, and the follower's own close: nothing after
    reasons = {r.reason.value for r in s.store.intents_in_state("skipped") if r.follower_id == str(hand)}
    assert reasons == {"not-linked"}
    assert s.net(s.copy_followers[1]) == 0  # everyone else followed the master out


def test_a_close_of_a_position_gone_from_the_venue_unlinks_without_a_reconcile(session):
    s, v, m = session, session.venue, session.master
    hand = s.copy_followers[0]
    position = v.trade(m, "EURUSD", Side.BUY, "1.00")
    [copied] = v.positions(hand).result
    v.close(hand, copied.position_id)
    v.close(m, position, "0.50")  # the bridge tries to close half of a position that is gone
    [rejected] = [r for r in s.store.intents_in_state("rejected") if r.follower_id == str(hand)]
    assert rejected.reject_reason == "position-not-found"
    v.trade(m, "EURUSD", Side.BUY, "0.30")
    assert not v.positions(hand).result


def test_requotes_are_retried_then_recorded_as_a_slippage_skip(tmp_path):
    s = Session(tmp_path / "b.sqlite", SimConfig(reject_rate=Decimal(1), reject_reasons=("requote",)))
    s.venue.trade(s.master, "EURUSD", Side.BUY, "1.00")
    rejected = s.store.intents_in_state("rejected")
    assert len(rejected) == 5 and all(r.reject_reason == "max-slippage-exceeded" for r in rejected)
    assert all(r.attempts == 4 for r in rejected)  # the first try and three requotes
    assert all(s.venue_trades(f) == 0 for f in s.followers)
    s.store.close()


def test_a_follower_never_gets_a_fill_worse_than_its_max_slippage(tmp_path):
    tight = CopySettings(mode=SizingMode.MULTIPLIER, max_slippage_points=3)
    s = Session(tmp_path / "b.sqlite", SimConfig(slippage_points=20), seed=4, first_copy=tight)
    for _ in range(8):
        position = s.venue.trade(s.master, "EURUSD", Side.BUY, "0.50")
        s.venue.close(s.master, position)
    follower = str(s.copy_followers[0])
    opens = [r for r in s.store.intents_in_state("filled", "rejected")
             if r.follower_id == follower and r.action.value == "open"]
    filled = [r for r in opens if r.state.value == "filled"]
    assert filled, "some opens should fill within 3 points"
    for row in filled:
        slip = s.store.execution(row.key).slippage_points
        assert slip is not None and slip <= 3
    assert any(r.attempts > 1 for r in opens)  # the venue requoted, the bridge asked again
    for f in s.followers:
        assert s.venue_trades(f) == len(s.filled(f)) and s.net(f) == 0
    s.store.close()


def test_a_hedging_follower_of_a_netting_master_copies_adds_as_positions_and_closes_them_all(tmp_path):
    s = Session(tmp_path / "b.sqlite")
    hedger = s.venue.login(4001)
    s.venue.add_account(hedger, Decimal(10_000), hedging=True)
    s.routes.copy[s.master].append(CopyRoute(hedger, resolve(CopySettings(mode=SizingMode.MULTIPLIER))))
    position = s.venue.trade(s.master, "EURUSD", Side.BUY, "1.00")
    s.venue.trade(s.master, "EURUSD", Side.BUY, "0.50")  # an add on the netting master
    held = s.venue.positions(hedger).result
    assert sorted(p.volume for p in held) == [5_000_000, 10_000_000]  # a position per open and add
    assert s.net(hedger) == s.net(s.copy_followers[0]) == 15_000_000  # the same exposure as a netting copy
    assert [lk.volume for lk in s.store.links_of(position, str(hedger))] == [10_000_000, 5_000_000]
    s.venue.modify(s.master, position, SL, TP)
    assert all((p.sl, p.tp) == (SL, TP) for p in s.venue.positions(hedger).result)  # both positions
    s.venue.close(s.master, position, "0.90")  # 60% of 1.50 = 0.90: the oldest (1.00) closes only partly
    assert s.net(hedger) == 6_000_000
    assert sorted(p.volume for p in s.venue.positions(hedger).result) == [1_000_000, 5_000_000]
    s.venue.close(s.master, position, "0.30")  # half of 0.60: 0.30, all from the oldest (0.10), then 0.20
    assert s.net(hedger) == 3_000_000
    s.venue.close(s.master, position)
    assert not s.venue.positions(hedger).result  # nothing left open
    assert s.net(s.copy_followers[0]) == 0
    assert s.venue_trades(hedger) == len(s.filled(hedger))
    assert s.store.links_of(position, str(hedger)) == []
    s.store.close()


def test_slippage_is_recorded_in_points_and_in_account_currency(tmp_path):
    s = Session(tmp_path / "b.sqlite", SimConfig(slippage_points=20), seed=11)
    for symbol, lots in (("EURUSD", "0.50"), ("USDJPY", "0.30")):
        for _ in range(4):
            position = s.venue.trade(s.master, symbol, Side.BUY, lots)
            s.venue.close(s.master, position)
    follower = s.copy_followers[0]  # multiplier 1, same direction as the master: slippage has a reference
    rows = [r for r in s.store.intents_in_state("filled") if r.follower_id == str(follower)]
    assert len(rows) == 16
    seen_nonzero = 0
    for row in rows:
        e = s.store.execution(row.key)
        assert e.slippage_points is not None and e.slippage_money is not None
        assert isinstance(e.slippage_money, Decimal)
        # recompute from the venue's own figures: the price difference x base units x quote->USD
        master_price = e.master_price
        buying = row.action.value == "open"  # the master bought to open and sold to close
        adverse = (e.fill_price - master_price) if buying else (master_price - e.fill_price)
        digits = 5 if row.symbol == "EURUSD" else 3
        assert e.slippage_points == int(adverse.scaleb(digits).to_integral_value())
        rate = Decimal(1) if row.symbol == "EURUSD" else None
        if rate is not None:
            assert e.slippage_money == (adverse * row.fill_volume / 100).quantize(Decimal("0.000001"))
        else:  # JPY converted at USDJPY's mid (about 150): a point on 0.30 lots is 30 JPY, about 0.20 USD
            in_jpy = adverse * row.fill_volume / 100
            assert abs(e.slippage_money - in_jpy / 150) <= abs(in_jpy) / 150 / 100  # within 1% of the mid
        seen_nonzero += e.slippage_money != 0
    assert seen_nonzero >= 8  # 20 points of random slippage: most fills slip
    reversed_copy = [r for r in s.store.intents_in_state("filled") if r.follower_id == str(s.copy_followers[1])]
    assert all(s.store.execution(r.key).slippage_money is None for r in reversed_copy)  # no reference price
    [stats] = [x for x in s.store.execution_stats("follower") if x.group == str(follower)]
    assert stats.mean_slippage_money is not None
    s.store.close()


def test_a_deal_arriving_while_another_is_in_flight_waits_unjournalled_then_follows_in_order(tmp_path):
    s = Session(tmp_path / "b.sqlite", SimConfig(fill_latency_us=50_000))
    position = s.venue.trade(s.master, "EURUSD", Side.BUY, "1.00")
    first = s.store.deal_seq(s.venue.deals_since(s.master, None).result[-1].deal_id)
    assert first is not None  # journalled at once, already planned, with its orders out
    assert s.store.journal_entry(first).state == "planned"
    s.venue.close(s.master, position, "0.50")  # the first deal's fills are still 50 ms away
    second = s.venue.deals_since(s.master, None).result[-1]
    assert s.store.deal_seq(second.deal_id) is None and not s.worker.idle  # waits in the inbox
    assert s.worker.accept(second) is False  # a second delivery while it waits: still once
    s.clock.advance(0.05)  # the first deal's fills come back: the second is journalled, planned, sent
    assert s.store.deal_seq(second.deal_id) > first
    s.clock.advance(0.05)
    assert s.worker.idle
    assert s.net(s.copy_followers[0]) == 5_000_000
    for follower in s.followers:
        assert s.venue_trades(follower) == len(s.filled(follower)) == 2
    s.store.close()


def test_a_deal_that_cannot_be_planned_is_journalled_and_worked_on_later(tmp_path):
    s = Session(tmp_path / "b.sqlite")
    s.venue.unwatch_deals(s.master, s.watcher)
    s.venue.trade(s.master, "EURUSD", Side.BUY, "1.00")
    [deal] = s.venue.deals_since(s.master, None).result[-1:]
    s.venue.disconnected = True  # no account figures: planning fails
    s.worker.accept(deal)
    seq = s.store.deal_seq(deal.deal_id)
    assert seq is not None and s.store.journal_entry(seq).state == "new"  # kept, to be retried
    assert s.store.intents_of_deal(seq) == [] and s.worker.has_stuck and s.worker.idle
    s.venue.disconnected = False
    s.worker.retry_stuck()  # what the daemon does every 2 s while something is stuck
    assert s.store.journal_entry(seq).state == "planned"
    assert s.net(s.copy_followers[0]) == 10_000_000
    s.store.close()


def test_drift_is_reported_and_healed_only_under_the_adopt_policy(tmp_path):
    from bridge.worker.reconcile import DriftPolicy, reconcile

    s = Session(tmp_path / "b.sqlite")
    position = s.venue.trade(s.master, "EURUSD", Side.BUY, "1.00")
    follower = s.copy_followers[0]
    [held] = s.venue.positions(follower).result
    s.venue.close(follower, held.position_id, "0.40")  # the follower trims its copy by hand
    report = reconcile(s.store, s.venue, follower).result
    assert report.volume_mismatch == [(position, 10_000_000, 6_000_000)] and report.adopted == []
    assert s.store.link_of(position, str(follower)).volume == 10_000_000  # report: nothing changed
    adopt = reconcile(s.store, s.venue, follower, DriftPolicy.ADOPT).result
    assert adopt.adopted == [position]
    assert s.store.link_of(position, str(follower)).volume == 6_000_000
    s.venue.close(s.master, position, "0.50")  # half of the master: half of what the follower holds
    assert s.net(follower) == 3_000_000
    s.store.close()


def test_a_hedging_follower_closing_one_of_its_copies_by_hand_keeps_the_other_linked(tmp_path):
    from bridge.worker.reconcile import reconcile

    s = Session(tmp_path / "b.sqlite")
    hedger = s.venue.login(4001)
    s.venue.add_account(hedger, Decimal(10_000), hedging=True)
    s.routes.copy[s.master].append(CopyRoute(hedger, resolve(CopySettings(mode=SizingMode.MULTIPLIER))))
    position = s.venue.trade(s.master, "EURUSD", Side.BUY, "1.00")
    s.venue.trade(s.master, "EURUSD", Side.BUY, "0.50")
    first, added = sorted(s.venue.positions(hedger).result, key=lambda p: p.position_id.value)
    s.venue.close(hedger, added.position_id)  # by hand
    drift = reconcile(s.store, s.venue, hedger).result
    assert drift.closed_outside == [position]
    assert [lk.follower_position for lk in s.store.links_of(position, str(hedger))] == [first.position_id]
    s.venue.trade(s.master, "EURUSD", Side.BUY, "0.20")  # another add: nothing more opened for the hedger
    assert [p.position_id for p in s.venue.positions(hedger).result] == [first.position_id]
    s.venue.close(s.master, position)
    assert not s.venue.positions(hedger).result
    assert s.venue_trades(hedger) == len(s.filled(hedger)) + 1  # the hand close is the venue's extra trade
    s.store.close()


def test_a_netting_follower_of_a_hedging_master_closes_only_the_closed_positions_share(tmp_path):
    s = Session(tmp_path / "b.sqlite")
    v = s.venue
    master = v.login(1500)
    v.add_account(master, Decimal(50_000), hedging=True)
    netter = s.copy_followers[0]  # netting, multiplier 1
    s.routes.copy[master] = [CopyRoute(netter, resolve(CopySettings(mode=SizingMode.MULTIPLIER)))]
    v.watch_deals(master, s.watcher)
    a = v.trade(master, "EURUSD", Side.BUY, "1.00")
    b = v.trade(master, "EURUSD", Side.BUY, "0.50")  # a second master position: the follower's venue nets it
    [held] = v.positions(netter).result
    assert held.volume == 15_000_000
    v.close(master, a)  # the first master position closes: the follower keeps the second's share
    assert s.net(netter) == 5_000_000
    assert [lk.volume for lk in s.store.links_of(b, str(netter))] == [5_000_000]
    assert s.store.links_of(a, str(netter)) == []
    v.close(master, b, "0.20")
    assert s.net(netter) == 3_000_000
    v.close(master, b)
    assert s.net(netter) == 0 and s.venue_trades(netter) == len(s.filled(netter))
    s.store.close()


def test_masters_on_two_servers_whose_deal_ids_coincide_are_both_copied(tmp_path):
    """Deal tickets are numbered per server: two masters on two servers of one platform make deals of the
    same number. Each is journalled and copied (the journal is unique per account, keys carry the master)."""
    clock = Clock()
    north = SimVenue("north", clock, random.Random(1))
    south = SimVenue("south", clock, random.Random(2))
    m1, m2, follower = north.login(1000), south.login(1000), north.login(2001)
    north.add_account(m1, Decimal(10_000))
    south.add_account(m2, Decimal(10_000))
    north.add_account(follower, Decimal(10_000))
    settings = resolve(CopySettings(mode=SizingMode.MULTIPLIER))
    routes = Routes(copy={m1: [CopyRoute(follower, settings)], m2: [CopyRoute(follower, settings)]})
    with Store.open(tmp_path / "bridge.sqlite") as store:
        venues = {north.server: north, south.server: south}
        worker = Worker(store, Executor(store, venues), routes, venues)
        north.watch_deals(m1, worker.accept)
        south.watch_deals(m2, worker.accept)
        north.trade(m1, "EURUSD", Side.BUY, "0.10")
        south.trade(m2, "EURUSD", Side.SELL, "0.20")
        first, second = north.deals_since(m1, None).result[-1], south.deals_since(m2, None).result[-1]
        assert first.deal_id == second.deal_id  # the same number on both servers
        assert sorted((p.side, p.volume) for p in north.positions(follower).result) == [
            (Side.BUY, 1_000_000), (Side.SELL, 2_000_000)]
        assert store.deal_seq(first.deal_id, m1) != store.deal_seq(second.deal_id, m2)
        assert worker.duplicates == 0
        assert worker.accept(second) is False and worker.duplicates == 1  # a redelivery is still one
        assert len(north.positions(follower).result) == 2
        # their positions share a number too: closing one master's closes only its own copy
        north.close(m1, north.positions(m1).result[0].position_id)
        assert [(p.side, p.volume) for p in north.positions(follower).result] == [(Side.SELL, 2_000_000)]
        south.close(m2, south.positions(m2).result[0].position_id)
        assert north.positions(follower).result == []
