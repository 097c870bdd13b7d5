"""The local cTrader Open API server: accounts, tokens, market and connections in one object."""

from __future__ import annotations

import random
from decimal import Decimal

from ctrader_open_api.messages import OpenApiMessages_pb2 as oa
from ctrader_open_api.messages import OpenApiModelMessages_pb2 as model
from twisted.internet.task import LoopingCall

from connectors.ctrader.server.accounts import TraderAccount
from connectors.ctrader.server.certificates import ServerIdentity, local_identity
from connectors.ctrader.server.credentials import Credentials, CredentialsError
from connectors.ctrader.server.execution import Emission, Engine, RequestError
from connectors.ctrader.server.faults import FaultConfig, Faults
from connectors.ctrader.server.protocol import OpenApiFactory
from connectors.ctrader.server.symbols import SymbolCatalogue
from connectors.ctrader.server.tokens import TokenBook
from bridge.domain.ids import Platform, PositionId
from connectors.sim.account import Account
from connectors.sim.market import DEFAULT_SYMBOLS, Market, SymbolDef

MAX_FRAME = 1_048_576


class CTraderServer:
    """A protocol-faithful local cTrader Open API server (see the package docstring).

    ``clock`` (an ``IReactorTime``) provides every time: timestamps, timers,
    delays, rate-limit windows; ``rng`` every random draw (prices, faults, new
    tokens). The network reactor is only given to :meth:`listen`.
    """

    def __init__(self, credentials: Credentials, *, clock, rng: random.Random,
                 faults: FaultConfig = FaultConfig(), symbols: tuple[SymbolDef, ...] = DEFAULT_SYMBOLS,
                 idle_timeout_s: float = 30.0, heartbeat_s: float = 10.0, max_frame: int = MAX_FRAME,
                 stop_out_level: Decimal = Decimal("0.5")) -> None:
        self.credentials = credentials
        self.clock = clock
        self.rng = rng
        self.idle_timeout_s = idle_timeout_s
        self.heartbeat_s = heartbeat_s
        self.max_frame = max_frame
        self.market = Market(symbols)
        self.symbols = SymbolCatalogue(self.market)
        self.faults = Faults(faults, rng)
        self.tokens = TokenBook(credentials, rng)
        self.accounts: dict[int, TraderAccount] = {}
        for a in credentials.accounts:
            for quote in sorted(self.market.quote_currencies()):
                if not self.market.can_convert(quote, a.currency):
                    raise CredentialsError(f"account {a.ctid_trader_account_id}: currency {a.currency} cannot be "
                                           f"converted from {quote} with the simulated symbols")
            book = Account(TraderAccount.login_of(a.ctid_trader_account_id), a.currency, a.hedged, a.balance,
                           self.market)
            self.accounts[a.ctid_trader_account_id] = TraderAccount(a, book)
        self.engine = Engine(self.symbols, self.accounts, clock, self.faults, stop_out_level)
        self.sessions: set = set()
        self.started_ms = self.engine.now_ms()
        self.identity: ServerIdentity | None = None
        self._feed: LoopingCall | None = None
        self.frame_hook = None  # (payloadType) -> None, called as each frame comes off the wire (benchmarks)

    # -- network ----------------------------------------------------------
    def factory(self) -> OpenApiFactory:
        return OpenApiFactory(self)

    def listen(self, reactor, port: int = 0, interface: str = "127.0.0.1", identity: ServerIdentity | None = None):
        """Listen with TLS (a fresh local CA unless ``identity`` is given); returns the listening port."""
        self.identity = identity or local_identity()
        return reactor.listenSSL(port, self.factory(), self.identity.options(), interface=interface)

    def drop_connections(self) -> None:
        """Abort every connection (a network failure as the clients see it)."""
        for session in list(self.sessions):
            session.connection.abort()

    # -- events -----------------------------------------------------------
    def publish(self, emissions: list[Emission], origin=None, client_msg_id: str | None = None) -> None:
        """Send each emission to the connections that authorised its account (the origin gets the clientMsgId)."""
        for e in emissions:
            if origin is not None and (e.requester_only or e.account in origin.accounts):
                origin.connection.send_reply(e.message, client_msg_id, fill=e.fill)
            if e.requester_only:
                continue
            for session in list(self.sessions):
                if session is not origin and e.account in session.accounts:
                    session.connection.send_event(e.message)

    def token_revoked(self, access_token: str) -> None:
        """Tell every connection whose accounts were authorised with ``access_token``; they must re-authorise."""
        for session in list(self.sessions):
            lost = sorted(c for c, token in session.accounts.items() if token == access_token)
            if lost:
                for ctid in lost:
                    session.forget(ctid)
                session.connection.send_event(oa.ProtoOAAccountsTokenInvalidatedEvent(
                    ctidTraderAccountIds=lost, reason="access token refreshed"))

    def disconnect_account(self, ctid: int) -> None:
        """``AccountDisconnectEvent`` to every connection holding ``ctid``; each must authorise it again."""
        for session in list(self.sessions):
            if ctid in session.accounts:
                session.forget(ctid)
                session.connection.send_event(oa.ProtoOAAccountDisconnectEvent(ctidTraderAccountId=ctid))

    def deposit(self, ctid: int, amount: Decimal, note: str = "") -> None:
        """A balance operation on ``ctid`` (negative: a withdrawal), sent to every connection holding it."""
        self.publish(self.engine.deposit(ctid, amount, note))

    # -- a trader at the platform (not through the Open API) -----------------
    def trade_by_hand(self, ctid: int, symbol: str, side, volume: int) -> int:
        """A market order placed in the trading platform itself (as a trader in cTrader Desktop).

        Its events reach every connection holding ``ctid`` without a
        clientMsgId, as such trades do. Returns the position id; raises
        ``RequestError`` for a refused order."""
        req = oa.ProtoOANewOrderReq(ctidTraderAccountId=ctid, symbolId=self.symbols.id_of(symbol),
                                    orderType=model.MARKET, tradeSide=model.BUY if side.value == "buy" else model.SELL,
                                    volume=volume)
        return self._by_hand(self.engine.new_order(req))

    def close_by_hand(self, ctid: int, position_id: int, volume: int | None = None) -> int:
        """Close ``volume`` (all: None) of a position from the trading platform itself."""
        live = self.accounts[ctid].book.position(PositionId(Platform.CTRADER, position_id))
        if live is None:
            raise RequestError("POSITION_NOT_FOUND", f"Position {position_id} not found")
        req = oa.ProtoOAClosePositionReq(ctidTraderAccountId=ctid, positionId=position_id,
                                         volume=live.volume if volume is None else volume)
        return self._by_hand(self.engine.close_position(req))

    def amend_by_hand(self, ctid: int, position_id: int, sl: Decimal | None, tp: Decimal | None) -> None:
        req = oa.ProtoOAAmendPositionSLTPReq(ctidTraderAccountId=ctid, positionId=position_id)
        if sl is not None:
            req.stopLoss = float(sl)  # the protocol's field is a double
        if tp is not None:
            req.takeProfit = float(tp)
        self._by_hand(self.engine.amend_sltp(req))

    def _by_hand(self, emissions: list[Emission]) -> int:
        refused = next((e for e in emissions if e.message.DESCRIPTOR.name == "ProtoOAOrderErrorEvent"), None)
        if refused is not None:
            raise RequestError(refused.message.errorCode, refused.message.description)
        self.publish(emissions)
        positions = [e.message.position.positionId for e in emissions
                     if e.message.DESCRIPTOR.name == "ProtoOAExecutionEvent" and e.message.HasField("position")]
        return positions[-1] if positions else 0

    # -- prices -----------------------------------------------------------
    def spot_event(self, ctid: int, symbol_id: int) -> oa.ProtoOASpotEvent:
        bid, ask = self.symbols.spot(self.symbols.name_of(symbol_id))
        return oa.ProtoOASpotEvent(ctidTraderAccountId=ctid, symbolId=symbol_id, bid=bid, ask=ask,
                                   timestamp=self.engine.now_ms())

    def step_prices(self) -> None:
        """One random-walk step of every symbol, then server-side closes, then spots to subscribers."""
        self.market.step(self.rng)
        self._after_prices()

    def set_bid(self, symbol: str, bid: Decimal) -> None:
        """Put ``symbol``'s bid at ``bid`` (scripted scenarios), then as :meth:`step_prices`."""
        self.market.set_bid(symbol, bid)
        self._after_prices()

    def start_price_feed(self, interval_s: float) -> None:
        self.stop_price_feed()
        self._feed = LoopingCall(self.step_prices)
        self._feed.clock = self.clock
        self._feed.start(interval_s, now=False)

    def stop_price_feed(self) -> None:
        if self._feed is not None and self._feed.running:
            self._feed.stop()
        self._feed = None

    def _after_prices(self) -> None:
        self.publish(self.engine.trigger())
        for session in list(self.sessions):
            for ctid, symbol_ids in session.spots.items():
                for symbol_id in sorted(symbol_ids):
                    session.connection.send_event(self.spot_event(ctid, symbol_id))
