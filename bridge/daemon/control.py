"""The control socket: ``bridge status`` asks the running daemon what it is doing.

A ROUTER socket on ``[bus] control``. Request: one frame, ``status``. Reply:
one JSON object (see :func:`status_of`). Also ``pamm-rollover POOL``,
``reload-routes`` (the worker reads its routes again: ``bridge copy``/``bridge
mam`` changed them; closes planned by ``--close-positions`` are sent now) and ``account-test VENUE/LOGIN`` (the venue's
``account_info``). Anything else is answered with ``{"error": ...}`` and
counted; the daemon goes on.

Only the service user may ask: an ``ipc://`` socket file is created mode 0600
(a warning if its directory is world-writable); a ``tcp://`` control endpoint
must be a loopback address (checked when the configuration is read).
"""

from __future__ import annotations

import json
import logging
import os
import stat

import zmq
from twisted.application import service

from bridge.bus.curve import CurveKeys, connect_as_client, serve
from bridge.bus.reactor import ReactorDriver

log = logging.getLogger("bridge.control")


def status_of(top: service.MultiService) -> dict:
    """Roles, bus positions and counts of the services in this process."""
    out: dict = {"roles": [s.name for s in top if s.name in ("connector", "worker")]}
    connector = _named(top, "connector")
    if connector is not None and connector.running:
        p = connector.publisher
        out["connector"] = {"endpoint": p.endpoint, "epoch": p.epoch, "seq": p.seq,
                            "published": connector.published, "bad_requests": p.bad_requests,
                            "watching": sorted(connector.watching())}
    worker = _named(top, "worker")
    if worker is not None and worker.running:
        sub, store = worker.subscriber, worker.store
        out["worker"] = {
            "bus": {"epoch": sub.epoch, "next_seq": sub.expected, "delivered": sub.delivered,
                    "duplicates": sub.duplicates, "bad_frames": sub.bad_frames + worker.bad_frames,
                    "replaying": sub.replaying},
            "journal": {"deals": store.db["master_deals"].count, "last_seq": store.last_seq(),
                        "duplicate_deliveries": worker.worker.duplicates},
            "intents": store.intent_counts(),
            "idle": worker.worker.idle,
            "masters": worker.master_states(),
            "reconcile": worker.last_patrol,
        }
    pools = _named(top, "pools")
    if pools is not None and pools.running:
        out["pools"] = pools.status()
    closes = _named(top, "closes")
    if closes is not None and closes.running:
        out["closes"] = closes.status()
    out["venues"] = sorted(str(server) for server in getattr(top, "venues", {}))
    venues = _named(top, "venues")
    if venues is not None:
        # every venue connected, authorised and reconciled (a sim venue in this process: at once)
        out["venues_ready"] = venues.ready.called
        out["connections"] = {str(server): describe() for server, v in sorted(top.venues.items(), key=str)
                              if (describe := getattr(v, "connection_status", None)) is not None}
    return out


def reload_routes(top) -> dict:
    """The worker reads its routes again (bridge.daemon.route_book); the daemon goes on whatever happens."""
    worker = _named(top, "worker")
    if worker is None or not worker.running:
        return {"error": "this process runs no worker (the worker role reads the routes)"}
    try:
        answer = {"routes": worker.reload_routes()}
    except Exception as exc:  # a store row it cannot read: the routes in use stay as they were
        log.exception("control: reload-routes failed; the routes in use are unchanged")
        return {"error": f"routes not reloaded ({type(exc).__name__}: {exc}); the routes in use are unchanged"}
    closes = _named(top, "closes")
    if closes is not None and closes.running:
        closes.kick()  # a removal with --close-positions planned closes: send them now
        answer["closes"] = True
    return answer


def account_test(top, text: str):
    """A Deferred firing with the account's figures from its venue (``account_info``), or an error."""
    from twisted.internet import defer

    from bridge.domain.ids import Login

    name, _, number = text.strip().rpartition("/")
    server = next((s for s in getattr(top, "venues", {}) if s.name == name), None)
    if server is None or not number.isdigit():
        return defer.succeed({"error": f"no account {text.strip()!r} on this daemon's venues (VENUE/LOGIN)"})
    d = defer.maybeDeferred(top.venues[server].account_info, Login(server, int(number)))
    d.addCallback(lambda info: {"account": text.strip(), "currency": info.currency, "balance": str(info.balance),
                                "equity": str(info.equity), "hedging": info.hedging})
    d.addErrback(lambda f: {"error": " ".join(f"{text.strip()}: {f.getErrorMessage() or f.type.__name__}".split())})
    return d


def restrict_ipc(endpoint: str) -> None:
    """An ipc:// control socket is for the service user only: mode 0600, and a warning when its directory
    lets others replace it."""
    if not endpoint.startswith("ipc://"):
        return
    path = endpoint[len("ipc://"):]
    if path.startswith("@"):  # Linux abstract namespace: no file, no permissions
        log.warning("control: %s is an abstract socket, open to every local user; use a path", endpoint)
        return
    os.chmod(path, 0o600)
    directory = os.path.dirname(os.path.abspath(path))
    mode = os.stat(directory).st_mode
    if mode & stat.S_IWOTH:
        log.warning("control: %s is in %s, which every user may write to; put it in a directory of the "
                    "service user's", endpoint, directory)


def _named(top, name):
    try:
        return top.getServiceNamed(name)
    except KeyError:
        return None


class ControlService(service.Service):
    name = "control"

    def __init__(self, ctx: zmq.Context, reactor, endpoint: str, top: service.MultiService,
                 curve: CurveKeys | None = None) -> None:
        self.ctx, self.reactor, self.endpoint, self.top, self.curve = ctx, reactor, endpoint, top, curve
        self.bad_requests = 0

    def startService(self) -> None:
        router = self.ctx.socket(zmq.ROUTER)
        router.setsockopt(zmq.LINGER, 0)
        serve(router, self.endpoint, self.curve)  # [bus] CURVE keys: a tcp:// control socket is a CURVE server
        ipc = self.endpoint.startswith("ipc://")
        mask = os.umask(0o077) if ipc else None  # the socket file is never open to others, not even briefly
        try:
            router.bind(self.endpoint)
        except zmq.ZMQError as exc:
            router.close(0)
            raise RuntimeError(f"control socket {self.endpoint}: {zmq.strerror(exc.errno)} (is another bridge process "
                               f"running with this [bus] control? a connector run on its own beside a worker "
                               f"needs [bus] control_connector)") from None
        finally:
            if mask is not None:
                os.umask(mask)
        restrict_ipc(self.endpoint)
        super().startService()
        self.router = router
        self.sockets = (self.router,)
        self.driver = ReactorDriver(self.reactor, self)
        self.driver.start()
        log.info("control: answering `bridge status` on %s", self.endpoint)

    def on_readable(self) -> None:
        while True:
            try:
                parts = self.router.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            if len(parts) == 2 and parts[1] == b"status":
                reply = status_of(self.top)
            elif len(parts) == 2 and parts[1].startswith(b"pamm-rollover "):
                self._pamm_rollover(parts[0], parts[1][len(b"pamm-rollover "):].decode("utf-8", "replace"))
                continue
            elif len(parts) == 2 and parts[1] == b"reload-routes":
                reply = reload_routes(self.top)
            elif len(parts) == 2 and parts[1].startswith(b"account-test "):
                account_test(self.top, parts[1][len(b"account-test "):].decode("utf-8", "replace")).addCallback(
                    lambda answer, identity=parts[0]: self._reply(identity, answer))
                continue
            else:
                self.bad_requests += 1
                reply = {"error": "unknown request (send: status, pamm-rollover POOL, reload-routes, "
                                  "or account-test VENUE/LOGIN)"}
            self._reply(parts[0], reply)

    def _reply(self, identity: bytes, reply: dict) -> None:
        if self.running:
            self.router.send_multipart([identity, json.dumps(reply).encode()])
            self.wake()

    def _pamm_rollover(self, identity: bytes, pool_id: str) -> None:
        """Run a pool's rollover now; the answer goes back when it is done (or failed)."""
        pools = _named(self.top, "pools")
        if pools is None or not pools.running:
            self._reply(identity, {"error": "this process runs no PAMM pools (the worker role does)"})
            return
        from bridge.pools.render import rollover_dict

        d = pools.rollover_now(pool_id.strip(), "operator")
        d.addCallback(lambda done: self._reply(identity, {"rollover": rollover_dict(*done)}))
        d.addErrback(lambda f: self._reply(identity, {"error": f.getErrorMessage()}))

    def wake(self) -> None:  # replaced by the driver
        return None

    def stopService(self):
        if not self.running:  # its bind failed: nothing to close
            return None
        self.driver.stop()
        self.router.close(0)
        return super().stopService()


def ask_status(endpoint: str, timeout_ms: int, curve: CurveKeys | None = None) -> dict | None:
    """The daemon's status, or None if nobody answered in time."""
    return ask(endpoint, b"status", timeout_ms, curve)


def ask(endpoint: str, request: bytes, timeout_ms: int, curve: CurveKeys | None = None) -> dict | None:
    """Send one request frame to the control socket; its JSON answer, or None if nobody answered in time.

    ``curve``: the configuration's [bus] CURVE keys (a daemon on it answers only CURVE clients it lets in;
    a refused key gets no answer: None)."""
    ctx = zmq.Context()
    dealer = ctx.socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    try:
        connect_as_client(dealer, endpoint, curve, local=True)
        dealer.connect(endpoint)
        dealer.send(request)
        if not dealer.poll(timeout_ms):
            return None
        return json.loads(dealer.recv())
    finally:
        dealer.close(0)
        ctx.term()
