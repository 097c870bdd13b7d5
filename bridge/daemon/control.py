"""The control socket: ``bridge status`` asks the running daemon what it is doing.

A ROUTER socket on ``[bus] control``. Request: one frame, ``status``. Reply:
one JSON object (see :func:`status_of`). Anything else is answered with
``{"error": ...}`` and counted; the daemon goes on.
"""

from __future__ import annotations

import json
import logging

import zmq
from twisted.application import service

from bridge.bus.reactor import ReactorDriver

log = logging.getLogger("bridge.control")


def status_of(top: service.MultiService) -> dict:
    """Roles, bus positions and counts of the services in this process."""
    out: dict = {"roles": [s.name for s in top if s.name in ("connector", "worker")]}
    connector = _named(top, "connector")
    if connector is not None and connector.running:
        p = connector.publisher
        out["connector"] = {"endpoint": p.endpoint, "epoch": p.epoch, "seq": p.seq,
                            "published": connector.published, "bad_requests": p.bad_requests}
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
        }
    pools = _named(top, "pools")
    if pools is not None and pools.running:
        out["pools"] = pools.status()
    out["venues"] = sorted(str(server) for server in getattr(top, "venues", {}))
    venues = _named(top, "venues")
    if venues is not None:
        # every venue connected, authorised and reconciled (a sim venue in this process: at once)
        out["venues_ready"] = venues.ready.called
        out["connections"] = {str(server): describe() for server, v in sorted(top.venues.items(), key=str)
                              if (describe := getattr(v, "connection_status", None)) is not None}
    return out


def _named(top, name):
    try:
        return top.getServiceNamed(name)
    except KeyError:
        return None


class ControlService(service.Service):
    name = "control"

    def __init__(self, ctx: zmq.Context, reactor, endpoint: str, top: service.MultiService) -> None:
        self.ctx, self.reactor, self.endpoint, self.top = ctx, reactor, endpoint, top
        self.bad_requests = 0

    def startService(self) -> None:
        router = self.ctx.socket(zmq.ROUTER)
        router.setsockopt(zmq.LINGER, 0)
        try:
            router.bind(self.endpoint)
        except zmq.ZMQError as exc:
            router.close(0)
            raise RuntimeError(f"control socket {self.endpoint}: {zmq.strerror(exc.errno)} (is another bridge process "
                               f"running with this [bus] control? a connector run on its own beside a worker "
                               f"needs [bus] control_connector)") from None
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
            else:
                self.bad_requests += 1
                reply = {"error": "unknown request (send: status, or pamm-rollover POOL)"}
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


def ask_status(endpoint: str, timeout_ms: int) -> dict | None:
    """The daemon's status, or None if nobody answered in time."""
    return ask(endpoint, b"status", timeout_ms)


def ask(endpoint: str, request: bytes, timeout_ms: int) -> dict | None:
    """Send one request frame to the control socket; its JSON answer, or None if nobody answered in time."""
    ctx = zmq.Context()
    dealer = ctx.socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    try:
        dealer.connect(endpoint)
        dealer.send(request)
        if not dealer.poll(timeout_ms):
            return None
        return json.loads(dealer.recv())
    finally:
        dealer.close(0)
        ctx.term()
