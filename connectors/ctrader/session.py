"""One pooled connection's session: connect, authenticate, keep accounts authorised, reconnect.

After every (re)connect: ``ApplicationAuthReq``, then ``AccountAuthReq`` for each
of the session's accounts (many accounts on one connection); each authorised
account is handed to ``owner.account_ready(session, ctid)`` (reconcile and deal
backfill). ``CH_ACCESS_TOKEN_INVALID`` / ``OA_AUTH_TOKEN_EXPIRED`` on an account
auth -> refresh the token, then authorise again. ``AccountDisconnectEvent`` ->
authorise that account again; ``AccountsTokenInvalidatedEvent`` -> refresh the
token if nobody has yet, then authorise the accounts again.
``ClientDisconnectEvent`` is logged; the close that follows reconnects.

Reconnect: exponential backoff (``base_s`` x 2^attempt, at most ``max_s``) with
jitter (x 0.5..1.5 from the injected ``random.Random``) on the injected clock.
A failed attempt (TCP refused, or a TLS handshake that failed because the
certificate or its host name did not verify) is logged in one line with the
reason and the delay before the next; nothing was sent on it, and requests
meanwhile fail with ``VenueUnavailable``.

Requests: :meth:`request` fires with the first answer carrying its
``clientMsgId`` (an error answer fails with ``OpenApiError``); :meth:`stream`
hands every frame carrying it to a handler until the handler says it is done.
A request never written fails with ``VenueUnavailable``; one written whose
connection is lost fails with ``ConnectionLost``; no answer in time:
``ReplyTimeout``. A request answered REQUEST_FREQUENCY_EXCEEDED was not
processed: it is sent again on the same connection after ``busy`` backoff
(0.25 s x 2^n, at most 2 s, jittered, on the clock), at most ``busy_retries``
times, then fails with ``VenueUnavailable`` (also if the connection ends
meanwhile). A request for an account answered OA_AUTH_TOKEN_EXPIRED (or
CH_ACCESS_TOKEN_INVALID) was not processed either: the token is refreshed, the
account authorised again, and the request sent once more (``VenueUnavailable``
if that takes longer than the request's timeout). Handlers never see these
refusals.
"""

from __future__ import annotations

import itertools
import logging
from dataclasses import dataclass

from ctrader_open_api.messages import OpenApiMessages_pb2 as oa
from twisted.internet import defer

from connectors.ctrader.connection import OpenApiFactory
from connectors.ctrader.wire import OpenApiError, error_of, name_of
from connectors.interface import VenueUnavailable

log = logging.getLogger(__name__)

TOKEN_ERRORS = frozenset({"CH_ACCESS_TOKEN_INVALID", "OA_AUTH_TOKEN_EXPIRED"})


class ConnectionLost(Exception):
    """The connection a request was written on ended before it was answered."""


class ReplyTimeout(Exception):
    """No answer to a written request in time."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    host: str
    port: int
    tls: object  # an IOpenSSLClientConnectionCreator (optionsForClientTLS: verifies certificate and host name)


@dataclass(frozen=True, slots=True)
class Backoff:
    base_s: float = 0.5
    max_s: float = 30.0

    def delay(self, attempt: int, rng) -> float:
        return min(self.max_s, self.base_s * 2 ** attempt) * (0.5 + rng.random())


BUSY = "REQUEST_FREQUENCY_EXCEEDED"
BUSY_BACKOFF = Backoff(0.25, 2.0)


class _Pending:
    __slots__ = ("handler", "fail", "sent", "timer")

    def __init__(self, handler, fail) -> None:
        self.handler, self.fail, self.sent, self.timer = handler, fail, False, None


class Session:
    def __init__(self, name: str, owner, endpoint: Endpoint, app: tuple[str, str], accounts: list[int], tokens,
                 *, clock, rng, reactor, timeout_s: float = 5.0, backoff: Backoff = Backoff(),
                 connection: dict | None = None, busy: Backoff = BUSY_BACKOFF, busy_retries: int = 5) -> None:
        self.name = name
        self.owner = owner
        self.endpoint = endpoint
        self.app = app
        self.accounts = list(accounts)
        self.tokens = tokens
        self.clock, self.rng, self.reactor = clock, rng, reactor
        self.timeout_s = timeout_s
        self.backoff = backoff
        self.busy, self.busy_retries = busy, busy_retries
        self.busy_refusals = 0  # REQUEST_FREQUENCY_EXCEEDED answers received
        self.token_refusals = 0  # OA_AUTH_TOKEN_EXPIRED / CH_ACCESS_TOKEN_INVALID answers to account requests
        self.connection_options = connection or {}
        self.protocol = None  # the live OpenApiProtocol, once application-authenticated
        self.ready: set[int] = set()
        self.authorised_with: dict[int, str] = {}  # account -> the access token of its last auth
        self.attempt = 0
        self.connects = 0  # connections that completed the TLS handshake
        self.failures = 0  # attempts that did not (TCP refused, handshake failed)
        self.factory: OpenApiFactory | None = None  # of the latest attempt
        self.stopped = False
        self.last_error: str | None = None  # why the last connection ended
        self._pending: dict[str, _Pending] = {}
        self._waiting: dict[int, tuple] = {}  # refused unprocessed, to be sent again: (timer, fail)
        self._on_ready: dict[int, list] = {}  # account -> resends waiting for it to be authorised again
        self._ids = itertools.count(1)
        self._retry = None
        self._connector = None
        self._first = defer.Deferred()

    # -- lifecycle ---------------------------------------------------------
    def start(self) -> defer.Deferred:
        """Connect; fires once the session's accounts are authorised the first time."""
        self._connect()
        return self._first

    def stop(self) -> None:
        self.stopped = True
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        if self._connector is not None:
            self._connector.disconnect()

    def drop(self, why: str) -> None:
        """Abort the connection (it reconnects): used after a protocol error or by tests."""
        if self._proto is not None:
            self._proto.abort(why)

    _proto = None

    def _connect(self) -> None:
        self.factory = OpenApiFactory(self, self.clock, **self.connection_options)
        e = self.endpoint
        self._connector = self.reactor.connectSSL(e.host, e.port, self.factory, e.tls)

    def failed(self, why: str) -> None:
        """A connection attempt that never got through TCP and the TLS handshake."""
        self.failures += 1
        self.last_error = why
        if self.stopped:
            return
        delay = self._schedule_reconnect()
        log.warning("ctrader %s: cannot connect to %s:%d: %s; retrying in %.1f s", self.name, self.endpoint.host,
                    self.endpoint.port, " ".join(why.split()), delay)

    def _schedule_reconnect(self) -> float:
        if self.stopped:
            return 0.0
        delay = self.backoff.delay(self.attempt, self.rng)
        self.attempt += 1
        self._retry = self.clock.callLater(delay, self._connect)
        return delay

    def made(self, protocol) -> None:
        self._proto = protocol
        self.connects += 1
        d = self._call(protocol, oa.ProtoOAApplicationAuthReq(clientId=self.app[0], clientSecret=self.app[1]))
        d.addCallbacks(lambda _: self._app_ready(protocol), lambda f: self._app_failed(protocol, f))

    def _app_failed(self, protocol, failure) -> None:
        log.error("ctrader %s: application auth failed: %s", self.name, failure.getErrorMessage())
        protocol.abort(f"application auth failed: {failure.getErrorMessage()}")

    def _app_ready(self, protocol) -> None:
        self.protocol = protocol
        self.attempt = 0
        for ctid in self.accounts:
            self.authorise(ctid)

    def authorise(self, ctid: int, retried: bool = False) -> None:
        protocol = self.protocol
        if protocol is None:
            return
        self.ready.discard(ctid)
        access = self.authorised_with[ctid] = self.tokens.access(ctid)
        d = self._call(protocol, oa.ProtoOAAccountAuthReq(ctidTraderAccountId=ctid, accessToken=access))

        def authorised(_) -> None:
            self.ready.add(ctid)
            self.owner.account_ready(self, ctid)
            for resend in self._on_ready.pop(ctid, []):
                resend()
            if self.ready >= set(self.accounts) and not self._first.called:
                self._first.callback(self)

        def refused(failure) -> None:
            if failure.check(OpenApiError) and failure.value.code in TOKEN_ERRORS and not retried:
                self.tokens.refresh(ctid, stale=access).addCallbacks(
                    lambda _: self.authorise(ctid, retried=True),
                    lambda f: log.error("ctrader %s: account %d: %s", self.name, ctid, f.getErrorMessage()))
            elif not failure.check(ConnectionLost, VenueUnavailable, ReplyTimeout):
                log.error("ctrader %s: account %d not authorised: %s", self.name, ctid, failure.getErrorMessage())
        d.addCallbacks(authorised, refused)

    def lost(self, protocol, why: str) -> None:
        if protocol is not self._proto:
            return
        if self.stopped:
            log.info("ctrader %s: connection closed (stopping)", self.name)
        else:
            log.warning("ctrader %s: connection lost: %s", self.name, why)
        self.last_error = why
        self._proto = self.protocol = None
        lost = list(self.ready)
        self.ready.clear()
        pending, self._pending = self._pending, {}
        for p in pending.values():
            if p.timer is not None and p.timer.active():
                p.timer.cancel()
            p.fail(ConnectionLost(why) if p.sent else VenueUnavailable(f"not sent: {why}"))
        waiting, self._waiting = self._waiting, {}
        self._on_ready.clear()
        for call, fail in waiting.values():  # refused unprocessed, waiting to be sent again: never executed
            if call.active():
                call.cancel()
            fail(VenueUnavailable(f"not sent again: {why}"))
        for ctid in lost:
            self.owner.account_down(ctid)
        self._schedule_reconnect()

    # -- requests ----------------------------------------------------------
    def request(self, message, timeout_s: float | None = None) -> defer.Deferred:
        """The first answer to ``message``; needs the application authorised (else VenueUnavailable)."""
        if self.protocol is None:
            return defer.fail(VenueUnavailable(f"ctrader {self.name}: not connected"))
        return self._call(self.protocol, message, timeout_s)

    def _call(self, protocol, message, timeout_s: float | None = None) -> defer.Deferred:
        d = defer.Deferred()

        def handle(answer) -> bool:
            error = error_of(answer)
            d.errback(error) if error else d.callback(answer)
            return True
        self._send(protocol, message, handle, d.errback, timeout_s)
        return d

    def stream(self, message, handler, fail, on_sent=lambda: None, timeout_s: float | None = None) -> None:
        """Every frame answering ``message`` to ``handler`` (True when done); ``fail(exc)`` on a failure."""
        if self.protocol is None:
            return fail(VenueUnavailable(f"ctrader {self.name}: not connected"))
        self._send(self.protocol, message, handler, fail, timeout_s, on_sent)

    def _send(self, protocol, message, handler, fail, timeout_s, on_sent=lambda: None, tries: int = 0,
              reauthorised: bool = False) -> None:
        mid = f"{self.name}-{next(self._ids)}"

        def answer(frame) -> bool:  # refusals of a request that was not processed: send it again
            code = getattr(error_of(frame), "code", None)
            if code == BUSY:
                self._resend_later(protocol, message, handler, fail, timeout_s, tries)
                return True
            ctid = self._account_of(message)
            if code in TOKEN_ERRORS and ctid is not None and not reauthorised:
                self._resend_when_ready(protocol, message, handler, fail, timeout_s, ctid)
                return True
            return handler(frame)
        pending = _Pending(answer, fail)
        self._pending[mid] = pending

        def sent() -> None:
            pending.sent = True
            pending.timer = self.clock.callLater(timeout_s or self.timeout_s, self._timeout, mid, message)
            on_sent()

        def unsent() -> None:
            if self._pending.pop(mid, None) is not None:
                fail(VenueUnavailable(f"ctrader {self.name}: not sent"))
        protocol.send(message, mid, sent, unsent)

    def _resend_later(self, protocol, message, handler, fail, timeout_s, tries: int) -> None:
        self.busy_refusals += 1
        what = name_of(message)
        if tries >= self.busy_retries:
            log.warning("ctrader %s: %s refused %d times (%s): giving up", self.name, what, tries + 1, BUSY)
            return fail(VenueUnavailable(f"ctrader {self.name}: {what} refused {tries + 1} times: {BUSY} "
                                         "(not processed)"))
        ticket = next(self._ids)

        def resend() -> None:
            self._waiting.pop(ticket, None)
            if protocol is not self._proto or self.stopped:
                return fail(VenueUnavailable(f"ctrader {self.name}: {what} not sent again: connection gone"))
            self._send(protocol, message, handler, fail, timeout_s, tries=tries + 1)
        delay = self.busy.delay(tries, self.rng)
        log.info("ctrader %s: %s refused (%s): sending it again in %.2f s", self.name, what, BUSY, delay)
        self._waiting[ticket] = (self.clock.callLater(delay, resend), fail)

    def _account_of(self, message) -> int | None:
        ctid = getattr(message, "ctidTraderAccountId", None)
        return ctid if ctid in self.accounts and name_of(message) != "ProtoOAAccountAuthReq" else None

    def _resend_when_ready(self, protocol, message, handler, fail, timeout_s, ctid: int) -> None:
        """The token ``ctid`` was authorised with expired: refresh it, authorise again, then send once more."""
        self.token_refusals += 1
        what, ticket = name_of(message), next(self._ids)

        def go(ok: bool) -> None:
            entry = self._waiting.pop(ticket, None)
            if entry is None:
                return  # failed already (connection lost)
            if entry[0].active():
                entry[0].cancel()
            if ok and protocol is self._proto and not self.stopped:
                return self._send(protocol, message, handler, fail, timeout_s, reauthorised=True)
            fail(VenueUnavailable(f"ctrader {self.name}: {what} not sent again: account {ctid} not authorised "
                                  "again in time"))
        self._waiting[ticket] = (self.clock.callLater(timeout_s or self.timeout_s, go, False), fail)
        self._on_ready.setdefault(ctid, []).append(lambda: go(True))
        if ctid in self.ready:  # the first refusal for this account
            log.warning("ctrader %s: access token of account %d expired: refreshing it", self.name, ctid)
            self._reauthorise([ctid], refresh=True)

    def _timeout(self, mid: str, message) -> None:
        pending = self._pending.pop(mid, None)
        if pending is not None:
            pending.fail(ReplyTimeout(f"no answer to {name_of(message)} in {self.timeout_s:g} s"))

    # -- frames ------------------------------------------------------------
    def frame(self, mid: str | None, message) -> None:
        name = name_of(message)
        if name in ("ProtoOAExecutionEvent", "ProtoOASymbolChangedEvent"):
            self.owner.event(self, message)
        pending = self._pending.get(mid) if mid is not None else None
        if pending is not None:
            if pending.handler(message):
                del self._pending[mid]
                if pending.timer is not None and pending.timer.active():
                    pending.timer.cancel()
            return
        if name == "ProtoOAAccountDisconnectEvent":
            log.warning("ctrader %s: account %d disconnected by the server", self.name, message.ctidTraderAccountId)
            self._reauthorise([message.ctidTraderAccountId], refresh=False)
        elif name == "ProtoOAAccountsTokenInvalidatedEvent":
            log.warning("ctrader %s: token invalidated for %s (%s)", self.name, list(message.ctidTraderAccountIds),
                        message.reason)
            self._reauthorise(list(message.ctidTraderAccountIds), refresh=True)
        elif name == "ProtoOAClientDisconnectEvent":
            log.warning("ctrader %s: the server is closing the connection: %s", self.name, message.reason)

    def _reauthorise(self, ctids: list[int], refresh: bool) -> None:
        for ctid in ctids:
            if ctid not in self.accounts:
                continue
            self.ready.discard(ctid)
            self.owner.account_down(ctid)
        mine = [c for c in ctids if c in self.accounts]
        if not mine:
            return
        if refresh:
            used = self.authorised_with.get(mine[0])
            self.tokens.refresh(mine[0], stale=used).addCallbacks(
                lambda _: [self.authorise(c) for c in mine],
                lambda f: [self.authorise(c) for c in mine])  # someone else refreshed: the new token may work
        else:
            for ctid in mine:
                self.authorise(ctid)
