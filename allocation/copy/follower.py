"""Copy one master deal to one follower: the legs that follower should send.

Pure: everything the decision needs is passed in (the follower's balances,
symbol specs, the follower position linked to the master position, the
current time), and nothing is read or written.

Opens and adds go through, in order (the first that fails is the leg's
reason): copying stopped, stop-out, close-only, symbol filter, signal
lifetime, symbol mapping (the mapped symbol must exist on the follower's
venue), allowed side (after ``reverse``), then sizing
(:mod:`allocation.copy.sizing`). Closes are never blocked by any of these:
a follower always follows the master out of a position it holds.

Closes (money.md section 2):

* full close -> the linked follower position closes fully;
* partial close of a fraction ``f`` of the master position -> ``f`` of the
  linked follower position, floored to its step; when what would remain is
  below the follower's minimum, the whole position closes
  (``remainder-below-minimum``); a close below one step, or below the
  minimum, is not sent and the position stays linked;
* a position the follower closed by hand is no longer linked, so every later
  master deal on it yields ``not-linked`` and nothing is reopened;
* a reversal (netting ``INOUT``) is a full close followed by an open of the
  new side, sized like any open. The open half is copied even when the
  follower holds nothing to close (it skipped the original open); a follower
  who closed the position by hand gets nothing more on it (the worker's
  planner records those opens as ``not-linked``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Mapping

from allocation.copy.settings import CloseOnly, Effective
from allocation.copy.sizing import SizingInputs, size_open
from allocation.leg import Action, Leg, Reason
from bridge.domain.deal import DealKind, MasterDeal, Side
from bridge.domain.volume import SymbolSpec


@dataclass(frozen=True, slots=True)
class LinkedPosition:
    """The follower position copied from the master position a deal touches."""

    symbol: str
    side: Side
    volume: int


@dataclass(frozen=True, slots=True)
class Master:
    balance: Decimal
    equity: Decimal
    spec: SymbolSpec  # the deal's symbol on the master's venue


# A value, never changed once made. Not frozen: one is built per follower per deal, and a frozen
# dataclass costs about three times as much to build.
@dataclass(slots=True)
class Follower:
    account: str
    balance: Decimal
    equity: Decimal
    specs: Mapping[str, SymbolSpec]  # symbols tradable on the follower's venue, by name
    linked: LinkedPosition | None = None
    held_symbols: frozenset[str] = frozenset()
    copying: bool = True  # the follower (or operator) has not stopped copying
    stopped_out: bool = False  # a risk limit stopped copying; cleared explicitly
    quote_rates: Mapping[str, Decimal] = field(default_factory=dict)  # quote -> account currency, by symbol


def copy_deal(
    deal: MasterDeal,
    master: Master,
    follower: Follower,
    settings: Effective,
    now: datetime,
) -> list[Leg]:
    """The legs ``follower`` sends for ``deal`` (an empty list never: a skip is a leg with a reason)."""
    kind = deal.kind
    if kind is DealKind.CLOSE:
        return [_close(deal, master, follower)]
    if kind is DealKind.PARTIAL_CLOSE:
        return [_partial_close(deal, master, follower)]
    if kind is DealKind.REVERSAL:
        return [_close(deal, master, follower), _open(deal, master, follower, settings, now)]
    if kind is DealKind.SLTP:
        return [_modify(deal, master, follower, settings)]
    if kind is DealKind.BALANCE:
        return [_none(deal, master, follower, Reason.NOT_COPIED)]
    if kind is DealKind.PENDING and settings.skip_pending:
        return [_none(deal, master, follower, Reason.PENDING_SKIPPED)]
    return [_open(deal, master, follower, settings, now)]


def close_all(account: str, positions: list[LinkedPosition], specs: Mapping[str, SymbolSpec],
              reason: Reason) -> list[Leg]:
    """Close every listed follower position (close-only ``immediately``, or a stop-out that closes)."""
    return [
        Leg(account, Action.CLOSE, p.symbol, p.side, Decimal(p.volume), p.volume, specs[p.symbol], reason)
        for p in sorted(positions, key=lambda p: (p.symbol, p.side.value, p.volume))
    ]


# -- opens -------------------------------------------------------------------

_ONE = Decimal(1)  # the quote rate of a symbol quoted in the account's own currency


def _open(deal, master, follower, s: Effective, now) -> Leg:
    skip = _open_blocked(deal, follower, s, now)
    symbol = s.map_symbol(deal.symbol)
    side = s.follower_side(deal.side)
    spec = follower.specs.get(symbol)
    if skip is None and spec is None:
        skip = Reason.UNKNOWN_SYMBOL
    if skip is None and side not in s.sides:
        skip = Reason.SIDE_NOT_ALLOWED
    if skip is not None:
        return Leg(follower.account, Action.NONE, symbol, side, Decimal(0), 0, spec or master.spec, skip)
    # positional, in SizingInputs' field order (master_volume, master_spec, master_balance, master_equity,
    # follower_spec, follower_balance, follower_equity, price, sl, quote_rate): built once per follower
    sizing = size_open(
        SizingInputs(deal.volume, master.spec, master.balance, master.equity, spec, follower.balance,
                     follower.equity, deal.price, deal.sl, follower.quote_rates.get(symbol, _ONE)),
        s,
    )
    sl, tp = _stops(deal, s)
    pending = deal.kind is DealKind.PENDING
    action = (Action.PENDING if pending else Action.OPEN) if sizing.volume else Action.NONE
    return Leg(follower.account, action, symbol, side, sizing.ideal, sizing.volume, spec, sizing.reason,
               sl, tp, deal.price if pending else None)


def _open_blocked(deal, follower, s: Effective, now) -> Reason | None:
    if not follower.copying:
        return Reason.COPYING_STOPPED
    if follower.stopped_out:
        return Reason.STOPPED_OUT
    if s.close_only is CloseOnly.BY_POSITION or s.close_only is CloseOnly.IMMEDIATELY:
        return Reason.CLOSE_ONLY
    if s.close_only is CloseOnly.BY_SYMBOL and s.map_symbol(deal.symbol) not in follower.held_symbols:
        return Reason.CLOSE_ONLY
    if not s.symbol_allowed(deal.symbol):
        return Reason.SYMBOL_FILTERED
    if s.signal_lifetime is not None and now - deal.time > s.signal_lifetime:
        return Reason.SIGNAL_EXPIRED
    return None


def _stops(deal, s: Effective) -> tuple[Decimal | None, Decimal | None]:
    sl, tp = (deal.tp, deal.sl) if s.reverse else (deal.sl, deal.tp)
    return (sl if s.copy_sl else None), (tp if s.copy_tp else None)


# -- closes and modifications -------------------------------------------------

def _close(deal, master, follower) -> Leg:
    linked = follower.linked
    if linked is None:
        return _none(deal, master, follower, Reason.NOT_LINKED)
    spec = follower.specs.get(linked.symbol, master.spec)
    return Leg(follower.account, Action.CLOSE, linked.symbol, linked.side, Decimal(linked.volume),
               linked.volume, spec)


def _partial_close(deal, master, follower) -> Leg:
    linked = follower.linked
    if linked is None:
        return _none(deal, master, follower, Reason.NOT_LINKED)
    spec = follower.specs.get(linked.symbol, master.spec)
    exact = linked.volume * deal.volume  # ideal close = exact / position_volume
    ideal = Decimal(exact) / Decimal(deal.position_volume)
    volume = spec.floor(exact // deal.position_volume)

    def leg(action, vol, reason):
        return Leg(follower.account, action, linked.symbol, linked.side, ideal, vol, spec, reason)

    if linked.volume - volume < spec.min_volume:
        return leg(Action.CLOSE, linked.volume, Reason.REMAINDER_BELOW_MINIMUM)
    if volume == 0:
        return leg(Action.NONE, 0, Reason.PARTIAL_CLOSE_BELOW_STEP)
    if volume < spec.min_volume:
        return leg(Action.NONE, 0, Reason.BELOW_MINIMUM)
    return leg(Action.PARTIAL_CLOSE, volume, None if volume * deal.position_volume == exact
               else Reason.FLOORED_TO_STEP)


def _modify(deal, master, follower, s: Effective) -> Leg:
    linked = follower.linked
    if linked is None:
        return _none(deal, master, follower, Reason.NOT_LINKED)
    sl, tp = _stops(deal, s)
    spec = follower.specs.get(linked.symbol, master.spec)
    if sl is None and tp is None and not (s.copy_sl or s.copy_tp):
        return Leg(follower.account, Action.NONE, linked.symbol, linked.side, Decimal(0), 0, spec,
                   Reason.NOT_COPIED)
    return Leg(follower.account, Action.MODIFY, linked.symbol, linked.side, Decimal(0), 0, spec, None, sl, tp)


def _none(deal, master, follower, reason: Reason) -> Leg:
    linked = follower.linked
    symbol = linked.symbol if linked else deal.symbol
    side = linked.side if linked else deal.side
    return Leg(follower.account, Action.NONE, symbol, side, Decimal(0), 0, master.spec, reason)
