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
from typing import Callable, Mapping

from twisted.internet import defer, task
from twisted.python.failure import Failure

from allocation.leg import Action
from bridge.domain.ids import Login, PositionId, ServerId
from bridge.fanout import FanOut
from bridge.results import (
    POSITION_GONE, REQUOTE_RETRIES, SLIPPAGE_EXCEEDED, adverse_price, ns, open_row, put, relinked, requoted,
    slippage_money, slippage_points,
)
from bridge.store import Link as StoredLink, Store
from bridge.store.intents import IntentRow, IntentState
from bridge.store.tracking import ExecutionRow
from connectors.interface import AmbiguousOutcome, OrderRequest, OrderResult, OrderStatus, VenueUnavailable

log = logging.getLogger("bridge.executor")

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
        #: called with (entry, items) once per batch of results written (metrics: bridge.daemon.copy_metrics)
        self.on_applied: Callable[[object, list], None] | None = None
        #: set when the store is closed (the worker stopping): a result arriving later is not written; its
        #: intent stays in flight and the next start resolves it by lookup, as after a crash
        self.closed = False

    def execute_deal(self, seq: int, entry=None, rows: list[IntentRow] | None = None, *,
                     fresh: bool = False) -> defer.Deferred:
        """Run every unfinished intent of master deal ``seq``; fires when none is left in flight.

        ``entry`` and ``rows`` are the journal entry and the intents, when the caller holds them;
        otherwise they are read from the store (recovery). ``fresh``: ``rows`` were just planned,
        and each follower's first leg was marked ``sent`` in the plan's own transaction (see
        :meth:`~bridge.store.intents.IntentStore.plan`) and has not left yet: it is sent at once.
        Otherwise a ``sent`` intent is looked up at its venue before anything is resent."""
        entry = entry or self.store.journal_entry(seq)
        by_follower: dict[str, list[IntentRow]] = {}
        for row in rows if rows is not None else self.store.intents_of_deal(seq):
            if row.state not in FINAL:
                by_follower.setdefault(row.follower_id, []).append(row)
        fan_out = FanOut(self, entry)
        fan_out.start(list(by_follower.values()), fresh)
        return fan_out.done

    @defer.inlineCallbacks
    def _in_order(self, entry, rows: list[IntentRow], requotes: int = 0):
        """The careful path, one leg after another: lookups before any resend, requotes, retries."""
        for row in rows:
            try:
                yield self._run(entry, row, requotes)
            except Exception:  # a bug must not stall the other followers; the intent stays unfinished
                log.exception("executor: intent %s failed unexpectedly", row.key)
                return
            requotes = 0

    @defer.inlineCallbacks
    def _run(self, entry, row: IntentRow, requotes: int = 0):
        while not self.closed:
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
                    self.apply(entry, [(row, row.sent_ns, found, self.clock_ns())])
                    return
                if row.attempts >= self.max_attempts:
                    log.error("executor: intent %s still unresolved after %d attempts", row.key, row.attempts)
                    return
                if row.state is IntentState.SENT:
                    # sent before a crash, and the venue has no order with this key: it never arrived
                    self.store.mark_unknown(row.key, "not found at the venue; sending again")
            sent_ns = self.clock_ns()
            self.store.mark_sent(row.key, sent_ns)
            self.sent += 1
            result = yield self._send(row, self.order(entry, row))
            if result is not None and requoted(result):
                if requotes < self.requote_retries:
                    requotes += 1  # the price moved: ask again at the new price, same key
                    self.store.mark_unknown(row.key, f"{result.reason}: trying again ({requotes})")
                    row = self.store.intent(row.key)
                    continue
                result = replace(result, reason=SLIPPAGE_EXCEEDED,
                                 message=f"{result.reason} {requotes + 1} times: {result.message}")
            if result is not None:
                self.apply(entry, [(row, sent_ns, result, self.clock_ns())])
                return
            row = self.store.intent(row.key)  # ambiguous: re-read what the store now says, and resolve

    def login_of(self, follower_id: str) -> Login:
        """A follower id (``str(Login)``) parsed, once. Its server is the very ServerId that keys
        ``venues`` (an equal one would do, but each order's venue lookup would then compare them
        field by field)."""
        login = self._logins.get(follower_id)
        if login is None:
            login = Login.parse(follower_id)
            server = next((s for s in self.venues if s == login.server), None)
            if server is not None and server is not login.server:
                login = Login(server, login.number)
            self._logins[follower_id] = login
        return login

    def _lookup(self, row: IntentRow) -> defer.Deferred:
        login = self.login_of(row.follower_id)
        d = defer.maybeDeferred(self.venues[login.server].lookup, login, row.key)

        def unreachable(failure: Failure):
            failure.trap(VenueUnavailable, AmbiguousOutcome)
            log.warning("executor: lookup of %s failed: %s", row.key, failure.getErrorMessage())
            return defer.fail(failure)

        return d.addErrback(unreachable)

    def order(self, entry, row: IntentRow) -> OrderRequest:
        """The venue order for ``row`` (the follower's slippage tolerance applies to opens)."""
        follower_id = row.follower_id
        login = self._logins.get(follower_id) or self.login_of(follower_id)
        # positional, in OrderRequest's field order (key, account, action, symbol, side, volume, position_id,
        # sl, tp, reference_price, max_slippage_points): one is built per follower order on the order path
        return OrderRequest(row.key, login, row.action, row.symbol, row.side, row.volume, row.position_id,
                            row.sl, row.tp, row.reference_price,
                            self.slippage_limit(entry.deal.account, follower_id) if row.action is Action.OPEN
                            else None)

    def _send(self, row: IntentRow, order: OrderRequest) -> defer.Deferred:
        """Send (the intent is already marked ``sent``); fires with the result, or None after an
        ambiguous outcome (the intent is then marked ``unknown``)."""

        def ambiguous(failure: Failure):
            failure.trap(AmbiguousOutcome, VenueUnavailable)
            self.store.mark_unknown(row.key, failure.getErrorMessage())
            log.warning("executor: %s", failure.getErrorMessage())
            return None

        return defer.maybeDeferred(self.venues[order.account.server].execute, order).addErrback(ambiguous)

    # -- results --------------------------------------------------------------
    def apply(self, entry, items: list[tuple[IntentRow, int | None, OrderResult, int]]) -> None:
        """Write venue results of one master deal: (intent, sent_ns, result, done_ns) each.

        One transaction, a few statements whatever the count: the intents' new
        states, the link changes (open -> link, close -> close the link, partial
        close -> the new volume, ``position-not-found`` on a linked position ->
        unlinked, never reopened) and the execution records. If the batch is
        refused (an intent not in flight any more, a link that may not be
        reopened), each result is written alone, so one bad result does not hold
        up the others; a single result that is refused raises."""
        if self.closed:
            log.warning("executor: %d result(s) of %s arrived after the store closed (%s); the next start "
                        "resolves them by lookup", len(items), getattr(entry, "seq", "?"),
                        ", ".join(item[0].key for item in items[:5]) + (", ..." if len(items) > 5 else ""))
            return
        try:
            with self.store.transaction():
                self._write(entry, items)
        except Exception:
            if len(items) == 1:
                raise
            for item in items:
                try:
                    with self.store.transaction():
                        self._write(entry, [item])
                except Exception:
                    log.exception("executor: the result of %s could not be recorded", item[0].key)
                else:
                    if self.on_applied is not None:
                        self.on_applied(entry, [item])
            return
        if self.on_applied is not None:
            self.on_applied(entry, items)

    def _write(self, entry, items) -> None:
        store, deal = self.store, entry.deal
        store.mark_results([(row.key, result, done_ns) for row, _, result, done_ns in items])
        # follower -> its link rows to this master position (of this master: numbers are per server)
        links = store.link_rows(deal.position_id, str(deal.account))
        changed: dict[tuple[str, PositionId], StoredLink] = {}
        executions = []
        for row, sent_ns, result, done_ns in items:
            follower = row.follower_id
            rows = links.setdefault(follower, [])
            if result.status is OrderStatus.REJECTED:
                target = open_row(rows, row.position_id)
                if result.reason == POSITION_GONE and target is not None:
                    # the follower closed it outside the bridge: unlink, never reopen
                    put(rows, changed, replace(target, state="unlinked"))
                continue
            new = relinked(deal, row, result, rows)
            if new is not None:
                put(rows, changed, new)
            executions.append(self._execution(entry, row, sent_ns, result, done_ns))
        store.save_links(list(changed.values()))
        store.record_executions(executions)

    def _execution(self, entry, row: IntentRow, sent_ns: int | None, result: OrderResult, now: int) -> ExecutionRow:
        deal = entry.deal
        login = self.login_of(row.follower_id)
        adverse = adverse_price(row, deal, result)
        digits = self._digits(login, row.symbol)
        return ExecutionRow(
            intent_key=row.key, follower_id=row.follower_id, master_account=str(deal.account),
            venue=str(login.server), detect_ns=entry.detected_ns, decide_ns=row.planned_ns,
            send_ns=sent_ns or now, fill_ns=now, master_price=deal.price,
            master_time_ns=ns(deal.time), fill_price=result.price, fill_time_ns=ns(result.time),
            slippage_points=slippage_points(adverse, digits),
            slippage_money=slippage_money(adverse, result),
        )

    def _digits(self, login: Login, symbol: str) -> int | None:
        key = (login, symbol)
        if key not in self._digit_cache:
            spec = self.store.spec(login, symbol)
            self._digit_cache[key] = None if spec is None else spec.digits
        return self._digit_cache[key]
