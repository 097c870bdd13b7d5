"""Orders a PAMM pool sends on its own master account, each exactly once.

Two reasons make a pool trade its master (see :mod:`bridge.daemon.pools`):
``pool-stop`` (the pool halted: close every position) and ``autocorrect`` (a
withdrawal closes part of every position, :mod:`allocation.pamm.autocorrect`).

The orders are written ``planned`` in the rollover's own transaction, so a
rollover is never applied without them nor they without it. Then, as for
follower orders (``bridge.executor``): marked ``sent`` before the venue is
asked; an ambiguous outcome is marked ``unknown`` and resolved by looking the
key up at the venue, and an order is sent again only when the venue has no
record of it. At startup every order not final is resolved the same way.
A close of a position that is already gone is final (``rejected`` with the
venue's reason), never retried.
"""

from __future__ import annotations

import logging

from twisted.internet import defer, task

from allocation.leg import Action
from bridge.domain.deal import Side
from bridge.domain.ids import Login, PositionId
from connectors.interface import AmbiguousOutcome, OrderRequest, OrderResult, OrderStatus, VenueUnavailable
from connectors.sim.wire import result_to_json

log = logging.getLogger("bridge.pools")
UNFINISHED = ("planned", "sent", "unknown")
RETRY_DELAY_S = 2.0
MAX_ATTEMPTS = 5


class PoolOrders:
    """Sends and resolves the pool orders of one book, on venues keyed by server."""

    def __init__(self, book, venues: dict, reactor, *, retry_delay_s: float = RETRY_DELAY_S) -> None:
        self.book, self.venues, self.reactor, self.retry_delay_s = book, venues, reactor, retry_delay_s
        self.busy: set[str] = set()  # keys being worked on in this process
        self.stopped = False  # set when the service stops: nothing more is asked of a venue
        self.sent = self.filled = self.rejected = self.resolved_by_lookup = 0

    def resume(self, pool_id: str | None = None) -> defer.Deferred:
        """Work every order not yet final (of one pool, or all): fires when each is final or given up."""
        rows = [r for r in self.book.orders(pool_id, UNFINISHED) if r.key not in self.busy]
        return defer.DeferredList([self._work(r) for r in rows], consumeErrors=True)

    def _login(self, account: str) -> Login:
        login = Login.parse(account)
        server = next((s for s in self.venues if s == login.server), None)
        if server is None:
            raise VenueUnavailable(f"no venue {login.server} is configured")
        return login

    @defer.inlineCallbacks
    def _work(self, row):
        self.busy.add(row.key)
        try:
            yield self._run(row)
        except Exception:  # a bug: logged; the order stays unfinished and is resumed later
            log.exception("pools: order %s failed unexpectedly", row.key)
        finally:
            self.busy.discard(row.key)

    @defer.inlineCallbacks
    def _run(self, row):
        try:
            login = self._login(row.account)
        except VenueUnavailable as exc:
            log.error("pools: order %s: %s", row.key, exc)
            return
        venue = self.venues[login.server]
        state, attempts = row.state, 0
        while attempts < MAX_ATTEMPTS and not self.stopped:
            if state in ("sent", "unknown"):
                try:
                    found = yield defer.maybeDeferred(venue.lookup, login, row.key)
                except (VenueUnavailable, AmbiguousOutcome) as exc:
                    log.warning("pools: lookup of %s failed: %s; asking again", row.key, exc)
                    yield task.deferLater(self.reactor, self.retry_delay_s, lambda: None)
                    continue  # never send blind
                if found is not None:
                    self.resolved_by_lookup += 1
                    self._final(row, found)
                    return
            attempts += 1
            self.book.mark_order(row.key, "sent")
            self.sent += 1
            order = OrderRequest(row.key, login, Action(row.action), row.symbol, Side(row.side), row.volume,
                                 PositionId(login.server.platform, int(row.position_id)))
            try:
                result = yield defer.maybeDeferred(venue.execute, order)
            except (AmbiguousOutcome, VenueUnavailable) as exc:
                self.book.mark_order(row.key, "unknown", str(exc))
                log.warning("pools: order %s: %s; looking it up", row.key, exc)
                state = "unknown"
                continue
            self._final(row, result)
            return
        log.error("pools: order %s still unresolved after %d attempts; resumed at the next start or rollover",
                  row.key, attempts)

    def _final(self, row, result: OrderResult) -> None:
        filled = result.status is OrderStatus.FILLED
        state = "filled" if filled else "rejected"
        detail = "" if filled else f"{result.reason}: {result.message}"
        self.book.mark_order(row.key, state, detail, result_to_json(result))
        if filled:
            self.filled += 1
            log.info("pools: %s %s %s of position %s on %s filled (%s)", row.reason, row.action, row.volume,
                     row.position_id, row.account, row.key)
        else:
            self.rejected += 1
            log.warning("pools: %s %s of position %s on %s refused: %s", row.reason, row.action,
                        row.position_id, row.account, detail)
