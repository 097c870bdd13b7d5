"""A watched master account: the EA's events as master deals, in venue order, each once.

One :class:`AccountWatch` per watched account, over its terminal's
:class:`~connectors.mt4.link.EALink`. Work runs one job at a time, in the order it
arrived (a chain of Deferreds), so deals reach the watchers in venue order even when
a job waits for the EA (a symbol's spec, the history):

- **baseline** (at the start): the link follows the stream (its PING fixes the first
  ``seq``), then the history and trades are read: chains learnt, the last deal there
  is where a later resync resumes, the open trades' SL/TP are the baseline for changes;
- **events**: each in-order event becomes a master deal (``deals.event_deal``);
- **resync** (the link's ``on_lost``: a new epoch, or REPLAY answered ``gap``): the
  history and trades read again, the deals after the last one delivered
  (``deals.after``), then the SL/TP changes of open positions against the last known
  levels (MT4 keeps no history of them, so a change made while events were lost is
  found this way, with an id of now).

Every delivered deal id is remembered (the last :data:`REMEMBER`): a deal both in a
resync's history and in an event after it is delivered once. A job that fails (the EA
did not answer) schedules a resync after :data:`RETRY_S`: whatever the failed job
would have delivered comes from the history then.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Callable

from twisted.internet import defer

from bridge.domain.deal import DealKind, MasterDeal
from bridge.domain.ids import DealId, Login
from connectors.mt4 import convert, deals
from connectors.mt4 import protocol as P

log = logging.getLogger(__name__)

REMEMBER = 10_000
RETRY_S = 1.0


class AccountWatch:
    def __init__(self, account: Login, venue) -> None:
        self.account = account
        self.venue = venue
        self.link = venue.links[account.number]
        self.ledger = venue.ledgers[account.number]
        self.chains = venue.chains[account.number]
        self.told = venue.told[account.number]  # root -> (stops, id) of the last SLTP deal (shared with deals_since)
        self.watchers: list[Callable[[MasterDeal], None]] = []
        self.last: DealId | None = None
        self.last_sltp: int | None = None
        self.stops: dict[int, tuple] = {}  # root -> (sl, tp) as last known
        self.delivered = 0
        self.resyncs = 0
        self._seen: set[DealId] = set()
        self._order: deque[DealId] = deque()
        self._tail: defer.Deferred = defer.succeed(None)
        self._live: defer.Deferred | None = None
        self._retry = None
        self.stopped = False

    # -- lifecycle ------------------------------------------------------------------
    def start(self) -> defer.Deferred:
        if self._live is None:
            self._live = defer.Deferred()
            self.link.on_events = lambda events: self._enqueue(self._events, events)
            self.link.on_lost = lambda why: self._enqueue(self._resync, why)
            d = self.link.follow()
            d.addCallback(lambda _: self._enqueue(self._baseline))
        if self._live.called:
            return defer.succeed(None)
        d = defer.Deferred()
        self._live.addBoth(lambda r: (d.callback(None), r)[1])
        return d

    def stop(self) -> None:
        self.stopped = True
        self.link.unfollow()
        self.link.on_events = lambda events: None
        self.link.on_lost = lambda why: None
        if self._retry is not None and self._retry.active():
            self._retry.cancel()

    # -- the job chain ----------------------------------------------------------------
    def _enqueue(self, job, *args) -> None:
        def run(_):
            if self.stopped:
                return None
            d = defer.maybeDeferred(job, *args)
            d.addErrback(self._failed, job.__name__)
            return d
        self._tail.addCallback(run)

    def _failed(self, failure, name: str) -> None:
        log.warning("mt4 %s: %s failed (%s); reading the history again in %s s", self.account, name,
                    failure.getErrorMessage(), RETRY_S)
        if self._retry is None or not self._retry.active():
            self._retry = self.venue.reactor.callLater(RETRY_S, self._enqueue, self._resync, f"{name} failed")

    # -- jobs -----------------------------------------------------------------------------
    @defer.inlineCallbacks
    def _read(self):
        history, trades = yield self.ledger.refresh()
        symbols = {r["symbol"] for r in [*history, *trades] if r["type"] != P.OP_BALANCE}
        yield self.venue.load_specs(self.account.number, symbols)
        found = deals.classify(history, trades, self.account, self._spec_of, self.venue.server_clock, self.chains)
        return found, trades

    @defer.inlineCallbacks
    def _baseline(self):
        found, trades = yield self._read()
        if found and self.last is None:
            self.last = found[-1].deal_id
        self._note_stops(trades)
        if self._live is not None and not self._live.called:
            self._live.callback(None)

    @defer.inlineCallbacks
    def _events(self, events: list[dict]):
        symbols = {e["symbol"] for e in events if e.get("symbol")}
        yield self.venue.load_specs(self.account.number, symbols)
        for event in events:
            deal = deals.event_deal(event, self.account, self._spec_of, self.venue.server_clock, self.chains,
                                    self.last_sltp)
            if deal is None:
                continue
            if deal.kind is DealKind.SLTP:
                self.last_sltp = max(self.last_sltp or 0, deal.deal_id.value)
            if deal.kind in (DealKind.OPEN, DealKind.SLTP):
                self.stops[deal.position_id.value] = (deal.sl, deal.tp)
            elif deal.kind is DealKind.CLOSE:
                self.stops.pop(deal.position_id.value, None)
            deal = deals.told_deal(deal, self.told)  # an SLTP a backfill found already keeps its id
            self._deliver(deal)

    @defer.inlineCallbacks
    def _resync(self, why: str):
        self.resyncs += 1
        found, trades = yield self._read()
        for deal in deals.after(found, self.last, self.venue.server_clock):
            self._deliver(deal)
        for deal in self._stop_changes(trades):
            self._deliver(deal)
        self._note_stops(trades)
        log.info("mt4 %s: resynchronised from the history (%s)", self.account, why)

    # -- helpers ----------------------------------------------------------------------------
    def _spec_of(self, symbol: str):
        return self.venue.specs[self.account.number][symbol]

    def _note_stops(self, trades: list[dict]) -> None:
        stops = {}
        for t in trades:
            digits = self._spec_of(t["symbol"]).digits
            stops[self.chains.root(t["ticket"])] = (convert.stop(t["sl"], digits), convert.stop(t["tp"], digits))
        self.stops = stops

    def _stop_changes(self, trades: list[dict]) -> list[MasterDeal]:
        changed = []
        for t in trades:
            root = self.chains.root(t["ticket"])
            if root in self.stops and self.stops[root] != deals.stops_of(t, self._spec_of(t["symbol"])):
                changed.append(t)
        out = deals.sltp_deals(changed, self.account, self._spec_of, self.venue.server_clock, self.chains,
                               self.venue.server_now_ms(), self.told, self.last_sltp)
        if out:
            self.last_sltp = max(self.last_sltp or 0, *(d.deal_id.value for d in out))
        return out

    def _deliver(self, deal: MasterDeal) -> None:
        if deal.deal_id in self._seen:
            return
        self._seen.add(deal.deal_id)
        self._order.append(deal.deal_id)
        if len(self._order) > REMEMBER:
            self._seen.discard(self._order.popleft())
        if deal.kind is not DealKind.SLTP:
            self.last = deal.deal_id
        self.delivered += 1
        for callback in list(self.watchers):
            try:
                callback(deal)
            except Exception:
                log.exception("mt4 %s: a watcher failed on deal %s", self.account, deal.deal_id)
