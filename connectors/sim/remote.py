"""A :class:`connectors.interface.Venue` that talks to a :class:`connectors.sim.server.SimServer` in another process.

Requests go out on one DEALER socket as ``[request-id, method, args-json]``
and come back as ``[request-id, b"ok"|b"error", json]`` (the protocol and the
error codes are documented in :mod:`connectors.sim.server`; the JSON forms in
:mod:`connectors.sim.wire`). Every call returns a Deferred that fires when
its reply arrives:

- ``ok``: the decoded value (OrderResult, list of VenuePosition, ...);
- ``error``: ``ambiguous`` -> :class:`AmbiguousOutcome`, ``unavailable`` ->
  :class:`VenueUnavailable`, ``unknown-account``/``unknown-symbol`` ->
  :class:`UnknownName` (a ``KeyError``, as :class:`SimVenue` raises),
  ``rejected`` (manual API) -> :class:`SimRejected`, anything else ->
  :class:`RemoteError` carrying the code;
- no reply within ``timeout_s`` (on ``reactor_or_clock``, any
  ``IReactorTime``): :class:`AmbiguousOutcome` for the calls that change
  the venue (``execute`` and the manual API: the request may have been
  executed), :class:`VenueUnavailable` for the read calls;
- a reply that arrives after its timeout, or for a request id this client
  never sent, is dropped and counted (``dropped_replies``).

A request that timed out may still reach the server later (ZeroMQ queues
until the connection is up): the sim venue records filled orders by key, so a
resend with the same key never trades twice, but ``lookup`` answering None is
proof of non-execution only after :meth:`RemoteVenue.close`.

Deals: :meth:`RemoteVenue.watch_deals` asks the server to publish the
account's deals (``watch``) and reads them with one bus
:class:`bridge.bus.channel.Subscriber` per RemoteVenue (all ``deal.`` topics:
the bus's sequence is per publisher, not per topic), dispatching each deal to
the callbacks of its account. :attr:`RemoteVenue.deal_position` is the
``(epoch, seq)`` of the last frame handed to the callbacks (inside a callback:
of the deal being delivered), which the owner persists; a new process passes
it back as ``watch_deals(..., resume=(epoch, seq))`` and the publisher
replays everything after it, deals of accounts not watched in the new
process included (they are skipped). Without ``resume`` the stream starts at
the publisher's position when the server accepted the first watch. Ranges the
publisher can no longer replay go to ``on_lost(epoch, first, last)``: recover
them with :meth:`deals_since`. A restarted *server* has a new epoch and no
watches: call ``watch_deals`` again and backfill.

Reactor-agnostic: ``sockets`` (the DEALER, plus the subscriber's two sockets
once the first watch is answered: re-read it) and ``on_readable()`` drain
everything; :meth:`attach` drives it all from a Twisted reactor with
:class:`bridge.bus.reactor.ReactorDriver`.
"""

from __future__ import annotations

import itertools
import json
import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Callable

import zmq
from twisted.internet import defer
from twisted.internet.defer import Deferred

from bridge.bus.channel import Subscriber
from bridge.bus.frame import Frame, describe
from bridge.bus.reactor import ReactorDriver
from bridge.domain.deal import MasterDeal, Side
from bridge.domain.ids import DealId, Login, Platform, PositionId
from connectors.interface import AmbiguousOutcome, OrderRequest, VenueUnavailable
from connectors.sim.venue import SimRejected
from connectors.sim.wire import (
    WireError,
    account_info_from_json,
    deal_from_json,
    decimal_to_json,
    id_from_json,
    id_to_json,
    login_to_json,
    order_to_json,
    position_from_json,
    result_from_json,
    spec_from_json,
)

log = logging.getLogger(__name__)

#: Calls that change the venue: a lost reply leaves their outcome unknown.
MUTATING = frozenset({"execute", "trade", "close", "modify", "deposit", "step_prices"})


class RemoteError(Exception):
    """The server answered with an error code that has no interface exception (``bad-request``, ``internal``)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class UnknownName(KeyError):
    """``unknown-account`` or ``unknown-symbol``: a KeyError, as the local venue raises."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


@dataclass(slots=True)
class _Pending:
    method: str
    key: str
    deferred: Deferred
    decode: Callable[[Any], Any]
    timer: Any


class _Requests:
    """The DEALER alone, as a ReactorDriver channel (the subscriber gets its own driver)."""

    def __init__(self, venue: "RemoteVenue") -> None:
        self.sockets = (venue.dealer,)
        self.on_readable = venue._drain_replies
        self.wake: Callable[[], None] = lambda: None


def _noop() -> None:
    return None


class RemoteVenue:
    """The Venue interface over a DEALER socket to a :class:`SimServer`."""

    platform = Platform.SIM

    def __init__(self, ctx: zmq.Context, name: str, endpoint: str, reactor_or_clock, timeout_s: float = 5.0, *,
                 deals_endpoint: str | None = None, replay_endpoint: str | None = None,
                 on_lost: Callable[[str, int, int | None], None] | None = None) -> None:
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        self.ctx = ctx
        self.name = name
        self.endpoint = endpoint
        self.clock = reactor_or_clock
        self.timeout_s = timeout_s
        self.on_lost = on_lost or self._log_lost
        self._deal_endpoints = (deals_endpoint, replay_endpoint)  # override what the server advertises
        self.dealer = ctx.socket(zmq.DEALER)
        self.dealer.setsockopt(zmq.LINGER, 0)
        self.dealer.connect(endpoint)
        self.wake: Callable[[], None] = _noop
        self.subscriber: Subscriber | None = None
        self.dropped_replies = 0
        self.bad_replies = 0
        self.bad_deals = 0
        self.watch_errors: list[tuple[Login, BaseException]] = []
        self._ids = itertools.count(1)
        self._pending: dict[bytes, _Pending] = {}
        self._callbacks: dict[Login, list[Callable[[MasterDeal], None]]] = {}
        self._resume: tuple[str, int] | None = None
        self._reactor = None
        self._drivers: list[ReactorDriver] = []
        self._closed = False

    # -- driving ---------------------------------------------------------------------

    @property
    def sockets(self) -> tuple[zmq.Socket, ...]:
        """Every socket to poll; grows when the deal subscriber starts (re-read it)."""
        return (self.dealer, *(self.subscriber.sockets if self.subscriber else ()))

    def on_readable(self) -> None:
        self._drain_replies()
        if self.subscriber is not None:
            self.subscriber.on_readable()

    def attach(self, reactor) -> None:
        """Drive this venue from a Twisted reactor (the deal subscriber too, once it exists)."""
        if self._reactor is not None:
            raise RuntimeError("already attached")
        self._reactor = reactor
        requests = _Requests(self)
        driver = ReactorDriver(reactor, requests)
        self.wake = requests.wake  # the driver installed its wake on the channel
        driver.start()
        self._drivers.append(driver)
        if self.subscriber is not None:
            self._drive_subscriber()

    def _drive_subscriber(self) -> None:
        driver = ReactorDriver(self._reactor, self.subscriber)
        driver.start()
        self._drivers.append(driver)

    @property
    def pending(self) -> int:
        """Requests sent and not yet answered or timed out."""
        return len(self._pending)

    @property
    def deal_position(self) -> tuple[str, int] | None:
        """``(epoch, seq)`` of the last deal frame handed to the callbacks; None before the stream starts."""
        sub = self.subscriber
        if sub is None or sub.epoch is None:
            return self._resume
        return sub.epoch, sub.expected - 1

    def close(self) -> None:
        """Fail what is pending, close the sockets (queued requests are discarded: LINGER 0)."""
        if self._closed:
            return
        self._closed = True
        for driver in self._drivers:
            driver.stop()
        self._drivers.clear()
        pending, self._pending = self._pending, {}
        for p in pending.values():
            if p.timer.active():
                p.timer.cancel()
            p.deferred.errback(self._lost_reply(p, "connection closed"))
        if self.subscriber is not None:
            self.subscriber.close()
        self.dealer.close(0)

    # -- requests ---------------------------------------------------------------------

    def call(self, method: str, args: dict, *, key: str = "", decode: Callable[[Any], Any] = lambda x: x) -> Deferred:
        """Send one request; fires with ``decode(result-json)`` or fails as the module docstring says."""
        if self._closed:
            return defer.fail(VenueUnavailable(f"{self.name}: closed"))
        request_id = str(next(self._ids)).encode()
        try:
            payload = json.dumps(args).encode()
        except (TypeError, ValueError) as exc:
            return defer.fail(TypeError(f"{method}: args are not JSON-serialisable: {exc}"))
        try:
            self.dealer.send_multipart([request_id, method.encode(), payload], zmq.NOBLOCK)
        except zmq.Again:
            return defer.fail(VenueUnavailable(f"{self.name}: send queue full; nothing was sent"))
        finally:
            self.wake()
        d = Deferred()
        timer = self.clock.callLater(self.timeout_s, self._timed_out, request_id)
        self._pending[request_id] = _Pending(method, key, d, decode, timer)
        return d

    def _timed_out(self, request_id: bytes) -> None:
        p = self._pending.pop(request_id, None)
        if p is not None:
            p.deferred.errback(self._lost_reply(p, f"no reply within {self.timeout_s}s"))

    def _lost_reply(self, p: _Pending, why: str) -> Exception:
        if p.method in MUTATING:
            return AmbiguousOutcome(p.key, why)
        return VenueUnavailable(f"{self.name}: {p.method}: {why}")

    def _drain_replies(self) -> None:
        while True:
            try:
                parts = self.dealer.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            except zmq.ZMQError:  # closed under us
                return
            self._reply(parts)

    def _reply(self, parts: list[bytes]) -> None:
        if len(parts) != 3 or parts[1] not in (b"ok", b"error"):
            self.bad_replies += 1
            log.warning("remote venue %s: malformed reply dropped (%s)", self.name, describe(parts))
            return
        p = self._pending.pop(parts[0], None)
        if p is None:
            self.dropped_replies += 1
            log.info("remote venue %s: reply to unknown or expired request %r dropped", self.name, parts[0])
            return
        if p.timer.active():
            p.timer.cancel()
        try:
            body = json.loads(parts[2])
            if parts[1] == b"ok":
                value = p.decode(body)
            else:
                error = self._error(p, body)
        except Exception as exc:  # noqa: BLE001 - whatever the reply holds, the caller gets a failure
            self.bad_replies += 1
            log.warning("remote venue %s: undecodable %s reply: %s", self.name, p.method, exc)
            problem = WireError(f"{p.method} reply: {exc}")
            p.deferred.errback(AmbiguousOutcome(p.key, f"undecodable reply: {exc}") if p.method in MUTATING
                               else problem)
            return
        if parts[1] == b"ok":
            p.deferred.callback(value)
        else:
            p.deferred.errback(error)

    @staticmethod
    def _error(p: _Pending, body: Any) -> Exception:
        if not isinstance(body, dict) or not isinstance(body.get("code"), str):
            raise WireError("error reply without a code")
        code, message = body["code"], str(body.get("message", ""))
        if code == "ambiguous":
            return AmbiguousOutcome(str(body.get("key", p.key)), str(body.get("why", message)))
        if code == "unavailable":
            return VenueUnavailable(message)
        if code in ("unknown-account", "unknown-symbol"):
            return UnknownName(code, message)
        if code == "rejected":
            return SimRejected(result_from_json(body.get("result")))
        return RemoteError(code, message)

    # -- the Venue interface -----------------------------------------------------------------

    def execute(self, order: OrderRequest) -> Deferred:
        return self.call("execute", order_to_json(order), key=order.key, decode=result_from_json)

    def lookup(self, account: Login, key: str) -> Deferred:
        return self.call("lookup", {"account": login_to_json(account), "key": key},
                         decode=lambda r: None if r is None else result_from_json(r))

    def positions(self, account: Login) -> Deferred:
        return self.call("positions", {"account": login_to_json(account)},
                         decode=lambda ps: [position_from_json(p) for p in _list(ps, "positions")])

    def account_info(self, account: Login) -> Deferred:
        return self.call("account_info", {"account": login_to_json(account)}, decode=account_info_from_json)

    def symbol_spec(self, account: Login, symbol: str) -> Deferred:
        return self.call("symbol_spec", {"account": login_to_json(account), "symbol": symbol}, decode=spec_from_json)

    def deals_since(self, account: Login, after: DealId | None) -> Deferred:
        return self.call("deals_since", {"account": login_to_json(account), "after": id_to_json(after)},
                         decode=lambda ds: [deal_from_json(d) for d in _list(ds, "deals")])

    def watch_deals(self, account: Login, callback: Callable[[MasterDeal], None], *,
                    resume: tuple[str, int] | None = None) -> Deferred:
        """Deliver ``account``'s new master deals to ``callback``, in venue order.

        ``resume=(epoch, seq)`` (a saved :attr:`deal_position`) replays what
        was published after it; it applies to this venue's one deal stream, so
        it can be given only before that stream starts (later calls pass None
        or the same value). Returns a Deferred of the server's ``watch`` reply
        (the Venue protocol ignores it); on failure it fires with None, and
        the error is logged and kept in ``watch_errors``.
        """
        if resume is not None:
            epoch, seq = resume
            if not isinstance(epoch, str) or not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
                raise ValueError(f"resume must be (epoch str, seq int >= 0), got {resume!r}")
            if (self.subscriber is not None or self._resume is not None) and resume != self._resume:
                raise ValueError("resume: the deal stream has already started from another position")
            self._resume = resume
        self._callbacks.setdefault(account, []).append(callback)
        d = self.call("watch", {"account": login_to_json(account)})

        def started(reply: Any) -> Any:
            self._start_stream(reply)
            return reply

        def failed(failure) -> None:
            self.watch_errors.append((account, failure.value))
            log.error("remote venue %s: watch %s failed: %s", self.name, account, failure.value)

        return d.addCallbacks(started, failed)

    def unwatch_deals(self, account: Login, callback: Callable[[MasterDeal], None]) -> None:
        """Stop calling ``callback`` (the server keeps publishing: other clients may watch)."""
        self._callbacks.get(account, []).remove(callback)

    def _start_stream(self, reply: Any) -> None:
        if self.subscriber is not None or self._closed:
            return
        if not isinstance(reply, dict):
            raise WireError("watch reply is not a JSON object")
        endpoint = self._deal_endpoints[0] or reply.get("endpoint")
        replay = self._deal_endpoints[1] or reply.get("replay_endpoint")
        if not isinstance(endpoint, str) or not isinstance(replay, str):
            raise WireError("watch reply: endpoint and replay_endpoint must be strings")
        resume = self._resume
        if resume is None:
            epoch, seq = reply.get("epoch"), reply.get("seq")
            if not isinstance(epoch, str) or not isinstance(seq, int):
                raise WireError("watch reply: epoch must be a string and seq an integer")
            resume = (epoch, seq)
        self.subscriber = Subscriber(self.ctx, endpoint, replay, ["deal."], self._deliver, resume=resume,
                                     on_lost=self.on_lost)
        if self._reactor is not None:
            self._drive_subscriber()
        self.subscriber.start()

    def _deliver(self, frame: Frame) -> None:
        if not frame.topic.startswith("deal."):
            return
        try:
            deal = deal_from_json(frame.body)
        except WireError as exc:
            self.bad_deals += 1
            log.warning("remote venue %s: bad deal frame %s dropped: %s", self.name, frame.header.id, exc)
            return
        for callback in list(self._callbacks.get(deal.account, ())):
            try:
                callback(deal)
            except Exception:
                log.exception("deal watcher failed on %s", deal.deal_id)

    def _log_lost(self, epoch: str, first: int, last: int | None) -> None:
        log.warning("remote venue %s: deal frames %s..%s of epoch %s cannot be replayed; backfill with deals_since",
                    self.name, first, "end" if last is None else last, epoch)

    # -- the manual API (drives the server's venue by hand) -----------------------------------

    def trade(self, account: Login, symbol: str, side: Side, amount: int | str | Decimal,
              sl: Decimal | None = None, tp: Decimal | None = None) -> Deferred:
        """A manual market order (``amount``: int volume, or lots as str/Decimal); fires with the PositionId."""
        return self.call("trade", {"account": login_to_json(account), "symbol": symbol, "side": side.value,
                                   "amount": _amount(amount), "sl": decimal_to_json(sl), "tp": decimal_to_json(tp)},
                         decode=lambda r: id_from_json(PositionId, _dict(r, "trade").get("position_id"),
                                                       "trade.position_id"))

    def close_position(self, account: Login, position_id: PositionId, amount: int | str | Decimal | None = None
                       ) -> Deferred:
        """Close a position manually (all of it, or ``amount``); fires with the closing MasterDeal."""
        return self.call("close", {"account": login_to_json(account), "position_id": id_to_json(position_id),
                                   "amount": None if amount is None else _amount(amount)}, decode=deal_from_json)

    def modify(self, account: Login, position_id: PositionId, sl: Decimal | None, tp: Decimal | None) -> Deferred:
        return self.call("modify", {"account": login_to_json(account), "position_id": id_to_json(position_id),
                                    "sl": decimal_to_json(sl), "tp": decimal_to_json(tp)}, decode=deal_from_json)

    def deposit(self, account: Login, amount: Decimal) -> Deferred:
        return self.call("deposit", {"account": login_to_json(account), "amount": decimal_to_json(amount)},
                         decode=deal_from_json)

    def step_prices(self, steps: int = 1) -> Deferred:
        return self.call("step_prices", {"steps": steps}, decode=lambda r: None)

    def ping(self) -> Deferred:
        return self.call("ping", {})


def _amount(amount: int | str | Decimal) -> int | str:
    if isinstance(amount, bool) or isinstance(amount, float):
        raise TypeError(f"amount must be an int volume or lots as str/Decimal, not {type(amount).__name__}")
    if isinstance(amount, int):
        return amount
    if isinstance(amount, Decimal):
        return str(amount)
    if isinstance(amount, str):
        return amount
    raise TypeError(f"amount must be an int volume or lots as str/Decimal, not {type(amount).__name__}")


def _list(value: Any, what: str) -> list:
    if not isinstance(value, list):
        raise WireError(f"{what} reply must be a JSON array")
    return value


def _dict(value: Any, what: str) -> dict:
    if not isinstance(value, dict):
        raise WireError(f"{what} reply must be a JSON object")
    return value
