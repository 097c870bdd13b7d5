"""SL/TP changes on a cTrader master, recovered as state (connectors/ctrader/deals.py).

cTrader's deal history holds no SL/TP amends: one made while the connector is
disconnected (or the bridge down) is found by comparing ReconcileRes with the
stops the deals told, and becomes one SLTP deal. Against the local cTrader
server over real TLS (rig: tests/ctrader_venue_rig.py); the amends are made by
hand with a second Open API client, as the master's trader would.
"""

from __future__ import annotations

from decimal import Decimal

from bridge.domain.deal import DealKind, Side
from connectors.ctrader.deals import STOPS_SCALE
from tests.ctrader_venue_rig import HEDGER, MASTER
from tests import test_ctrader_connector as connector_tests
from tests.test_ctrader_connector import EURUSD, watch

h = connector_tests.h  # the fixture: a CTraderHarness on a fresh local server

def amend(h, position, sl=None, tp=None, ctid=MASTER) -> None:
    """An SL/TP amend by hand (the trader's own connection)."""
    conn = h.trader()
    fields = {k: float(v) for k, v in (("stopLoss", sl), ("takeProfit", tp)) if v is not None}
    mid = conn.send("AmendPositionSLTPReq", ctidTraderAccountId=ctid, positionId=position.value, **fields)
    answer = conn.wait(lambda m, i: i == mid)
    assert answer.DESCRIPTOR.name == "ProtoOAExecutionEvent", answer


def stops(h, ctid=MASTER) -> dict:
    return {p.position_id: (p.sl, p.tp) for p in h.result(h.venue.positions(h.login(ctid)))}


def reconnect(h, until=lambda: True) -> None:
    for session in h.venue.pool.sessions:
        session.drop("test")
    h.tick(10.0, until=lambda: all(s.ready for s in h.venue.pool.sessions) and until())
    h.tick(1.0)


def levels(h):
    bid = h.server.market.quote(EURUSD).bid
    return bid - Decimal("0.01"), bid + Decimal("0.01"), bid - Decimal("0.02"), bid + Decimal("0.02")


def test_an_amend_made_while_disconnected_is_one_sltp_deal_after_the_reconnect_and_only_once(h):
    seen = watch(h)
    position = h.manual(h.master, EURUSD, Side.BUY, "1.00")
    h.pump(lambda: len(seen) == 1)
    sl, tp, sl2, _ = levels(h)
    for session in h.venue.pool.sessions:
        session.drop("test")
    amend(h, position, sl=sl, tp=tp)
    amend(h, position, sl=sl2, tp=tp)  # two amends unseen: the position's stops now are what counts
    h.tick(10.0, until=lambda: len(seen) >= 2)
    h.tick(1.0)
    assert [d.kind for d in seen] == [DealKind.OPEN, DealKind.SLTP]
    change = seen[1]
    assert (change.position_id, change.sl, change.tp) == (position, sl2, tp)
    assert change.deal_id.value % STOPS_SCALE == position.value and change.deal_id.value > 2 ** 63
    assert change.position_volume == seen[0].volume and change.volume == 0
    reconnect(h)  # nothing changed meanwhile: nothing is told again
    assert len(seen) == 2
    amend(h, position, tp=tp)  # the stop loss removed, live: told once
    h.pump(lambda: len(seen) == 3)
    reconnect(h)
    assert [(d.kind, d.sl, d.tp) for d in seen[2:]] == [(DealKind.SLTP, None, tp)]


def test_positions_amended_in_the_same_millisecond_get_one_sltp_deal_each(h):
    seen = watch(h)
    first = h.manual(h.master, EURUSD, Side.BUY, "1.00")
    second = h.manual(h.master, EURUSD, Side.BUY, "0.50")
    h.pump(lambda: len(seen) == 2)
    sl, tp, _, _ = levels(h)
    for session in h.venue.pool.sessions:
        session.drop("test")
    amend(h, first, sl=sl)  # the shared clock stands still: both at the same millisecond
    amend(h, second, tp=tp)
    h.tick(10.0, until=lambda: len(seen) >= 4)
    h.tick(1.0)
    changes = seen[2:]
    assert sorted((d.position_id.value, d.sl, d.tp) for d in changes) == [(first.value, sl, None),
                                                                           (second.value, None, tp)]
    assert changes[0].time == changes[1].time and changes[0].deal_id != changes[1].deal_id


def test_after_a_restart_deals_since_compares_the_positions_with_the_stops_the_bridge_knew(h):
    position = h.manual(h.master, EURUSD, Side.BUY, "1.00")
    other = h.manual(h.master, EURUSD, Side.SELL, "0.20")
    sl, tp, sl2, _ = levels(h)
    amend(h, position, sl=sl, tp=tp)
    h.restart()  # a new venue: it knows nothing of what the bridge was told
    amend(h, position, sl=sl2, tp=tp)  # while the bridge is down
    master = h.master
    found = h.result(h.venue.deals_since(master, None, stops={position: (sl, tp)}))
    assert [d.kind for d in found] == [DealKind.OPEN, DealKind.OPEN, DealKind.SLTP]
    change = found[-1]
    assert (change.position_id, change.sl, change.tp) == (position, sl2, tp)
    again = h.result(h.venue.deals_since(master, None, stops={position: (sl, tp)}))
    assert again[-1].deal_id == change.deal_id, "the same change, the same id: the journal takes it once"
    assert [d.kind for d in h.result(h.venue.deals_since(master, None, stops={position: (sl2, tp)}))] == [
        DealKind.OPEN, DealKind.OPEN]
    # the journal told none: the position's stops now are one SLTP deal; the other has none
    [told] = [d for d in h.result(h.venue.deals_since(master, None, stops={})) if d.kind is DealKind.SLTP]
    assert (told.position_id, told.deal_id) == (position, change.deal_id)
    assert [d for d in h.result(h.venue.deals_since(master, None)) if d.kind is DealKind.SLTP] == [], \
        "without stops (a runtime master's start): deals only"
    assert other in stops(h)


def test_a_live_amend_and_its_recovery_from_the_journal_share_one_id(h):
    seen = watch(h)
    position = h.manual(h.master, EURUSD, Side.BUY, "1.00")
    sl, tp, _, _ = levels(h)
    amend(h, position, sl=sl, tp=tp)
    h.pump(lambda: len(seen) == 2)
    # the worker backfills before it journalled the live amend (it crashed with the amend in its inbox)
    found = h.result(h.venue.deals_since(h.master, None, stops={}))
    assert [d.deal_id for d in found if d.kind is DealKind.SLTP] == [seen[1].deal_id]
    h.manual_close(h.master, position, "0.30")  # the position's last update moves on; its stops do not
    h.pump(lambda: len(seen) == 3)
    found = h.result(h.venue.deals_since(h.master, None, stops={}))
    assert [d.deal_id for d in found if d.kind is DealKind.SLTP] == [seen[1].deal_id], \
        "the change the stream delivered keeps its id"


def test_an_open_with_relative_stops_is_followed_by_its_sltp_deal(h):
    seen = watch(h)
    conn = h.trader()
    mid = conn.send("NewOrderReq", ctidTraderAccountId=MASTER, symbolId=h.server.symbols.id_of(EURUSD),
                    orderType=1, tradeSide=1, volume=10_000_000, relativeStopLoss=500, relativeTakeProfit=800)
    conn.wait(lambda m, i: i == mid and m.DESCRIPTOR.name == "ProtoOAExecutionEvent" and m.executionType == 3)
    h.pump(lambda: len(seen) == 2)
    assert [d.kind for d in seen] == [DealKind.OPEN, DealKind.SLTP]
    [(sl, tp)] = stops(h).values()
    assert (seen[1].sl, seen[1].tp) == (sl, tp) and sl is not None and tp is not None
    reconnect(h)
    assert len(seen) == 2


def test_a_deposit_missed_while_disconnected_is_in_the_figures_after_the_reconnect(h):
    watch(h)
    master = h.master
    before = h.result(h.venue.account_info(master)).balance
    follower = h.result(h.venue.account_info(h.login(HEDGER))).balance
    for session in h.venue.pool.sessions:
        session.drop("test")
    h.server.deposit(MASTER, Decimal("500"))  # nobody of the bridge hears it
    h.server.deposit(HEDGER, Decimal("70"))
    h.tick(10.0, until=lambda: all(s.ready for s in h.venue.pool.sessions))
    assert h.result(h.venue.account_info(master)).balance == before + 500, "a master's figures are waited for"
    h.tick(1.0, until=lambda: h.result(h.venue.account_info(h.login(HEDGER))).balance == follower + 70)
