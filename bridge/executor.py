"""The executor: sends planned intents to follower venues, exactly once.

The rules that make "exactly once" hold across crashes and venue faults:

1. an intent is marked ``sent`` (durably, in the store) *before* its order
   leaves; so after a crash, an intent in ``sent`` may or may not have reached
   the venue, and one in ``planned`` certainly did not;
2. an ambiguous outcome (:class:`~connectors.interface.AmbiguousOutcome`, or a
   venue that could not be reached) marks the intent ``unknown``; an intent in
   ``sent`` or ``unknown`` is never resent blindly: its key is looked up at the
   venue first. Found -> the venue's result is applied. Not found -> resent
   (with ``attempts`` counted), which the connector contract makes safe: a
   lookup answers None only when no request with that key can still arrive;
3. the venue's result, the link change (open -> link, close -> close the link,
   partial close -> the new volume) and the execution record are written in
   one transaction.

A requote (the venue refused the price because it moved beyond the
follower's ``max_slippage_points`` from the master's price) is retried with
the same key up to three times; then the copy is recorded as rejected with
reason ``max-slippage-exceeded``. Closes are never held to a slippage limit.

Within one master deal, a follower's legs run in leg order (a reversal's close
before its open); different followers run concurrently.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Callable, Mapping

from twisted.internet import defer, task
from twisted.python.failure import Failure

from allocation.leg import Action
from bridge.domain.deal import MasterDeal
from bridge.domain.ids import Login, ServerId
from bridge.store import Store
from bridge.store.intents import IntentRow, IntentState
from bridge.store.tracking import ExecutionRow
from connectors.interface import AmbiguousOutcome, OrderRequest, OrderResult, OrderStatus, VenueUnavailable

log = logging.getLogger("bridge.executor")

#: the reason code a venue gives for a close or modify of a position it no longer holds
POSITION_GONE = "position-not-found"
#: a fill refused because the price moved: retried at the new price, up to REQUOTE_RETRIES times
REQUOTES = frozenset({"requote", "price-changed"})
REQUOTE_RETRIES = 3
SLIPPAGE_EXCEEDED = "max-slippage-exceeded"
FINAL = (IntentState.FILLED, IntentState.REJECTED, IntentState.SKIPPED)
MAX_ATTEMPTS = 5


class Executor:
    def __init__(self, store: Store, venues: Mapping[ServerId, object], *,
                 clock_ns: Callable[[], int] = time.time_ns, max_attempts: int = MAX_ATTEMPTS,
                 reactor=None, retry_delay_s: float = 0.5, requote_retries: int = REQUOTE_RETRIES,
                 slippage_limit: Callable[[Login, str], int | None] = lambda master, follower: None) -> None:
        self.store = store
        self.requote_retries = requote_retries
        self.slippage_limit = slippage_limit  # (master, follower id) -> max slippage points, or None
        self.reactor = reactor  # to wait between lookups of a venue that cannot answer yet
        self.retry_delay_s = retry_delay_s
        self.venues = venues
        self.clock_ns = clock_ns
        self.max_attempts = max_attempts
        self.sent = 0
        self.resolved_by_lookup = 0
        #: at startup, even a ``planned`` intent may have been sent (its ``sent`` mark lost with
        #: a power cut): look it up first. The worker turns this off once recovery is done.
        self.verify_planned = False
        self._digit_cache: dict[tuple[Login, str], int | None] = {}
        self._logins: dict[str, Login] = {}

    def execute_deal(self, seq: int, entry=None, rows: list[IntentRow] | None = None) -> defer.Deferred:
        """Run every unfinished intent of master deal ``seq``; fires when none is left in flight.

        ``entry`` and ``rows`` are the journal entry and the intents as just planned, when the caller
        holds them; otherwise they are read from the store (recovery)."""
        entry = entry or self.store.journal_entry(seq)
        by_follower: dict[str, list[IntentRow]] = {}
        for row in rows if rows is not None else self.store.intents_of_deal(seq):
            if row.state not in FINAL:
                by_follower.setdefault(row.follower_id, []).append(row)
        # One transaction around the fan-out: every `sent` mark, and every fill a venue answers at once,
        # commit together. Safe because startup looks every unfinished intent up, `planned` ones included,
        # before sending anything: a crash before this commit leaves intents that are resolved by lookup.
        with self.store.transaction():
            chains = [self._in_order(entry, sorted(rows, key=lambda r: r.leg)) for rows in by_follower.values()]
        return defer.DeferredList(chains, consumeErrors=True).addCallback(lambda _: None)

    @defer.inlineCallbacks
    def _in_order(self, entry, rows: list[IntentRow]):
        for row in rows:
            try:
                yield self._run(entry, row)
            except Exception:  # a bug must not stall the other followers; the intent stays unfinished
                log.exception("executor: intent %s failed unexpectedly", row.key)
                return

    @defer.inlineCallbacks
    def _run(self, entry, row: IntentRow):
        requotes = 0
        while True:
            unsure = row.state in (IntentState.SENT, IntentState.UNKNOWN) or (
                row.state is IntentState.PLANNED and self.verify_planned)
            if unsure:
                try:
                    found = yield self._lookup(row)
                except (VenueUnavailable, AmbiguousOutcome):
                    if self.reactor is None:
                        return  # no clock to wait on: the worker retries the deal later
                    yield task.deferLater(self.reactor, self.retry_delay_s, lambda: None)
                    continue  # the venue cannot answer yet: ask again, never send blind
                if found is not None:
                    self.resolved_by_lookup += 1
                    self._apply(entry, row, row.sent_ns, found)
                    return
                if row.attempts >= self.max_attempts:
                    log.error("executor: intent %s still unresolved after %d attempts", row.key, row.attempts)
                    return
                if row.state is IntentState.SENT:
                    # sent before a crash, and the venue has no order with this key: it never arrived
                    self.store.mark_unknown(row.key, "not found at the venue; sending again")
            sent_ns = self.clock_ns()
            result = yield self._send(row, sent_ns, self.slippage_limit(entry.deal.account, row.follower_id))
            if result is not None and result.reason in REQUOTES and result.status is OrderStatus.REJECTED:
                if requotes < self.requote_retries:
                    requotes += 1  # the price moved: ask again at the new price, same key
                    self.store.mark_unknown(row.key, f"{result.reason}: trying again ({requotes})")
                    row = self.store.intent(row.key)
                    continue
                result = replace(result, reason=SLIPPAGE_EXCEEDED,
                                 message=f"{result.reason} {requotes + 1} times: {result.message}")
            if result is not None:
                self._apply(entry, row, sent_ns, result)
                return
            row = self.store.intent(row.key)  # ambiguous: re-read what the store now says, and resolve

    def _login(self, follower_id: str) -> Login:
        login = self._logins.get(follower_id)
        if login is None:
            login = self._logins[follower_id] = Login.parse(follower_id)
        return login

    def _venue(self, row: IntentRow):
        login = self._login(row.follower_id)
        return login, self.venues[login.server]

    def _lookup(self, row: IntentRow) -> defer.Deferred:
        login, venue = self._venue(row)
        d = defer.maybeDeferred(venue.lookup, login, row.key)

        def unreachable(failure: Failure):
            failure.trap(VenueUnavailable, AmbiguousOutcome)
            log.warning("executor: lookup of %s failed: %s", row.key, failure.getErrorMessage())
            return defer.fail(failure)

        return d.addErrback(unreachable)

    def _send(self, row: IntentRow, sent_ns: int, max_slippage_points: int | None) -> defer.Deferred:
        """Mark ``sent``, send; fires with the result, or None after an ambiguous outcome."""
        login, venue = self._venue(row)
        order = OrderRequest(key=row.key, account=login, action=row.action, symbol=row.symbol, side=row.side,
                             volume=row.volume, position_id=row.position_id, sl=row.sl, tp=row.tp,
                             reference_price=row.reference_price,
                             max_slippage_points=max_slippage_points if row.action is Action.OPEN else None)
        self.store.mark_sent(row.key, sent_ns)
        self.sent += 1

        def ambiguous(failure: Failure):
            failure.trap(AmbiguousOutcome, VenueUnavailable)
            self.store.mark_unknown(row.key, failure.getErrorMessage())
            log.warning("executor: %s", failure.getErrorMessage())
            return None

        return defer.maybeDeferred(venue.execute, order).addErrback(ambiguous)

    def _apply(self, entry, row: IntentRow, sent_ns: int | None, result: OrderResult) -> None:
        now = self.clock_ns()
        store = self.store
        deal = entry.deal
        with store.transaction():
            if result.status is OrderStatus.REJECTED:
                store.mark_rejected(row.key, result, now)
                if result.reason == POSITION_GONE and store.link_of(deal.position_id, row.follower_id):
                    # the follower closed it outside the bridge: unlink, never reopen
                    store.unlink(deal.position_id, row.follower_id)
                return
            store.mark_filled(row.key, result, now)
            self._relink(deal, row, result)
            store.record_execution(self._execution(entry, row, sent_ns, result, now))

    def _relink(self, deal: MasterDeal, row: IntentRow, result: OrderResult) -> None:
        store, follower, master_position = self.store, row.follower_id, deal.position_id
        link = store.link_of(master_position, follower)
        if row.action is Action.OPEN:
            if link is not None and link.follower_position == result.position_id:
                store.set_link_volume(master_position, follower, link.volume + result.volume)  # netting add
            elif link is None:
                store.link(master_position, follower, result.position_id, row.symbol, row.side, result.volume,
                           row.key)
            else:
                # an add on a hedging follower opens a second position; one link per master position
                # holds only the first, so the second is reported as drift by reconcile
                log.warning("executor: %s opened %s beside linked %s; not linked", row.key, result.position_id,
                            link.follower_position)
        elif link is not None and row.action is Action.CLOSE:
            store.close_link(master_position, follower)
        elif link is not None and row.action is Action.PARTIAL_CLOSE:
            store.set_link_volume(master_position, follower, link.volume - result.volume)

    def _execution(self, entry, row: IntentRow, sent_ns: int | None, result: OrderResult, now: int) -> ExecutionRow:
        deal = entry.deal
        login = self._login(row.follower_id)
        slippage = _slippage_points(row, deal, result, self._digits(login, row.symbol))
        return ExecutionRow(
            intent_key=row.key, follower_id=row.follower_id, master_account=str(deal.account),
            venue=str(login.server), detect_ns=entry.detected_ns, decide_ns=row.planned_ns,
            send_ns=sent_ns or now, fill_ns=now, master_price=deal.price,
            master_time_ns=_ns(deal.time), fill_price=result.price, fill_time_ns=_ns(result.time),
            slippage_points=slippage, slippage_money=None,
        )

    def _digits(self, login: Login, symbol: str) -> int | None:
        key = (login, symbol)
        if key not in self._digit_cache:
            spec = self.store.spec(login, symbol)
            self._digit_cache[key] = None if spec is None else spec.digits
        return self._digit_cache[key]


def _slippage_points(row: IntentRow, deal: MasterDeal, result: OrderResult, digits: int | None) -> int | None:
    """Fill price against the master's price, in points, positive when worse for the follower.

    Measured when the follower trades in the master's direction (the master's
    deal price is then the same side of the spread); a reversed copy has no
    such reference and gets None."""
    if digits is None or deal.price is None or result.price is None or row.action is Action.MODIFY:
        return None
    buying = (row.side.value == "buy") == (row.action is Action.OPEN)
    master_buying = (deal.side.value == "buy") == (deal.kind.value in ("open", "add", "reversal"))
    if buying != master_buying:
        return None  # a reversed copy: the master's price is the other side of the spread, no reference
    diff = (result.price - deal.price) if buying else (deal.price - result.price)
    return int(diff.scaleb(digits).to_integral_value())


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _ns(moment: datetime | None) -> int:
    """An aware datetime as integer nanoseconds since the epoch (no float on the way)."""
    return 0 if moment is None else (moment - _EPOCH) // timedelta(microseconds=1) * 1000
