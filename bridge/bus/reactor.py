"""Drive bus channels from the Twisted reactor.

A ZeroMQ socket's file descriptor signals *edge*-triggered readiness: it
fires once when messages arrive, and again only after they are all read, and
a send on the same socket can consume the edge. So every wake-up drains the
channel completely, and a channel that sent on a socket it also reads asks
for one more drain on the next reactor turn (``channel.wake``).
"""

from __future__ import annotations

from typing import Protocol

import zmq
from twisted.internet.interfaces import IReadDescriptor
from zope.interface import implementer


class Channel(Protocol):
    sockets: tuple[zmq.Socket, ...]

    def on_readable(self) -> None: ...


@implementer(IReadDescriptor)
class _SocketReader:
    def __init__(self, socket: zmq.Socket, channel: Channel) -> None:
        self.socket = socket
        self.channel = channel
        # a socket's descriptor never changes; the reactor asks for it on every turn (a select reactor
        # once per registered reader), and getsockopt costs a call into libzmq each time
        self._fd = socket.getsockopt(zmq.FD)

    def fileno(self) -> int:
        return self._fd

    def doRead(self) -> None:
        self.channel.on_readable()

    def logPrefix(self) -> str:
        return "zmq"

    def connectionLost(self, reason) -> None:
        return None


class ReactorDriver:
    """Registers a channel's sockets with the reactor; ``stop()`` unregisters them."""

    def __init__(self, reactor, channel: Channel) -> None:
        self.reactor = reactor
        self.channel = channel
        self.readers = [_SocketReader(s, channel) for s in channel.sockets]
        self._scheduled = False
        self._stopped = False
        channel.wake = self.wake

    def start(self) -> None:
        for reader in self.readers:
            self.reactor.addReader(reader)
        self.wake()  # messages may have arrived before we registered

    def wake(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            self.reactor.callLater(0, self._drain)

    def _drain(self) -> None:
        self._scheduled = False
        if not self._stopped:  # a drain asked for before stop() would read sockets closed since
            self.channel.on_readable()

    def stop(self) -> None:
        self._stopped = True
        for reader in self.readers:
            self.reactor.removeReader(reader)
