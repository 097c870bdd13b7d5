"""The connector role (:class:`ConnectorService`): watches the master accounts and publishes their deals
on the bus; answers the worker's ``backfill``, ``watch`` and ``unwatch`` commands. How the roles fit
together: :mod:`bridge.daemon.services`.
"""

from __future__ import annotations

import logging
import time
from decimal import Decimal

import zmq
from twisted.application import service
from twisted.internet import defer
from twisted.internet.task import LoopingCall

from bridge.bus.channel import Publisher
from bridge.bus.frame import deal_body, deal_topic
from bridge.bus.reactor import ReactorDriver
from bridge.daemon.config import BridgeConfig
from bridge.domain.ids import DealId, Login, Platform, PositionId
from bridge.worker.progress import ProgressLog

log = logging.getLogger("bridge.daemon")


def _decimal(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


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
