"""Closes on removal, in the daemon: a follower's copied positions closed when it leaves a master.

``bridge copy unsubscribe --close-positions ID`` and ``bridge mam remove
--close-positions GROUP ACCOUNT`` remove the route and, in the same store
transaction, write one close order per follower position linked to the
master's positions (:meth:`bridge.store.orders.AccountOrderStore.plan_closes`),
``planned``. The CLI then tells the daemon (``reload-routes``), and this
service (worker role: it owns the venues) sends them, each exactly once
(:class:`bridge.daemon.account_orders.AccountOrders`: marked ``sent`` before
the venue is asked, an ambiguous outcome resolved by looking the key up, resent
only when the venue has no record, a position already gone final). With no
daemon running, they are sent when it starts: startup resumes every unfinished
one, looking each up first. Once a second, orders left unfinished (a venue
that could not answer) are worked again.
"""

from __future__ import annotations

import logging

from twisted.application import service
from twisted.internet import defer
from twisted.internet.task import LoopingCall

from bridge.daemon.account_orders import AccountOrders
from bridge.store import Store

log = logging.getLogger("bridge.closes")
ORIGINS = ("unsubscribe", "mam-remove")
TICK_S = 1.0


class CloseService(service.Service):
    name = "closes"

    def __init__(self, reactor, venues: dict, store_path, when_ready=None, *, tick_s: float = TICK_S) -> None:
        self.reactor, self.venues, self.store_path, self.tick_s = reactor, venues, store_path, tick_s
        self.when_ready = when_ready or (lambda: defer.succeed(None))
        self.ticker: LoopingCall | None = None

    def startService(self) -> None:
        super().startService()
        self.store = Store.open(self.store_path)
        self.orders = AccountOrders(self.store, self.venues, self.reactor, ORIGINS, log_name="closes")
        self.ticker = LoopingCall(self.kick)
        self.ticker.clock = self.reactor
        d = self.when_ready()  # startup is recovery: the first tick resumes (and looks up) every unfinished close
        d.addCallback(lambda _: self.ticker.start(self.tick_s, now=True) if self.running else None)
        d.addErrback(lambda f: log.error("closes: start failed: %s", f.getTraceback()))

    def kick(self) -> defer.Deferred:
        """Work every close not yet final and not already being worked (the CLI planned some: now)."""
        if not self.running:
            return defer.succeed(None)
        try:
            return self.orders.resume()
        except Exception as exc:  # the store is busy or broken: say so, try again at the next tick
            log.warning("closes: cannot read the close orders: %s", exc)
            return defer.succeed(None)

    def status(self) -> dict:
        o = self.orders
        return {"sent": o.sent, "filled": o.filled, "rejected": o.rejected, "resolved_by_lookup": o.resolved_by_lookup,
                "in_flight": len(o.busy)}

    def stopService(self):
        if self.ticker is not None and self.ticker.running:
            self.ticker.stop()
        if getattr(self, "orders", None) is not None:
            self.orders.stopped = True  # closes waiting for a venue stop asking; the next start resumes them
        if getattr(self, "store", None) is not None:
            self.store.close()
        return super().stopService()
