"""The cTrader Venue (connectors/interface.py) over the Open API: a pool of TLS sessions.

Build with the server's endpoint, the application's id and secret and each
account's tokens (and, if known, when its access token expires: it is then
refreshed ahead of that; see ``tokens.py``), then ``start()`` (fires once every
account is authorised, its positions reconciled and the symbols loaded). Time (timeouts, heartbeats,
backoff, rate buckets) is the injected ``clock``; jitter the injected ``rng``;
sockets the injected ``reactor``.

- Symbols: ``SymbolsListReq`` then ``SymbolByIdReq`` for all of them, once per
  venue; ``SymbolChangedEvent`` (a broker changed a symbol's spec, e.g. its min
  volume or step) reloads the symbols it names with ``SymbolByIdReq``, and
  ``symbol_spec`` answers with the new spec from then on (a failed reload is
  logged; the next reconnect does not reload, the next event does).
- ``account_info``: from the venue's book of figures (``figures.py``): asked
  once per account (``TraderReq``, ``GetPositionUnrealizedPnLReq``), then
  answered at once, refreshed in the background, balances following events.
- ``positions``: ``ReconcileReq``; a position's label is its idempotency key.
- After every (re)connect, per account: a ``DealListReq`` backfill from the
  newest deal seen (watched accounts), then ``ReconcileReq``, whose positions'
  SL/TP are compared with those the deals told (an amend made while
  disconnected becomes one SLTP deal); see ``deals.py``. The account's figures
  are asked again (balance operations may have been missed): a watched
  account's next ``account_info`` waits for them.
- Orders and lookup: ``orders.py``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Mapping

from ctrader_open_api.messages import OpenApiMessages_pb2 as oa
from ctrader_open_api.messages import OpenApiModelMessages_pb2 as model
from twisted.internet import defer

from bridge.domain.ids import DealId, Login, Platform, PositionId, ServerId
from connectors.ctrader import convert
from connectors.ctrader.deals import AccountDeals, classify, signed_positions
from connectors.ctrader.figures import FIGURES_REFRESH_S, Figures
from connectors.ctrader.orders import MARGIN_MS, WEEK_MS, Orders
from connectors.ctrader.pool import Pool
from connectors.ctrader.session import BUSY_BACKOFF, Backoff, Endpoint, Session
from connectors.ctrader.tokens import Token, TokenKeeper
from connectors.interface import OrderRequest, Stops

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AccountAccess:
    ctid: int  # ctidTraderAccountId: the bridge's login number
    access_token: str
    refresh_token: str
    expires_at_ms: int | None = None  # when the access token expires (Unix ms), if known


class CTraderVenue:
    platform = Platform.CTRADER

    def __init__(self, name: str, endpoint: Endpoint, app: tuple[str, str], accounts: list[AccountAccess], *,
                 clock, rng, reactor, pool_size: int = 1, timeout_s: float = 5.0, backoff: Backoff = Backoff(),
                 connection: dict | None = None, busy: Backoff = BUSY_BACKOFF, busy_retries: int = 5,
                 figures_refresh_s: float = FIGURES_REFRESH_S, prefetch_figures: bool = False) -> None:
        self.name = name
        self.server = ServerId(Platform.CTRADER, name)
        self.clock = clock
        self.log = log
        shared: dict[str, Token] = {}
        tokens = {a.ctid: shared.setdefault(a.access_token, Token(a.access_token, a.refresh_token))
                  for a in accounts}
        self.tokens = TokenKeeper(tokens, clock)
        self.tokens.send = lambda m: defer.maybeDeferred(lambda: self.pool.any_session().request(m))
        self._expiries = {a.access_token: (a.ctid, a.expires_at_ms) for a in accounts if a.expires_at_ms}
        self.pool = Pool([a.ctid for a in accounts], pool_size, lambda i, ctids: Session(
            f"{name}-{i}", self, endpoint, app, ctids, self.tokens, clock=clock, rng=rng, reactor=reactor,
            timeout_s=timeout_s, backoff=backoff, connection=connection, busy=busy, busy_retries=busy_retries))
        self.streams = {a.ctid: AccountDeals(self.login(a.ctid), self.symbol_name) for a in accounts}
        self.open: dict[int, dict[int, int]] = {a.ctid: {} for a in accounts}  # account -> position -> signed volume
        self.orders = Orders(self)
        self._names: dict[int, str] = {}
        self._ids: dict[str, int] = {}
        self._specs: dict[int, object] = {}
        self._symbols: defer.Deferred | None = None
        self._ready_waiters: dict[int, list[defer.Deferred]] = {}
        self.prefetch_figures = prefetch_figures
        self.figures = Figures(self, figures_refresh_s)
        self.resyncs = 0

    def login(self, ctid: int) -> Login:
        return Login(self.server, ctid)

    def now_ms(self) -> int:
        return int(self.clock.seconds() * 1000)

    # -- lifecycle ---------------------------------------------------------
    def start(self) -> defer.Deferred:
        for ctid, expires_at_ms in self._expiries.values():
            self.tokens.expires_in(ctid, (expires_at_ms - self.now_ms()) / 1000)
        firsts = [s.start() for s in self.pool.sessions]
        d = defer.gatherResults(firsts, consumeErrors=True)
        d.addCallback(lambda _: self._when_live(list(self.streams)))
        if self.prefetch_figures:
            d.addCallback(lambda _: self.figures.prefetch(self.login(c) for c in self.streams))
        return d.addCallback(lambda _: self)

    def stop(self) -> None:
        self.tokens.stop()
        for session in self.pool.sessions:
            session.stop()

    def connection_status(self) -> list[dict]:
        """Each pooled connection, for ``bridge status``: up or not, accounts authorised, reconnects, last error."""
        return [{"connection": s.name, "connected": s.protocol is not None, "accounts": len(s.accounts),
                 "authorised": len(s.ready), "connects": s.connects, "last_error": s.last_error}
                for s in self.pool.sessions]

    def session_for(self, ctid: int) -> Session:
        return self.pool.session_for(ctid)

    def _when_live(self, ctids: list[int]) -> defer.Deferred:
        waits = []
        for ctid in ctids:
            if not self.streams[ctid].live:
                d = defer.Deferred()
                self._ready_waiters.setdefault(ctid, []).append(d)
                waits.append(d)
        return defer.gatherResults(waits) if waits else defer.succeed(None)

    # -- session callbacks -------------------------------------------------
    def account_ready(self, session: Session, ctid: int) -> None:
        self._resync(session, ctid).addErrback(self._resync_failed, session, ctid)

    def _resync_failed(self, failure, session: Session, ctid: int) -> None:
        log.warning("ctrader %s: resync of account %d failed: %s", self.name, ctid, failure.getErrorMessage())
        session.drop(f"resync failed: {failure.getErrorMessage()}")

    @defer.inlineCallbacks
    def _resync(self, session: Session, ctid: int):
        yield self._load_symbols(session, ctid)
        stream = self.streams[ctid]
        backfill = []
        if stream.watchers and stream.last_ms is not None:
            backfill = yield self._deal_list(session, ctid, stream.last_ms, self.now_ms() + MARGIN_MS)
        res = yield session.request(oa.ProtoOAReconcileReq(ctidTraderAccountId=ctid))
        self.open[ctid] = signed_positions(res.position)
        self.figures.after_gap(ctid, wait=bool(stream.watchers))  # balance events may have been missed
        stream.resume(backfill, res.position)
        self.resyncs += 1
        for d in self._ready_waiters.pop(ctid, []):
            d.callback(None)

    def account_down(self, ctid: int) -> None:
        self.streams[ctid].down()

    def event(self, session: Session, message) -> None:
        if message.DESCRIPTOR.name == "ProtoOASymbolChangedEvent":
            ids = list(message.symbolId)
            self._reload_symbols(session, message.ctidTraderAccountId, ids).addErrback(
                lambda f: log.warning("ctrader %s: symbols %s changed but not reloaded: %s", self.name, ids,
                                      f.getErrorMessage()))
            return
        ctid = message.ctidTraderAccountId
        if ctid not in self.streams:
            return
        if message.DESCRIPTOR.name == "ProtoOAExecutionEvent":
            self.figures.follow(ctid, message)
        if message.HasField("position"):
            p = message.position
            if p.positionStatus == model.POSITION_STATUS_OPEN:
                self.open[ctid][p.positionId] = convert.signed(convert.side_of(p.tradeData.tradeSide),
                                                               p.tradeData.volume)
            else:
                self.open[ctid].pop(p.positionId, None)
        self.streams[ctid].event(message)

    # -- symbols -----------------------------------------------------------
    def _load_symbols(self, session: Session, ctid: int) -> defer.Deferred:
        if self._symbols is None or (self._symbols.called and not self._names):
            self._symbols = self._fetch_symbols(session, ctid)
            self._symbols.addErrback(self._symbols_failed)
        d = defer.Deferred()
        self._symbols.addBoth(lambda r: (d.callback(None) if self._names else d.errback(
            RuntimeError("symbols not loaded")), r)[1])
        return d

    def _symbols_failed(self, failure):
        self._symbols = None
        return failure

    @defer.inlineCallbacks
    def _fetch_symbols(self, session: Session, ctid: int):
        light = yield session.request(oa.ProtoOASymbolsListReq(ctidTraderAccountId=ctid))
        names = {s.symbolId: s.symbolName for s in light.symbol}
        yield self._reload_symbols(session, ctid, sorted(names), names)

    @defer.inlineCallbacks
    def _reload_symbols(self, session: Session, ctid: int, ids: list[int], names: dict | None = None):
        full = yield session.request(oa.ProtoOASymbolByIdReq(ctidTraderAccountId=ctid, symbolId=ids))
        names = names or self._names
        for symbol in full.symbol:
            name = names.get(symbol.symbolId, str(symbol.symbolId))
            self._specs[symbol.symbolId] = convert.spec(name, symbol)
        if names is not self._names:
            self._names.update(names)
            self._ids.update({n: i for i, n in names.items()})

    def symbol_name(self, symbol_id: int) -> str:
        return self._names.get(symbol_id, str(symbol_id))

    def symbol_id(self, name: str) -> defer.Deferred:
        return defer.succeed(self._ids.get(name))

    # -- the Venue interface -----------------------------------------------
    def account_info(self, account: Login) -> defer.Deferred:
        return self.figures.of(account)

    def execute(self, order: OrderRequest) -> defer.Deferred:
        return self.orders.execute(order)

    def lookup(self, account: Login, key: str) -> defer.Deferred:
        return self.orders.lookup(account, key)

    def symbol_spec(self, account: Login, symbol: str) -> defer.Deferred:
        symbol_id = self._ids.get(symbol)
        if symbol_id is None or symbol_id not in self._specs:
            return defer.fail(KeyError(symbol))
        return defer.succeed(self._specs[symbol_id])

    @defer.inlineCallbacks
    def positions(self, account: Login):
        ctid = account.number
        res = yield self.session_for(ctid).request(oa.ProtoOAReconcileReq(ctidTraderAccountId=ctid))
        return [convert.venue_position(p, account, self.symbol_name(p.tradeData.symbolId)) for p in res.position]

    #: ``deals_since`` takes ``stops``: SL/TP changes are no deals in cTrader's history (see deals.py)
    recovers_stops = True

    @defer.inlineCallbacks
    def deals_since(self, account: Login, after: DealId | None, stops: Mapping[PositionId, Stops] | None = None):
        """The deals after ``after``; with ``stops`` (the SL/TP the bridge last knew for each open position,
        none if absent), then an SLTP deal for each open position whose SL/TP are not those now."""
        ctid = account.number
        session = self.session_for(ctid)
        now = self.now_ms()
        deals = yield self._deal_list(session, ctid, now - WEEK_MS + MARGIN_MS, now + MARGIN_MS)
        res = yield session.request(oa.ProtoOAReconcileReq(ctidTraderAccountId=ctid))
        found = classify(deals, signed_positions(res.position), account, self.symbol_name)
        found = [d for d in found if after is None or d.deal_id.value > after.value]
        if stops is not None:
            stream = self.streams[ctid]
            changes = stream.stop_changes(res.position, {p.value: s for p, s in stops.items()})
            for change in changes:  # published by the caller: the live feed need not tell them again
                stream.remember(change)
            found += changes
        return found

    @defer.inlineCallbacks
    def _deal_list(self, session: Session, ctid: int, start: int, end: int):
        deals: dict[int, object] = {}
        while True:
            res = yield session.request(oa.ProtoOADealListReq(ctidTraderAccountId=ctid, fromTimestamp=start,
                                                              toTimestamp=end))
            for d in res.deal:
                deals[d.dealId] = d
            if not res.hasMore or not res.deal:
                break
            start = max(d.executionTimestamp for d in res.deal)
        return sorted(deals.values(), key=lambda d: d.dealId)

    def watch_deals(self, account: Login, callback) -> defer.Deferred:
        stream = self.streams[account.number]
        stream.watchers.append(callback)
        if stream.last_ms is None:
            stream.last_ms = self.now_ms() - MARGIN_MS  # a reconnect backfills from here
        return self._when_live([account.number])

    def unwatch_deals(self, account: Login, callback) -> None:
        watchers = self.streams[account.number].watchers
        if callback in watchers:
            watchers.remove(callback)
