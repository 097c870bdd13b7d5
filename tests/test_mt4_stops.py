"""MT4 SL/TP followed as state across restarts (``MT4Venue.deals_since(..., stops=)``, ``deals.sltp_deals``,
``told``), against simulated terminals running the EA (tests/mt4_rig.py); DWX's the same way
(tests/mt4_dwx_rig.py).

MT4 keeps no history of OrderModify and a restarted watch starts from the trades' stops as they are: an amend
made while the bridge was down is found only by comparing the open trades with the stops the journal last
told. A "restart" is a new venue over the same running EAs; the copy test runs the real worker and store and
counts the MODIFY commands each follower's EA executed (its result journal).
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from bridge.domain.deal import DealKind, Side
from bridge.store import Store
from connectors.mt4 import deals
from connectors.mt4.dwx.venue import DwxVenue
from connectors.mt4.venue import MT4Venue
from tests.mt4_dwx_rig import DwxRig
from tests.mt4_rig import HEDGER, MASTER, OTHER, Rig
from tests.test_mt5_stops import copy_session, quiet_restart

D = Decimal


def restart(r: Rig) -> None:
    """The bridge stops and a new one starts over the same EAs (nothing of the old venue is kept)."""
    r.venue.stop()
    r.venue = MT4Venue("mt4", {login: (s.command_endpoint, s.event_endpoint) for login, s in r.servers.items()},
                       ctx=r.ctx, reactor=r.clock, clock=r.clock, server_offset_s=7200, timeout_s=0.5)
    r.result(r.venue.start())


def watch(r: Rig, login: int = MASTER) -> list:
    seen: list = []
    r.result(r.venue.watch_deals(r.login(login), seen.append))
    return seen


@pytest.fixture
def rig():
    r = Rig((MASTER, HEDGER, OTHER))
    yield r
    r.close()


def test_an_amend_made_while_down_is_one_sltp_deal_with_a_stable_id(rig):
    r, m = rig, rig.login(MASTER)
    bid = r.market.quote("EURUSD").bid
    sl, tp, sl2 = bid - D("0.01000"), bid + D("0.01000"), bid - D("0.00500")
    seen = watch(r)
    position = r.manual(m, "EURUSD", Side.BUY, "1.00", sl=sl, tp=tp)
    r.pump(lambda: len(seen) >= 1)
    [opened] = seen
    assert (opened.sl, opened.tp) == (sl, tp)
    restart(r)
    r.wait(0.05)
    r.manual_sltp(m, position, sl=sl2, tp=tp)  # while no bridge runs: the EA's event of it reaches nobody
    r.wait(0.05)
    seen = watch(r)
    r.wait(0.2)
    assert seen == []  # the new watch's baseline holds the new stops
    known = {position: (sl, tp)}
    [sltp] = r.result(r.venue.deals_since(m, opened.deal_id, stops=known))
    assert (sltp.kind, sltp.position_id, sltp.sl, sltp.tp, sltp.side) == (DealKind.SLTP, position, sl2, tp, Side.BUY)
    assert sltp.deal_id.value > deals.SLTP_IDS and (sltp.volume, sltp.position_volume) == (0, 10_000_000)
    r.wait(0.05)
    assert r.result(r.venue.deals_since(m, opened.deal_id, stops=known)) == [sltp]  # asked again: the same id
    assert r.result(r.venue.deals_since(m, opened.deal_id, stops={position: (sl2, tp)})) == []  # journalled
    assert r.result(r.venue.deals_since(m, opened.deal_id)) == []  # no stops passed: the history alone
    r.wait(0.2)
    assert seen == []


def test_a_live_amend_and_its_recovery_share_one_id(rig):
    r, m = rig, rig.login(MASTER)
    bid = r.market.quote("EURUSD").bid
    seen = watch(r)
    first = r.manual(m, "EURUSD", Side.BUY, "1.00")
    second = r.manual(m, "EURUSD", Side.SELL, "0.50")
    r.pump(lambda: len(seen) >= 2)
    r.manual_sltp(m, first, sl=bid - D("0.01000"))
    r.pump(lambda: len(seen) >= 3)
    live = seen[-1]
    # the backfill of a worker whose journal missed the live deal: the event's id
    assert r.result(r.venue.deals_since(m, seen[1].deal_id, stops={})) == [live]
    # amended again; the backfill may answer before or after the EA's event: one id either way
    r.manual_sltp(m, second, tp=bid - D("0.02000"))
    recovered = r.result(r.venue.deals_since(m, seen[1].deal_id, stops={first: (live.sl, None)}))
    r.pump(lambda: len(seen) >= 4)
    r.wait(0.2)
    assert len(seen) == 4 and recovered == [seen[-1]] and seen[-1].position_id == second


def test_a_remainder_whose_stops_changed_while_down_is_its_roots_sltp_deal(rig):
    r, m = rig, rig.login(MASTER)
    bid = r.market.quote("EURUSD").bid
    seen = watch(r)
    position = r.manual(m, "EURUSD", Side.BUY, "1.00", sl=bid - D("0.01000"))
    closed = r.manual(m, "EURUSD", Side.SELL, "1.00", tp=bid - D("0.01000"))
    r.pump(lambda: len(seen) >= 2)
    restart(r)
    r.wait(0.01)
    r.manual_close(m, position, "0.40")  # the rest reopens under a new ticket
    r.wait(0.01)
    r.manual_sltp(m, position, sl=bid - D("0.00800"))
    r.manual_close(m, closed)
    r.wait(0.01)
    known = {position: (bid - D("0.01000"), None), closed: (None, bid - D("0.01000"))}
    found = r.result(r.venue.deals_since(m, seen[-1].deal_id, stops=known))
    assert [(d.kind, d.position_id) for d in found] == [
        (DealKind.PARTIAL_CLOSE, position), (DealKind.CLOSE, closed), (DealKind.SLTP, position)]
    assert (found[-1].sl, found[-1].tp, found[-1].position_volume) == (bid - D("0.00800"), None, 6_000_000)


# -- through the worker and the store -----------------------------------------------------------------
def modifies(r: Rig) -> dict[int, int]:
    """MODIFY commands each follower's EA executed (its result journal: one entry per key)."""
    return {login: sum(e["cmd"] == "MODIFY" for e in r.servers[login].ea.journal._entries.values())
            for login in (HEDGER, OTHER)}


def follower_stops(r: Rig) -> dict[int, list]:
    return {login: [(o.sl, o.tp) for o in r.terminals[login].open_orders()] for login in (HEDGER, OTHER)}


def test_through_the_worker_a_down_time_amend_reaches_each_follower_with_one_modify_then_nothing(rig, tmp_path):
    r, m = rig, rig.login(MASTER)
    bid = r.market.quote("EURUSD").bid
    sl, tp = bid - D("0.01000"), bid + D("0.01000")
    store = Store.open(tmp_path / "b.sqlite")
    worker = copy_session(r, store, MASTER, (HEDGER, OTHER))
    position = r.manual(m, "EURUSD", Side.BUY, "1.00")
    r.pump(lambda: len(store.intents_in_state("filled")) == 2)
    r.manual_sltp(m, position, sl=sl, tp=tp)
    r.pump(lambda: len(store.intents_in_state("filled")) == 4)
    assert follower_stops(r) == {HEDGER: [(sl, tp)], OTHER: [(sl, tp)]}
    worker.stopping = True
    restart(r)
    r.wait(0.05)
    r.manual_sltp(m, position, sl=sl + D("0.00500"), tp=tp)  # while the bridge is down
    r.wait(0.05)
    before = modifies(r)
    worker = copy_session(r, store, MASTER, (HEDGER, OTHER))
    r.pump(lambda: len(store.intents_in_state("filled")) == 6)
    r.wait(0.3)
    assert follower_stops(r) == {HEDGER: [(sl + D("0.00500"), tp)], OTHER: [(sl + D("0.00500"), tp)]}
    assert {login: n - before[login] for login, n in modifies(r).items()} == {HEDGER: 1, OTHER: 1}
    assert len(store.intents_in_state("filled")) == 6
    quiet_restart(r, store, worker, restart, MASTER, (HEDGER, OTHER), modifies, lambda: r.wait(0.3))
    store.close()


# -- DWX ------------------------------------------------------------------------------------------------
def test_dwx_an_amend_made_while_down_is_one_sltp_deal_and_a_poll_of_it_keeps_the_id():
    r = DwxRig((MASTER, HEDGER))
    try:
        m = r.login(MASTER)
        position = r.manual(m, "EURUSD", Side.BUY, "1.00", sl="1.07000", tp="1.10000")
        r.wait(0.05)
        r.venue.stop()  # the bridge is down; it starts again over the same EAs
        r.venue = DwxVenue("mt4", {login: (s.command_endpoint, s.reply_endpoint) for login, s in r.servers.items()},
                           ctx=r.ctx, reactor=r.clock, clock=r.clock, server_offset_s=7200, timeout_s=0.5,
                           poll_ms=100)
        r.manual_sltp(m, position, "1.07500", "1.10000")
        r.result(r.venue.start())
        seen = watch(r)
        known = {position: (D("1.07000"), D("1.10000"))}
        [sltp] = r.result(r.venue.deals_since(m, None, stops=known))
        assert (sltp.kind, sltp.position_id, sltp.sl, sltp.tp) == (DealKind.SLTP, position, D("1.07500"), D("1.10000"))
        r.wait(0.3)
        assert r.result(r.venue.deals_since(m, None, stops=known)) == [sltp]  # asked again: the same id
        assert r.result(r.venue.deals_since(m, None, stops={position: (sltp.sl, sltp.tp)})) == []
        # amended again and asked before the next poll: the poll's SLTP deal keeps the backfill's id
        r.manual_sltp(m, position, "1.08000", "1.10000")
        [again] = r.result(r.venue.deals_since(m, None, stops={position: (sltp.sl, sltp.tp)}))
        r.pump(lambda: len(seen) >= 1)
        r.wait(0.3)
        assert [(d.deal_id, d.kind, d.sl, d.tp) for d in seen] == [(again.deal_id, DealKind.SLTP, D("1.08000"),
                                                                    D("1.10000"))]
    finally:
        r.close()
