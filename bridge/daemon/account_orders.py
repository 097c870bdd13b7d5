"""Account orders (:mod:`bridge.store.orders`), each sent exactly once: a PAMM pool's orders on its
master account, and the closes of a follower's copied positions when it leaves a master.

A pool trades its master for two reasons (see :mod:`bridge.daemon.pools`):
``pool-stop`` (the pool halted: close every position) and ``autocorrect`` (a
withdrawal closes part of every position, :mod:`allocation.pamm.autocorrect`).
``bridge copy unsubscribe --close-positions`` and ``bridge mam remove
--close-positions`` close the follower positions linked to the master's
(:mod:`bridge.daemon.closes`).

The orders are written ``planned`` in the transaction that makes them (the
rollover, the removal), so neither is ever applied without the other. Then, as for
follower orders (``bridge.executor``): marked ``sent`` before the venue is
asked; an ambiguous outcome is marked ``unknown`` and resolved by looking the
key up at the venue, and an order is sent again only when the venue has no
record of it. At startup every order not final is resolved the same way.
A close of a position that is already gone is final (``rejected`` with the
venue's reason), never retried. A close's final result and the links it ends
are written together (:meth:`~bridge.store.orders.AccountOrderStore.finish_account_order`).

Each origin has one owner in the daemon (its service), which works only its
own origins' orders: no order is worked twice at once.
"""

from __future__ import annotations

import logging

from twisted.internet import defer, task

from allocation.leg import Action
from bridge.domain.deal import Side
from bridge.domain.ids import Login
from bridge.store.orders import UNFINISHED, AccountOrderRow
from connectors.interface import AmbiguousOutcome, OrderRequest, OrderResult, OrderStatus, VenueUnavailable
from connectors.sim.wire import result_to_json

RETRY_DELAY_S = 2.0
MAX_ATTEMPTS = 5


class AccountOrders:
    """Sends and resolves the account orders of some ``origins`` in one store, on venues keyed by server."""

    def __init__(self, store, venues: dict, reactor, origins: tuple[str, ...], *, log_name: str,
                 retry_delay_s: float = RETRY_DELAY_S) -> None:
        self.store, self.venues, self.reactor, self.retry_delay_s = store, venues, reactor, retry_delay_s
        self.origins = origins
        self.log = logging.getLogger(f"bridge.{log_name}")
        self.what = log_name
        self.busy: set[str] = set()  # keys being worked on in this process
        self.stopped = False  # set when the service stops: nothing more is asked of a venue
        self.sent = self.filled = self.rejected = self.resolved_by_lookup = 0

    @defer.inlineCallbacks
    def resume(self, owner: str | None = None):
        """Work every order not yet final (of one owner, or all): fires when each is final or given up.
        A close filled short plans one more order for the rest: that one is worked too."""
        tried: set[str] = set()
        while not self.stopped:
            rows = [r for r in self.store.account_orders(self.origins, owner, UNFINISHED)
                    if r.key not in self.busy and r.key not in tried]
            if not rows:
                return
            tried.update(r.key for r in rows)
            yield defer.DeferredList([self._work(r) for r in rows], consumeErrors=True)

    def _login(self, account: str) -> Login:
        login = Login.parse(account)
        server = next((s for s in self.venues if s == login.server), None)
        if server is None:
            raise VenueUnavailable(f"no venue {login.server} is configured")
        return login

    @defer.inlineCallbacks
    def _work(self, row: AccountOrderRow):
        self.busy.add(row.key)
        try:
            yield self._run(row)
        except Exception:  # a bug: logged; the order stays unfinished and is resumed later
            self.log.exception("%s: order %s failed unexpectedly", self.what, row.key)
        finally:
            self.busy.discard(row.key)

    @defer.inlineCallbacks
    def _run(self, row: AccountOrderRow):
        try:
            login = self._login(row.account)
        except VenueUnavailable as exc:
            self.log.error("%s: order %s: %s", self.what, row.key, exc)
            return
        venue = self.venues[login.server]
        state, attempts = row.state, 0
        while attempts < MAX_ATTEMPTS and not self.stopped:
            if state in ("sent", "unknown"):
                try:
                    found = yield defer.maybeDeferred(venue.lookup, login, row.key)
                except (VenueUnavailable, AmbiguousOutcome) as exc:
                    self.log.warning("%s: lookup of %s failed: %s; asking again", self.what, row.key, exc)
                    yield task.deferLater(self.reactor, self.retry_delay_s, lambda: None)
                    continue  # never send blind
                if self.stopped:
                    return  # the service stopped (its store is closed): the next start looks it up again
                if found is not None:
                    self.resolved_by_lookup += 1
                    self._final(row, found)
                    return
            attempts += 1
            self.store.mark_account_order(row.key, "sent")
            self.sent += 1
            order = OrderRequest(row.key, login, Action(row.action), row.symbol, Side(row.side), row.volume,
                                 row.position())
            try:
                result = yield defer.maybeDeferred(venue.execute, order)
            except (AmbiguousOutcome, VenueUnavailable) as exc:
                if self.stopped:
                    return
                self.store.mark_account_order(row.key, "unknown", str(exc))
                self.log.warning("%s: order %s: %s; looking it up", self.what, row.key, exc)
                state = "unknown"
                continue
            if self.stopped:
                return  # the reply came after the service stopped: left sent, looked up at the next start
            self._final(row, result)
            return
        self.log.error("%s: order %s still unresolved after %d attempts; worked again later (the next tick or "
                       "start)", self.what, row.key, attempts)

    def _final(self, row: AccountOrderRow, result: OrderResult) -> None:
        done = self.store.finish_account_order(row, result, result_to_json(result))
        if result.status is OrderStatus.FILLED:
            self.filled += 1
            self.log.info("%s: %s %s %s of position %s on %s filled (%s)", self.what, row.reason, row.action,
                          result.volume or row.volume, row.position_id, row.account, row.key)
        else:
            self.rejected += 1
            self.log.warning("%s: %s %s of position %s on %s refused: %s", self.what, row.reason, row.action,
                             row.position_id, row.account, done.detail)
