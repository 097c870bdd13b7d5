"""Publisher and subscriber with sequence numbers, gap detection and replay.

The ZeroMQ guide's Clone pattern, reduced to what the bridge needs:

* A :class:`Publisher` sends every frame on a PUB socket and keeps the last
  ``history`` frames. A ROUTER socket beside it answers replay requests.
* A :class:`Subscriber` (SUB for live frames, DEALER for requests) delivers
  frames to its handler strictly in sequence order, each exactly once:

  - a frame below the expected sequence is a duplicate: counted, dropped;
  - a frame above it is a gap (a slow joiner, a high-water mark, a restart):
    the frame waits, and the subscriber asks the publisher to replay from the
    expected sequence; replayed frames fill the gap, then the waiting ones go;
  - at start the subscriber asks for a replay from where its owner says it
    stopped (``resume``), so nothing published while it was down is lost;
  - the publisher's heartbeat (topic ``bus.heartbeat``, carrying its last
    sequence number and consuming none) reveals frames lost at the tail;
  - a replay request unanswered after ``replay_timeout_s`` (the publisher
    restarted while it was under way) is sent again at the next frame;
  - if the publisher no longer holds what is missing (its history is shorter,
    or it restarted with a new ``epoch``), the subscriber reports the range to
    ``on_lost`` so its owner can recover it from the source of truth (a
    venue's deal history), then carries on from what the publisher has.

Replay protocol on the ROUTER/DEALER pair (JSON bodies):

=================================  ===============================================
request (DEALER -> ROUTER)         reply (ROUTER -> DEALER)
=================================  ===============================================
``replay`` ``{"epoch", "from"}``   ``gone`` ``{"epoch", "oldest"}`` when ``from`` is
                                   older than the history or of another epoch;
                                   then ``frame`` + the 3 frame parts for every
                                   frame from ``max(from, oldest)``; then ``end``
                                   ``{"epoch", "last"}``
``command`` ``{"name", "args"}``   ``ok`` ``{"name"}`` after the publisher's
                                   ``on_command`` ran (e.g. a backfill request)
=================================  ===============================================

Both classes are reactor-agnostic: they expose ``sockets`` and
``on_readable()`` (drain every socket), and call ``wake()`` after they send on
a socket they also read, because a ZeroMQ descriptor is edge-triggered. The
daemon drives them from Twisted (:mod:`bridge.bus.reactor`); tests drive them
with a plain ``zmq.Poller``.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections import deque
from typing import Callable

import zmq

from bridge.bus.curve import CurveKeys, connect_as_client, serve
from bridge.bus.frame import HEARTBEAT, Frame, FrameError, Header, decode, describe

log = logging.getLogger("bridge.bus")

DEFAULT_HISTORY = 100_000
DEFAULT_HWM = 100_000


def _noop() -> None:
    return None


def _bind(socket: zmq.Socket, endpoint: str, patience_s: float = 2.0) -> None:
    """Bind, waiting briefly if the address is still held.

    ZeroMQ closes a listener on its I/O thread after ``close()`` returns, so a
    publisher restarted within the same process (a connector service restart)
    can find its port still taken for a few milliseconds.
    """
    deadline = time.monotonic() + patience_s
    while True:
        try:
            socket.bind(endpoint)
            return
        except zmq.ZMQError as exc:
            if exc.errno != zmq.EADDRINUSE or time.monotonic() > deadline:
                raise
            time.sleep(0.005)


class Publisher:
    def __init__(self, ctx: zmq.Context, endpoint: str, replay_endpoint: str, src: str, *,
                 history: int = DEFAULT_HISTORY, hwm: int = DEFAULT_HWM, epoch: str | None = None,
                 clock_ns: Callable[[], int] = time.time_ns,
                 on_command: Callable[[str, dict], None] | None = None, curve: CurveKeys | None = None) -> None:
        self.src = src
        self.epoch = epoch or uuid.uuid4().hex[:12]
        self.seq = 0
        self.clock_ns = clock_ns
        self.on_command = on_command
        self.history: deque[tuple[int, list[bytes]]] = deque(maxlen=history)
        self.bad_requests = 0
        self.wake: Callable[[], None] = _noop
        self.pub = ctx.socket(zmq.PUB)
        self.pub.setsockopt(zmq.SNDHWM, hwm)
        self.pub.setsockopt(zmq.LINGER, 0)
        serve(self.pub, endpoint, curve)  # CURVE (tcp:// with keys): set once, before binding
        _bind(self.pub, endpoint)
        self.router = ctx.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.LINGER, 0)
        serve(self.router, replay_endpoint, curve)
        _bind(self.router, replay_endpoint)
        # the addresses actually bound (a "tcp://127.0.0.1:*" endpoint gets its port here)
        self.endpoint = self.pub.getsockopt_string(zmq.LAST_ENDPOINT)
        self.replay_endpoint = self.router.getsockopt_string(zmq.LAST_ENDPOINT)
        self.sockets = (self.router,)

    def publish(self, topic: str, body: dict, origin_ns: int | None = None) -> Frame:
        self.seq += 1
        now = self.clock_ns()
        frame = Frame(topic, Header(self.src, self.epoch, self.seq, now, origin_ns or now), body)
        parts = frame.encode()
        self.history.append((self.seq, parts))
        self.pub.send_multipart(parts)  # PUB never blocks: at the high-water mark it drops, replay heals
        return frame

    def heartbeat(self) -> None:
        """Announce the epoch and last sequence number (topic ``bus.heartbeat``), consuming none.

        A frame lost at the tail (the last ones before a quiet spell) leaves no
        later frame to reveal the gap; the heartbeat does. The daemon sends one
        every ``heartbeat_interval``.
        """
        now = self.clock_ns()
        self.pub.send_multipart(Frame(HEARTBEAT, Header(self.src, self.epoch, self.seq, now, now), {}).encode())

    def on_readable(self) -> None:
        while True:
            try:
                parts = self.router.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            self._answer(parts)

    def _answer(self, parts: list[bytes]) -> None:
        identity = parts[0]
        try:
            if len(parts) != 3:
                raise ValueError(f"expected identity, command, body; got {len(parts)} parts")
            command, body = parts[1], json.loads(parts[2])
            if not isinstance(body, dict):
                raise ValueError("body is not a JSON object")
            if command == b"replay":
                self._replay(identity, body.get("epoch"), int(body.get("from", 1)))
            elif command == b"command" and self.on_command is not None:
                name = str(body.get("name"))
                self.on_command(name, body.get("args") or {})
                self.router.send_multipart([identity, b"ok", json.dumps({"name": name}).encode()])
            else:
                raise ValueError(f"unknown request {command!r}")
        except (ValueError, TypeError) as exc:
            self.bad_requests += 1
            log.warning("bus: bad replay request dropped: %s (%s)", exc, describe(parts[1:]))
        self.wake()

    def _replay(self, identity: bytes, epoch: str | None, start: int) -> None:
        oldest = self.history[0][0] if self.history else self.seq + 1
        if epoch not in (None, self.epoch) or start < oldest:
            notice = {"epoch": self.epoch, "oldest": oldest}
            self.router.send_multipart([identity, b"gone", json.dumps(notice).encode()])
            start = oldest if epoch in (None, self.epoch) else 1
        for seq, parts in self.history:
            if seq >= start:
                self.router.send_multipart([identity, b"frame", *parts])
        self.router.send_multipart([identity, b"end", json.dumps({"epoch": self.epoch, "last": self.seq}).encode()])

    def close(self) -> None:
        self.pub.close(0)
        self.router.close(0)


class Subscriber:
    """Delivers one publisher's frames in order, each once, to ``deliver(frame)``.

    ``resume=(epoch, last_seq)`` is where the owner's durable state says it
    stopped; ``on_lost(epoch, first, last)`` is told of a range of sequence
    numbers that can no longer be replayed (``last`` None: everything after
    ``first`` in that epoch).
    """

    def __init__(self, ctx: zmq.Context, endpoint: str, replay_endpoint: str, topics: list[str],
                 deliver: Callable[[Frame], None], *, resume: tuple[str, int] | None = None,
                 on_lost: Callable[[str, int, int | None], None] | None = None, hwm: int = DEFAULT_HWM,
                 clock: Callable[[], float] = time.monotonic, replay_timeout_s: float = 1.0,
                 curve: CurveKeys | None = None) -> None:
        self.deliver = deliver
        self.clock = clock
        self.replay_timeout_s = replay_timeout_s
        self._replay_sent = 0.0
        self.on_lost = on_lost or (lambda epoch, first, last: None)
        self.epoch: str | None = resume[0] if resume else None
        self.expected = resume[1] + 1 if resume else 1
        self.pending: dict[int, Frame] = {}
        self.replaying = False
        self.bad_frames = 0
        self.duplicates = 0
        self.delivered = 0
        self.wake: Callable[[], None] = _noop
        self.sub = ctx.socket(zmq.SUB)
        self.sub.setsockopt(zmq.RCVHWM, hwm)
        self.sub.setsockopt(zmq.LINGER, 0)
        for topic in [*topics, HEARTBEAT]:
            self.sub.setsockopt(zmq.SUBSCRIBE, topic.encode())
        connect_as_client(self.sub, endpoint, curve)  # CURVE (tcp:// with keys): set once, before connecting
        self.sub.connect(endpoint)
        self.dealer = ctx.socket(zmq.DEALER)
        self.dealer.setsockopt(zmq.LINGER, 0)
        connect_as_client(self.dealer, replay_endpoint, curve)
        self.dealer.connect(replay_endpoint)
        self.sockets = (self.sub, self.dealer)

    def start(self) -> None:
        """Ask for everything since ``resume`` (or since the publisher's oldest frame)."""
        self._request_replay()

    def command(self, name: str, args: dict) -> None:
        """Ask the publisher's owner to do something (e.g. backfill from a venue)."""
        self.dealer.send_multipart([b"command", json.dumps({"name": name, "args": args}).encode()])
        self.wake()

    def on_readable(self) -> None:
        # each socket's EVENTS says whether a message waits (reading it also resets the descriptor's edge,
        # as a receive does): cheaper than a receive that raises zmq.Again, which an empty socket costs
        dealer, sub = self.dealer, self.sub
        while True:
            progressed = False
            if dealer.getsockopt(zmq.EVENTS) & zmq.POLLIN:
                self._from_replay(dealer.recv_multipart(zmq.NOBLOCK))
                progressed = True
            if sub.getsockopt(zmq.EVENTS) & zmq.POLLIN:
                self._receive(sub.recv_multipart(zmq.NOBLOCK))
                progressed = True
            if not progressed:
                return

    # -- internals ---------------------------------------------------------------

    def _receive(self, parts: list[bytes]) -> None:
        try:
            frame = decode(parts)
        except FrameError as exc:
            self.bad_frames += 1
            log.warning("bus: bad frame dropped: %s (%s)", exc, describe(parts))
            return
        self._accept(frame)

    def _accept(self, frame: Frame) -> None:
        h = frame.header
        if self.replaying and self.clock() - self._replay_sent > self.replay_timeout_s:
            # no answer: the request or the reply was lost (the publisher restarted mid-replay); ask again
            self._request_replay()
        if frame.topic == HEARTBEAT:
            if self.epoch is None:
                self.epoch = h.epoch  # learn the publisher's incarnation even before its first frame
            # another epoch: the publisher restarted (the replay will say what is gone);
            # the same epoch at h.seq: anything from self.expected up to it is missing
            if (h.epoch != self.epoch or h.seq >= self.expected) and not self.replaying:
                self._request_replay()
            return
        if self.epoch is None:
            self.epoch = h.epoch
        if h.epoch != self.epoch:
            if self.replaying:
                return  # the replay that is under way will say what the new epoch holds
            # the publisher restarted: whatever it sent after our position in the old epoch is gone
            self.on_lost(self.epoch, self.expected, None)
            self.epoch, self.expected = h.epoch, 1
            self.pending.clear()
        if h.seq < self.expected or h.seq in self.pending:
            self.duplicates += 1
            return
        if h.seq > self.expected:
            self.pending[h.seq] = frame
            if not self.replaying:
                self._request_replay()
            return
        self._deliver(frame)
        while self.expected in self.pending:
            self._deliver(self.pending.pop(self.expected))

    def _deliver(self, frame: Frame) -> None:
        self.expected += 1
        self.delivered += 1
        self.deliver(frame)

    def _request_replay(self) -> None:
        self.replaying = True
        self._replay_sent = self.clock()
        request = {"epoch": self.epoch, "from": self.expected}
        self.dealer.send_multipart([b"replay", json.dumps(request).encode()])
        self.wake()

    def _from_replay(self, parts: list[bytes]) -> None:
        kind = parts[0] if parts else b""
        if kind == b"frame":
            self._receive(parts[1:])
            return
        try:
            body = json.loads(parts[1]) if len(parts) == 2 else None
            if not isinstance(body, dict):
                raise ValueError("no JSON object")
            if kind == b"gone":
                self._gone(str(body["epoch"]), int(body["oldest"]))
            elif kind == b"end":
                self.replaying = False
                if self.epoch is None:
                    self.epoch = str(body["epoch"])
                if self.pending and min(self.pending) > self.expected:
                    self._request_replay()  # the gap grew while the replay ran
            elif kind != b"ok":
                raise ValueError(f"unknown reply {kind!r}")
        except (ValueError, KeyError, TypeError) as exc:
            self.bad_frames += 1
            log.warning("bus: bad replay reply dropped: %s (%s)", exc, describe(parts))

    def _gone(self, epoch: str, oldest: int) -> None:
        if self.epoch is not None and epoch != self.epoch:
            self.on_lost(self.epoch, self.expected, None)
            self.epoch, self.expected = epoch, 1
            self.pending.clear()
        if oldest > self.expected:
            self.on_lost(epoch, self.expected, oldest - 1)
            self.expected = oldest
        self.epoch = epoch
        for seq in [s for s in self.pending if s < self.expected]:
            del self.pending[seq]

    def close(self) -> None:
        self.sub.close(0)
        self.dealer.close(0)
