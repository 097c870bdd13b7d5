"""The connector contract: what every Venue (connectors/interface.py) must do, written once.

A *harness* gives the suite a venue to test and the means to drive it:

* ``venue``: the Venue under test (a connector, or the simulated venue in or out of process);
* ``hedger`` and ``netter``: two follower accounts on it, a hedging and a netting one, with money
  (``netter`` None on a platform without netting accounts, MT4: its netting checks are skipped);
  ``master``: an account traded by hand;
* ``result(d)``: waits for a Deferred of the venue (pumping whatever sockets it needs) and returns
  its value, or raises its failure;
* ``manual(account, symbol, side, lots)`` and ``manual_close(account, position, lots=None)``: trade
  *by hand* on the venue's own side (not through the Venue interface), as a master's trader does;
  each returns the position id;
* ``result_or_none(x)``: waits for ``x`` if it is a Deferred (``watch_deals`` may return one);
* ``pump(until=...)``: lets anything in flight (a deal on its way to a watcher) arrive.

``tests/test_venue_contract.py`` runs every ``check_*`` function below against every harness.
A new connector joins by adding its harness there.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from allocation.leg import Action
from bridge.domain.deal import DealKind, MasterDeal, Side
from bridge.domain.ids import DealId, PositionId
from bridge.domain.volume import SymbolSpec
from connectors.interface import AccountInfo, OrderRequest, OrderStatus, VenuePosition, idempotency_key

SYMBOL = "EURUSD"


def _key(name: str) -> str:
    return idempotency_key(f"contract:{name}", "follower", 0)


def _lot(h) -> int:
    return h.result(h.venue.symbol_spec(h.hedger, SYMBOL)).to_volume("1.00")


def _open(h, name: str, account=None, side=Side.BUY, volume=None, **kw):
    account = account or h.hedger
    order = OrderRequest(_key(name), account, Action.OPEN, SYMBOL, side, volume or _lot(h), **kw)
    return h.result(h.venue.execute(order))


def check_account_info(h) -> None:
    for account, hedging in ((h.hedger, True), (h.netter, False)):
        if account is None:  # a platform without netting accounts (MT4)
            continue
        info = h.result(h.venue.account_info(account))
        assert isinstance(info, AccountInfo) and info.login == account and info.hedging is hedging
        assert isinstance(info.balance, Decimal) and info.balance > 0 and isinstance(info.equity, Decimal)
        assert info.currency


def check_symbol_spec(h) -> None:
    spec = h.result(h.venue.symbol_spec(h.hedger, SYMBOL))
    assert isinstance(spec, SymbolSpec) and spec.symbol == SYMBOL
    assert 0 < spec.min_volume <= spec.max_volume and spec.min_volume % spec.step_volume == 0
    try:
        h.result(h.venue.symbol_spec(h.hedger, "NOSUCHSYMBOL"))
    except KeyError:
        return
    raise AssertionError("an unknown symbol must fail with KeyError")


def check_open_is_filled_once_and_found_by_key(h) -> None:
    filled = _open(h, "open")
    assert filled.status is OrderStatus.FILLED and filled.key == _key("open")
    assert filled.volume == _lot(h) and isinstance(filled.price, Decimal)
    assert isinstance(filled.position_id, PositionId)
    again = _open(h, "open")  # the same key again: the recorded result, no second trade
    assert again.status is OrderStatus.FILLED and again.position_id == filled.position_id
    positions = h.result(h.venue.positions(h.hedger))
    assert [p.position_id for p in positions if p.key == _key("open")] == [filled.position_id]
    assert all(isinstance(p, VenuePosition) for p in positions)
    found = h.result(h.venue.lookup(h.hedger, _key("open")))
    assert found is not None and found.position_id == filled.position_id and found.volume == filled.volume
    assert h.result(h.venue.lookup(h.hedger, _key("never-sent"))) is None


def check_partial_close_keeps_the_position_and_close_ends_it(h) -> None:
    lot = _lot(h)
    position = _open(h, "to-close").position_id
    part = h.result(h.venue.execute(OrderRequest(_key("part"), h.hedger, Action.PARTIAL_CLOSE, SYMBOL, Side.BUY,
                                                 lot // 4, position)))
    assert part.status is OrderStatus.FILLED and part.position_id == position and part.volume == lot // 4
    [held] = [p for p in h.result(h.venue.positions(h.hedger)) if p.position_id == position]
    assert held.volume == lot - lot // 4
    close = h.result(h.venue.execute(OrderRequest(_key("close"), h.hedger, Action.CLOSE, SYMBOL, Side.BUY,
                                                  held.volume, position)))
    assert close.status is OrderStatus.FILLED
    assert position not in {p.position_id for p in h.result(h.venue.positions(h.hedger))}
    gone = h.result(h.venue.execute(OrderRequest(_key("close-again"), h.hedger, Action.CLOSE, SYMBOL, Side.BUY,
                                                 held.volume, position)))
    assert gone.status is OrderStatus.REJECTED and gone.reason == "position-not-found"


def check_modify_sets_the_stops(h) -> None:
    filled = _open(h, "stops")
    sl = (filled.price - Decimal("0.01000")).quantize(Decimal("0.00001"))
    tp = (filled.price + Decimal("0.01000")).quantize(Decimal("0.00001"))
    done = h.result(h.venue.execute(OrderRequest(_key("modify"), h.hedger, Action.MODIFY, SYMBOL, Side.BUY, 0,
                                                 filled.position_id, sl=sl, tp=tp)))
    assert done.status is OrderStatus.FILLED
    [held] = [p for p in h.result(h.venue.positions(h.hedger)) if p.position_id == filled.position_id]
    assert (held.sl, held.tp) == (sl, tp)


def check_refusals_are_results_with_reasons(h) -> None:
    refused = _open(h, "bad-volume", volume=_lot(h) + 1)  # off the step grid
    assert refused.status is OrderStatus.REJECTED and refused.reason == "invalid-volume"
    assert h.result(h.venue.lookup(h.hedger, _key("bad-volume"))) is None  # nothing to find: may be sent again


def check_a_netting_account_adds_and_reverses_one_position(h) -> None:
    if h.netter is None:
        pytest.skip("the platform has no netting accounts")
    lot = _lot(h)
    first = _open(h, "net-1", account=h.netter)
    _open(h, "net-2", account=h.netter, volume=lot // 2)
    [held] = [p for p in h.result(h.venue.positions(h.netter)) if p.symbol == SYMBOL]
    assert held.position_id == first.position_id and held.volume == lot + lot // 2 and held.side is Side.BUY
    _open(h, "net-3", account=h.netter, side=Side.SELL, volume=2 * lot)  # 1.50 long -> 0.50 short
    [held] = [p for p in h.result(h.venue.positions(h.netter)) if p.symbol == SYMBOL]
    assert held.side is Side.SELL and held.volume == lot // 2


def check_manual_trades_reach_watchers_in_order_and_the_history(h) -> None:
    seen: list[MasterDeal] = []
    h.result_or_none(h.venue.watch_deals(h.master, seen.append))
    h.pump()
    position = h.manual(h.master, SYMBOL, Side.BUY, "1.00")
    h.manual_close(h.master, position, "0.40")
    h.manual_close(h.master, position)
    h.pump(until=lambda: len(seen) >= 3)
    assert [d.kind for d in seen] == [DealKind.OPEN, DealKind.PARTIAL_CLOSE, DealKind.CLOSE]
    assert all(d.account == h.master and d.position_id == position for d in seen)
    ids = [d.deal_id.value for d in seen]
    assert ids == sorted(ids) and len(set(ids)) == 3
    history = h.result(h.venue.deals_since(h.master, None))
    assert [d.deal_id for d in history][-3:] == [d.deal_id for d in seen]
    after_first = h.result(h.venue.deals_since(h.master, DealId(seen[0].deal_id.platform, seen[0].deal_id.value)))
    assert [d.deal_id for d in after_first] == [d.deal_id for d in seen[1:]]
    h.venue.unwatch_deals(h.master, seen.append)


CHECKS = [value for name, value in sorted(globals().items()) if name.startswith("check_")]
