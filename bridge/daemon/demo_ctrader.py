"""The demo on the local cTrader server: the same session, accounts and routes, over the Open API.

``bridge demo --platform ctrader`` starts :class:`CTraderServer` in the demo's
process on 127.0.0.1 (TLS with a fresh local CA) with every demo account on
it, and points the bridge's production cTrader connector at it. The master
trades as a trader at the platform would (``server.trade_by_hand``: events
reach the bridge without a clientMsgId); duplicates and missing orders are
counted against the server's own deal history and positions.
"""

from __future__ import annotations

import random
from decimal import Decimal

from twisted.internet import defer

from bridge.config.secrets import Secret
from bridge.daemon.demo import moved_to
from bridge.daemon.config import BridgeConfig, CTraderAccount, CTraderSettings, VenueConfig
from bridge.domain.deal import DealKind
from bridge.domain.ids import Login, Platform, PositionId, ServerId

CT_SERVER = ServerId(Platform.CTRADER, "ctrader-demo")
APP = ("copybridge-demo", "demo-secret")
TOKEN = ("demo-token", "demo-refresh")


def start_server(sim_config: BridgeConfig, reactor, seed: int):
    """The local server holding every account of the sim demo's venue; returns (server, listening port)."""
    from connectors.ctrader.server import CTraderServer, Credentials

    (venue,) = sim_config.venues
    credentials = Credentials.parse({
        "application": {"client_id": APP[0], "client_secret": APP[1]},
        "tokens": [{"access_token": TOKEN[0], "refresh_token": TOKEN[1]}],
        "accounts": [{"ctid_trader_account_id": a.login, "trader_login": a.login, "token": TOKEN[0],
                      "balance": str(a.balance), "currency": a.currency,
                      "type": "hedged" if a.hedging else "netted"} for a in venue.accounts],
    })
    server = CTraderServer(credentials, clock=reactor, rng=random.Random(seed))
    return server, server.listen(reactor)


def on_ctrader(sim_config: BridgeConfig, port: int, ca_pem: bytes) -> BridgeConfig:
    """The sim demo's configuration, every account moved to the local cTrader server."""
    (venue,) = sim_config.venues

    settings = CTraderSettings("127.0.0.1", port, APP[0], Secret.literal(APP[1]),
                               tuple(CTraderAccount(a.login, Secret.literal(TOKEN[0]), Secret.literal(TOKEN[1]))
                                     for a in venue.accounts), ca_pem,
                               pool_size=min(16, -(-len(venue.accounts) // 10)))
    return moved_to(sim_config, CT_SERVER, VenueConfig(CT_SERVER.name, Platform.CTRADER, 0, 0, (), ctrader=settings))


class Desk:
    """The master's trader at the platform: what ``demo.play`` needs of a venue, on the server."""

    def __init__(self, server) -> None:
        self.server = server
        self.market = server.market

    def trade(self, login: Login, symbol: str, side, lots) -> PositionId:
        volume = _volume(self.server, symbol, lots)
        return PositionId(Platform.CTRADER, self.server.trade_by_hand(login.number, symbol, side, volume))

    def close(self, login: Login, position: PositionId, lots=None) -> None:
        live = self.server.accounts[login.number].book.position(position)
        volume = None if lots is None else _volume(self.server, live.symbol, lots)
        self.server.close_by_hand(login.number, position.value, volume)

    def modify(self, login: Login, position: PositionId, sl, tp) -> None:
        self.server.amend_by_hand(login.number, position.value, sl, tp)


class _Trade:
    kind = DealKind.OPEN  # any trade: the summary counts trades, not their kinds


class Records:
    """The server's own records of an account, shaped as the sim venue's ``deals_since`` and ``positions``."""

    def __init__(self, server) -> None:
        self.server = server

    def deals_since(self, login: Login, after=None) -> defer.Deferred:
        # one per order: an order filled in parts is still one trade
        return defer.succeed([_Trade() for _ in {d.order_id for d in self.server.accounts[login.number].deals}])

    def positions(self, login: Login) -> defer.Deferred:
        return defer.succeed(list(self.server.accounts[login.number].book.positions.values()))


def _volume(server, symbol: str, lots) -> int:
    """Lots (a Decimal or its text) in hundredths of a unit; exact, or an error."""
    volume = Decimal(str(lots)) * server.symbols.lot_size(symbol)
    if volume != volume.to_integral_value():
        raise ValueError(f"{lots} lots of {symbol} is not a whole number of hundredths of a unit")
    return int(volume)
