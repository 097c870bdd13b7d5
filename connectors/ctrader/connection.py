"""One TLS connection to an Open API server: length-prefixed frames, rate-limited sends, heartbeats.

- TLS: the connection counts as made only once the handshake has completed
  (``IHandshakeListener``), so nothing at all is written to a server whose
  certificate or host name did not verify; such an attempt ends with
  ``listener.failed("TLS handshake failed: ...")`` and the session retries
  with backoff.
- Frames: ``Int32StringReceiver`` (4-byte big-endian length). A frame above
  ``max_frame`` or bytes that are not an Open API message are a protocol
  error: logged with what was wrong (``error``), the connection aborted; the
  session reconnects and reconciles, so nothing is lost.
- Sends leave at once (``TCP_NODELAY``: no Nagle delay behind an unacknowledged
  frame) while the connection's token bucket for their class (live or
  historical) has a token; otherwise they queue in order and leave as tokens
  come back; trading requests (orders, SL/TP amends, cancels) go ahead of
  queued queries (account figures, reconciles), in their own order, so a
  fan-out is never stuck behind bookkeeping; and queries take a token only
  while the bucket is full, so bookkeeping runs at the refill rate in the
  gaps and the next fan-out always finds the whole burst waiting. ``on_sent`` tells the caller the
  frame is on the wire.
- Heartbeats: one is sent whenever nothing was sent for ``heartbeat_s``
  (default 5 s; cTrader wants one at least every 10 s); a server heartbeat is
  answered unless one was sent in the last second.
- Everything received goes to ``listener.frame(client_msg_id, message)``;
  ``listener.made(connection)`` once the handshake verified, then
  ``listener.lost(connection, why)`` once when the connection ends; an attempt
  that never got that far ends with ``listener.failed(why)`` instead.
"""

from __future__ import annotations

import logging
from collections import deque

from ctrader_open_api.messages import OpenApiCommonMessages_pb2 as common
from twisted.internet.interfaces import IHandshakeListener
from twisted.internet.protocol import ClientFactory
from twisted.protocols.basic import Int32StringReceiver
from zope.interface import implementer

from connectors.ctrader import ratelimit
from ctrader_open_api.messages import OpenApiMessages_pb2 as oa

from connectors.ctrader.wire import HEARTBEAT, HISTORICAL, BadFrame, decode, encode

log = logging.getLogger(__name__)

MAX_FRAME = 15 * 1024 * 1024
#: requests that go ahead of queries: trading, and the authorisations trading needs
URGENT = frozenset(m().payloadType for m in (
    oa.ProtoOANewOrderReq, oa.ProtoOAClosePositionReq, oa.ProtoOAAmendPositionSLTPReq, oa.ProtoOACancelOrderReq,
    oa.ProtoOAApplicationAuthReq, oa.ProtoOAAccountAuthReq, oa.ProtoOARefreshTokenReq))


@implementer(IHandshakeListener)
class OpenApiProtocol(Int32StringReceiver):
    def __init__(self, listener, clock, *, max_frame: int = MAX_FRAME, heartbeat_s: float = 5.0,
                 live: ratelimit.Budget = ratelimit.LIVE, historical: ratelimit.Budget = ratelimit.HISTORICAL):
        self.listener = listener
        self.clock = clock
        self.MAX_LENGTH = max_frame
        self.heartbeat_s = heartbeat_s
        self.buckets = {False: ratelimit.TokenBucket(live, clock), True: ratelimit.TokenBucket(historical, clock)}
        self.queues: dict[bool, deque] = {False: deque(), True: deque()}
        self._urgent = {False: 0, True: 0}  # trading requests at the head of each queue
        self._drains = {False: None, True: None}
        self._beat = None
        self._last_sent = clock.seconds()
        self._last_beat = float("-inf")
        self.connected_ok = False
        self.error: str | None = None
        self.sent = 0  # requests written (heartbeats aside)
        self.written = 0  # frames written, heartbeats included

    # -- lifecycle ---------------------------------------------------------
    def connectionMade(self) -> None:
        """TCP is up; the TLS handshake is not done yet, so nothing is written until ``handshakeCompleted``."""
        no_delay = getattr(self.transport, "setTcpNoDelay", None)
        if no_delay is not None:
            no_delay(True)  # small request frames leave at once, not held back until the last one is acked

    def handshakeCompleted(self) -> None:
        if getattr(self.transport, "disconnecting", False):
            return  # Twisted reports the handshake done even when the host name check just failed it
        self.connected_ok = True
        self._last_sent = self.clock.seconds()
        self._beat = self.clock.callLater(self.heartbeat_s, self._heartbeat)
        self.listener.made(self)

    def connectionLost(self, reason=None) -> None:
        was = self.connected_ok
        self.connected_ok = False
        for call in (self._beat, *self._drains.values()):
            if call is not None and call.active():
                call.cancel()
        unsent = [item for q in self.queues.values() for item in q]
        for q in self.queues.values():
            q.clear()
        self._urgent = {False: 0, True: 0}
        for _, _, on_unsent in unsent:
            on_unsent()
        why = self.error or (reason.getErrorMessage() if reason is not None else "closed")
        if was:
            self.listener.lost(self, why)
        else:  # the certificate or its name did not verify, or the server hung up first
            self.listener.failed(f"TLS handshake failed: {why}")

    def abort(self, why: str) -> None:
        if self.error is None:
            self.error = why
        if self.transport is not None:
            self.transport.abortConnection()

    # -- sending -----------------------------------------------------------
    def send(self, message, client_msg_id: str | None, on_sent=lambda: None, on_unsent=lambda: None) -> None:
        """Queue ``message`` under its class's bucket; ``on_sent`` once written, ``on_unsent`` if never."""
        if not self.connected_ok:
            return on_unsent()
        historical = message.payloadType in HISTORICAL
        item = (encode(message, client_msg_id), on_sent, on_unsent)
        if message.payloadType in URGENT:
            self.queues[historical].insert(self._urgent[historical], item)  # behind earlier trading requests only
            self._urgent[historical] += 1
        else:
            self.queues[historical].append(item)
        self._drain(historical)

    def _drain(self, historical: bool) -> None:
        queue, bucket = self.queues[historical], self.buckets[historical]
        # queries leave only while the bucket is (nearly) full: a fan-out always finds the whole burst waiting
        reserve = 0 if historical else bucket.budget.burst - 1
        while queue and self.connected_ok:
            trading = self._urgent[historical] > 0
            if not bucket.take(0 if trading else reserve):
                break
            frame, on_sent, _ = queue.popleft()
            if trading:
                self._urgent[historical] -= 1
            self._write(frame)
            self.sent += 1
            on_sent()
        call = self._drains[historical]
        if queue and self.connected_ok and (call is None or not call.active()):
            wait = bucket.wait_s(0 if self._urgent[historical] else reserve)
            self._drains[historical] = self.clock.callLater(wait, self._drain, historical)

    def _write(self, frame: bytes) -> None:
        self._last_sent = self.clock.seconds()
        self.written += 1
        self.sendString(frame)

    def _heartbeat(self) -> None:
        now = self.clock.seconds()
        if now - self._last_sent >= self.heartbeat_s - 1e-9:
            self._send_heartbeat()
        wait = max(self.heartbeat_s - (self.clock.seconds() - self._last_sent), 0.001)
        self._beat = self.clock.callLater(wait, self._heartbeat)

    def _send_heartbeat(self) -> None:
        self._last_beat = self.clock.seconds()
        self._write(encode(common.ProtoHeartbeatEvent()))

    # -- receiving ---------------------------------------------------------
    def stringReceived(self, data: bytes) -> None:
        if not self.connected_ok:
            return
        try:
            mid, message = decode(data)
        except BadFrame as exc:
            log.error("ctrader: bad frame from the server (%s): resetting the connection", exc)
            return self.abort(f"bad frame from the server: {exc}")
        if message.payloadType == HEARTBEAT:
            if self.clock.seconds() - self._last_beat >= 1.0:
                self._send_heartbeat()
            return
        self.listener.frame(mid, message)

    def lengthLimitExceeded(self, length: int) -> None:
        log.error("ctrader: frame of %d bytes from the server exceeds %d: resetting the connection", length,
                  self.MAX_LENGTH)
        self.abort(f"frame of {length} bytes exceeds the limit of {self.MAX_LENGTH}")


class OpenApiFactory(ClientFactory):
    """Builds the one protocol of one connection attempt; tells the listener if the attempt fails."""

    def __init__(self, listener, clock, **options) -> None:
        self.listener = listener
        self.clock = clock
        self.options = options
        self.protocol: OpenApiProtocol | None = None  # the one built, once TCP connected

    def buildProtocol(self, addr):
        protocol = self.protocol = OpenApiProtocol(self.listener, self.clock, **self.options)
        protocol.factory = self
        return protocol

    def clientConnectionFailed(self, connector, reason) -> None:
        self.listener.failed(reason.getErrorMessage())
