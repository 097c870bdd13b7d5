"""Each order key executed once per venue in this process, for connectors that send through their own channel.

A venue keys its orders by ``(account login, idempotency key)``:

- a key already FILLED here answers with that result (nothing is sent);
- a key in flight shares its outcome (a second caller waits, nothing is sent twice);
- otherwise the order is sent, and its outcome is remembered once filled.

``known`` is the first step of a venue's ``lookup``: what this process knows of
a key (its fill, or the outcome of the order in flight), before the venue's own
records are searched.
"""

from __future__ import annotations

from typing import Callable

from twisted.internet import defer

from connectors.interface import AmbiguousOutcome, OrderResult, OrderStatus, VenueUnavailable


class OrdersOnce:
    def __init__(self) -> None:
        self.filled: dict[tuple[int, str], OrderResult] = {}
        self.inflight: dict[tuple[int, str], list[defer.Deferred]] = {}

    def execute(self, ident: tuple[int, str], send: Callable[[], defer.Deferred]) -> defer.Deferred:
        """``send()`` once for ``ident``; fires with its :class:`OrderResult` (or fails as it did)."""
        if ident in self.filled:
            return defer.succeed(self.filled[ident])
        if ident in self.inflight:
            return self._wait(ident)
        self.inflight[ident] = []
        d = defer.maybeDeferred(send)
        d.addBoth(self._finish, ident)
        return d

    def known(self, ident: tuple[int, str], search: Callable[[], defer.Deferred]) -> defer.Deferred | None:
        """The fill of ``ident`` if known here; for an order in flight, its fill or None once it is answered
        (``search()`` when its outcome was ambiguous); None when this process knows nothing of it."""
        if ident in self.filled:
            return defer.succeed(self.filled[ident])
        if ident not in self.inflight:
            return None
        d = self._wait(ident)
        d.addCallbacks(lambda r: r if r.status is OrderStatus.FILLED else None,
                       lambda f: search() if f.check(AmbiguousOutcome, VenueUnavailable) else f)
        return d

    def _wait(self, ident) -> defer.Deferred:
        d = defer.Deferred()
        self.inflight[ident].append(d)
        return d

    def _finish(self, outcome, ident):
        waiters = self.inflight.pop(ident, [])
        if isinstance(outcome, OrderResult) and outcome.status is OrderStatus.FILLED:
            self.filled[ident] = outcome
        for d in waiters:
            if isinstance(outcome, OrderResult):
                d.callback(outcome)
            else:
                d.errback(outcome)
        return outcome
