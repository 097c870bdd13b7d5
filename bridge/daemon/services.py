"""The daemon as a tree of Twisted services: one per role, after the venues (``venues.py``).

* :class:`ConnectorService` (role ``connector``): watches the master accounts
  on a venue and publishes every deal on the bus; answers ``backfill``
  commands from the venue's deal history.
* :class:`WorkerService` (role ``worker``): subscribes to the deals, journals
  them, plans and executes (the executors run here, beside the store).

Startup is recovery: the worker resolves whatever the journal says is
unfinished, reconciles every follower, and asks each connector to backfill its
masters from the last journalled deal. A connector announces on the stream
when its watch of a master is live (``watching.<account>``), and the worker
backfills again from that moment, so no deal falls between the history and
the live feed; a publisher that restarts (a new bus epoch) triggers the same
backfill. Live deals that arrive while a backfill is under way are held and
then taken in venue order with the backfilled ones; a deal delivered twice is
journalled once.

Masters added at runtime (``bridge accounts add --master``, the store's
``masters`` table) join at a ``reload-routes``: the worker asks the connector
to ``watch`` the account; the connector notes the account's last deal in the
venue's history, starts the live watch, and announces it with that deal id
(``watching.<account>`` with ``last``). The worker records it as where the
master's copying starts (once), then backfills as for any master: deals up to
that one are history from before the master was added and are never copied.
A connector asked to backfill an account it does not watch (it restarted,
and knows only bridge.toml's masters) starts watching it first.

A backfill request carries the SL/TP the journal last told for each open
position of the master (``stops``): a venue whose history holds no SL/TP
changes (cTrader) turns every difference with its positions now into an SLTP
deal, so an amend made while the daemon was down is copied at its start.
"""

from __future__ import annotations

import logging
import time
from decimal import Decimal

import zmq
from twisted.application import service
from twisted.internet import defer
from twisted.internet.task import LoopingCall

from bridge.bus.channel import Publisher, Subscriber
from bridge.bus.frame import FrameError, deal_body, deal_from_body, deal_topic
from bridge.bus.reactor import ReactorDriver
from bridge.daemon.config import BridgeConfig
from bridge.daemon.housekeeping import Housekeeping
from bridge.daemon.route_book import daemon_routes
from bridge.daemon.venues import VenuesService, build_venue
from bridge.domain.ids import DealId, Login, Platform, PositionId
from bridge.executor import Executor
from bridge.notify.events import OperatorEvents, reconcile_events
from bridge.store import Store
from bridge.worker.planning import CopyRoute, MamRoute
from bridge.worker.progress import ProgressLog
from bridge.worker.reconcile import reconcile
from bridge.worker.routes import Routes
from bridge.worker.worker import Worker

log = logging.getLogger("bridge.daemon")
ROLES = ("all", "connector", "worker")
BACKFILL_PATIENCE_S = 2.0


def routes_of(config: BridgeConfig) -> Routes:
    routes = Routes()
    for c in config.copies:
        routes.copy.setdefault(c.master, []).append(CopyRoute(c.follower, c.settings))
    for g in config.mams:
        routes.mam.setdefault(g.master, []).append(MamRoute(g.id, g.group, g.members))
    return routes


class ConnectorService(service.Service):
    name = "connector"

    def __init__(self, ctx: zmq.Context, reactor, venues: dict, config: BridgeConfig, when_ready=None) -> None:
        self.ctx, self.reactor, self.venues, self.config = ctx, reactor, venues, config
        self.when_ready = when_ready or (lambda: defer.succeed(None))
        self.published = 0
        self.ready: defer.Deferred = defer.Deferred()  # every master's watch is live (or has failed, logged)
        self._watched: dict[str, Login] = {}  # the accounts whose deals are watched (or being set up)
        self._starts: dict[str, str] = {}  # a runtime master's last history deal when its watch started

    def startService(self) -> None:
        super().startService()
        c = self.config
        self.publisher = Publisher(self.ctx, c.deals_endpoint, c.deals_replay_endpoint, "connector",
                                   on_command=self._command, curve=c.curve)
        self.driver = ReactorDriver(self.reactor, self.publisher)
        self.driver.start()
        self.when_ready().addCallback(lambda _: self._watch() if self.running else None)
        self.heartbeat = LoopingCall(self.publisher.heartbeat)
        self.heartbeat.clock = self.reactor
        self.heartbeat.start(c.heartbeat_ms / 1000, now=False)
        log.info("connector: publishing deals of %d master account(s) on %s (epoch %s)",
                 len(c.masters), c.deals_endpoint, self.publisher.epoch)

    def _watch(self) -> None:
        watches = [self._start_watch(master) for master in self.config.masters]
        defer.gatherResults(watches).addBoth(lambda _: self.ready.callback(None) if not self.ready.called else None)

    def _start_watch(self, master: Login, last: str | None = None) -> defer.Deferred:
        """Watch ``master``'s deals; once the watch is live, say so on the stream (with ``last``, where a
        runtime master's copying starts): the worker backfills from then, leaving no gap between the
        history it has and the deals that now stream live. Fires with True once live, False if it failed."""
        self._watched[str(master)] = master
        watching = defer.maybeDeferred(self.venues[master.server].watch_deals, master, self._publish)

        def live(_):
            body = {"account": str(master)} if last is None else {"account": str(master), "last": last}
            self.publisher.publish(f"watching.{master}", body)
            return True

        def failed(f):
            self._watched.pop(str(master), None)
            log.error("connector: cannot watch %s: %s", master, f.getErrorMessage())
            return False

        return watching.addCallbacks(live, failed)

    def _watch_new(self, account: Login) -> None:
        """A master added at runtime: its last deal in the venue's history first, then the live watch (a
        deal between the two is after that one: the backfill brings it). Asked again (the worker did not
        hear the answer), the same deal id is announced again."""
        if str(account) in self._watched:
            if str(account) in self._starts:
                self.publisher.publish(f"watching.{account}", {"account": str(account),
                                                                "last": self._starts[str(account)]})
            return  # its watch is being set up: it announces itself when live
        venue = self.venues.get(account.server)
        if venue is None:
            log.error("connector: cannot watch %s: no venue %s here", account, account.server)
            return
        self._watched[str(account)] = account
        d = venue.deals_since(account, None)

        def start(deals) -> defer.Deferred:
            last = "" if not deals else f"{deals[-1].deal_id.platform}:{deals[-1].deal_id.value}"
            self._starts[str(account)] = last
            log.info("connector: watching %s, a master added at runtime (its copying starts after deal %s)",
                     account, last or "none: it has no deal yet")
            return self._start_watch(account, last)

        def failed(f):
            self._watched.pop(str(account), None)
            log.error("connector: cannot watch %s: %s", account, f.getErrorMessage())

        d.addCallbacks(start, failed)

    def _publish(self, deal) -> None:
        self.publisher.publish(deal_topic(deal), deal_body(deal), origin_ns=time.time_ns())
        self.published += 1

    def _command(self, name: str, args: dict) -> None:
        if name not in ("backfill", "watch", "unwatch"):
            raise ValueError(f"unknown command {name!r}")
        account = Login.parse(str(args["account"]))
        if name == "watch":
            self._watch_new(account)
            return
        if name == "unwatch":
            self._unwatch(account)
            return
        if str(account) not in self._watched and account not in self.config.masters and account.server in self.venues:
            # a master this connector does not watch (added at runtime before this connector started):
            # watch it; the worker asks for the backfill again when the watch is live
            self._start_watch(account)
            return
        after = args.get("after")
        after_id = None
        if after:
            platform, _, value = str(after).partition(":")
            after_id = DealId(Platform.parse(platform), int(value))
        request = args.get("request")
        venue, stops = self.venues[account.server], args.get("stops")
        if stops is not None and getattr(venue, "recovers_stops", False):  # SL/TP changes are no deals there
            d = venue.deals_since(account, after_id, stops={
                PositionId(account.platform, int(p)): (_decimal(sl), _decimal(tp)) for p, sl, tp in stops})
        else:
            d = venue.deals_since(account, after_id)

        def publish(deals) -> None:
            progress = ProgressLog(log, f"connector: backfill of {account}", len(deals), "deals")
            for deal in deals:
                self._publish(deal)
                progress.step()  # a line every 500 deals or 5 s: the daemon has no terminal for a bar
            progress.finish()
            # on the same stream, after the deals: the worker knows the backfill is complete
            self.publisher.publish(f"backfill.{account}", {"account": str(account), "request": request})

        d.addCallback(publish)
        d.addErrback(lambda f: log.warning("connector: backfill of %s failed: %s", account, f.getErrorMessage()))

    def watching(self) -> list[str]:
        """The accounts whose deals this connector watches (or is setting up a watch of)."""
        return list(self._watched)

    def _unwatch(self, account: Login) -> None:
        if account in self.config.masters or self._watched.pop(str(account), None) is None:
            return
        self._starts.pop(str(account), None)
        self._stop_watch(account)
        log.info("connector: no longer watching %s (not a master any more)", account)

    def _stop_watch(self, account: Login) -> None:
        unwatch = getattr(self.venues[account.server], "unwatch_deals", None)
        if unwatch is not None:
            try:
                unwatch(account, self._publish)
            except (ValueError, KeyError):
                pass  # its watch never went live

    def stopService(self):
        for master in list(self._watched.values()):
            self._stop_watch(master)
        if self.heartbeat.running:
            self.heartbeat.stop()
        self.driver.stop()
        self.publisher.close()
        return super().stopService()


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


def _decimal(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


def _deal_id(text: str | None) -> DealId | str | None:
    """A start recorded in the store: ``PLATFORM:VALUE``, or '' for an account with no deal yet (copied from
    its first deal: the lowest possible id), or None (not yet watched)."""
    if text is None:
        return None
    if text == "":
        return FROM_FIRST
    platform, _, value = text.partition(":")
    return DealId(Platform.parse(platform), int(value))


def build(config: BridgeConfig, reactor, role: str = "all", ctx: zmq.Context | None = None, *,
          with_control: bool = False) -> service.MultiService:
    """The service tree for ``role``; venues are built once and shared by the roles in this process."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r} (expected one of {', '.join(ROLES)})")
    ctx = ctx or zmq.Context.instance()
    venues = {v.server: build_venue(v, reactor, ctx, config.store_path.parent / f"ctrader-{v.name}-tokens.json")
              for v in config.venues}
    top = service.MultiService()
    top.venues = venues
    top.events = events = OperatorEvents()  # operator events (bridge.notify): mail and other channels subscribe
    connecting = VenuesService(venues)
    if config.curve is not None:  # the ZAP handler (bridge.bus.curve): up before any CURVE server socket binds
        from bridge.bus.curve import CurveAuthService

        CurveAuthService(ctx, config.curve).setServiceParent(top)
    if with_control:
        from bridge.daemon.control import ControlService

        # first: an endpoint already bound (another daemon on this config) stops startup before any role runs
        ControlService(ctx, reactor, config.control_for(role), top, config.curve).setServiceParent(top)
    connecting.setServiceParent(top)  # before the roles; stopped after them
    if with_control and config.metrics_listen:
        from bridge.daemon.metrics_service import MetricsService

        MetricsService(reactor, config.metrics_listen, top, config).setServiceParent(top)
    if config.notify is not None:  # before the roles: an event at recovery (a sim venue: at once) is heard
        from bridge.notify.outage import VenueWatch

        if role in ("all", "worker"):  # one process per deployment watches: an outage is mailed once
            VenueWatch(venues, events, reactor, outage_after_s=config.notify.outage_after_s).setServiceParent(top)
        if config.notify.email is not None:
            from bridge.notify.mail import MailNotifier

            MailNotifier(config.notify.email, events, reactor).setServiceParent(top)
    # the worker starts first: its subscriber is connected before the connector's first publish
    if role in ("all", "worker"):
        from bridge.daemon.pools import PoolService

        WorkerService(ctx, reactor, venues, config, connecting.when_ready, events=events).setServiceParent(top)
        PoolService(reactor, venues, config.store_path, connecting.when_ready, events=events).setServiceParent(top)
        from bridge.daemon.closes import CloseService  # closes on unsubscribe / MAM removal (--close-positions)

        CloseService(reactor, venues, config.store_path, connecting.when_ready).setServiceParent(top)
    if role in ("all", "connector"):
        ConnectorService(ctx, reactor, venues, config, connecting.when_ready).setServiceParent(top)
    return top
