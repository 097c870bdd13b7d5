"""MT5 SL/TP followed as state across restarts (connectors/mt5/deals.py ``recovered_stops``,
``MT5Venue.deals_since(..., stops=)``), over simulated terminals.

MT5 keeps no history of SL/TP changes and a restarted poller takes the positions it first reads as its
baseline: an amend made while the bridge was down is found only by comparing the open positions with the
stops the journal last told. A "restart" here is a new :class:`MT5Venue` over the same terminals (the
trade server's state lives on); the copy tests run the real worker and store, and count the follower's
requests at its terminal.
"""

from __future__ import annotations

from decimal import Decimal


from allocation.copy import CopySettings, resolve
from allocation.copy.settings import SizingMode
from bridge.domain.deal import DealKind, Side
from bridge.executor import Executor
from bridge.store import Store
from bridge.worker.planning import CopyRoute
from bridge.worker.routes import Routes
from bridge.worker.worker import Worker
from connectors.mt5 import deals, providers
from connectors.mt5.venue import MT5Venue
from tests.mt5_rig import HEDGER, MASTER, NET_MASTER, NETTER, POLL_S, Rig
from tests import test_mt5_venue
from tests.test_mt5_venue import settle, watch

SL, TP = Decimal("1.07000"), Decimal("1.10000")
rig = test_mt5_venue.rig  # the fixture: a Rig of four terminals, closed after the test
SL2, TP2 = Decimal("1.07500"), Decimal("1.09500")


def restart(rig: Rig) -> None:
    """The bridge stops and a new one starts over the same terminals (nothing of the old venue is kept)."""
    rig.venue.stop()
    rig.venue = MT5Venue("mt5", {login: providers.simulator(t) for login, t in rig.terminals.items()},
                         reactor=rig.clock, clock=rig.clock, poll_interval_s=POLL_S, server_offset_s=7200,
                         threads=False)
    rig.result(rig.venue.start())


def record(rig: Rig, login: int, position) -> object:
    [p] = rig.terminals[login].positions_get(ticket=position.value)
    return p


def test_an_amend_made_while_down_is_one_sltp_deal_with_the_pollers_id_and_stable(rig):
    m = rig.login(MASTER)
    seen = watch(rig, MASTER)
    position = rig.manual(m, "EURUSD", Side.BUY, "1.00")
    rig.pump(until=lambda: len(seen) == 1)
    rig.manual_sltp(m, position, SL, TP)
    settle(rig, seen, 2)
    opened, told = seen
    restart(rig)
    rig.clock.advance(1.5)
    rig.manual_sltp(m, position, SL2, TP2)  # while no bridge runs
    rig.clock.advance(1.5)
    seen = watch(rig, MASTER)  # the new poller's baseline already holds the new stops
    settle(rig, seen, 0)
    known = {position: (told.sl, told.tp)}
    [sltp] = rig.result(rig.venue.deals_since(m, opened.deal_id, stops=known))
    assert (sltp.kind, sltp.position_id, sltp.sl, sltp.tp, sltp.side) == (DealKind.SLTP, position, SL2, TP2, Side.BUY)
    assert (sltp.volume, sltp.position_volume) == (0, 10_000_000)
    # the id the poller gives this change (the position's time_update_msc), later than the first amend's
    assert sltp.deal_id.value == deals.sltp_id(record(rig, MASTER, position), None) > told.deal_id.value
    assert rig.result(rig.venue.deals_since(m, opened.deal_id, stops=known)) == [sltp]  # asked again: same id
    restart(rig)  # and after another restart, before it was journalled
    assert rig.result(rig.venue.deals_since(m, opened.deal_id, stops=known)) == [sltp]
    assert rig.result(rig.venue.deals_since(m, opened.deal_id, stops={position: (SL2, TP2)})) == []  # journalled
    assert rig.result(rig.venue.deals_since(m, opened.deal_id)) == []  # no stops passed: the history alone


def test_a_live_amend_and_its_recovery_share_one_id_whichever_comes_first(rig):
    m = rig.login(MASTER)
    seen = watch(rig, MASTER)
    first = rig.manual(m, "EURUSD", Side.BUY, "1.00")
    second = rig.manual(m, "GBPUSD", Side.SELL, "0.50")
    settle(rig, seen, 2)
    rig.manual_sltp(m, first, SL, TP)
    settle(rig, seen, 3)
    live = seen[-1]
    # the backfill of a restarted worker whose journal missed the live deal: the poller's id
    [found] = rig.result(rig.venue.deals_since(m, seen[1].deal_id, stops={}))
    assert found == live
    # the backfill first (the poller has not polled since the amend), then the poller: one id
    rig.manual_sltp(m, second, Decimal("1.30000"), None)
    [recovered] = rig.result(rig.venue.deals_since(m, seen[1].deal_id, stops={first: (SL, TP)}))
    settle(rig, seen, 4)
    assert seen[-1] == recovered and recovered.position_id == second and recovered.sl == Decimal("1.30000")


def test_positions_opened_or_changed_while_down_are_told_by_their_deals_first(rig):
    m = rig.login(MASTER)
    seen = watch(rig, MASTER)
    kept = rig.manual(m, "EURUSD", Side.BUY, "1.00")
    rig.manual_sltp(m, kept, SL, TP)
    gone = rig.manual(m, "GBPUSD", Side.BUY, "1.00")
    rig.manual_sltp(m, gone, Decimal("1.20000"), None)
    settle(rig, seen, 2)  # two opens, each with the stops set before the poll
    last = seen[-1].deal_id
    restart(rig)
    rig.manual_close(m, gone)  # a known position closed: nothing to tell of its stops
    fresh = rig.manual(m, "USDJPY", Side.SELL, "1.00")  # opened with stops: its open tells them
    rig.manual_sltp(m, fresh, Decimal("152.000"), Decimal("148.000"))
    split = rig.manual(m, "EURUSD", Side.SELL, "1.00")  # opened, amended, then partly closed: its open
    rig.manual_sltp(m, split, Decimal("1.12000"), None)  # is not its newest deal, so it tells no stops
    rig.manual_close(m, split, "0.40")
    known = {kept: (SL, TP), gone: (Decimal("1.20000"), None)}
    found = rig.result(rig.venue.deals_since(m, last, stops=known))
    assert [(d.kind, d.position_id) for d in found] == [
        (DealKind.CLOSE, gone), (DealKind.OPEN, fresh), (DealKind.OPEN, split), (DealKind.PARTIAL_CLOSE, split),
        (DealKind.SLTP, split)]
    assert (found[1].sl, found[1].tp) == (Decimal("152.000"), Decimal("148.000"))
    assert (found[-1].sl, found[-1].tp) == (Decimal("1.12000"), None)


def test_stops_removed_while_down_are_an_sltp_deal_without_stops(rig):
    m = rig.login(NET_MASTER)
    seen = watch(rig, NET_MASTER)
    position = rig.manual(m, "EURUSD", Side.BUY, "1.00")
    rig.manual_sltp(m, position, SL, TP)
    settle(rig, seen, 1)
    restart(rig)
    rig.clock.advance(1)
    rig.manual_sltp(m, position, None, None)
    [sltp] = rig.result(rig.venue.deals_since(m, seen[0].deal_id, stops={position: (SL, TP)}))
    assert (sltp.kind, sltp.sl, sltp.tp) == (DealKind.SLTP, None, None)


# -- through the worker and the store -----------------------------------------------------------------
def copy_session(rig, store: Store, master: int, followers: tuple[int, ...]) -> Worker:
    """The daemon's start for one master copied 1:1 by ``followers`` on ``rig``'s venue (MT5 or MT4): watch,
    then the backfill the worker asks for (after the journal's last trade, with the stops it last told), every
    deal into the worker."""
    account = rig.login(master)
    routes = Routes(copy={account: [CopyRoute(rig.login(login), resolve(CopySettings(mode=SizingMode.MULTIPLIER)))
                                    for login in followers]})
    venues = {rig.venue.server: rig.venue}
    worker = Worker(store, Executor(store, venues), routes, venues)
    rig.result(worker.recover())
    rig.result(rig.venue.watch_deals(account, worker.accept))
    backfill = rig.result(rig.venue.deals_since(account, store.last_deal_id(account, trades_only=True),
                                                stops=store.known_stops(account)))
    for deal in backfill:
        worker.accept(deal)
    return worker


def quiet_restart(rig, store: Store, worker: Worker, restart, master: int, followers: tuple[int, ...], sent,
                  idle) -> None:
    """Stop ``worker``, restart the venue (``restart(rig)``) and start the session again with nothing changed at
    the venue: after ``idle()``, no follower's terminal got a request (``sent(rig)``) and nothing more filled."""
    filled = len(store.intents_in_state("filled"))
    worker.stopping = True
    restart(rig)
    before = sent(rig)
    worker = copy_session(rig, store, master, followers)
    idle()
    assert sent(rig) == before and len(store.intents_in_state("filled")) == filled
    worker.stopping = True


def requests(rig: Rig) -> dict[int, int]:
    """Requests each follower's terminal answered so far."""
    return {login: rig.terminals[login]._next_request - 1 for login in (HEDGER, NETTER)}


def follower_stops(rig: Rig) -> dict[int, list]:
    return {login: [(p.sl, p.tp) for p in rig.terminals[login].positions_get()] for login in (HEDGER, NETTER)}


def test_through_the_worker_a_down_time_amend_reaches_each_follower_with_one_modify_then_nothing(rig, tmp_path):
    m = rig.login(MASTER)
    store = Store.open(tmp_path / "b.sqlite")
    worker = copy_session(rig, store, MASTER, (HEDGER, NETTER))
    position = rig.manual(m, "EURUSD", Side.BUY, "1.00")
    rig.pump(until=lambda: len(store.intents_in_state("filled")) == 2)
    rig.manual_sltp(m, position, SL, TP)
    rig.pump(until=lambda: len(store.intents_in_state("filled")) == 4)
    assert follower_stops(rig) == {HEDGER: [(1.07, 1.1)], NETTER: [(1.07, 1.1)]}
    worker.stopping = True
    restart(rig)
    rig.clock.advance(2)
    rig.manual_sltp(m, position, SL2, TP2)  # while the bridge is down
    rig.clock.advance(2)
    before = requests(rig)
    worker = copy_session(rig, store, MASTER, (HEDGER, NETTER))
    rig.pump(until=lambda: len(store.intents_in_state("filled")) == 6)
    for _ in range(100):
        rig.clock.advance(POLL_S)
    assert follower_stops(rig) == {HEDGER: [(1.075, 1.095)], NETTER: [(1.075, 1.095)]}
    assert {login: n - before[login] for login, n in requests(rig).items()} == {HEDGER: 1, NETTER: 1}
    assert len(store.intents_in_state("filled")) == 6
    quiet_restart(rig, store, worker, restart, MASTER, (HEDGER, NETTER), requests,
                  lambda: [rig.clock.advance(POLL_S) for _ in range(100)])
    store.close()


def test_an_amend_made_while_the_terminal_was_down_is_found_by_the_next_poll(rig):
    """A disconnect (not a restart): the poller keeps its last positions, so its first poll after the terminal
    is back compares with them; a backfill of the same change then keeps the poll's id."""
    from connectors.mt5.pool import HEALTH_S

    m, t = rig.login(MASTER), rig.terminals[MASTER]
    seen = watch(rig, MASTER)
    position = rig.manual(m, "EURUSD", Side.BUY, "1.00")
    settle(rig, seen, 1)
    t.shutdown()  # the pipe is gone: the worker marks the terminal down at its next call
    rig.clock.advance(POLL_S)
    assert not [s for s in rig.venue.terminal_status() if s["login"] == MASTER][0]["up"]
    assert t.initialize(login=MASTER, password="password")  # the trader's own session amends meanwhile
    rig.manual_sltp(m, position, SL, TP)
    skipped = rig.venue.pollers[MASTER].skipped
    rig.clock.advance(HEALTH_S)
    settle(rig, seen, 2)
    assert rig.venue.pollers[MASTER].skipped > skipped
    sltp = seen[-1]
    assert (sltp.kind, sltp.sl, sltp.tp) == (DealKind.SLTP, SL, TP)
    assert rig.result(rig.venue.deals_since(m, seen[0].deal_id, stops={})) == [sltp]
