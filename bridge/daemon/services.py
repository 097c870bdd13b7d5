"""The daemon as a tree of Twisted services: one per role, after the venues (``venues.py``).

* :class:`ConnectorService` (role ``connector``, :mod:`bridge.daemon.connector`): watches the master accounts
  on a venue and publishes every deal on the bus; answers ``backfill``
  commands from the venue's deal history.
* :class:`WorkerService` (role ``worker``, :mod:`bridge.daemon.worker_service`): subscribes to the deals, journals
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

import zmq
from twisted.application import service

from bridge.daemon.config import BridgeConfig
from bridge.daemon.connector import ConnectorService
from bridge.daemon.venues import VenuesService, build_venue
from bridge.daemon.worker_service import WorkerService
from bridge.notify.events import OperatorEvents

log = logging.getLogger("bridge.daemon")
ROLES = ("all", "connector", "worker")
__all__ = ["ROLES", "ConnectorService", "WorkerService", "build"]


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
