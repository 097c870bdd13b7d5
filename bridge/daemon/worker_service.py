"""The worker role (:class:`WorkerService`): takes the deals off the bus, journals, plans and executes them
(the executors run here, beside the store), backfills and reconciles. How the roles fit together:
:mod:`bridge.daemon.services`.
"""

from __future__ import annotations

import logging
from decimal import Decimal

import zmq
from twisted.application import service
from twisted.internet import defer
from twisted.internet.task import LoopingCall

from bridge.bus.channel import Subscriber
from bridge.bus.frame import FrameError, deal_from_body
from bridge.bus.reactor import ReactorDriver
from bridge.daemon.config import BridgeConfig
from bridge.daemon.housekeeping import Housekeeping
from bridge.daemon.route_book import daemon_routes
from bridge.domain.ids import DealId, Login, Platform
from bridge.executor import Executor
from bridge.notify.events import OperatorEvents, reconcile_events
from bridge.store import Store
from bridge.worker.reconcile import reconcile
from bridge.worker.worker import Worker

log = logging.getLogger("bridge.daemon")
BACKFILL_PATIENCE_S = 2.0


class WorkerService(service.Service):
    name = "worker"

    def __init__(self, ctx: zmq.Context, reactor, venues: dict, config: BridgeConfig, when_ready=None, *,
                 events: OperatorEvents | None = None) -> None:
        self.ctx, self.reactor, self.venues, self.config = ctx, reactor, venues, config
        self.events = events or OperatorEvents()  # DriftFound, StopOut at reconcile (bridge.notify)
        self.when_ready = when_ready or (lambda: defer.succeed(None))
        self.bad_frames = 0
        self.drifts = 0  # followers a reconcile found drifted
        self.ready: defer.Deferred = defer.Deferred()

    def startService(self) -> None:
        from bridge.daemon.copy_metrics import CopyMetrics
        from bridge.daemon.metrics import Registry

        super().startService()
        c = self.config
        self.store = Store.open(c.store_path)
        routes = daemon_routes(c, self.store)  # bridge.toml's and the CLI's (bridge.daemon.route_book)
        self.executor = Executor(self.store, self.venues, reactor=self.reactor,
                                 slippage_limit=routes.max_slippage_points)
        self.copy_metrics = CopyMetrics(Registry(), self.executor)  # folded at scrape time (metrics_service)
        self.executor.on_applied = self.copy_metrics.applied
        self.worker = Worker(self.store, self.executor, routes, self.venues)
        # the masters whose deals are taken: bridge.toml's, and those added at runtime with where each one's
        # copying starts (None: not yet watched; then the connector is asked to watch it)
        self.masters: dict[str, Login] = {str(m): m for m in c.masters}
        self._starts: dict[str, DealId | str | None] = {}  # a DealId, FROM_FIRST, or None
        self._take_masters()
        self.worker.drift_policy = c.drift
        self.housekeeping = Housekeeping(self.reactor, self.store)
        self.worker.on_idle.append(self.housekeeping.idle)
        self.worker.on_idle.append(self.copy_metrics.fold)  # between deals, never amid a fan-out
        self.subscriber = Subscriber(self.ctx, c.deals_endpoint, c.deals_replay_endpoint,
                                     ["deal.", "backfill.", "watching."], self._on_frame, on_lost=self._on_lost,
                                     curve=c.curve)
        # master -> (backfill request id, deals held until that backfill's marker arrives, when asked)
        self._held: dict[str, tuple[int, list, float]] = {}
        self._requests = 0
        self.backfill_retry = LoopingCall(self._retry_backfills)
        self.backfill_retry.clock = self.reactor
        self.backfill_retry.start(BACKFILL_PATIENCE_S, now=False)
        self.driver = ReactorDriver(self.reactor, self.subscriber)
        self.driver.start()
        self.subscriber.start()
        d = self.when_ready()  # a venue that connects somewhere is connected and reconciled first
        d.addCallback(lambda _: self.worker.recover())
        d.addCallback(self._recovered)
        d.addErrback(lambda f: log.error("worker: recovery failed: %s", f.getTraceback()))
        d.addBoth(lambda _: self.ready.callback(None) if not self.ready.called else None)
        d.addBoth(lambda _: self.housekeeping.start() if self.running else None)
        self._patrolling = False
        self.last_patrol: dict | None = None  # the last reconcile between deals: followers, skipped, drifted
        self.patrol = LoopingCall(self._patrol)  # reconcile between deals: drift and stop-outs found soon
        self.patrol.clock = self.reactor
        if c.reconcile_every_s:
            d.addBoth(lambda _: self.patrol.start(c.reconcile_every_s, now=False) if self.running else None)
        log.info("worker: journal %s, %d copy route(s), %d MAM group(s)", c.store_path,
                 sum(map(len, routes.copy.values())), sum(map(len, routes.mam.values())))

    def reload_routes(self) -> dict:
        """Read the routes again (``bridge copy``/``bridge mam`` changed the store); the worker takes them
        between deals. Returns how many there are now."""
        routes = daemon_routes(self.config, self.store)
        self.worker.use_routes(routes)
        added, removed = self._take_masters()
        for master in added:
            self._ask_backfill(master)  # a new master: watched first (see _ask_backfill)
        for master in removed:
            self._held.pop(str(master), None)
            self.subscriber.command("unwatch", {"account": str(master)})
        counts = {"copy": sum(map(len, routes.copy.values())), "mam": sum(map(len, routes.mam.values())),
                  "masters": len(self.masters)}
        log.info("worker: routes reloaded: %d copy route(s), %d MAM group(s), %d master(s)%s%s", counts["copy"],
                 counts["mam"], counts["masters"], "".join(f"; {m} added" for m in added),
                 "".join(f"; {m} removed" for m in removed))
        return counts

    def master_states(self) -> dict[str, str]:
        """Each master's state here: ``starting`` (added at runtime, its watch not yet confirmed),
        ``backfilling`` (its history since the journal's last deal is being fetched) or ``live``."""
        return {name: "starting" if name in self._starts and self._starts[name] is None
                else "backfilling" if name in self._held else "live" for name in sorted(self.masters)}

    def _take_masters(self) -> tuple[list[Login], list[Login]]:
        """Read the runtime masters again: (the ones new to this worker, the ones gone)."""
        runtime = {m: start for m, start in self.store.runtime_masters().items() if m not in self.config.masters}
        added = [m for m in runtime if str(m) not in self.masters]
        removed = [m for m in self.masters.values() if m not in self.config.masters and m not in runtime]
        for master in removed:
            del self.masters[str(master)]
            self._starts.pop(str(master), None)
        for master, start in runtime.items():
            self.masters[str(master)] = master
            self._starts[str(master)] = _deal_id(start)
        return added, removed

    def _recovered(self, drifts) -> None:
        self._report(drifts)
        self._backfill()

    def _report(self, drifts) -> None:
        self.drifts += sum(1 for drift in drifts or () if not drift.clean)
        for drift in drifts or ():
            for event in reconcile_events(drift, self.worker.drift_policy):
                self.events.emit(event)

    def _activity(self):
        """What changes whenever an order may move a follower position: orders sent and deals taken by the
        worker, orders sent or in hand by the closes and pools services; None while any of them is busy."""
        w = self.worker
        if not w.idle or w.working or w.has_stuck:
            return None
        stamp = [self.executor.sent, w.journalled]
        for name in ("closes", "pools"):
            other = self.parent.namedServices.get(name) if self.parent is not None else None
            orders = getattr(other, "orders", None)
            if orders is not None:
                if orders.busy:
                    return None
                stamp.append(orders.sent)
        return tuple(stamp)

    def _patrol(self) -> None:
        """Reconcile every follower between deals (``[reconcile] every_s``): a position closed by the venue
        (a stop-out) or by hand, and drift, are found and reported (mailed) without a restart. A follower
        whose positions arrive after any order went out is skipped until the next round."""
        if self._patrolling or self._activity() is None:
            return
        self._patrolling = True
        d = self._patrol_followers()
        d.addErrback(lambda f: log.warning("worker: reconcile between deals failed: %s", f.getErrorMessage()))
        d.addBoth(lambda _: setattr(self, "_patrolling", False))

    @defer.inlineCallbacks
    def _patrol_followers(self):
        routes = self.worker.routes
        followers = {f for m in self.masters.values() for f in routes.followers(m)}
        drifts, skipped = [], 0
        for follower in sorted(followers, key=str):
            stamp = self._activity()
            if stamp is None or not self.running:
                skipped += 1
                continue
            try:
                drift = yield reconcile(self.store, self.venues[follower.server], follower, self.worker.drift_policy,
                                        quiet=lambda s=stamp: self._activity() == s)
            except Exception as exc:  # a venue that cannot answer now: the next round asks again
                log.info("worker: reconcile of %s between deals skipped: %s", follower, exc)
                continue
            if drift is None:
                skipped += 1
            else:
                drifts.append(drift)
        self._report(drifts)
        self.last_patrol = {"followers": len(drifts), "skipped": skipped,
                            "drifted": sum(1 for d in drifts if not d.clean)}

    def _on_frame(self, frame) -> None:
        if frame.topic.startswith("backfill."):
            self._backfilled(frame.body)
            return
        if frame.topic.startswith("watching."):
            master = self.masters.get(str(frame.body.get("account")))
            if master is None:
                return
            last = frame.body.get("last")
            if str(master) in self._starts and self._starts[str(master)] is None and isinstance(last, str):
                self._start(master, last)
            self._ask_backfill(master)  # the connector's live feed starts now: fetch what came before
            return
        try:
            deal = deal_from_body(frame.body)
        except FrameError as exc:
            self.bad_frames += 1
            log.warning("worker: frame %s dropped: %s", frame.header.id, exc)
            return
        held = self._held.get(str(deal.account))
        if held is not None:
            held[1].append((deal, frame.header.origin))  # a backfill is under way: keep venue order
            return
        self._take(deal, frame.header.origin)

    def _start(self, master: Login, last: str) -> None:
        """Where a runtime master's copying starts: recorded once, in the store (a restart keeps it)."""
        with self.store.transaction():
            self.store.start_master(master, last)
        start = self.store.runtime_masters().get(master)
        self._starts[str(master)] = _deal_id(start)
        log.info("worker: %s, a master added at runtime, is watched; its deals after %s are copied", master,
                 start or "its first")

    def _take(self, deal, origin) -> None:
        """Accept a deal of a master; not one of an account that is no master (any more), nor a runtime
        master's deal from before it was added."""
        key = str(deal.account)
        if key not in self.masters:
            return
        if key in self._starts:
            start = self._starts[key]
            if start is None or (start is not FROM_FIRST and start.platform is deal.deal_id.platform
                                 and deal.deal_id.value <= start.value):
                return  # history: from before the master was added (or its start not yet known)
        self.worker.accept(deal, origin)

    def _backfilled(self, body: dict) -> None:
        """A backfill is complete: accept the held deals, oldest venue deal first."""
        account = body.get("account")
        held = self._held.get(account)
        if held is None or body.get("request") != held[0]:
            return  # an older request's marker: a newer backfill is still under way
        del self._held[account]
        seen = set()
        for deal, origin in sorted(held[1], key=lambda item: item[0].deal_id.value):
            if deal.deal_id not in seen:
                seen.add(deal.deal_id)
                self._take(deal, origin)

    def _on_lost(self, epoch: str, first: int, last: int | None) -> None:
        log.warning("worker: bus frames %s..%s of epoch %s cannot be replayed; backfilling from the venues",
                    first, last if last is not None else "end", epoch)
        self._backfill()

    def _backfill(self) -> None:
        """Ask each connector for every deal since the journal's last; hold live deals until it is done.

        Live deals may arrive before the backfilled ones (the connector streams
        what happens now at once, the history when asked), so a master's deals
        are held from the request until its ``backfill.`` marker, then accepted
        in venue deal order: a partial close is never planned before its open.
        """
        for master in list(self.masters.values()):
            self._ask_backfill(master)

    def _ask_backfill(self, master: Login) -> None:
        """Ask for ``master``'s deals since the journal's last (a runtime master not yet watched: ask the
        connector to watch it, which it answers with where its copying starts); hold its live deals."""
        self._requests += 1
        previous = self._held.get(str(master))
        self._held[str(master)] = (self._requests, previous[1] if previous else [], self.reactor.seconds())
        if str(master) in self._starts and self._starts[str(master)] is None:
            self.subscriber.command("watch", {"account": str(master), "request": self._requests})
            return
        last = self.store.last_deal_id(master, trades_only=True)
        start = self._starts.get(str(master))
        if isinstance(start, DealId) and (last is None or last.platform is not start.platform
                                          or start.value > last.value):
            last = start  # nothing journalled since it was added: resume after its history
        after = None if last is None else f"{last.platform}:{last.value}"
        # the SL/TP the journal last told per open position: a venue with no SL/TP history compares them
        stops = [[p.value, _text(sl), _text(tp)] for p, (sl, tp) in self.store.known_stops(master).items()]
        self.subscriber.command("backfill", {"account": str(master), "after": after, "request": self._requests,
                                             "stops": stops})

    def _retry_backfills(self) -> None:
        """A backfill whose marker has not come (the request or the answer was lost in a reconnect): ask again."""
        now = self.reactor.seconds()
        for master in list(self.masters.values()):
            held = self._held.get(str(master))
            if held is not None and now - held[2] >= BACKFILL_PATIENCE_S:
                log.warning("worker: backfill of %s not answered in %s s; asking again", master, BACKFILL_PATIENCE_S)
                self._ask_backfill(master)
        if self.worker.has_stuck and self.worker.idle:
            self.worker.retry_stuck()

    def stopService(self):
        self.housekeeping.stop()
        if self.patrol.running:
            self.patrol.stop()
        if self.backfill_retry.running:
            self.backfill_retry.stop()
        self.driver.stop()
        self.subscriber.close()
        self.worker.stopping = True  # no new deal (a drain, if any, has already let the last one finish)
        self.executor.closed = True  # results still on their way are resolved by lookup at the next start
        self.store.close()
        return super().stopService()


#: the start of a runtime master that had no deal when it was added: every deal of it is copied
FROM_FIRST = "from its first deal"


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _deal_id(text: str | None) -> DealId | str | None:
    """A start recorded in the store: ``PLATFORM:VALUE``, or '' for an account with no deal yet (copied from
    its first deal: the lowest possible id), or None (not yet watched)."""
    if text is None:
        return None
    if text == "":
        return FROM_FIRST
    platform, _, value = text.partition(":")
    return DealId(Platform.parse(platform), int(value))
