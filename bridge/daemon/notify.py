"""Tell systemd how the daemon is doing: the ``sd_notify`` protocol, without libsystemd.

systemd passes a ``Type=notify`` service the address of a datagram socket in
``$NOTIFY_SOCKET``: a filesystem path (``/run/systemd/notify``) or, when it
starts with ``@``, a Linux abstract socket name. Each message is one
datagram of ``KEY=value`` lines:

* ``READY=1`` (with a ``STATUS=``): every role in this process is up and
  recovered (:func:`roles_ready`); ``systemctl start`` returns then;
* ``STATUS=...``: a line ``systemctl status`` shows;
* ``WATCHDOG=1``: sent by a :class:`~twisted.internet.task.LoopingCall` at
  half of ``$WATCHDOG_USEC`` (only when ``$WATCHDOG_PID`` is unset or is
  this process). The ping runs on the reactor, so a reactor that is stuck
  stops pinging, and systemd restarts the service (``Restart=on-failure``);
* ``STOPPING=1``: shutdown has begun (the drain, see :mod:`bridge.daemon.drain`).

Without ``$NOTIFY_SOCKET`` (a terminal, a test) every call is a no-op. A
value systemd would never set (a relative path, a ``WATCHDOG_USEC`` that is
not a number) is logged once, in one line, and ignored; so is a send that
fails: the daemon never stops copying over its supervisor.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Mapping

from twisted.internet.task import LoopingCall

log = logging.getLogger("bridge.notify")

READY_POLL_S = 0.02  # how often the roles are looked at until all are ready


class Notifier:
    """One process's messages to systemd (or to nobody)."""

    def __init__(self, environ: Mapping[str, str] | None = None, pid: int | None = None) -> None:
        environ = os.environ if environ is None else environ
        self.pid = os.getpid() if pid is None else pid
        self.address = _address(environ.get("NOTIFY_SOCKET", ""))
        self.watchdog_s = _watchdog_interval(environ, self.pid) if self.address is not None else None
        self.sent = 0
        self._failed = False
        self._pinger: LoopingCall | None = None

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, **fields: object) -> bool:
        """One datagram, ``KEY=value`` a line (``send(READY=1, STATUS="up")``); False if not sent."""
        if self.address is None:
            return False
        message = "\n".join(f"{key}={value}" for key, value in fields.items()).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
                s.sendto(message, self.address)
        except OSError as exc:
            if not self._failed:  # once: a supervisor that went away must not fill the journal
                self._failed = True
                log.warning("notify: cannot tell systemd (NOTIFY_SOCKET %s): %s", _shown(self.address),
                            exc.strerror or exc)
            return False
        self.sent += 1
        return True

    def ready(self, status: str) -> bool:
        return self.send(READY=1, STATUS=status)

    def status(self, status: str) -> bool:
        return self.send(STATUS=status)

    def stopping(self, status: str) -> bool:
        return self.send(STOPPING=1, STATUS=status)

    def ping(self) -> bool:
        return self.send(WATCHDOG=1)

    def start_watchdog(self, clock) -> LoopingCall | None:
        """Ping every half ``$WATCHDOG_USEC`` on ``clock`` (the reactor); None when no watchdog is asked for."""
        if self.watchdog_s is None:
            return None
        self._pinger = LoopingCall(self.ping)
        self._pinger.clock = clock
        self._pinger.start(self.watchdog_s / 2, now=True)
        log.info("notify: watchdog ping every %.3g s", self.watchdog_s / 2)
        return self._pinger

    def stop_watchdog(self) -> None:
        if self._pinger is not None and self._pinger.running:
            self._pinger.stop()


def _address(value: str) -> str | bytes | None:
    if not value:
        return None
    if value.startswith("@"):  # abstract namespace: a leading NUL byte instead of the '@'
        return b"\0" + value[1:].encode()
    if value.startswith("/"):
        return value
    log.warning("notify: NOTIFY_SOCKET %r is neither an absolute path nor an @abstract name; not notifying", value)
    return None


def _watchdog_interval(environ: Mapping[str, str], pid: int) -> float | None:
    """The watchdog timeout in seconds, if systemd asks this process for pings."""
    usec = environ.get("WATCHDOG_USEC", "")
    if not usec:
        return None
    owner = environ.get("WATCHDOG_PID", "")
    if owner:
        if not owner.isdigit():
            log.warning("notify: WATCHDOG_PID %r is not a process id; no watchdog pings", owner)
            return None
        if int(owner) != pid:
            return None  # meant for another process (the one systemd started, say, not its child)
    if not usec.isdigit() or int(usec) == 0:
        log.warning("notify: WATCHDOG_USEC %r is not a positive number of microseconds; no watchdog pings", usec)
        return None
    return int(usec) / 1_000_000


def _shown(address: str | bytes) -> str:
    return "@" + address[1:].decode(errors="replace") if isinstance(address, bytes) else address


# -- when is the process ready? ------------------------------------------------------------

def roles_ready(top) -> bool:
    """Every service of the tree that has a startup to finish has finished it.

    The venues are connected and reconciled; the worker has recovered (its
    ``ready``: in-flight orders resolved, followers reconciled, backfills asked);
    the connector's watches are live (its ``ready``); the pools have resumed
    their orders (their ticker runs)."""
    for svc in top:
        if not svc.running:
            return False
        ready = getattr(svc, "ready", None)
        if ready is not None and not ready.called:
            return False
        if svc.name == "pools" and not getattr(getattr(svc, "ticker", None), "running", False):
            return False
    return True


def describe(top) -> str:
    """The one-line STATUS of a ready process."""
    roles = [s.name for s in top if s.name in ("worker", "connector")]
    venues = getattr(top, "venues", {})
    text = f"ready: role(s) {', '.join(roles)}; {len(venues)} venue(s)"
    try:
        worker = top.getServiceNamed("worker")
    except KeyError:
        return text
    return f"{text}; journal {worker.store.db['master_deals'].count} deal(s)"


def notify_when_ready(notifier: Notifier, top, clock) -> LoopingCall:
    """Look at the roles every few ms; once all are ready, send READY=1 and stop looking."""
    def look() -> None:
        if roles_ready(top):
            waiting.stop()
            notifier.ready(describe(top))
            log.info("notify: every role is up and recovered")

    waiting = LoopingCall(look)
    waiting.clock = clock
    waiting.start(READY_POLL_S, now=True)
    return waiting
