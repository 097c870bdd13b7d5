"""``[metrics] listen``: the daemon's metrics for Prometheus, over HTTP (``GET /metrics``).

Almost everything is read at scrape time from counters the services already
keep (the worker's journal count, bad frames, drift; the connections each
venue reports for ``bridge status``; the pools in the store); the copy
latency, slippage, orders and rejections come from the results the executor
applies (:mod:`bridge.daemon.copy_metrics`). The endpoint has no
authentication: it listens on loopback by default, and a warning is logged
when it does not.
"""

from __future__ import annotations

import logging

from twisted.application import service
from twisted.internet.error import CannotListenError
from twisted.web import resource, server

from bridge.daemon.metrics import CONTENT_TYPE, Registry
from bridge.net import is_loopback

log = logging.getLogger("bridge.metrics")


def split_listen(listen: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT``) -> (host, port)."""
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


def _named(top, name):
    try:
        return top.getServiceNamed(name)
    except KeyError:
        return None


class DaemonMetrics:
    """The process's metrics, gathered at scrape time."""

    def __init__(self, top, config) -> None:
        self.top, self.config = top, config
        r = self.registry = Registry()
        self.deals = r.counter("copybridge_master_deals_total", "Master deals journalled by this worker process.")
        self.published = r.counter("copybridge_deals_published_total",
                                   "Master deals published on the bus by this connector process (live and "
                                   "backfilled: a deal a backfill sends again counts again).")
        self.bad_frames = r.counter("copybridge_bad_frames_total",
                                    "Bus frames the worker dropped as malformed.")
        self.drift = r.counter("copybridge_drift_total",
                               "Followers found drifted (links and venue positions disagree) by a reconcile.")
        self.reconnects = r.counter("copybridge_reconnects_total",
                                    "Connections or terminals of a venue connected again after the first time.",
                                    ("venue",))
        self.followers = r.gauge("copybridge_followers", "Follower accounts routed (copy and MAM).")
        self.pools = r.gauge("copybridge_pools", "PAMM pools in the store.")
        self.connected = r.gauge("copybridge_venue_connected",
                                 "1 if every connection (terminal) of the venue is up, else 0.", ("venue",))

    def collect(self) -> None:
        top, c = self.top, self.config
        followers = {copy.follower for copy in c.copies}
        followers.update(member for group in c.mams for member, _ in group.members)
        self.followers.set((), len(followers))
        worker = _named(top, "worker")
        if worker is not None and worker.running:
            self.deals.set_total((), worker.worker.journalled)
            self.bad_frames.set_total((), worker.subscriber.bad_frames + worker.bad_frames)
            self.drift.set_total((), worker.drifts)
        connector = _named(top, "connector")
        if connector is not None and connector.running:
            self.published.set_total((), connector.published)
        pools = _named(top, "pools")
        if pools is not None and pools.running and getattr(pools, "book", None) is not None:
            try:
                self.pools.set((), len(pools.book.pools()))
            except Exception as exc:  # the store is busy: the last figure stands
                log.warning("metrics: cannot count the pools: %s", exc)
        venues = _named(top, "venues")
        ready = venues is not None and venues.ready.called
        for server_id, venue in getattr(top, "venues", {}).items():
            name = str(server_id)
            describe = getattr(venue, "connection_status", None)
            if describe is None:  # in this process (the simulated venue) or with no connection to report
                self.connected.set((name,), int(ready))
                continue
            links = describe()
            self.connected.set((name,), int(bool(links) and all(link.get("connected", link.get("up")) for link in links)))
            if any("connects" in link for link in links):  # cTrader sessions, MT5 terminals (MT4 links count none)
                self.reconnects.set_total((name,), sum(max(link.get("connects", 0) - 1, 0) for link in links))

    def render(self) -> str:
        self.collect()
        text = self.registry.render()
        worker = _named(self.top, "worker")
        copy = getattr(worker, "copy_metrics", None)
        if copy is not None:
            copy.fold()
            text += copy.registry.render()
        return text


class MetricsPage(resource.Resource):
    isLeaf = True

    def __init__(self, metrics: DaemonMetrics) -> None:
        super().__init__()
        self.metrics = metrics

    def render_GET(self, request) -> bytes:
        if request.path != b"/metrics":
            request.setResponseCode(404)
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return b"not found: the metrics are at /metrics\n"
        request.setHeader(b"content-type", CONTENT_TYPE.encode())
        return self.metrics.render().encode()


class QuietSite(server.Site):
    noisy = False

    def log(self, request) -> None:  # no access log line per scrape
        return None


class MetricsService(service.Service):
    name = "metrics"

    def __init__(self, reactor, listen: str, top, config) -> None:
        self.reactor, self.listen, self.top = reactor, listen, top
        self.metrics = DaemonMetrics(top, config)
        self.port = None

    def startService(self) -> None:
        super().startService()
        host, port = split_listen(self.listen)
        try:
            self.port = self.reactor.listenTCP(port, QuietSite(MetricsPage(self.metrics)), interface=host)
        except CannotListenError as exc:  # metrics are not worth stopping the copying for: say so and go on
            log.error("metrics: cannot listen on %s (%s); no /metrics in this process", self.listen,
                      exc.socketError)
            return
        if not is_loopback(host):
            log.warning("metrics: /metrics listens on %s, beyond loopback, with no authentication: keep it behind "
                        "a firewall", self.listen)
        log.info("metrics: serving /metrics on http://%s/metrics", self.listen)

    def stopService(self):
        super().stopService()
        if self.port is not None:
            port, self.port = self.port, None
            return port.stopListening()
        return None
