"""The link to one EA (PROTOCOL.md): a DEALER for commands, a SUB for events, PINGs, the event stream's order.

``EALink(login, command_endpoint, event_endpoint, *, ctx, reactor, timeout_s, ping_s=1.0)``:

- **Requests**: ``request(cmd, **fields) -> Deferred`` firing with the reply's ``result``, or failing with
  :class:`~connectors.mt4.errors.EAError` (``ok: false``), :class:`LinkTimeout` (no reply within
  ``timeout_s``; a reply arriving later is dropped and counted) or :class:`LinkClosed` (``stop()``). Ids
  count from 1 per link. The venue maps a timeout of a trading command to ``AmbiguousOutcome``.
- **Driving**: on a reactor with ``addReader`` the two sockets are registered
  (:class:`bridge.bus.reactor.ReactorDriver`); on a bare clock (a test's ``Clock``) a ``LoopingCall`` drains
  them every :data:`POLL_S`, as the simulated EA's timer reads its commands.
- **Liveness**: a ``PING`` every ``ping_s``; :data:`DOWN_AFTER` unanswered in a row mark the link down
  (``status()``), the next answer up again. ZeroMQ reconnects both sockets by itself (a restarted EA on
  the same endpoints); the link learns of it from the next answer (a new epoch) or heartbeat.
- **The event stream** (once :meth:`follow` is called): ``(epoch, seq)`` as in PROTOCOL.md's "No event
  lost". In-order events go to ``on_events(list)``; a ``seq`` that skips, or a heartbeat or PING answer
  with a ``seq`` above the last event, asks ``REPLAY`` (events arriving meanwhile wait); a new epoch, or
  a REPLAY answered ``gap``, re-synchronises: ``PING`` (its ``seq`` is the new start; events up to it are
  dropped, events after it kept) and then ``on_lost(why)`` is called *before* any later event is handed
  on, so the owner rebuilds from the history read after that PING (nothing missed: everything up to the
  PING's ``seq`` is in the history by then; what comes after arrives as events, possibly twice, which
  the owner drops by deal id).
"""

from __future__ import annotations

import itertools
import logging
from typing import Callable

import zmq
from twisted.internet import defer
from twisted.internet.task import LoopingCall

from bridge.bus.curve import CurveKeys, connect_as_client
from bridge.bus.reactor import ReactorDriver
from connectors.mt4 import protocol as P
from connectors.mt4.errors import EAError

log = logging.getLogger(__name__)

#: a bare clock's link drains its sockets this often (seconds)
POLL_S = 0.001
#: PINGs unanswered in a row before the link counts as down
DOWN_AFTER = 3


class LinkTimeout(Exception):
    def __init__(self, cmd: str, login: int, timeout_s: float) -> None:
        super().__init__(f"mt4 {login}: no answer to {cmd} within {timeout_s} s")
        self.cmd = cmd


class LinkClosed(Exception):
    pass


def _noop(*_args) -> None:
    return None


class EALink:
    """One terminal's EA: commands, events, liveness."""

    def __init__(self, login: int, command_endpoint: str, event_endpoint: str, *, ctx: zmq.Context, reactor,
                 timeout_s: float = 10.0, ping_s: float = 1.0, curve: CurveKeys | None = None) -> None:
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        self.login = login
        self.command_endpoint = command_endpoint
        self.event_endpoint = event_endpoint
        self.reactor = reactor
        self.timeout_s = timeout_s
        self.ping_s = ping_s
        self.dealer = ctx.socket(zmq.DEALER)
        self.sub = ctx.socket(zmq.SUB)
        for s in (self.dealer, self.sub):
            s.setsockopt(zmq.LINGER, 0)
        self.sub.setsockopt(zmq.SUBSCRIBE, b"")
        self.curve = curve
        connect_as_client(self.dealer, command_endpoint, curve)  # CURVE (tcp:// with keys): before connecting
        connect_as_client(self.sub, event_endpoint, curve)
        self.dealer.connect(command_endpoint)
        self.sub.connect(event_endpoint)
        self.sockets = (self.dealer, self.sub)
        self.wake: Callable[[], None] = _noop
        self._ids = itertools.count(1)
        self._pending: dict[int, tuple[str, defer.Deferred, object]] = {}
        self._driver: ReactorDriver | None = None
        self._poll: LoopingCall | None = None
        self._pinger: LoopingCall | None = None
        self._closed = False
        self._started: list[defer.Deferred] = []
        # liveness and counters
        self.up = False
        self.answered_once = False
        self.unanswered_pings = 0
        self.timeouts = 0
        self.dropped_replies = 0
        self.bad_frames = 0
        self.last_error: str | None = None
        self.last_heartbeat: float | None = None
        self.ea_epoch: str | None = None  # as the last PING or heartbeat said
        # the event stream
        self.on_events: Callable[[list[dict]], None] = _noop
        self.on_lost: Callable[[str], None] = _noop
        self.following = False
        self.epoch: str | None = None
        self.seq = 0
        self.state = "idle"  # idle | syncing | replaying | live
        self._buffer: list[dict] = []
        self._synced: list[defer.Deferred] = []
        self._lost_why: str | None = None
        self.replays = 0
        self.resyncs = 0
        self.events_in = 0

    # -- lifecycle ----------------------------------------------------------------
    def start(self) -> defer.Deferred:
        """Start draining and PINGing; fires once a PING was answered."""
        if hasattr(self.reactor, "addReader"):
            self._driver = ReactorDriver(self.reactor, self)
            self._driver.start()
        else:
            self._poll = LoopingCall(self.on_readable)
            self._poll.clock = self.reactor
            self._poll.start(POLL_S, now=False)
        d = defer.Deferred()
        self._started.append(d)
        self._pinger = LoopingCall(self.ping)
        self._pinger.clock = self.reactor
        self._pinger.start(self.ping_s, now=True)
        return d

    def stop(self) -> None:
        if self._closed:
            return
        self._closed = True
        for loop in (self._poll, self._pinger):
            if loop is not None and loop.running:
                loop.stop()
        if self._driver is not None:
            self._driver.stop()
            self._driver = None
        pending, self._pending = self._pending, {}
        for cmd, d, timer in pending.values():
            timer.cancel()
            d.errback(LinkClosed(f"mt4 {self.login}: link closed with {cmd} unanswered"))
        self.dealer.close()
        self.sub.close()

    def status(self) -> dict:
        return {"login": self.login, "endpoint": self.command_endpoint, "up": self.up, "epoch": self.ea_epoch,
                "seq": self.seq, "stream": self.state, "pending": len(self._pending), "timeouts": self.timeouts,
                "replays": self.replays, "resyncs": self.resyncs, "dropped_replies": self.dropped_replies,
                "bad_frames": self.bad_frames, "last_error": self.last_error}

    # -- requests ------------------------------------------------------------------
    def request(self, cmd: str, **fields) -> defer.Deferred:
        if self._closed:
            return defer.fail(LinkClosed(f"mt4 {self.login}: link closed"))
        ident = next(self._ids)
        frame = P.encode({"id": ident, "cmd": cmd, **fields})
        d = defer.Deferred()
        timer = self.reactor.callLater(self.timeout_s, self._expire, ident)
        self._pending[ident] = (cmd, d, timer)
        try:
            self.dealer.send(frame, zmq.NOBLOCK)
        except zmq.ZMQError as exc:
            del self._pending[ident]
            timer.cancel()
            return defer.fail(LinkClosed(f"mt4 {self.login}: {cmd} not sent: {exc}"))
        self.wake()  # a send may consume the edge of the socket's descriptor
        return d

    def _expire(self, ident: int) -> None:
        entry = self._pending.pop(ident, None)
        if entry is None:
            return
        cmd, d, _ = entry
        self.timeouts += 1
        self.last_error = f"no answer to {cmd} within {self.timeout_s} s"
        d.errback(LinkTimeout(cmd, self.login, self.timeout_s))

    # -- reading ---------------------------------------------------------------------
    def on_readable(self) -> None:
        if self._closed:
            return
        while True:
            try:
                frame = self.dealer.recv(zmq.NOBLOCK)
            except zmq.Again:
                break
            self._reply(frame)
            if self._closed:
                return
        while True:
            try:
                parts = self.sub.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            self._published(parts)
            if self._closed:
                return

    def _reply(self, frame: bytes) -> None:
        try:
            reply = P.decode(frame)
        except P.FrameError as exc:
            self.bad_frames += 1
            log.warning("mt4 %s: bad reply frame: %s", self.login, exc)
            return
        entry = self._pending.pop(reply.get("id"), None) if isinstance(reply.get("id"), int) else None
        if entry is None:
            self.dropped_replies += 1
            return
        cmd, d, timer = entry
        timer.cancel()
        if reply.get("ok") is True:
            d.callback(reply.get("result", {}))
        else:
            d.errback(EAError(cmd, reply.get("error"), str(reply.get("text", ""))))

    def _published(self, parts: list[bytes]) -> None:
        if len(parts) != 2:
            self.bad_frames += 1
            return
        topic, body = parts
        try:
            message = P.decode(body)
        except P.FrameError:
            self.bad_frames += 1
            return
        if topic == P.TOPIC_HEARTBEAT:
            self.last_heartbeat = self.reactor.seconds()
            self.ea_epoch = message.get("epoch")
            self._position(message.get("epoch"), message.get("seq"))
        elif topic == P.TOPIC_EVENT:
            self.events_in += 1
            if not self.following:
                return
            if self.state in ("syncing", "replaying"):
                self._buffer.append(message)
            else:
                self._accept([message])
        else:
            self.bad_frames += 1

    # -- liveness ----------------------------------------------------------------------
    def ping(self) -> defer.Deferred:
        d = self.request(P.PING)
        d.addCallbacks(self._pinged, self._ping_failed)
        return d

    def _pinged(self, result: dict) -> dict:
        self.up = True
        self.unanswered_pings = 0
        self.ea_epoch = result.get("epoch")
        self.answered_once = True
        started, self._started = self._started, []
        for d in started:
            d.callback(result)
        if self.state == "syncing" and not self._sync_pending:
            self._sync()
        else:
            self._position(result.get("epoch"), result.get("seq"))
        return result

    def _ping_failed(self, failure) -> None:
        self.unanswered_pings += 1
        self.last_error = failure.getErrorMessage()
        if self.unanswered_pings >= DOWN_AFTER and self.up:
            self.up = False
            log.warning("mt4 %s: the EA does not answer (%s)", self.login, self.last_error)
        elif self.unanswered_pings == DOWN_AFTER and not self.answered_once and not self._closed:
            log.warning("mt4 %s: no answer from the EA at %s yet (%s); %s", self.login, self.command_endpoint,
                        self.last_error, self._why_silent())

    def _why_silent(self) -> str:
        """What to check when an EA never answered: with CURVE, a handshake that fails is silent by design."""
        if self.curve is None:
            return "is the EA attached (Experts tab: 'copybridge: ready') and are the endpoints its inputs?"
        return (f"CURVE is on: check that curve_server_public is this EA's public key ({self.curve.server_public}) "
                f"and that the EA lets this bridge's key {self.curve.public} in (its CurveClientsFile)")

    # -- the event stream ---------------------------------------------------------------
    def follow(self) -> defer.Deferred:
        """Track the event stream from now on; fires once synchronised (the PING's seq is the start)."""
        d = defer.Deferred()
        self._synced.append(d)
        if not self.following:
            self.following = True
            self._sync(None)
        elif self.state == "live":
            self._fire_synced()
        return d

    def unfollow(self) -> None:
        self.following = False
        self.state = "idle"
        self._buffer = []
        self.epoch = None
        self.seq = 0

    _sync_pending = False

    def _sync(self, why: str | None = None) -> None:
        """PING for the stream's start; then ``on_lost(why)`` (if any), then the events after it."""
        if why is not None:
            self._lost_why = why if self._lost_why is None else self._lost_why
        self.state = "syncing"
        self._sync_pending = True
        d = self.request(P.PING)
        d.addCallbacks(self._synced_at, self._sync_failed)

    def _synced_at(self, result: dict) -> None:
        self._sync_pending = False
        if not self.following:
            return
        self.up = True
        self.epoch, self.seq = result["epoch"], result["seq"]
        self.ea_epoch = self.epoch
        self.state = "live"
        why, self._lost_why = self._lost_why, None
        if why is not None:
            self.resyncs += 1
            log.info("mt4 %s: event stream re-synchronised at %s/%s (%s)", self.login, self.epoch, self.seq, why)
            self.on_lost(why)
        self._fire_synced()
        self._accept(self._take_buffer())

    def _sync_failed(self, failure) -> None:
        self._sync_pending = False
        self.last_error = failure.getErrorMessage()
        # stays "syncing": the next answered PING tries again (events keep waiting in the buffer)

    def _take_buffer(self) -> list[dict]:
        """The waiting events: the current epoch's by seq, then any other's in arrival order."""
        buffered, self._buffer = self._buffer, []
        return sorted(buffered, key=lambda e: (0, e.get("seq") or 0) if e.get("epoch") == self.epoch else (1, 0))

    def _fire_synced(self) -> None:
        synced, self._synced = self._synced, []
        for d in synced:
            d.callback(None)

    def _position(self, epoch, seq) -> None:
        """A heartbeat's or PING's (epoch, seq): a new epoch re-synchronises, a seq ahead asks REPLAY."""
        if not self.following or self.state != "live" or epoch is None:
            return
        if epoch != self.epoch:
            self._sync("the EA restarted (new epoch)")
        elif isinstance(seq, int) and seq > self.seq:
            self._replay()

    def _accept(self, events: list[dict]) -> None:
        out = []
        for n, event in enumerate(events):
            if event.get("epoch") != self.epoch:
                self._deliver(out)
                self._buffer = events[n:] + self._buffer
                self._sync("the EA restarted (new epoch)")
                return
            seq = event.get("seq")
            if not isinstance(seq, int) or seq <= self.seq:
                continue  # seen already (a replayed event arriving again)
            if seq != self.seq + 1:
                self._deliver(out)
                self._buffer = events[n:] + self._buffer
                self._replay()
                return
            self.seq = seq
            out.append(event)
        self._deliver(out)

    def _deliver(self, events: list[dict]) -> None:
        if events:
            self.on_events(events)

    def _replay(self) -> None:
        self.state = "replaying"
        self.replays += 1
        d = self.request(P.REPLAY, after_seq=self.seq)
        d.addCallbacks(self._replayed, self._replay_failed)

    def _replayed(self, result: dict) -> None:
        if not self.following:
            return
        if result.get("epoch") != self.epoch:
            self._sync("the EA restarted (new epoch)")
            return
        if result.get("gap"):
            self._sync("events lost (REPLAY answered gap)")
            return
        self.state = "live"
        self._accept(list(result.get("events", [])) + self._take_buffer())

    def _replay_failed(self, failure) -> None:
        self.last_error = failure.getErrorMessage()
        if self.following:
            self.state = "live"  # the next heartbeat, PING answer or event asks again
