"""The Twisted side of one connection: frames in and out, heartbeats, idle disconnect, reply faults.

- Frames: ``Int32StringReceiver`` (4-byte big-endian length). A length above
  the server's ``max_frame`` is answered with ProtoErrorRes FRAME_TOO_LONG and
  the connection is closed; so is a frame that is not a ``ProtoMessage``
  (ProtoErrorRes INVALID_REQUEST). Other connections are unaffected.
- Heartbeats: a received ``ProtoHeartbeatEvent`` is echoed, at most once per
  ``heartbeat_s`` (the stock client echoes every heartbeat too: echoing all of
  them would ping-pong forever); the server also sends one whenever it has sent
  nothing for ``heartbeat_s``.
- Idle disconnect: no frame at all from the client for ``idle_timeout_s`` ->
  ``ProtoOAClientDisconnectEvent{reason}``, then the connection is closed.
- Outgoing frames leave in order through one queue; replies (frames with the
  request's clientMsgId) go through the reply faults (lose, delay).
"""

from __future__ import annotations

from collections import deque

from ctrader_open_api.messages import OpenApiCommonMessages_pb2 as common
from ctrader_open_api.messages import OpenApiMessages_pb2 as oa
from google.protobuf.message import DecodeError
from twisted.internet.protocol import ServerFactory
from twisted.protocols.basic import Int32StringReceiver

from connectors.ctrader.server.framing import HEARTBEAT, common_error, decode_wrapper, encode
from connectors.ctrader.server.session import Session


class OpenApiConnection(Int32StringReceiver):
    def __init__(self, server) -> None:
        self.server = server
        self.MAX_LENGTH = server.max_frame
        self.session = Session(server, self)
        self._queue: deque[tuple[float, bytes]] = deque()
        self._flush_call = None
        self._last_due = 0.0
        self._last_sent = 0.0
        self._last_heartbeat = float("-inf")
        self._idle_call = None
        self._beat_call = None
        self.closed = False

    # -- lifecycle ---------------------------------------------------------
    def connectionMade(self) -> None:
        self.transport.setTcpNoDelay(True)  # small frames leave at once, not held back by Nagle
        clock = self.server.clock
        self._last_sent = clock.seconds()
        self._idle_call = clock.callLater(self.server.idle_timeout_s, self._idle)
        self._beat_call = clock.callLater(self.server.heartbeat_s, self._beat)
        self.server.sessions.add(self.session)

    def connectionLost(self, reason=None) -> None:
        self.closed = True
        self.server.sessions.discard(self.session)
        for call in (self._idle_call, self._beat_call, self._flush_call):
            if call is not None and call.active():
                call.cancel()
        self._queue.clear()

    def abort(self) -> None:
        self.closed = True
        self.transport.abortConnection()

    def close(self, message=None) -> None:
        """Send ``message`` (if any) and everything queued before it, then close."""
        if message is not None:
            self._write(encode(message))
        self.closed = True
        self.transport.loseConnection()

    # -- incoming ----------------------------------------------------------
    def stringReceived(self, data: bytes) -> None:
        if self.closed:
            return
        if self._idle_call is not None and self._idle_call.active():
            self._idle_call.reset(self.server.idle_timeout_s)
        try:
            wrapper = decode_wrapper(data)
        except DecodeError as exc:
            return self.close(common_error("INVALID_REQUEST", f"frame is not a ProtoMessage ({exc})"))
        if self.server.frame_hook is not None:
            # a stopwatch (bridge bench): note the frame as it comes off the wire, and handle it on the next
            # reactor turn, so that matching one order never delays the reading (and timing) of the next
            self.server.frame_hook(wrapper.payloadType)
            if wrapper.payloadType != HEARTBEAT:
                self.server.clock.callLater(0, self._handle, wrapper)
                return
        self._handle(wrapper)

    def _handle(self, wrapper) -> None:
        if self.closed:
            return
        if wrapper.payloadType == HEARTBEAT:
            now = self.server.clock.seconds()
            if now - self._last_heartbeat >= self.server.heartbeat_s:
                self._last_heartbeat = now
                self.send_event(common.ProtoHeartbeatEvent())
            return
        self.session.handle(wrapper)

    def lengthLimitExceeded(self, length: int) -> None:
        self.close(common_error("FRAME_TOO_LONG", f"frame of {length} bytes exceeds {self.MAX_LENGTH}"))

    # -- outgoing ----------------------------------------------------------
    def send_reply(self, message, client_msg_id: str | None, fill: bool = False) -> None:
        faults = self.server.faults
        if faults.chance(faults.config.lose_reply_rate) or (fill and faults.chance(faults.config.lose_fill_rate)):
            return
        self._enqueue(encode(message, client_msg_id), faults.delay_ms() / 1000)

    def send_event(self, message) -> None:
        self._enqueue(encode(message), 0.0)

    def _enqueue(self, frame: bytes, delay_s: float) -> None:
        if self.closed:
            return
        now = self.server.clock.seconds()
        due = max(now + delay_s, self._last_due)
        self._last_due = due
        if due <= now and not self._queue:
            return self._write(frame)
        self._queue.append((due, frame))
        if self._flush_call is None or not self._flush_call.active():
            self._flush_call = self.server.clock.callLater(max(self._queue[0][0] - now, 0), self._flush)

    def _flush(self) -> None:
        now = self.server.clock.seconds()
        while self._queue and self._queue[0][0] <= now and not self.closed:
            self._write(self._queue.popleft()[1])
        if self._queue and not self.closed:
            self._flush_call = self.server.clock.callLater(self._queue[0][0] - now, self._flush)

    def _write(self, frame: bytes) -> None:
        self._last_sent = self.server.clock.seconds()
        self.sendString(frame)

    # -- timers ------------------------------------------------------------
    def _beat(self) -> None:
        now = self.server.clock.seconds()
        if now - self._last_sent >= self.server.heartbeat_s:
            self._last_heartbeat = now
            self.send_event(common.ProtoHeartbeatEvent())
        wait = max(self.server.heartbeat_s - (now - self._last_sent), 0.001)
        self._beat_call = self.server.clock.callLater(wait, self._beat)

    def _idle(self) -> None:
        reason = f"idle: no message for {self.server.idle_timeout_s:g} s"
        self.close(oa.ProtoOAClientDisconnectEvent(reason=reason))


class OpenApiFactory(ServerFactory):
    def __init__(self, server) -> None:
        self.server = server

    def buildProtocol(self, addr) -> OpenApiConnection:
        connection = OpenApiConnection(self.server)
        connection.factory = self
        return connection
