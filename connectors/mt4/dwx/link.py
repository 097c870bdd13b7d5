"""The link to one DWX EA: a PUSH for commands, a PULL for replies, one command at a time.

``DwxLink(login, command_endpoint, reply_endpoint, *, ctx, reactor, timeout_s, heartbeat_s=1.0)``

DWX replies carry no request id, so the link keeps **one command in flight**; the others wait in order.
``request(text)`` fires with the parsed :class:`~.reply.Reply`, or fails with :class:`DwxTimeout` (no
answer within ``timeout_s``), :class:`DwxClosed` (``stop()``) or :class:`~.reply.ReplyError` (an
unreadable answer: one line, logged).

- A reply is the current command's when its ``_action`` is the one that command gets
  (``protocol.REPLY_ACTION``) or it has none (the EA's ``..._ABORTED_COMMAND`` words). Anything else is
  dropped and counted (``stale``). Empty frames (the EA sends one after every reply) are skipped.
- After a timeout the late answer may still come, and an answer with no ``_action`` cannot be told from the
  next command's. So the link first sends ``HEARTBEAT`` and drops every frame until a heartbeat's answer
  (``resyncs``): the EA answers in order, so what follows is fresh. Queued commands wait for it. Such a
  barrier heartbeat is sent again every :data:`BARRIER_S` until answered; ``start()`` begins with one (and
  fails with :class:`DwxTimeout` if none is answered within ``timeout_s``), because the EA drops a reply
  its peer cannot take yet (a PULL still connecting).
- Liveness: a ``HEARTBEAT`` every ``heartbeat_s`` when nothing else was answered meanwhile; ``up`` is whether
  the last command (of any kind) was answered.
- Driving: the PULL socket is registered with the reactor through :class:`bridge.bus.reactor.ReactorDriver`
  when it has ``addReader``; on a bare clock (a test's ``Clock``) a ``LoopingCall`` reads it every
  millisecond of that clock.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Callable

import zmq
from twisted.internet import defer
from twisted.internet.task import LoopingCall

from bridge.bus.reactor import ReactorDriver
from connectors.mt4.dwx import protocol as D
from connectors.mt4.dwx.reply import ReplyError, parse

log = logging.getLogger(__name__)

#: how often a bare clock's link reads its socket (seconds of that clock)
READ_EVERY_S = 0.001
#: a barrier HEARTBEAT unanswered this long is sent again (the EA drops a reply its peer cannot take yet)
BARRIER_S = 0.25


class DwxTimeout(Exception):
    pass


class DwxClosed(Exception):
    pass


class DwxLink:
    def __init__(self, login: int, command_endpoint: str, reply_endpoint: str, *, ctx: zmq.Context, reactor,
                 timeout_s: float = 10.0, heartbeat_s: float = 1.0) -> None:
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        self.login = login
        self.command_endpoint = command_endpoint
        self.reply_endpoint = reply_endpoint
        self.reactor = reactor
        self.timeout_s = timeout_s
        self.heartbeat_s = heartbeat_s
        self.push = ctx.socket(zmq.PUSH)
        self.pull = ctx.socket(zmq.PULL)
        for s in (self.push, self.pull):
            s.setsockopt(zmq.LINGER, 0)
        self.push.connect(command_endpoint)
        self.pull.connect(reply_endpoint)
        self.sockets = (self.pull,)
        self.wake: Callable[[], None] = lambda: None
        self._queue: deque[tuple[str, str | None, defer.Deferred]] = deque()
        self._current: tuple[str, str | None, defer.Deferred, object] | None = None
        self._resync = False  # a command timed out: HEARTBEAT first, drop what comes before its answer
        self._driver: ReactorDriver | None = None
        self._reader: LoopingCall | None = None
        self._beat: LoopingCall | None = None
        self._closed = False
        self._started: defer.Deferred | None = None
        self._start_timer = None
        self._answered_since_beat = False
        self.up = False
        self.timeouts = 0
        self.stale = 0
        self.bad_replies = 0
        self.resyncs = 0
        self.last_error: str | None = None

    # -- lifecycle ------------------------------------------------------------------
    def start(self) -> defer.Deferred:
        """Start reading and heartbeating; fires once the EA answered a ``HEARTBEAT``."""
        if hasattr(self.reactor, "addReader"):
            self._driver = ReactorDriver(self.reactor, self)
            self._driver.start()
        else:
            self._reader = LoopingCall(self.on_readable)
            self._reader.clock = self.reactor
            self._reader.start(READ_EVERY_S, now=False)
        self._beat = LoopingCall(self._heartbeat)
        self._beat.clock = self.reactor
        self._beat.start(self.heartbeat_s, now=False)
        # the first command is a barrier HEARTBEAT, sent again until answered: a reply the EA sends before
        # our PULL is connected is dropped (its PUSH sends without blocking)
        self._started = defer.Deferred()
        self._start_timer = self.reactor.callLater(self.timeout_s, self._start_failed)
        self._resync = True
        self._next()
        return self._started

    def _start_failed(self) -> None:
        if not self._started.called:
            self._started.errback(DwxTimeout(f"dwx {self.login}: no answer to HEARTBEAT within {self.timeout_s} s"))

    def stop(self) -> None:
        if self._closed:
            return
        self._closed = True
        for loop in (self._reader, self._beat):
            if loop is not None and loop.running:
                loop.stop()
        if self._start_timer is not None and self._start_timer.active():
            self._start_timer.cancel()
        if self._started is not None and not self._started.called:
            self._started.errback(DwxClosed(f"dwx {self.login}: link closed before the EA answered"))
        if self._driver is not None:
            self._driver.stop()
        waiting = list(self._queue)
        self._queue.clear()
        if self._current is not None:
            text, _, d, timer = self._current
            self._current = None
            timer.cancel()
            waiting.insert(0, (text, None, d))
        for text, _, d in waiting:
            d.errback(DwxClosed(f"dwx {self.login}: link closed with {_verb(text)} unanswered"))
        self.push.close()
        self.pull.close()

    def status(self) -> dict:
        return {"login": self.login, "endpoint": self.command_endpoint, "provider": "dwx", "up": self.up,
                "queued": len(self._queue) + (self._current is not None), "timeouts": self.timeouts,
                "stale": self.stale, "bad_replies": self.bad_replies, "resyncs": self.resyncs,
                "last_error": self.last_error}

    # -- requests ---------------------------------------------------------------------
    def request(self, text: str) -> defer.Deferred:
        """Send ``text`` once the commands before it are answered; fires with its reply."""
        if self._closed:
            return defer.fail(DwxClosed(f"dwx {self.login}: link closed"))
        d = defer.Deferred()
        self._queue.append((text, D.REPLY_ACTION.get(_verb(text)), d))
        self._next()
        return d

    def _next(self) -> None:
        if self._current is not None or self._closed:
            return
        timeout = self.timeout_s
        if self._resync:
            text, action, d = D.HEARTBEAT, "heartbeat", defer.Deferred()
            d.addCallbacks(self._resynced, lambda f: None)
            timeout = min(timeout, BARRIER_S)
        elif self._queue:
            text, action, d = self._queue.popleft()
        else:
            return
        try:
            self.push.send_string(text, zmq.NOBLOCK)
        except zmq.ZMQError as exc:  # the EA is not connected and the pipe is full
            self.last_error = f"{_verb(text)} not sent: {exc}"
            if not self._resync:
                d.errback(DwxClosed(f"dwx {self.login}: {self.last_error}"))
            self.reactor.callLater(self.timeout_s, self._next) if self._resync else self._next()
            return
        self._current = (text, action, d, self.reactor.callLater(timeout, self._expire, timeout))
        self.wake()

    def _expire(self, timeout: float) -> None:
        if self._current is None:
            return
        text, _, d, _ = self._current
        self._current = None
        self.timeouts += 1
        self.up = False
        self.last_error = f"no answer to {_verb(text)} within {timeout} s"
        self._resync = True
        d.errback(DwxTimeout(f"dwx {self.login}: {self.last_error}"))
        self._next()

    def _resynced(self, _reply) -> None:
        self._resync = False
        if self._started is not None and not self._started.called:
            self._start_timer.cancel()
            self._started.callback(None)
        else:
            self.resyncs += 1

    # -- replies ------------------------------------------------------------------------
    def on_readable(self) -> None:
        while not self._closed:
            try:
                frame = self.pull.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            if frame:
                self._answer(frame)

    def _answer(self, frame: bytes) -> None:
        try:
            reply = parse(frame)
        except ReplyError as exc:
            self.bad_replies += 1
            self.last_error = f"unreadable reply: {exc}"
            log.warning("dwx %s: unreadable reply: %s", self.login, exc)
            if self._current is not None and not self._resync:
                self._finish().errback(exc)
            return
        action = reply.get("_action")
        if self._current is None or (action is not None and action != self._current[1]) or \
                (self._resync and action != "heartbeat"):
            self.stale += 1
            return
        self._finish().callback(reply)

    def _finish(self) -> defer.Deferred:
        _, _, d, timer = self._current
        self._current = None
        timer.cancel()
        self.up = True
        self._answered_since_beat = True
        self.reactor.callLater(0, self._next)
        return d

    def _heartbeat(self) -> None:
        if not self._answered_since_beat and self._current is None and not self._queue:
            self.request(D.HEARTBEAT).addErrback(lambda f: None)
        self._answered_since_beat = False


def _verb(text: str) -> str:
    parts = text.split(";", 2)
    return parts[1] if parts[0] == "TRADE" and len(parts) > 1 else parts[0]
