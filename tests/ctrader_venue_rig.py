"""The cTrader connector against the local cTrader server over real TLS on 127.0.0.1.

One ``task.Clock`` is the time of both the server and the connector (timeouts,
heartbeats, backoff, rate buckets); the sockets are the global reactor,
iterated by hand (``pump``). Manual trades are placed by a second Open API
client (the stock ``ctrader-open-api`` one, sending at once), as a master's
trader would.
"""

from __future__ import annotations

import time
from decimal import Decimal
from random import Random

from twisted.internet import defer, reactor
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from bridge.domain.deal import Side
from bridge.domain.ids import Platform, PositionId
from connectors.ctrader.server import CTraderServer, Credentials, FaultConfig
from connectors.ctrader.session import Backoff, Endpoint
from connectors.ctrader.tls import client_options
from connectors.ctrader.venue import AccountAccess, CTraderVenue
from tests.ctrader_rig import START, Conn, pump

HEDGER, NETTER, MASTER = 1001, 1002, 1004
FOLLOWERS = tuple(range(1101, 1111))  # ten more hedged followers

ACCOUNTS = [
    {"ctid_trader_account_id": HEDGER, "trader_login": 5001, "token": "tok-a", "balance": "100000"},
    {"ctid_trader_account_id": NETTER, "trader_login": 5002, "token": "tok-a", "balance": "100000",
     "type": "netted"},
    {"ctid_trader_account_id": MASTER, "trader_login": 5004, "token": "tok-a", "balance": "100000"},
    *({"ctid_trader_account_id": f, "trader_login": 6000 + f, "token": "tok-a", "balance": "100000"}
      for f in FOLLOWERS),
]


def credentials(token_lifetime_s: int | None = None) -> Credentials:
    token = {"access_token": "tok-a", "refresh_token": "ref-a"}
    if token_lifetime_s is not None:
        token["expires_in"] = token_lifetime_s
    return Credentials.parse({"application": {"client_id": "app-1", "client_secret": "secret-1"}, "tokens": [token],
                              "accounts": ACCOUNTS})


CREDENTIALS = credentials()
ALL = (HEDGER, NETTER, MASTER, *FOLLOWERS)


def result(d: defer.Deferred, clock: Clock, timeout: float = 5.0):
    """Wait for ``d``, pumping the sockets; when they are quiet, the shared clock moves on 20 ms (rate
    buckets refill, timers fire), so a wait of ``timeout`` wall seconds covers any protocol timer."""
    box = []
    d.addBoth(box.append)
    deadline = time.monotonic() + timeout
    while not box:
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting on the reactor")
        reactor.iterate(0.001)
        if not box:
            clock.advance(0.02)
    if isinstance(box[0], Failure):
        box[0].raiseException()
    return box[0]


class CTraderHarness:
    """What tests/venue_contract.py needs, plus the server and clock for the connector's own tests."""

    def __init__(self, faults: FaultConfig = FaultConfig(), pool_size: int = 2, accounts=ALL, timeout_s=5.0,
                 token_lifetime_s: int | None = None, known_expiry: bool = True, **server_options) -> None:
        """``token_lifetime_s``: the server's tok-a lives that long; the venue is told when it expires if
        ``known_expiry``."""
        self.clock = Clock()
        self.clock.advance(START)
        self.server = CTraderServer(credentials(token_lifetime_s), clock=self.clock, rng=Random(7), faults=faults,
                                    **server_options)
        self.expires_at_ms = (START + token_lifetime_s) * 1000 if token_lifetime_s and known_expiry else None
        self.listening = self.server.listen(reactor)
        self.port = self.listening.getHost().port
        self.accounts, self.pool_size, self.timeout_s = accounts, pool_size, timeout_s
        self.venue = self.new_venue()
        self.login = self.venue.login
        self.hedger, self.netter, self.master = self.login(HEDGER), self.login(NETTER), self.login(MASTER)
        self._trader: Conn | None = None
        result(self.venue.start(), self.clock)

    def new_venue(self, tls=None, access=None, **options) -> CTraderVenue:
        """A CTraderVenue on this server (not started); ``tls`` defaults to the server's CA and "localhost"."""
        tls = tls or client_options("localhost", self.server.identity.ca_pem)
        access = access or [AccountAccess(c, "tok-a", "ref-a", self.expires_at_ms) for c in self.accounts]
        return CTraderVenue("sim", Endpoint("127.0.0.1", self.port, tls), ("app-1", "secret-1"), access,
                            clock=self.clock, rng=Random(3), reactor=reactor, pool_size=self.pool_size,
                            timeout_s=self.timeout_s, backoff=Backoff(0.5, 8.0),
                            connection=self.connection_options(), **options)

    def restart(self) -> None:
        """Stop the venue and start a brand-new one, as a restarted bridge would (nothing carried over)."""
        self.venue.stop()
        self.venue = self.new_venue()
        result(self.venue.start(), self.clock)

    def connection_options(self) -> dict:
        return {}

    # -- the contract's harness --------------------------------------------
    def result(self, d, timeout: float = 5.0):
        return result(d, self.clock, timeout)

    def result_or_none(self, d) -> None:
        if isinstance(d, defer.Deferred):
            result(d, self.clock)

    def trader(self) -> Conn:
        if self._trader is None:
            self._trader = Conn(self.port)
            self._trader.auth(*ALL)
        return self._trader

    def manual(self, account, symbol, side, lots) -> PositionId:
        conn = self.trader()
        volume = int(Decimal(lots) * self.server.symbols.lot_size(symbol))
        mid = conn.send("NewOrderReq", ctidTraderAccountId=account.number, symbolId=self.server.symbols.id_of(symbol),
                        orderType=1, tradeSide=1 if side is Side.BUY else 2, volume=volume)
        filled = conn.wait(lambda m, i: i == mid and m.DESCRIPTOR.name == "ProtoOAExecutionEvent"
                           and m.executionType == 3)
        return PositionId(Platform.CTRADER, filled.position.positionId)

    def manual_close(self, account, position, lots=None) -> None:
        conn = self.trader()
        ctid = account.number
        live = self.server.accounts[ctid].book.position(position)
        volume = live.volume if lots is None else int(Decimal(lots) * self.server.symbols.lot_size(live.symbol))
        mid = conn.send("ClosePositionReq", ctidTraderAccountId=ctid, positionId=position.value, volume=volume)
        conn.wait(lambda m, i: i == mid and m.DESCRIPTOR.name == "ProtoOAExecutionEvent" and m.executionType == 3)

    def pump(self, until=lambda: True, timeout: float = 5.0) -> None:
        pump(until, timeout)

    def tick(self, seconds: float, until=lambda: True, step: float = 0.05) -> None:
        """Advance the shared clock by ``seconds`` in steps, pumping the sockets between them."""
        for _ in range(int(seconds / step)):
            self.clock.advance(step)
            for _ in range(3):
                reactor.iterate(0)
        pump(until)

    def close(self) -> None:
        self.venue.stop()
        if self._trader is not None:
            self._trader.stop()
        self.server.drop_connections()
        done = []
        self.listening.stopListening().addBoth(done.append)
        pump(lambda: done and not self.server.sessions)
        for _ in range(5):
            reactor.iterate(0.001)
        for call in reactor.getDelayedCalls():
            if call.active():
                call.cancel()
