"""The daemon as a tree of Twisted services: one per role.

* :class:`ConnectorService` (role ``connector``): watches the master accounts
  on a venue and publishes every deal on the bus; answers ``backfill``
  commands from the venue's deal history.
* :class:`WorkerService` (role ``worker``): subscribes to the deals, journals
  them, plans and executes (the executors run here, beside the store).

Startup is recovery: the worker reconciles every follower, finishes whatever
the journal says is unfinished, and asks each connector to backfill its
masters from the last journalled deal. A publisher that restarts (a new bus
epoch) triggers the same backfill, so no deal made while anything was down is
lost; a deal delivered twice is journalled once.
"""

from __future__ import annotations

import logging
import random
import time

import zmq
from twisted.application import service
from twisted.internet import defer
from twisted.internet.task import LoopingCall

from bridge.bus.channel import Publisher, Subscriber
from bridge.bus.frame import FrameError, deal_body, deal_from_body, deal_topic
from bridge.bus.reactor import ReactorDriver
from bridge.daemon.config import BridgeConfig, VenueConfig
from bridge.domain.ids import DealId, Login, Platform
from bridge.executor import Executor
from bridge.store import Store
from bridge.worker.planning import CopyRoute, MamRoute
from bridge.worker.worker import Routes, Worker
from connectors.sim import SimConfig, SimVenue

log = logging.getLogger("bridge.daemon")
ROLES = ("all", "connector", "worker")


def build_venue(cfg: VenueConfig, reactor) -> SimVenue:
    venue = SimVenue(cfg.name, reactor, random.Random(cfg.seed),
                     SimConfig(fill_latency_us=cfg.fill_latency_us, slippage_points=cfg.slippage_points,
                               reject_rate=cfg.reject_rate))
    for account in cfg.accounts:
        venue.add_account(venue.login(account.login), account.balance, account.currency, account.hedging)
    return venue


def routes_of(config: BridgeConfig) -> Routes:
    routes = Routes()
    for c in config.copies:
        routes.copy.setdefault(c.master, []).append(CopyRoute(c.follower, c.settings))
    for g in config.mams:
        routes.mam.setdefault(g.master, []).append(MamRoute(g.id, g.group, g.members))
    return routes


class ConnectorService(service.Service):
    name = "connector"

    def __init__(self, ctx: zmq.Context, reactor, venues: dict, config: BridgeConfig) -> None:
        self.ctx, self.reactor, self.venues, self.config = ctx, reactor, venues, config
        self.published = 0

    def startService(self) -> None:
        super().startService()
        c = self.config
        self.publisher = Publisher(self.ctx, c.deals_endpoint, c.deals_replay_endpoint, "connector",
                                   on_command=self._command)
        self.driver = ReactorDriver(self.reactor, self.publisher)
        self.driver.start()
        for master in c.masters:
            self.venues[master.server].watch_deals(master, self._publish)
        self.heartbeat = LoopingCall(self.publisher.heartbeat)
        self.heartbeat.clock = self.reactor
        self.heartbeat.start(c.heartbeat_ms / 1000, now=False)
        log.info("connector: publishing deals of %d master account(s) on %s (epoch %s)",
                 len(c.masters), c.deals_endpoint, self.publisher.epoch)

    def _publish(self, deal) -> None:
        self.publisher.publish(deal_topic(deal), deal_body(deal), origin_ns=time.time_ns())
        self.published += 1

    def _command(self, name: str, args: dict) -> None:
        if name != "backfill":
            raise ValueError(f"unknown command {name!r}")
        account = Login.parse(str(args["account"]))
        after = args.get("after")
        after_id = None
        if after:
            platform, _, value = str(after).partition(":")
            after_id = DealId(Platform.parse(platform), int(value))
        d = self.venues[account.server].deals_since(account, after_id)
        d.addCallback(lambda deals: [self._publish(deal) for deal in deals])
        d.addErrback(lambda f: log.warning("connector: backfill of %s failed: %s", account, f.getErrorMessage()))

    def stopService(self):
        for master in self.config.masters:
            unwatch = getattr(self.venues[master.server], "unwatch_deals", None)
            if unwatch is not None:
                unwatch(master, self._publish)
        if self.heartbeat.running:
            self.heartbeat.stop()
        self.driver.stop()
        self.publisher.close()
        return super().stopService()


class WorkerService(service.Service):
    name = "worker"

    def __init__(self, ctx: zmq.Context, reactor, venues: dict, config: BridgeConfig) -> None:
        self.ctx, self.reactor, self.venues, self.config = ctx, reactor, venues, config
        self.bad_frames = 0
        self.ready: defer.Deferred = defer.Deferred()

    def startService(self) -> None:
        super().startService()
        c = self.config
        self.store = Store.open(c.store_path)
        self.executor = Executor(self.store, self.venues)
        self.worker = Worker(self.store, self.executor, routes_of(c), self.venues)
        self.subscriber = Subscriber(self.ctx, c.deals_endpoint, c.deals_replay_endpoint, ["deal."], self._on_frame,
                                     on_lost=self._on_lost)
        self.driver = ReactorDriver(self.reactor, self.subscriber)
        self.driver.start()
        self.subscriber.start()
        d = self.worker.recover()
        d.addCallback(lambda drifts: self._backfill())
        d.addErrback(lambda f: log.error("worker: recovery failed: %s", f.getTraceback()))
        d.addBoth(lambda _: self.ready.callback(None) if not self.ready.called else None)
        log.info("worker: journal %s, %d copy route(s), %d MAM group(s)", c.store_path, len(c.copies), len(c.mams))

    def _on_frame(self, frame) -> None:
        try:
            deal = deal_from_body(frame.body)
        except FrameError as exc:
            self.bad_frames += 1
            log.warning("worker: frame %s dropped: %s", frame.header.id, exc)
            return
        self.worker.accept(deal, frame.header.origin)

    def _on_lost(self, epoch: str, first: int, last: int | None) -> None:
        log.warning("worker: bus frames %s..%s of epoch %s cannot be replayed; backfilling from the venues",
                    first, last if last is not None else "end", epoch)
        self._backfill()

    def _backfill(self) -> None:
        for master in self.config.masters:
            last = self.store.last_deal_id(master)
            after = None if last is None else f"{last.platform}:{last.value}"
            self.subscriber.command("backfill", {"account": str(master), "after": after})

    def stopService(self):
        self.driver.stop()
        self.subscriber.close()
        self.store.close()
        return super().stopService()


def build(config: BridgeConfig, reactor, role: str = "all", ctx: zmq.Context | None = None, *,
          with_control: bool = False) -> service.MultiService:
    """The service tree for ``role``; venues are built once and shared by the roles in this process."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r} (expected one of {', '.join(ROLES)})")
    ctx = ctx or zmq.Context.instance()
    venues = {v.server: build_venue(v, reactor) for v in config.venues}
    top = service.MultiService()
    top.venues = venues
    # the worker starts first: its subscriber is connected before the connector's first publish
    if role in ("all", "worker"):
        WorkerService(ctx, reactor, venues, config).setServiceParent(top)
    if role in ("all", "connector"):
        ConnectorService(ctx, reactor, venues, config).setServiceParent(top)
    if with_control:
        from bridge.daemon.control import ControlService

        ControlService(ctx, reactor, config.control_endpoint, top).setServiceParent(top)
    return top
