"""Serve a :class:`~.ea.SimulatedEA` on ZeroMQ as the real EA does (``PROTOCOL.md``), from a Twisted reactor.

``EAServer(ea, ctx, command_endpoint, event_endpoint, *, reactor, scan_ms=1, heartbeat_ms=500)`` binds,
on ``ctx``, a ROUTER on ``command_endpoint`` (commands in, one reply each out) and a PUB on
``event_endpoint`` (topic ``ev`` + event, topic ``hb`` + heartbeat); both at construction, so
``.command_endpoint``/``.event_endpoint`` are the addresses actually bound (``tcp://127.0.0.1:*`` works).
``start()``:

- registers the ROUTER with ``reactor`` through :class:`bridge.bus.reactor.ReactorDriver` when the reactor
  has ``addReader`` (a real or ``SelectReactor``): commands are answered as they arrive;
- runs the EA's timer as a ``LoopingCall`` on ``reactor`` every ``scan_ms``: up to 20 commands, then a scan
  and its events, like the EA's ``OnTimer`` (on a plain ``twisted.internet.task.Clock`` this is also how
  commands are read: ``clock.advance(scan_ms / 1000)`` serves them);
- publishes a heartbeat every ``heartbeat_ms`` (another ``LoopingCall``).

``curve`` (default None; ``bridge sim mt4 --curve-secret-file``): both sockets are CURVE servers with that
secret key, as the EA with ``CurveSecretFile`` (PROTOCOL.md, Security). Which client keys get in is the ZAP
handler's business: :func:`bridge.bus.curve.start_authenticator` on ``ctx`` before the server binds (the
EA's ``CurveClientsFile``); with none, any client that knows the server's public key does.

``reply_delay_ms`` (default 0; ``bridge sim mt4 --reply-delay-ms``): the reply to a trading command
(``OPEN``, ``CLOSE``, ``MODIFY``) is sent that long after the command was executed and journalled, by a
``callLater`` on the reactor (a slow broker confirmation: the trade is done, its events published, its
answer late); other commands and events go on meanwhile. ``stop()`` drops replies still held.

``stop()`` undoes all that and closes both sockets. A frame that is not a JSON object is counted in
``bad_frames`` and dropped; a command without a valid ``id``/``cmd`` is answered ``bad-frame`` when it has an
``id``; an unexpected exception while answering is logged and answered with error 2 (common error): the
server always goes on.

``main()`` is ``bridge sim mt4`` (the same options): one terminal on real time, the real reactor.
"""

from __future__ import annotations

import logging
import sys
from typing import Callable

import zmq
from twisted.internet.task import LoopingCall

from bridge.bus.curve import CurveKeys, serve
from bridge.bus.reactor import ReactorDriver
from connectors.mt4 import protocol as P
from connectors.mt4.simulator.ea import SimulatedEA

log = logging.getLogger(__name__)

#: commands handled per timer tick before the EA scans and publishes (PROTOCOL.md)
COMMANDS_PER_TICK = 20
#: queued events the PUB keeps for a slow subscriber before dropping (the ring heals drops)
EVENT_HWM = 100_000


def _noop() -> None:
    return None


class EAServer:
    """One simulated EA's two sockets, driven by a Twisted reactor."""

    def __init__(self, ea: SimulatedEA, ctx: zmq.Context, command_endpoint: str, event_endpoint: str, *,
                 reactor, scan_ms: float = P.TIMER_MS, heartbeat_ms: float = P.HEARTBEAT_MS,
                 reply_delay_ms: float = 0, curve: CurveKeys | None = None) -> None:
        self.ea = ea
        self.reply_delay_ms = reply_delay_ms
        self._held: set = set()  # the delayed calls of replies held (reply_delay_ms)
        self.reactor = reactor
        self.scan_ms = scan_ms
        self.heartbeat_ms = heartbeat_ms
        self.bad_frames = 0
        self.errors = 0
        self.answered = 0
        self.published = 0
        self.wake: Callable[[], None] = _noop
        self.router = ctx.socket(zmq.ROUTER)
        self.pub = ctx.socket(zmq.PUB)
        try:
            for socket in (self.router, self.pub):
                socket.setsockopt(zmq.LINGER, 0)
            self.pub.setsockopt(zmq.SNDHWM, EVENT_HWM)
            serve(self.router, command_endpoint, curve)  # CURVE server (tcp:// with keys), as the EA's inputs say
            serve(self.pub, event_endpoint, curve)
            self.router.bind(command_endpoint)
            self.pub.bind(event_endpoint)
        except zmq.ZMQError:
            self.router.close()
            self.pub.close()
            raise
        self.command_endpoint = self.router.getsockopt_string(zmq.LAST_ENDPOINT)
        self.event_endpoint = self.pub.getsockopt_string(zmq.LAST_ENDPOINT)
        self.sockets = (self.router,)
        self._driver: ReactorDriver | None = None
        self._timer: LoopingCall | None = None
        self._heartbeat: LoopingCall | None = None

    def start(self) -> None:
        if hasattr(self.reactor, "addReader"):
            self._driver = ReactorDriver(self.reactor, self)
            self._driver.start()
        self._timer = LoopingCall(self.on_timer)
        self._timer.clock = self.reactor
        self._timer.start(self.scan_ms / 1000, now=True)
        self._heartbeat = LoopingCall(self.publish_heartbeat)
        self._heartbeat.clock = self.reactor
        self._heartbeat.start(self.heartbeat_ms / 1000, now=True)

    def stop(self) -> None:
        for loop in (self._timer, self._heartbeat):
            if loop is not None and loop.running:
                loop.stop()
        for call in self._held:
            call.cancel()
        self._held.clear()
        if self._driver is not None:
            self._driver.stop()
            self._driver = None
        self.router.close()
        self.pub.close()

    # ------------------------------------------------------------------ the EA's timer
    def on_timer(self) -> None:
        """One ``OnTimer``: up to 20 commands, then a scan and its events."""
        self._commands(COMMANDS_PER_TICK)
        self.publish_events()

    def on_readable(self) -> None:
        """Drain the command socket (20 at a time, with a scan in between)."""
        while True:
            handled = self._commands(COMMANDS_PER_TICK)
            self.publish_events()
            if handled < COMMANDS_PER_TICK:
                return

    def _commands(self, limit: int) -> int:
        handled = 0
        sent = False
        while handled < limit:
            try:
                parts = self.router.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            handled += 1
            sent = self._answer(parts) or sent
        if sent:
            self.wake()  # a send may consume the edge of the socket's descriptor (see ReactorDriver)
        return handled

    def _answer(self, parts: list[bytes]) -> bool:
        if len(parts) < 2:
            self.bad_frames += 1
            return False
        envelope, frame = parts[:-1], parts[-1]
        try:
            command = P.decode(frame)
        except P.FrameError as exc:
            self.bad_frames += 1
            log.warning("dropped a command frame: %s", exc)
            return False
        try:
            reply = self.ea.handle(command)
            if reply is None:
                return False
            body = P.encode(reply)
        except Exception as exc:  # a bug must not stop the EA: answer it and go on
            self.errors += 1
            log.exception("answering %r", command.get("cmd"))
            ident = command.get("id")
            if not isinstance(ident, int):
                return False
            body = P.encode({"id": ident, "ok": False, "error": P.ERR_COMMON_ERROR,
                             "text": f"internal error: {type(exc).__name__}: {exc}"})
        if self.reply_delay_ms and command.get("cmd") in P.TRADING:
            call = self.reactor.callLater(self.reply_delay_ms / 1000, self._send_held, envelope, body)
            self._held.add(call)
            return False
        self.router.send_multipart([*envelope, body])
        self.answered += 1
        return True

    def _send_held(self, envelope: list[bytes], body: bytes) -> None:
        self._held = {c for c in self._held if c.active()}
        self.router.send_multipart([*envelope, body])
        self.answered += 1
        self.wake()

    # ------------------------------------------------------------------ events
    def publish_events(self) -> None:
        for event in self.ea.scan():
            self.pub.send_multipart([P.TOPIC_EVENT, P.encode(event)])
            self.published += 1

    def publish_heartbeat(self) -> None:
        self.pub.send_multipart([P.TOPIC_HEARTBEAT, P.encode(self.ea.heartbeat())])


def parse_endpoint(endpoint: str) -> tuple[str, int]:
    """``tcp://HOST:PORT`` as (host, port); ValueError naming what is wrong (PORT + 1 must be a port too)."""
    scheme, _, rest = endpoint.partition("://")
    host, _, port = rest.rpartition(":")
    if scheme != "tcp" or not host or not port.isdigit():
        raise ValueError(f"{endpoint!r} is not tcp://HOST:PORT")
    if int(port) > 65534:
        raise ValueError(f"port {port}: the events go on the port after it, so at most 65534")
    return host, int(port)


def bind_pair(ea: SimulatedEA, ctx: zmq.Context, host: str, port: int, *, reactor, attempts: int = 50,
              **options) -> EAServer:
    """An :class:`EAServer` with commands on ``port`` and events on ``port + 1`` (port 0: a free pair)."""
    return bind_ports(ctx, host, port, 2, lambda p: EAServer(ea, ctx, f"tcp://{host}:{p}", f"tcp://{host}:{p + 1}",
                                                             reactor=reactor, **options), attempts=attempts)


def bind_ports(ctx: zmq.Context, host: str, port: int, count: int, bind, *, attempts: int = 50):
    """``bind(p)`` for sockets on ``p`` .. ``p + count - 1``: ``port`` itself, or (port 0) a free one whose
    followers are tried too, ``attempts`` times (``bind`` raises ZMQError when one of them is taken)."""
    if port:
        return bind(port)
    for attempt in range(attempts):
        probe = ctx.socket(zmq.ROUTER)
        probe.setsockopt(zmq.LINGER, 0)
        try:
            probe.bind(f"tcp://{host}:*")
            free = int(probe.getsockopt_string(zmq.LAST_ENDPOINT).rsplit(":", 1)[1])
        finally:
            probe.close()
        if free > 65536 - count:
            continue
        try:
            return bind(free)
        except zmq.ZMQError:
            if attempt == attempts - 1:
                raise
    raise zmq.ZMQError(zmq.EADDRINUSE, f"no {count} free ports in a row")


def main(argv: list[str] | None = None) -> None:  # pragma: no cover - the same command as ``bridge sim mt4``
    from bridge.cli.main import main as bridge_main

    bridge_main(["sim", "mt4", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":  # pragma: no cover
    main()
