"""Helpers for tests/test_ctrader_server.py: the local cTrader server on 127.0.0.1 and clients to drive it.

The stock ``ctrader_open_api.Client`` runs on the global reactor (it imports it), so the
tests iterate that reactor by hand with a wall-clock deadline; the server's own time is a
``task.Clock`` the tests advance. ``InstantProtocol`` is the stock protocol with its
1-second send queue bypassed (every request leaves at once); ``RawClient`` is a small
TLS client that verifies the server against its local CA and can send any bytes.
"""

from __future__ import annotations

import time
from random import Random

from ctrader_open_api import Client, Protobuf, TcpProtocol
from twisted.application.internet import ClientService
from twisted.internet import reactor
from twisted.internet.protocol import ClientFactory
from twisted.internet.ssl import Certificate, optionsForClientTLS
from twisted.internet.task import Clock
from twisted.protocols.basic import Int32StringReceiver

from connectors.ctrader.server import CTraderServer, Credentials, FaultConfig
from connectors.ctrader.server.framing import decode_wrapper

START = 1_700_000_000  # the server clock's start, Unix seconds

CREDENTIALS = Credentials.parse({
    "application": {"client_id": "app-1", "client_secret": "secret-1"},
    "tokens": [{"access_token": "tok-a", "refresh_token": "ref-a"},
               {"access_token": "tok-b", "refresh_token": "ref-b"}],
    "accounts": [
        {"ctid_trader_account_id": 1001, "trader_login": 5001, "token": "tok-a", "balance": "10000"},
        {"ctid_trader_account_id": 1002, "trader_login": 5002, "token": "tok-a", "balance": "5000",
         "type": "netted", "live": True},
        {"ctid_trader_account_id": 1003, "trader_login": 5003, "token": "tok-a", "balance": "10"},
        {"ctid_trader_account_id": 2001, "trader_login": 6001, "token": "tok-b", "balance": "1000"},
    ],
})
LOT = 10_000_000  # EURUSD: 1 lot in hundredths of a unit
EURUSD = 1


def pump(until, timeout: float = 3.0) -> None:
    """Iterate the global reactor until ``until()`` holds; fail after ``timeout`` seconds of wall time."""
    deadline = time.monotonic() + timeout
    while not until():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting on the reactor")
        reactor.iterate(0.001)


def settle(rounds: int = 30) -> None:
    """A few reactor turns, for asserting that something did NOT arrive."""
    for _ in range(rounds):
        reactor.iterate(0.001)


class InstantProtocol(TcpProtocol):
    """The stock protocol, sending at once instead of at most 5 frames per 1-second tick."""

    def send(self, message, instant=False, clientMsgId=None, isCanceled=None):
        super().send(message, True, clientMsgId, isCanceled)


class Conn:
    """A stock ``Client`` and every frame it received (decoded)."""

    def __init__(self, port: int, protocol=InstantProtocol) -> None:
        self.frames: list = []  # (clientMsgId or None, message)
        self.lost = False
        self.client = Client("127.0.0.1", port, protocol)
        self.client.setMessageReceivedCallback(self._received)
        self.client.setDisconnectedCallback(lambda c, reason: setattr(self, "lost", True))
        self.client.startService()
        self._ids = 0
        pump(lambda: self.client.isConnected)

    def _received(self, client, wrapper) -> None:
        mid = wrapper.clientMsgId if wrapper.HasField("clientMsgId") else None
        self.frames.append((mid, Protobuf.extract(wrapper)))

    def send(self, name: str, **fields) -> str:
        self._ids += 1
        mid = f"cm-{self._ids}"
        self.client.send(name, clientMsgId=mid, **fields).addErrback(lambda f: None)
        return mid

    def call(self, name: str, **fields):
        """Send and wait for the first frame with the request's clientMsgId; return that message."""
        mid = self.send(name, **fields)
        return self.wait(lambda m, i: i == mid)

    def wait(self, match, timeout: float = 3.0):
        """The first received message for which ``match(message, clientMsgId)`` holds (waiting for it)."""
        found: list = []

        def look() -> bool:
            found[:] = [m for i, m in self.frames if match(m, i)]
            return bool(found)
        pump(look, timeout)
        return found[0]

    def of(self, type_name: str, mid: str | None | bool = False) -> list:
        """Received messages of a type (``ProtoOAExecutionEvent``), optionally only with clientMsgId ``mid``."""
        return [m for i, m in self.frames if m.DESCRIPTOR.name == type_name and (mid is False or i == mid)]

    def auth(self, *accounts: int, token: str = "tok-a") -> None:
        assert self.call("ApplicationAuthReq", clientId="app-1", clientSecret="secret-1").DESCRIPTOR.name == \
            "ProtoOAApplicationAuthRes"
        for ctid in accounts:
            res = self.call("AccountAuthReq", ctidTraderAccountId=ctid, accessToken=token)
            assert res.DESCRIPTOR.name == "ProtoOAAccountAuthRes", res

    def stop(self) -> None:
        ClientService.stopService(self.client)


class RawClient(Int32StringReceiver):
    MAX_LENGTH = 16_000_000

    def connectionMade(self) -> None:
        self.frames: list = []
        self.lost = False
        self.factory.instances.append(self)

    def stringReceived(self, data: bytes) -> None:
        wrapper = decode_wrapper(data)
        self.frames.append((wrapper, Protobuf.extract(wrapper)))

    def connectionLost(self, reason=None) -> None:
        self.lost = True


class Rig:
    def __init__(self, faults: FaultConfig = FaultConfig(), **options) -> None:
        self.clock = Clock()
        self.clock.advance(START)
        self.server = CTraderServer(CREDENTIALS, clock=self.clock, rng=Random(7), faults=faults, **options)
        self.listening = self.server.listen(reactor)
        self.port = self.listening.getHost().port
        self.conns: list[Conn] = []
        self.raws: list = []

    def connect(self, *accounts: int, protocol=InstantProtocol) -> Conn:
        conn = Conn(self.port, protocol)
        self.conns.append(conn)
        if accounts:
            conn.auth(*accounts)
        return conn

    def raw(self) -> RawClient:
        factory = ClientFactory.forProtocol(RawClient)
        factory.instances = []
        tls = optionsForClientTLS("localhost", trustRoot=Certificate.loadPEM(self.server.identity.ca_pem))
        connector = reactor.connectSSL("127.0.0.1", self.port, factory, tls)
        self.raws.append(connector)
        pump(lambda: factory.instances)
        return factory.instances[0]

    def close(self) -> None:
        for conn in self.conns:
            conn.stop()
        for connector in self.raws:
            connector.disconnect()
        self.server.drop_connections()
        done = []
        self.listening.stopListening().addBoth(done.append)
        pump(lambda: done and not self.server.sessions)
        settle(5)
        for call in reactor.getDelayedCalls():  # stock-client timeouts and timers still pending
            if call.active():
                call.cancel()
