"""Master deals of one account: execution events -> :class:`MasterDeal`, in deal order, each once.

Kinds come from the position's signed volume before and after the deal
(``bridge.domain.deal.kind_of``). Live: the event's own position gives the volume after,
the deal's filled volume and side give the volume before. Backfill (after a
reconnect) and ``deals_since``: deals carry no position, so the volumes are
worked out backwards from the account's open positions *now* (ReconcileRes),
newest deal first (:func:`classify`).

While the account is not live (connecting, re-authorising, backfilling) its
events are held; :meth:`AccountDeals.resume` merges them with the backfill by
deal id, drops ids already delivered, and delivers the rest.

SL/TP changes are not deals on cTrader (no DealListRes holds them), so they are
followed as *state*: each stream remembers the SL/TP its deals told the bridge for
every open position (``told``). An SLTP master deal is delivered whenever an
event (``ORDER_REPLACED``, or a fill whose position carries stops the bridge was
not told, e.g. an open with relative SL/TP) shows other stops than those told,
and, after a (re)connect, for every open position of ReconcileRes whose stops
differ (:meth:`AccountDeals.stop_changes`): an amend made while disconnected is
recovered as one SLTP deal carrying the stops the position has now. After a
restart the stream knows nothing; the worker then passes the stops its journal
holds (``CTraderVenue.deals_since(..., stops=)``) and the same comparison runs
against those.

An SLTP deal's id is :func:`sltp_id`: its position's ``utcLastUpdateTimestamp``
(Unix ms) x 10^19 + the position id. It is above every real (int64) deal id, ordered
by time, one per position and moment, and the same whether the live event or a
reconcile found the change (both read the same position state), so the journal
takes it once. A recovered change that equals the last one this stream delivered
reuses that deal's id, for the same reason. (Journals from before this scheme hold
``10^15 + ms`` ids; they compare as older and carry the same stops: nothing is
sent again.)

A balance operation gets ``convert.BALANCE_BASE`` + its ``balanceHistoryId`` (its own id range: the
ids come from another sequence than dealIds). It is not in DealListRes
either; the worker resumes a backfill after the last journalled *trade*
(``Store.last_deal_id(trades_only=True)``), never after an SLTP or balance id.
"""

from __future__ import annotations

import logging
from collections import deque
from decimal import Decimal
from typing import Callable, Mapping

from ctrader_open_api.messages import OpenApiModelMessages_pb2 as model

from bridge.domain.deal import DealKind, MasterDeal
from bridge.domain.ids import Login
from connectors.ctrader import convert

log = logging.getLogger(__name__)

STOPS_SCALE = 10 ** 19  # above every int64 id: an SLTP id's low 19 digits are its position id
NO_STOPS: tuple[Decimal | None, Decimal | None] = (None, None)
REMEMBER = 10_000  # delivered deal ids kept for de-duplication
FILLS = (model.ORDER_FILLED, model.ORDER_PARTIAL_FILL)


def sltp_id(position) -> int:
    """The id of the SLTP master deal that reports ``position``'s stops as they are now."""
    return position.utcLastUpdateTimestamp * STOPS_SCALE + position.positionId


def signed_positions(positions) -> dict[int, int]:
    return {p.positionId: convert.signed(convert.side_of(p.tradeData.tradeSide), p.tradeData.volume)
            for p in positions}


def classify(deals, now: dict[int, int], account: Login, symbol_of) -> list[MasterDeal]:
    """``deals`` (oldest first, every deal up to now) as master deals, given the signed open volumes now."""
    volumes = dict(now)
    out = []
    for deal in reversed(deals):
        after = volumes.get(deal.positionId, 0)
        before = after - convert.deal_delta(deal)
        volumes[deal.positionId] = before
        out.append(convert.master_deal(deal, account, symbol_of(deal.symbolId), before, after))
    out.reverse()
    return out


class AccountDeals:
    def __init__(self, account: Login, symbol_of: Callable[[int], str]) -> None:
        self.account = account
        self.symbol_of = symbol_of
        self.watchers: list[Callable[[MasterDeal], None]] = []
        self.live = False
        self.last_ms: int | None = None  # execution time of the newest deal seen
        self.held: list = []  # events received while not live
        # open position -> (the stops the deals told the bridge, the id of the SLTP deal that told them or None);
        # None until the first ReconcileRes, whose stops are the baseline
        self.told: dict[int, tuple[tuple, int | None]] | None = None
        self._seen: set[int] = set()
        self._order: deque[int] = deque()

    # -- events ------------------------------------------------------------
    def event(self, event) -> None:
        if not self.live:
            self.held.append(event)
            return
        self._deliver(self._live_deals(event))

    def _live_deals(self, event) -> list[MasterDeal]:
        kind = event.executionType
        if kind in FILLS and event.HasField("deal") and event.HasField("position"):
            deal, position = event.deal, event.position
            if position.positionStatus == model.POSITION_STATUS_OPEN:
                after = convert.signed(convert.side_of(position.tradeData.tradeSide), position.tradeData.volume)
            else:
                after = 0
            before = after - convert.deal_delta(deal)
            self._note(deal.executionTimestamp)
            found = convert.master_deal(deal, self.account, self.symbol_of(deal.symbolId), before, after)
            if after == 0:
                return [found]
            # an open (or a reversal) tells no stops; its position may have some already (relative SL/TP)
            told = NO_STOPS if found.kind in (DealKind.OPEN, DealKind.REVERSAL) else self._told(position.positionId)
            return [found, *self._stops_deal(position, told)]
        if kind == model.ORDER_REPLACED and event.HasField("position") and not event.HasField("deal"):
            return self._stops_deal(event.position, self._told(event.position.positionId))
        if kind == model.DEPOSIT_WITHDRAW and event.HasField("depositWithdraw"):
            return [convert.balance_deal(event.depositWithdraw, self.account)]
        return []

    def _told(self, position_id: int) -> tuple:
        told = (self.told or {}).get(position_id)
        return NO_STOPS if told is None else told[0]

    def _stops_deal(self, position, told: tuple, deal_id: int | None = None) -> list[MasterDeal]:
        """An SLTP deal if ``position`` (open) has other stops than ``told``."""
        if position.positionStatus != model.POSITION_STATUS_OPEN or convert.stops(position) == told:
            return []
        return [convert.sltp_deal(deal_id or sltp_id(position), position, self.account,
                                  self.symbol_of(position.tradeData.symbolId), position.utcLastUpdateTimestamp)]

    def stop_changes(self, positions, known: Mapping[int, tuple] | None = None) -> list[MasterDeal]:
        """SLTP deals for the open ``positions`` (ReconcileRes) whose stops differ from those the bridge was
        told: ``known`` (by position id, from the worker's journal; absent means none), else what this stream
        delivered. The first call without ``known`` only takes the positions' stops as the baseline.
        A change equal to the last SLTP this stream delivered for the position keeps that deal's id."""
        if self.told is None and known is None:
            self.told = {p.positionId: (convert.stops(p), None) for p in positions}
            return []
        told = self.told or {}
        found = []
        for p in positions:
            last = told.get(p.positionId)
            was = known.get(p.positionId, NO_STOPS) if known is not None else (NO_STOPS if last is None else last[0])
            same = last is not None and last[1] is not None and last[0] == convert.stops(p)
            found.extend(self._stops_deal(p, was, last[1] if same else None))
        return found

    def _note(self, ms: int) -> None:
        if self.last_ms is None or ms > self.last_ms:
            self.last_ms = ms

    # -- (re)connect -------------------------------------------------------
    def down(self) -> None:
        self.live = False

    def resume(self, backfill: list, positions) -> None:
        """Live again: ``backfill`` (deals since ``last_ms``, oldest first) and the held events, merged; then an
        SLTP deal for each open position whose stops changed unseen."""
        held, self.held = self.held, []
        deals = {d.dealId: d for d in backfill}
        others: list[MasterDeal] = []
        for event in held:
            if event.executionType in FILLS and event.HasField("deal"):
                deals.setdefault(event.deal.dealId, event.deal)
            elif event.executionType != model.ORDER_REPLACED:  # stops: compared with ReconcileRes below
                others.extend(self._live_deals(event))
        ordered = sorted(deals.values(), key=lambda d: d.dealId)
        for d in ordered:
            self._note(d.executionTimestamp)
        found = classify(ordered, signed_positions(positions), self.account, self.symbol_of)
        self.live = True
        self._deliver(sorted(found + others, key=lambda m: m.deal_id.value))
        self._deliver(self.stop_changes(positions))

    # -- delivery ----------------------------------------------------------
    def remember(self, deal: MasterDeal) -> None:
        """What ``deal`` told the bridge about its position's stops (delivered here, or by a backfill)."""
        if self.told is None or deal.kind is DealKind.BALANCE:
            return
        pid = deal.position_id.value
        if deal.kind is DealKind.SLTP:
            self.told[pid] = ((deal.sl, deal.tp), deal.deal_id.value)
        elif deal.kind is DealKind.CLOSE:
            self.told.pop(pid, None)
        elif deal.kind in (DealKind.OPEN, DealKind.REVERSAL):
            self.told[pid] = (NO_STOPS, None)

    def _deliver(self, deals: list[MasterDeal]) -> None:
        for deal in deals:
            value = deal.deal_id.value
            if value in self._seen:
                continue
            self._seen.add(value)
            self._order.append(value)
            if len(self._order) > REMEMBER:
                self._seen.discard(self._order.popleft())
            self.remember(deal)
            for callback in list(self.watchers):
                try:
                    callback(deal)
                except Exception:  # a watcher's bug must not stop the others
                    log.exception("ctrader: deal watcher failed on %s", deal.deal_id)
