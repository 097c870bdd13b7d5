"""Serve a :class:`SimVenue` over ZeroMQ, so the venue can live in another process than the bridge.

Two endpoints (three sockets):

* a ROUTER socket (``endpoint``) answering requests from
  :class:`connectors.sim.remote.RemoteVenue` (a DEALER) or any other client;
* a bus :class:`bridge.bus.channel.Publisher` (``deals_endpoint`` PUB and
  ``replay_endpoint`` ROUTER) carrying the master deals of watched accounts,
  topic ``deal.<account>``, body :func:`bridge.bus.frame.deal_body`, with the
  bus's sequence numbers and replay, so a client that dies and comes back can
  resume where its durable state says it stopped.

Request / reply frames (as the DEALER sends and receives them; the ROUTER
adds and strips the client identity in front)::

    request  [request-id, method, args-json]
    reply    [request-id, b"ok",    result-json]
             [request-id, b"error", {"code", "message", ...}]

``request-id`` is opaque bytes (1..64) chosen by the client and echoed back;
``method`` is ASCII; ``args-json`` is a JSON object. Every value follows
:mod:`connectors.sim.wire` (Decimals as strings, volumes as integers, ids
``platform:value``, logins ``platform/server/number``).

================  ===========================================  =====================================
method            args                                         ok result
================  ===========================================  =====================================
``execute``       an OrderRequest (wire form)                  OrderResult; sent when the venue's
                                                               Deferred fires (after its latency)
``lookup``        ``{account, key}``                           OrderResult or ``null``
``positions``     ``{account}``                                ``[VenuePosition, ...]``
``account_info``  ``{account}``                                AccountInfo
``symbol_spec``   ``{account, symbol}``                        SymbolSpec
``deals_since``   ``{account, after: deal id or null}``        ``[deal body, ...]`` oldest first
``watch``         ``{account}``                                ``{topic, endpoint, replay_endpoint,
                                                               epoch, seq}``: the account's deals are
                                                               published from now on (after ``seq``)
``trade``         ``{account, symbol, side, amount, sl?, tp?}``  ``{position_id}``
``close``         ``{account, position_id, amount?}``          deal body of the closing deal
``modify``        ``{account, position_id, sl?, tp?}``         deal body of the SLTP deal
``deposit``       ``{account, amount}`` (negative: withdraw)   deal body of the BALANCE deal
``step_prices``   ``{steps?}`` (default 1)                     ``{}``
``ping``          ``{}``                                       ``{venue, time, epoch}``
================  ===========================================  =====================================

``amount`` (manual API): a JSON integer is a canonical volume, a decimal
string is lots. ``trade``/``close``/``modify``/``deposit``/``step_prices``
are the operator's and the tests' hands on the master: they produce master
deals like a person trading in a terminal would.

Error codes (``{"code", "message"}`` plus the extra fields shown):

==================  ==================================================================
``ambiguous``       the venue's :class:`AmbiguousOutcome`; extra ``key``, ``why``.
                    Look the key up before anything is resent.
``unavailable``     :class:`VenueUnavailable`: the venue is disconnected; nothing ran
``unknown-account`` the account is not on this venue (KeyError of a login)
``unknown-symbol``  the symbol is not traded here (any other KeyError)
``rejected``        a manual order the venue refused; extra ``result`` (OrderResult)
``bad-request``     malformed frame, unknown method, or args that do not decode;
                    counted in ``bad_requests``, logged, and the server goes on. A
                    frame too short to carry a request id gets no reply at all.
``internal``        anything else raised while answering; counted in ``errors``
==================  ==================================================================

A refused *bridge* order is not an error: it is an ``ok`` reply whose
OrderResult has status ``rejected`` (the Venue contract).

Reactor-agnostic like the bus channels: ``sockets`` and ``on_readable()``
(drain every socket); ``wake`` is called after a send on a socket the server
also reads. :meth:`SimServer.serve` drives it from a Twisted reactor with
:class:`bridge.bus.reactor.ReactorDriver` and heartbeats the deal publisher.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Callable

import zmq
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure

from bridge.bus.channel import Publisher
from bridge.bus.frame import deal_body, deal_topic, describe
from bridge.bus.reactor import ReactorDriver
from bridge.domain.deal import MasterDeal, Side
from bridge.domain.ids import DealId, Login, PositionId
from connectors.interface import AmbiguousOutcome, VenueUnavailable
from connectors.sim.venue import SimRejected, SimVenue
from connectors.sim.wire import (
    WireError,
    _Fields,
    account_info_to_json,
    order_from_json,
    position_to_json,
    result_to_json,
    spec_to_json,
)

log = logging.getLogger(__name__)

OK = b"ok"
ERROR = b"error"
MAX_REQUEST_ID = 64


def _noop() -> None:
    return None


class BadRequest(ValueError):
    """A request the server cannot answer as asked (code ``bad-request``)."""


class SimServer:
    """Answers venue requests on a ROUTER socket and publishes watched master deals on the bus."""

    def __init__(self, ctx: zmq.Context, venue: SimVenue, endpoint: str, *,
                 deals_endpoint: str = "tcp://127.0.0.1:*", replay_endpoint: str = "tcp://127.0.0.1:*",
                 src: str | None = None, epoch: str | None = None, history: int = 100_000) -> None:
        self.venue = venue
        self.bad_requests = 0
        self.errors = 0
        self.answered = 0
        self.watched: set[Login] = set()
        self.wake: Callable[[], None] = _noop
        self.router = ctx.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.LINGER, 0)
        self.router.bind(endpoint)
        self.endpoint = self.router.getsockopt_string(zmq.LAST_ENDPOINT)
        self.publisher = Publisher(ctx, deals_endpoint, replay_endpoint, src or f"sim-{venue.name}",
                                   history=history, epoch=epoch)
        self.publisher.wake = lambda: self.wake()
        self.sockets = (self.router, self.publisher.router)
        self._drivers: list[ReactorDriver] = []
        self._heartbeat: LoopingCall | None = None
        self._methods: dict[bytes, Callable[[dict], Any]] = {
            b"execute": self._execute,
            b"lookup": self._lookup,
            b"positions": self._positions,
            b"account_info": self._account_info,
            b"symbol_spec": self._symbol_spec,
            b"deals_since": self._deals_since,
            b"watch": self._watch,
            b"trade": self._trade,
            b"close": self._close,
            b"modify": self._modify,
            b"deposit": self._deposit,
            b"step_prices": self._step_prices,
            b"ping": self._ping,
        }

    @property
    def deals_endpoint(self) -> str:
        return self.publisher.endpoint

    @property
    def replay_endpoint(self) -> str:
        return self.publisher.replay_endpoint

    # -- driving --------------------------------------------------------------------

    def on_readable(self) -> None:
        while True:
            try:
                parts = self.router.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            self._handle(parts)
        self.publisher.on_readable()

    def heartbeat(self) -> None:
        """Announce the deal publisher's last sequence number (see :meth:`Publisher.heartbeat`)."""
        self.publisher.heartbeat()

    def serve(self, reactor, heartbeat_s: float = 1.0) -> None:
        """Register with a Twisted reactor and heartbeat the deal feed every ``heartbeat_s`` seconds."""
        driver = ReactorDriver(reactor, self)
        driver.start()
        self._drivers.append(driver)
        self._heartbeat = LoopingCall(self.heartbeat)
        self._heartbeat.clock = reactor
        self._heartbeat.start(heartbeat_s, now=False)

    def close(self) -> None:
        if self._heartbeat is not None and self._heartbeat.running:
            self._heartbeat.stop()
        for driver in self._drivers:
            driver.stop()
        self._drivers.clear()
        for login in self.watched:
            try:
                self.venue.unwatch_deals(login, self._on_deal)
            except ValueError:
                pass
        self.watched.clear()
        self.router.close(0)
        self.publisher.close()

    # -- requests -------------------------------------------------------------------

    def _handle(self, parts: list[bytes]) -> None:
        if len(parts) < 2 or not 0 < len(parts[1]) <= MAX_REQUEST_ID:
            self.bad_requests += 1
            log.warning("sim server: request without a usable request id dropped (%s)", describe(parts[1:]))
            return
        identity, request_id = parts[0], parts[1]
        try:
            if len(parts) != 4:
                raise BadRequest(f"expected request-id, method, args; got {len(parts) - 1} parts")
            method = self._methods.get(parts[2])
            if method is None:
                raise BadRequest(f"unknown method {describe(parts[2])}")
            try:
                args = json.loads(parts[3])
            except (ValueError, UnicodeDecodeError) as exc:
                raise BadRequest(f"args are not JSON: {exc}") from None
            if not isinstance(args, dict):
                raise BadRequest("args are not a JSON object")
            answer = method(args)
        except Exception:
            self._reply_failure(identity, request_id, Failure(), parts[2:3])
            return
        if hasattr(answer, "addCallbacks"):  # a Deferred: reply when it fires (it may already have)
            answer.addCallbacks(lambda value: self._reply(identity, request_id, OK, value),
                                lambda failure: self._reply_failure(identity, request_id, failure, parts[2:3]))
        else:
            self._reply(identity, request_id, OK, answer)

    def _reply(self, identity: bytes, request_id: bytes, status: bytes, body: Any) -> None:
        self.answered += 1
        try:
            self.router.send_multipart([identity, request_id, status, json.dumps(body).encode()], zmq.NOBLOCK)
        except zmq.ZMQError as exc:  # the client is gone or its queue is full: the reply is lost
            log.warning("sim server: reply %r lost: %s", request_id, exc)
        self.wake()

    def _reply_failure(self, identity: bytes, request_id: bytes, failure: Failure, method: list[bytes]) -> None:
        error = failure.value
        body: dict[str, Any]
        if isinstance(error, AmbiguousOutcome):
            body = {"code": "ambiguous", "message": str(error), "key": error.key, "why": error.why}
        elif isinstance(error, VenueUnavailable):
            body = {"code": "unavailable", "message": str(error)}
        elif isinstance(error, SimRejected):
            body = {"code": "rejected", "message": str(error), "result": result_to_json(error.result)}
        elif isinstance(error, KeyError):
            missing = error.args[0] if error.args else None
            if isinstance(missing, Login):
                body = {"code": "unknown-account", "message": f"{missing} is not on {self.venue.name}"}
            else:
                body = {"code": "unknown-symbol", "message": f"{missing} is not traded on {self.venue.name}"}
        elif isinstance(error, (BadRequest, WireError, ValueError, TypeError)):
            self.bad_requests += 1
            log.warning("sim server: bad request %s: %s", describe(method), error)
            body = {"code": "bad-request", "message": str(error)}
        else:
            self.errors += 1
            log.error("sim server: %s failed: %s", describe(method), failure.getTraceback())
            body = {"code": "internal", "message": f"{type(error).__name__}: {error}"}
        self._reply(identity, request_id, ERROR, body)

    # -- the Venue interface ------------------------------------------------------------

    def _execute(self, args: dict):
        return self.venue.execute(order_from_json(args)).addCallback(result_to_json)

    def _lookup(self, args: dict):
        f = _Fields(args, "lookup")
        d = self.venue.lookup(f.login("account"), f.str("key", empty=True))
        return d.addCallback(lambda r: None if r is None else result_to_json(r))

    def _positions(self, args: dict):
        d = self.venue.positions(_Fields(args, "positions").login("account"))
        return d.addCallback(lambda ps: [position_to_json(p) for p in ps])

    def _account_info(self, args: dict):
        return self.venue.account_info(_Fields(args, "account_info").login("account")).addCallback(
            account_info_to_json)

    def _symbol_spec(self, args: dict):
        f = _Fields(args, "symbol_spec")
        return self.venue.symbol_spec(f.login("account"), f.str("symbol")).addCallback(spec_to_json)

    def _deals_since(self, args: dict):
        f = _Fields(args, "deals_since")
        d = self.venue.deals_since(f.login("account"), f.id(DealId, "after", optional=True))
        return d.addCallback(lambda deals: [deal_body(x) for x in deals])

    # -- the deal feed --------------------------------------------------------------------

    def watch(self, login: Login) -> None:
        """Publish ``login``'s master deals from now on (idempotent); KeyError for an unknown account."""
        if login not in self.watched:
            self.venue.watch_deals(login, self._on_deal)
            self.watched.add(login)

    def _watch(self, args: dict) -> dict:
        login = _Fields(args, "watch").login("account")
        self.watch(login)
        p = self.publisher
        return {"topic": f"deal.{login}", "endpoint": p.endpoint, "replay_endpoint": p.replay_endpoint,
                "epoch": p.epoch, "seq": p.seq}

    def _on_deal(self, deal: MasterDeal) -> None:
        self.publisher.publish(deal_topic(deal), deal_body(deal))

    # -- the manual API -------------------------------------------------------------------

    @staticmethod
    def _amount(f: _Fields, key: str, optional: bool = False):
        value = f._get(key, optional)
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise WireError(f"{f.what}.{key} must be an integer volume or a decimal string of lots, got {value!r}")

    def _trade(self, args: dict) -> dict:
        f = _Fields(args, "trade")
        position = self.venue.trade(f.login("account"), f.str("symbol"), f.enum(Side, "side"),
                                    self._amount(f, "amount"), f.dec("sl", optional=True), f.dec("tp", optional=True))
        return {"position_id": f"{position.platform}:{position.value}"}

    def _close(self, args: dict) -> dict:
        f = _Fields(args, "close")
        deal = self.venue.close(f.login("account"), f.id(PositionId, "position_id"),
                                self._amount(f, "amount", optional=True))
        return deal_body(deal)

    def _modify(self, args: dict) -> dict:
        f = _Fields(args, "modify")
        deal = self.venue.modify(f.login("account"), f.id(PositionId, "position_id"), f.dec("sl", optional=True),
                                 f.dec("tp", optional=True))
        return deal_body(deal)

    def _deposit(self, args: dict) -> dict:
        f = _Fields(args, "deposit")
        return deal_body(self.venue.deposit(f.login("account"), f.dec("amount")))

    def _step_prices(self, args: dict) -> dict:
        steps = _Fields(args, "step_prices").int("steps", optional=True, minimum=1) or 1
        for _ in range(steps):
            self.venue.step_prices()
        return {}

    def _ping(self, args: dict) -> dict:
        return {"venue": self.venue.name, "time": self.venue.now().isoformat(), "epoch": self.publisher.epoch}
