"""Master deals of one MT5 account from polling: ``history_deals_get`` and ``positions_get`` -> MasterDeals.

MT5 pushes nothing (spec 1.5): a poll reads the deals since a padded time
(server time; the windows overlap) and the open positions, and
:meth:`AccountPoll.poll` turns what is new into master deals, each once
(deduplicated by deal ticket), in venue order.

Trades (``type`` 0 buy / 1 sell; 13 and 14, cancelled deals, are dropped): the
kind comes from the position's *signed* volume (buy +, sell -) before and after
the deal, worked out backwards from the positions now (``positions_get``,
keyed by ``identifier``, which is what a deal's ``position_id`` names), newest
deal first: 0 -> x OPEN, growing ADD (netting), shrinking PARTIAL_CLOSE, x -> 0
CLOSE, a sign change REVERSAL (netting INOUT). The deal's ``entry`` must agree
(IN: open or add; OUT and OUT_BY: partial close or close; INOUT: reversal);
when it does not, the positions were read at a different moment than the
deals (a deal came in between), and :class:`Inconsistent` asks for a fresh
read. The poller therefore reads deals, then positions, then deals again, and
classifies only when the second read brought nothing new.

An open (or add, or reversal) takes the position's current ``sl``/``tp`` when
the position is still open: a stop set right after the open, before the next
poll, arrives with the open rather than as a change of a position the
followers do not have yet.

Balance operations (``type`` 2 balance, 3 credit, 4 charge, 5 correction,
6 bonus: money in or out, not costs of trading) are ``DealKind.BALANCE`` with
the deal's ticket, no symbol, position 0. Commissions, interest, dividends
and taxes (7-12, 15-17) are not master deals.

SL/TP changes are not deals on MT5: they are found by comparing each open
position's ``sl`` and ``tp`` with the previous poll's (a changed
``time_update`` alone is not one: a partial close or an add moves it too).
Their ids (:func:`sltp_id`) are ``SLTP_IDS + time_update_msc * 1000 + ticket
mod 1000``, raised to one above the account's previous SL/TP id if needed:

- above every deal ticket (server-wide counters, far below 10^17), so never
  equal to a real deal's id (the worker and the journal key on ids);
- increasing with the time of the change, so SL/TP changes journal in venue
  order, and the same change read twice gets the same id (deduplicated);
- they carry their time: :func:`resume_point` turns any id back into where
  history resumes (a deal ticket, or a server time for an SL/TP id, a second
  early: a re-read deal is dropped as a duplicate, a skipped one is lost), so
  even a backfill asked to resume after an SL/TP id skips no trade (the cTrader
  lesson); the worker resumes after the last *trade* anyway
  (``Store.last_deal_id(trades_only=True)``).

After a restart the poller's first read is its baseline: a change made while
the bridge was down is not one to it. The worker's backfill then passes the
stops its journal last told per open position (``MT5Venue.deals_since(...,
stops=)``, :func:`recovered_stops`): each open position whose stops differ
(after the backfill's own deals, counted as the journal counts them:
:func:`told_stops`) is one SLTP deal carrying its stops now, with the id the
poller gives that change (:func:`sltp_id` of the position as read, no previous
id), so a change both the poller and the backfill see is journalled once.
Both remember the last SLTP deal made per position (``told``: its stops and
id); a change whose stops are those told keeps that id (a bumped poller id, a
backfill asked again before the first was journalled).

Ids of SL/TP changes do not interleave with deal tickets, so a poll's deals and
changes are delivered merged by *time* (then by id), not by id alone.

Times are converted from server time to UTC with the account's
:class:`convert.ServerClock`.

Deal tickets grow with time (one counter per trade server), so a deal never
delivered whose ticket is below the highest one seen is not new: it predates
the watch (a window reaching back :data:`~connectors.mt5.watch.PAD_S` before
the baseline's, say) and is the backfill's (``deals_since``), not the poll's.
Classified alone against today's positions, such a deal of a position whose
later deals were seen would be inconsistent at every poll, holding up every
deal after it; a poll skips it.
"""

from __future__ import annotations

from collections import deque
from typing import Callable, Mapping

from bridge.domain.deal import DealKind, MasterDeal, Side, kind_of, signed
from bridge.domain.ids import DealId, Login, Platform, PositionId
from connectors.interface import NO_STOPS, Stops
from connectors.mt5 import codes as c
from connectors.mt5 import convert

P = Platform.MT5

SLTP_IDS = 10 ** 17
REMEMBER = 10_000  # deal tickets kept for de-duplication
TRADES = frozenset({c.DEAL_TYPE_BUY, c.DEAL_TYPE_SELL})
BALANCES = frozenset({c.DEAL_TYPE_BALANCE, c.DEAL_TYPE_CREDIT, c.DEAL_TYPE_CHARGE, c.DEAL_TYPE_CORRECTION,
                      c.DEAL_TYPE_BONUS})
ENTRY_KINDS = {
    c.DEAL_ENTRY_IN: frozenset({DealKind.OPEN, DealKind.ADD}),
    c.DEAL_ENTRY_OUT: frozenset({DealKind.PARTIAL_CLOSE, DealKind.CLOSE}),
    c.DEAL_ENTRY_OUT_BY: frozenset({DealKind.PARTIAL_CLOSE, DealKind.CLOSE}),
    c.DEAL_ENTRY_INOUT: frozenset({DealKind.REVERSAL}),
}
#: resume_point backs an SL/TP id's time off by this much (covers the bump of colliding ids)
RESUME_MARGIN_MS = 1000

InfoOf = Callable[[str], object]  # symbol -> its SymbolInfo


class Inconsistent(Exception):
    """The positions and the deals were read at different moments: read both again."""


def signed_positions(positions, info_of: InfoOf) -> dict[int, int]:
    """``identifier`` -> signed canonical volume of each open position."""
    return {p.identifier: signed(convert.side_of(p.type), convert.volume_of(p.volume, info_of(p.symbol)))
            for p in positions}


def trade_deal(deal, before: int, after: int, account: Login, info, clock: convert.ServerClock,
               position=None) -> MasterDeal:
    kind = kind_of(before, after)
    allowed = ENTRY_KINDS.get(deal.entry)
    if allowed is None or kind not in allowed:
        raise Inconsistent(f"deal {deal.ticket}: entry {deal.entry} but the volumes say {kind} "
                           f"({before} -> {after})")
    sl = tp = None
    if kind in (DealKind.OPEN, DealKind.ADD, DealKind.REVERSAL):
        side = Side.BUY if after > 0 else Side.SELL
        volume = abs(after) if kind is DealKind.REVERSAL else abs(after) - abs(before)
        if position is not None:
            sl, tp = convert.stop(position.sl, info.digits), convert.stop(position.tp, info.digits)
    else:
        side = Side.BUY if before > 0 else Side.SELL
        volume = abs(before) - abs(after)
    return MasterDeal(DealId(P, deal.ticket), PositionId(P, deal.position_id), account, deal.symbol, kind, side,
                      volume, clock.utc_ms(deal.time_msc), abs(before), convert.price(deal.price, info.digits),
                      sl, tp)


def balance_deal(deal, account: Login, clock: convert.ServerClock) -> MasterDeal:
    return MasterDeal(DealId(P, deal.ticket), PositionId(P, 0), account, "", DealKind.BALANCE, Side.BUY, 0,
                      clock.utc_ms(deal.time_msc))


def classify(deals, positions, account: Login, info_of: InfoOf, clock: convert.ServerClock) -> list[MasterDeal]:
    """New ``deals`` (any order; all after the previous poll) as master deals, oldest first, given the
    open ``positions`` read after them. Raises :class:`Inconsistent`."""
    volumes = signed_positions(positions, info_of)
    by_id = {p.identifier: p for p in positions}
    latest: set[int] = set()  # positions whose newest deal has been seen (walking back)
    out = []
    for deal in sorted(deals, key=lambda d: d.ticket, reverse=True):
        if deal.type in BALANCES:
            out.append(balance_deal(deal, account, clock))
            continue
        if deal.type not in TRADES:
            continue
        info = info_of(deal.symbol)
        after = volumes.get(deal.position_id, 0)
        delta = signed(convert.side_of(deal.type), convert.volume_of(deal.volume, info))
        before = after - delta
        volumes[deal.position_id] = before
        position = by_id.get(deal.position_id) if deal.position_id not in latest else None
        latest.add(deal.position_id)
        out.append(trade_deal(deal, before, after, account, info, clock, position))
    out.reverse()
    return out


def sltp_id(position, previous: int | None) -> int:
    candidate = SLTP_IDS + position.time_update_msc * 1000 + position.ticket % 1000
    return candidate if previous is None or candidate > previous else previous + 1


def resume_point(after: DealId | None) -> tuple[str, int] | None:
    """Where a backfill after ``after`` starts: ``("ticket", n)`` (deals with a ticket above n),
    ``("time_msc", ms)`` (deals from server time ms on) for an SL/TP id, or None for all history."""
    if after is None:
        return None
    if after.value < SLTP_IDS:
        return ("ticket", after.value)
    return ("time_msc", max(0, (after.value - SLTP_IDS) // 1000 - RESUME_MARGIN_MS))


def stops_of(position, info) -> Stops:
    return convert.stop(position.sl, info.digits), convert.stop(position.tp, info.digits)


def sltp_changes(previous: dict, positions, account: Login, info_of: InfoOf, clock: convert.ServerClock,
                 last_id: int | None, told: dict | None = None) -> list[MasterDeal]:
    """SL/TP changes between two ``positions_get`` reads (``previous``: identifier -> TradePosition),
    ordered by time; ids above ``last_id``, but see :func:`sltp_deals` for ``told``."""
    changed = [p for p in positions
               if p.identifier in previous and (p.sl, p.tp) != (previous[p.identifier].sl, previous[p.identifier].tp)]
    return sltp_deals(changed, account, info_of, clock, last_id, told)


def sltp_deals(changed, account: Login, info_of: InfoOf, clock: convert.ServerClock, last_id: int | None,
               told: dict | None = None) -> list[MasterDeal]:
    """One SLTP deal per position of ``changed`` (its stops as they are now), ordered by time; ids from
    :func:`sltp_id` above ``last_id``. ``told`` (identifier -> (stops, id) of the last SLTP deal made for the
    position, updated here): a position whose stops are those told keeps that deal's id, so the poller and a
    backfill that both find one change report it under one id."""
    told = {} if told is None else told
    out = []
    for p in sorted(changed, key=lambda p: (p.time_update_msc, p.ticket)):
        info = info_of(p.symbol)
        stops = stops_of(p, info)
        last = told.get(p.identifier)
        if last is not None and last[0] == stops:
            deal_id = last[1]
        else:
            deal_id = last_id = sltp_id(p, last_id)
        told[p.identifier] = (stops, deal_id)
        out.append(MasterDeal(DealId(P, deal_id), PositionId(P, p.identifier), account, p.symbol, DealKind.SLTP,
                              convert.side_of(p.type), 0, clock.utc_ms(p.time_update_msc),
                              convert.volume_of(p.volume, info), None, *stops))
    return out


def recovered_stops(known: Mapping[int, Stops], positions, account: Login, info_of: InfoOf,
                    clock: convert.ServerClock, told: dict | None = None) -> list[MasterDeal]:
    """An SLTP deal for each open position whose stops are not those the bridge knows (``known``: by
    identifier, absent is none): a change made while no poller watched. Ids as the poller gives the same
    change (:func:`sltp_id` of the position as it is now), or the id ``told`` holds for these stops."""
    changed = [p for p in positions if stops_of(p, info_of(p.symbol)) != known.get(p.identifier, NO_STOPS)]
    return sltp_deals(changed, account, info_of, clock, None, told)


class AccountPoll:
    """One account's polls: the deal tickets already delivered, the last positions read, the last
    SL/TP id. ``first`` positions read (at start) are the baseline: no SL/TP change is reported
    against nothing."""

    def __init__(self, account: Login, info_of: InfoOf, clock: convert.ServerClock,
                 told: dict | None = None) -> None:
        self.account = account
        self.info_of = info_of
        self.clock = clock
        self.positions: dict | None = None
        self.last_sltp: int | None = None
        # identifier -> (stops, id) of the last SLTP deal made for it, here or by a backfill (shared with the venue)
        self.told: dict = {} if told is None else told
        self.newest_msc: int | None = None  # server time of the newest deal seen: the next window's start
        self.top: int | None = None  # the highest deal ticket seen: an unseen one below it predates the watch
        self._seen: set[int] = set()
        self._order: deque[int] = deque()

    def baseline(self, positions, seen_deals=()) -> None:
        """Start from ``positions`` (and mark ``seen_deals`` as delivered already)."""
        self.positions = {p.identifier: p for p in positions}
        for deal in seen_deals:
            self._remember(deal.ticket)
            self._note(deal.time_msc)

    def poll(self, deals, positions) -> list[MasterDeal]:
        """Master deals new since the last poll, in venue order. ``deals``: ``history_deals_get`` over an
        overlapping window; ``positions``: ``positions_get`` read after it. Raises :class:`Inconsistent`
        (nothing is consumed: poll again with fresh reads)."""
        fresh = {d.ticket: d for d in deals
                 if d.ticket not in self._seen and (self.top is None or d.ticket > self.top)}
        found = classify(fresh.values(), positions, self.account, self.info_of, self.clock)
        changes = [] if self.positions is None else sltp_changes(self.positions, positions, self.account,
                                                                 self.info_of, self.clock, self.last_sltp,
                                                                 self.told)
        for deal in fresh.values():
            self._remember(deal.ticket)
            self._note(deal.time_msc)
        if changes:
            self.last_sltp = max(self.last_sltp or 0, *(d.deal_id.value for d in changes))
        self.positions = {p.identifier: p for p in positions}
        if len(self.told) > len(self.positions):  # closed positions are told nothing more
            for gone in [i for i in self.told if i not in self.positions]:
                del self.told[gone]
        return sorted(found + changes, key=lambda m: (m.time, m.kind is DealKind.SLTP, m.deal_id.value))

    def _note(self, msc: int) -> None:
        if self.newest_msc is None or msc > self.newest_msc:
            self.newest_msc = msc

    def _remember(self, ticket: int) -> None:
        if self.top is None or ticket > self.top:
            self.top = ticket
        if ticket in self._seen:
            return
        self._seen.add(ticket)
        self._order.append(ticket)
        if len(self._order) > REMEMBER:
            self._seen.discard(self._order.popleft())
