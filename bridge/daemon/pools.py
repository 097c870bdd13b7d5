"""PAMM pools in the daemon: scheduled rollovers, manual ones, and the orders a rollover makes.

:class:`PoolService` (in the worker role) reads the pools from the store
(``bridge pamm create`` writes them; a new pool is picked up within a tick, no
restart) and, once a second, runs the rollover of every pool whose schedule
(:mod:`allocation.pamm.schedule`) is due. ``bridge pamm rollover POOL`` asks
the running daemon over the control socket to run one now.

One rollover:

1. the master account's equity (rounded half-even to the cent: the ledger
   counts cents), its open positions and their symbol specs are read from
   the venue; a venue that
   cannot answer postpones the rollover to the next tick;
2. the pool book applies the rollover in one store transaction
   (:meth:`bridge.pools.book.PoolBook.rollover`: pool equity = the account's
   equity + cash the back office has not yet moved), together with the
   pool's orders on its master account:

   * the pool halts (drawdown stop or the manager's tranche used up), or is
     already halted: every open position is closed (``pool-stop``). The
     bridge cannot lock the manager out of the trading platform, so a halted
     pool's positions are closed again at each of its later rollovers;
   * ``autocorrect`` handling and cash paid out: every open position is
     partly closed by the share withdrawn (:mod:`allocation.pamm.autocorrect`);

3. the orders are sent, each exactly once (:mod:`bridge.daemon.account_orders`).

A daemon that was down over several scheduled times runs one rollover when it
comes back (the management fee is pro rata temporis, so nothing is lost).
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from decimal import ROUND_HALF_EVEN, Decimal

from twisted.application import service
from twisted.internet import defer
from twisted.internet.task import LoopingCall

from allocation.leg import Action
from allocation.pamm import PammError
from allocation.pamm.autocorrect import OpenPosition, autocorrect_closes, withdrawn_share
from allocation.pamm.schedule import parse_schedule
from allocation.pamm.settings import CENT
from bridge.daemon.account_orders import AccountOrders
from bridge.domain.ids import Login
from bridge.pools.book import PoolBook
from bridge.store import AccountOrderRow, Store
from connectors.interface import idempotency_key

log = logging.getLogger("bridge.pools")
TICK_S = 1.0


class PoolService(service.Service):
    name = "pools"

    def __init__(self, reactor, venues: dict, store_path, when_ready=None, *, tick_s: float = TICK_S,
                 events=None) -> None:
        from bridge.notify.events import OperatorEvents

        self.reactor, self.venues, self.store_path, self.tick_s = reactor, venues, store_path, tick_s
        self.events = events or OperatorEvents()  # RolloverDone, PoolStopped (bridge.notify)
        self.when_ready = when_ready or (lambda: defer.succeed(None))
        self.running_rollovers: dict[str, defer.Deferred] = {}
        self.rollovers = self.failures = 0
        self.last_error: dict[str, str] = {}

    def startService(self) -> None:
        super().startService()
        self.store = Store.open(self.store_path)
        self.book = PoolBook(self.store)
        self.orders = AccountOrders(self.store, self.venues, self.reactor, ("pamm",), log_name="pools")
        self.ticker = LoopingCall(self._tick)
        self.ticker.clock = self.reactor
        d = self.when_ready()
        # startup is recovery: the first tick resumes every unfinished pool order (in the background: a
        # venue that is down must not hold the other pools' schedules) and runs the rollovers due
        d.addCallback(lambda _: self.ticker.start(self.tick_s, now=True) if self.running else None)
        d.addErrback(lambda f: log.error("pools: start failed: %s", f.getTraceback()))

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.reactor.seconds(), timezone.utc)

    # -- schedule -------------------------------------------------------------
    def _tick(self) -> None:
        now = self.now()
        try:
            pools = self.book.pools()
        except Exception as exc:  # the store is busy or broken: say so, try again next tick
            log.warning("pools: cannot read the pools: %s", exc)
            return
        for row in pools:
            if row.id in self.running_rollovers:
                continue
            try:
                schedule = parse_schedule(row.schedule)
            except PammError as exc:
                self._failed(row.id, f"schedule: {exc}")
                continue
            due = schedule.next_after(row.last_rollover_at or row.opened_at)
            if due is not None and due <= now:
                self.rollover_now(row.id, "schedule").addErrback(lambda f: None)
        if not self.orders.busy:
            self.orders.resume()  # orders left unfinished (a venue that was down) are worked again

    # -- one rollover ---------------------------------------------------------
    def rollover_now(self, pool_id: str, source: str = "operator") -> defer.Deferred:
        """Run ``pool_id``'s rollover now; fires with ``(RolloverResult, orders)`` or fails with the reason."""
        if pool_id in self.running_rollovers:
            return defer.fail(PammError(f"pool {pool_id!r}: a rollover is already running"))
        d = self._rollover(pool_id, source)
        self.running_rollovers[pool_id] = d

        def done(outcome):
            self.running_rollovers.pop(pool_id, None)
            return outcome

        return d.addBoth(done)

    @defer.inlineCallbacks
    def _rollover(self, pool_id: str, source: str):
        try:
            row = self.book.pool(pool_id)
            master = Login.parse(row.master)
            venue = self.venues.get(master.server)
            if venue is None:
                raise PammError(f"pool {pool_id!r}: its master {row.master} is on no configured venue")
            info = yield venue.account_info(master)
            pool = self.book.load(pool_id)
            positions, specs = (yield venue.positions(master)), {}  # any rollover may have to move them
            for symbol in sorted({p.symbol for p in positions}):
                specs[symbol] = yield venue.symbol_spec(master, symbol)
            at = max(self.now(), pool.clock or self.now())
            equity = info.equity.quantize(CENT, ROUND_HALF_EVEN)  # the ledger counts cents
            result = self.book.rollover(pool_id, at, equity, source=source,
                                        orders_for=lambda r: self._orders_for(row, master, r, positions, specs))
        except Exception as exc:
            self._failed(pool_id, str(exc))
            raise
        self.rollovers += 1
        self.last_error.pop(pool_id, None)
        report = result.report
        log.info("pools: %s rollover #%d of %s at NAV %s (equity %s)%s", source, report.number, pool_id,
                 report.nav, report.equity, f"; HALTED: {report.halted}" if report.close_all_positions else "")
        for why in report.rejected:
            log.warning("pools: %s: rejected %s", pool_id, why)
        self._emit(row, report, source)
        yield self.orders.resume(pool_id)
        return result, self.book.orders(pool_id)

    def _orders_for(self, row, master: Login, result, positions, specs) -> list:
        report = result.report
        number = report.number
        if report.halted:
            legs = [(str(p.position_id.value), p.symbol, p.side, p.volume, Action.CLOSE, "pool-stop", "")
                    for p in positions]
        elif row.handling == "autocorrect":
            payouts = sum((e.amount for e in result.entries if e.kind == "withdrawal"), Decimal("0.00"))
            deposits = sum((e.amount for e in result.entries if e.kind == "deposit"), Decimal("0.00"))
            share = withdrawn_share(payouts, report.equity - deposits + payouts)
            open_ = [OpenPosition(str(p.position_id.value), p.symbol, p.side, p.volume) for p in positions]
            legs = [(pid, leg.symbol, leg.side, leg.volume, leg.action, "autocorrect",
                     f"share {share:.6f}" + (f", {leg.reason}" if leg.reason else ""))
                    for pid, leg in autocorrect_closes(open_, specs, share) if leg.sent]
        else:
            return []
        now = self.now().isoformat()
        return [AccountOrderRow(key=idempotency_key(f"pamm:{row.id}:{number}", pid, 0), origin="pamm", owner=row.id,
                                batch=number, reason=reason, account=str(master), position_id=pid, symbol=symbol,
                                side=str(side), volume=volume, action=str(action), detail=detail,
                                created_at=now, updated_at=now)
                for pid, symbol, side, volume, action, reason, detail in legs]

    def _emit(self, row, report, source: str) -> None:
        from bridge.notify.events import PoolStopped, RolloverDone

        orders = [o for o in self.book.orders(row.id) if o.batch == report.number]
        self.events.emit(RolloverDone(row.id, report.number, source, report.at, report.nav, report.equity,
                                      report.halted, len(orders)))
        if report.close_all_positions:  # halted at this rollover (not a later one of a halted pool)
            self.events.emit(PoolStopped(row.id, row.master, report.number, report.at, report.halted or "halted",
                                         report.nav, sum(o.reason == "pool-stop" for o in orders)))

    def _failed(self, pool_id: str, why: str) -> None:
        self.failures += 1
        if self.last_error.get(pool_id) != why:  # once per distinct reason, not every tick
            log.error("pools: rollover of %s not applied: %s", pool_id, why)
        self.last_error[pool_id] = why

    def status(self) -> dict:
        return {"rollovers": self.rollovers, "failures": self.failures, "errors": dict(self.last_error),
                "orders": {"sent": self.orders.sent, "filled": self.orders.filled,
                           "rejected": self.orders.rejected, "resolved_by_lookup": self.orders.resolved_by_lookup}}

    def stopService(self):
        if getattr(self, "ticker", None) is not None and self.ticker.running:
            self.ticker.stop()
        if getattr(self, "orders", None) is not None:
            self.orders.stopped = True  # orders waiting for a venue stop asking; the next start resumes them
        if getattr(self, "store", None) is not None:
            self.store.close()
        return super().stopService()
