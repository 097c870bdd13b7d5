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

Not deals on cTrader, given ids here: an SL/TP amend (``ORDER_REPLACED``) gets
``SLTP_IDS + its position's utcLastUpdateTimestamp``, above every real deal id;
a balance operation its ``balanceHistoryId``. Neither is in DealListRes, so
neither is backfilled after a disconnect; and the worker resumes a backfill after
the last journalled *trade* (``Store.last_deal_id(trades_only=True)``), never after
one of these ids.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Callable

from ctrader_open_api.messages import OpenApiModelMessages_pb2 as model

from bridge.domain.deal import MasterDeal
from bridge.domain.ids import Login
from connectors.ctrader import convert

log = logging.getLogger(__name__)

SLTP_IDS = 10 ** 15
REMEMBER = 10_000  # delivered deal ids kept for de-duplication
FILLS = (model.ORDER_FILLED, model.ORDER_PARTIAL_FILL)


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
            return [convert.master_deal(deal, self.account, self.symbol_of(deal.symbolId), before, after)]
        if kind == model.ORDER_REPLACED and event.HasField("position") and not event.HasField("deal"):
            p = event.position
            return [convert.sltp_deal(SLTP_IDS + p.utcLastUpdateTimestamp, p, self.account,
                                      self.symbol_of(p.tradeData.symbolId), p.utcLastUpdateTimestamp)]
        if kind == model.DEPOSIT_WITHDRAW and event.HasField("depositWithdraw"):
            return [convert.balance_deal(event.depositWithdraw, self.account)]
        return []

    def _note(self, ms: int) -> None:
        if self.last_ms is None or ms > self.last_ms:
            self.last_ms = ms

    # -- (re)connect -------------------------------------------------------
    def down(self) -> None:
        self.live = False

    def resume(self, backfill: list, positions) -> None:
        """Live again: ``backfill`` (deals since ``last_ms``, oldest first) and the held events, merged."""
        held, self.held = self.held, []
        deals = {d.dealId: d for d in backfill}
        others: list[MasterDeal] = []
        for event in held:
            if event.executionType in FILLS and event.HasField("deal"):
                deals.setdefault(event.deal.dealId, event.deal)
            else:
                others.extend(self._live_deals(event))
        ordered = sorted(deals.values(), key=lambda d: d.dealId)
        for d in ordered:
            self._note(d.executionTimestamp)
        found = classify(ordered, signed_positions(positions), self.account, self.symbol_of)
        self.live = True
        self._deliver(sorted(found + others, key=lambda m: m.deal_id.value))

    # -- delivery ----------------------------------------------------------
    def _deliver(self, deals: list[MasterDeal]) -> None:
        for deal in deals:
            value = deal.deal_id.value
            if value in self._seen:
                continue
            self._seen.add(value)
            self._order.append(value)
            if len(self._order) > REMEMBER:
                self._seen.discard(self._order.popleft())
            for callback in list(self.watchers):
                try:
                    callback(deal)
                except Exception:  # a watcher's bug must not stop the others
                    log.exception("ctrader: deal watcher failed on %s", deal.deal_id)
