"""The venues a configuration names, built once per process, and the service that connects them.

* :func:`build_venue`: a cTrader server (the Open API connector, its refreshed
  tokens kept beside the store), a simulated venue in this process, or one
  served by another process (``python -m connectors.sim.serve``).
* :class:`VenuesService`: starts the venues that connect somewhere, before the
  roles, and stops them after.
"""

from __future__ import annotations

import logging
import random

import zmq
from twisted.application import service
from twisted.internet import defer

from bridge.daemon.config import VenueConfig
from connectors.sim import SimConfig, SimVenue

log = logging.getLogger("bridge.daemon")


def build_venue(cfg: VenueConfig, reactor, ctx: zmq.Context, tokens_path=None):
    """The venue a config names: a cTrader server, a simulated one in this process, or one served by another."""
    if cfg.ctrader is not None:
        return _ctrader_venue(cfg, reactor, tokens_path)
    if cfg.mt5 is not None:
        return _mt5_venue(cfg, reactor)
    if cfg.mt4 is not None:
        return _mt4_venue(cfg, reactor, ctx)
    if cfg.endpoint is not None:
        from connectors.sim.remote import RemoteVenue

        remote = RemoteVenue(ctx, cfg.name, cfg.endpoint, reactor, deals_endpoint=cfg.deals_endpoint,
                             replay_endpoint=cfg.replay_endpoint)
        remote.attach(reactor)
        return remote
    venue = SimVenue(cfg.name, reactor, random.Random(cfg.seed),
                     SimConfig(fill_latency_us=cfg.fill_latency_us, slippage_points=cfg.slippage_points,
                               reject_rate=cfg.reject_rate))
    for account in cfg.accounts:
        venue.add_account(venue.login(account.login), account.balance, account.currency, account.hedging)
    return venue


def _ctrader_venue(cfg: VenueConfig, reactor, tokens_path=None):
    """A cTrader venue; refreshed tokens are kept in ``tokens_path`` (see connectors/ctrader/token_file.py)."""
    from connectors.ctrader.session import Endpoint
    from connectors.ctrader.tls import client_options
    from connectors.ctrader.token_file import TokenFile
    from connectors.ctrader.venue import AccountAccess, CTraderVenue

    c = cfg.ctrader
    kept = TokenFile(tokens_path) if tokens_path is not None else None
    configured = {a.login: a.access_token.reveal() for a in c.accounts}
    accounts = []
    for a in c.accounts:
        entry = kept.current(a.login, configured[a.login]) if kept is not None else None
        if entry is not None:
            accounts.append(AccountAccess(a.login, entry["access"], entry["refresh"], entry.get("expires_at_ms")))
        else:
            accounts.append(AccountAccess(a.login, configured[a.login], a.refresh_token.reveal()))
    venue = CTraderVenue(cfg.name, Endpoint(c.host, c.port, client_options(c.host, c.ca_pem)),
                         (c.client_id, c.client_secret.reveal()), accounts, clock=reactor, rng=random.Random(),
                         reactor=reactor, pool_size=c.pool_size, timeout_s=c.timeout_ms / 1000,
                         prefetch_figures=True)
    if kept is not None:
        def keep(ctids, access, refresh, expires_in_s) -> None:
            expires = int(reactor.seconds() * 1000 + expires_in_s * 1000) if expires_in_s else None
            kept.save({ctid: (configured[ctid], access, refresh, expires) for ctid in ctids})
            log.info("venues: refreshed cTrader tokens of %d account(s) kept in %s", len(ctids), kept.path)
        venue.tokens.on_refreshed.append(keep)
    return venue


def _mt5_venue(cfg: VenueConfig, reactor):
    """An MT5 venue: one provider per account's terminal (native, mt5linux, or simulated here).

    Simulated terminals of one venue share one market, on real time; its prices
    stay where they start (a staging venue: ``bridge sim mt5`` has moving prices)."""
    from decimal import Decimal

    from connectors.mt5 import providers
    from connectors.mt5.terminal.terminal import Terminal
    from connectors.mt5.venue import MT5Venue
    from connectors.sim.market import Market

    m = cfg.mt5
    market = None
    terminals = {}
    for a in m.accounts:
        if a.provider == "native":
            terminals[a.login] = providers.native(login=a.login, password=a.password.reveal(), server=a.server,
                                                  path=a.path, timeout_ms=m.timeout_ms)
        elif a.provider == "mt5linux":
            # no credentials: the terminal under Wine is logged in on its own host, so initialize() attaches
            # to it as it is (a login without its password is refused); the pool checks it holds a.login
            terminals[a.login] = providers.mt5linux(host=a.host, port=a.port, timeout_s=m.timeout_ms / 1000)
        else:
            market = market or Market()
            terminals[a.login] = providers.simulator(Terminal(
                login=a.login, balance=str(a.balance), currency=a.currency, hedging=a.hedging, market=market,
                clock=lambda: Decimal(repr(reactor.seconds())), rng=random.Random(a.login),
                server_offset=m.server_offset_s))
    return MT5Venue(cfg.name, terminals, reactor=reactor, clock=reactor, poll_interval_s=m.poll_interval_ms / 1000,
                    server_offset_s=m.server_offset_s, timeout_s=m.timeout_ms / 1000)


def _mt4_venue(cfg: VenueConfig, reactor, ctx: zmq.Context):
    """An MT4 venue: the copybridge EA in each account's terminal, reached over ZeroMQ (connectors/mt4/PROTOCOL.md).

    A ``provider = "simulator"`` account is a simulated terminal running the
    EA's logic in this process (``connectors.mt4.simulator``), served on
    ``inproc://`` endpoints of the daemon's own ZeroMQ context; they share one
    market whose prices stay where they start (``bridge sim mt4`` has moving ones)."""
    from decimal import Decimal

    from connectors.mt4.simulator import EAServer, SimulatedEA, Terminal
    from connectors.mt4.venue import MT4Venue
    from connectors.sim.market import Market

    m = cfg.mt4  # off loopback every EA link has CURVE keys (a.curve), checked when the configuration was read
    if any(a.provider == "dwx" for a in m.accounts):  # Darwinex's DWX EA (connectors/mt4/DWX.md); config: all or none
        from connectors.mt4.dwx.venue import DwxVenue

        return DwxVenue(cfg.name, {a.login: (a.endpoint, a.events_endpoint) for a in m.accounts}, ctx=ctx,
                        reactor=reactor, clock=reactor, server_offset_s=m.server_offset_s,
                        timeout_s=m.timeout_ms / 1000, poll_ms={a.login: a.poll_ms for a in m.accounts})
    market = None
    terminals = {}
    simulated = []
    for a in m.accounts:
        if a.provider == "ea":
            terminals[a.login] = (a.endpoint, a.events_endpoint)
            continue
        market = market or Market()
        terminal = Terminal(login=a.login, balance=str(a.balance), currency=a.currency, market=market,
                            clock=lambda: Decimal(repr(reactor.seconds())), rng=random.Random(a.login),
                            server_offset=m.server_offset_s)
        server = EAServer(SimulatedEA(terminal), ctx, f"inproc://mt4-{cfg.name}-{a.login}-commands",
                          f"inproc://mt4-{cfg.name}-{a.login}-events", reactor=reactor)
        server.start()
        simulated.append(server)
        terminals[a.login] = (server.command_endpoint, server.event_endpoint)
    venue = MT4Venue(cfg.name, terminals, ctx=ctx, reactor=reactor, clock=reactor,
                     server_offset_s=m.server_offset_s, timeout_s=m.timeout_ms / 1000,
                     curve={a.login: a.curve for a in m.accounts if a.curve is not None})
    venue.simulated = simulated  # the in-process terminals, stopped with the venue (VenuesService)
    return venue


class VenuesService(service.Service):
    """Starts the venues that connect somewhere (``start()``: a cTrader pool), first, and stops them last.

    ``ready`` fires once every such venue is connected, authorised and
    reconciled; the worker's recovery and the connector's watches wait for it.
    A venue that cannot connect yet keeps retrying with backoff (its sessions
    log why), and the roles wait."""

    name = "venues"

    def __init__(self, venues: dict) -> None:
        self.venues = venues
        self.ready: defer.Deferred = defer.Deferred()

    def startService(self) -> None:
        super().startService()
        starting = []
        for server, venue in self.venues.items():
            start = getattr(venue, "start", None)
            if start is not None:
                log.info("venues: connecting %s", server)
                d = start()
                d.addCallback(lambda _, s=server: log.info("venues: %s is connected and reconciled", s))
                starting.append(d)
        gathered = defer.gatherResults(starting, consumeErrors=True) if starting else defer.succeed(None)
        gathered.addBoth(lambda r: self.ready.callback(None) if not self.ready.called else None)

    def when_ready(self) -> defer.Deferred:
        """A new Deferred that fires (with None) once every venue is ready."""
        d = defer.Deferred()
        self.ready.addBoth(lambda r: (d.callback(None), r)[1])
        return d

    def stopService(self):
        for venue in self.venues.values():
            stop = getattr(venue, "stop", None)
            if stop is not None:
                stop()
            for server in getattr(venue, "simulated", ()):
                server.stop()
        return super().stopService()
