"""A cTrader venue's book of its accounts' figures (balance, equity, kind), kept without spending the rate limit.

Asking the server for one account's figures takes two or three requests
(``TraderReq``; ``AssetListReq`` once per currency; ``GetPositionUnrealizedPnLReq``),
and a connection may send 50 requests a second: asked per follower before each
deal, they would hold a fan-out back for seconds. So:

* the first ask for an account goes to the server and waits (concurrent askers
  share it); :meth:`Figures.prefetch` does that for every account, in the
  background, once the venue is connected;
* after that :meth:`Figures.of` answers at once from the book, and asks again in
  the background once the figures are ``refresh_s`` old (30 s by default);
* the balance follows the account's events as they arrive
  (:meth:`Figures.follow`): a close's ``closePositionDetail.balance`` (equity
  unchanged: the profit moves from floating to the balance), a deposit's or
  withdrawal's ``balance`` and ``equity``. Equity between refreshes does not
  follow prices;
* after a reconnect the account's figures are asked again (:meth:`Figures.after_gap`):
  events missed while disconnected cannot leave a stale balance behind.
"""

from __future__ import annotations

import logging
from decimal import Decimal

from ctrader_open_api.messages import OpenApiMessages_pb2 as oa
from ctrader_open_api.messages import OpenApiModelMessages_pb2 as model
from twisted.internet import defer
from twisted.python.failure import Failure

from bridge.domain.ids import Login
from connectors.ctrader import convert
from connectors.interface import AccountInfo

log = logging.getLogger(__name__)

#: figures older than this are asked again, in the background (answers go on from the book meanwhile)
FIGURES_REFRESH_S = 30.0


class Figures:
    def __init__(self, venue, refresh_s: float = FIGURES_REFRESH_S) -> None:
        self.venue = venue  # session_for(ctid), clock, name
        self.refresh_s = refresh_s
        self.known: dict[int, tuple[float, AccountInfo]] = {}  # ctid -> (asked at, figures)
        self.asking: dict[int, list[defer.Deferred]] = {}  # ctid -> callers of the ask in flight
        self._currency: dict[int, str] = {}  # deposit asset id -> name

    def of(self, account: Login) -> defer.Deferred:
        """The account's figures: from the book when it has them (refreshed behind if old), else asked."""
        ctid = account.number
        known = self.known.get(ctid)
        if known is None:
            return self.ask(account)
        if self.venue.clock.seconds() - known[0] >= self.refresh_s and ctid not in self.asking:
            self.ask(account).addErrback(
                lambda f: log.info("ctrader %s: background refresh of %s failed: %s", self.venue.name, account,
                                   f.getErrorMessage()))
        return defer.succeed(known[1])

    def prefetch(self, accounts) -> None:
        """Ask every account's figures in the background: the first deal need not wait for them."""
        for account in accounts:
            if account.number not in self.known:
                self.ask(account).addErrback(
                    lambda f, a=account: log.info("ctrader %s: figures of %s not fetched yet: %s",
                                                  self.venue.name, a, f.getErrorMessage()))

    def ask(self, account: Login) -> defer.Deferred:
        ctid = account.number
        asking = self.asking.get(ctid)
        if asking is None:
            asking = self.asking[ctid] = []
            self._fetch(account).addBoth(self._fetched, ctid)
        d = defer.Deferred()
        asking.append(d)
        return d

    def after_gap(self, ctid: int, wait: bool) -> None:
        """The account was disconnected: events that moved its balance (a deposit, a withdrawal, a close) may
        be lost. Figures already in the book are asked again now; with ``wait`` (a master: its figures size
        every follower's copy) they are dropped too, so that the next ``of`` waits for the fresh ones. Never
        for an account not yet asked (nothing was missed)."""
        known = self.known.get(ctid)
        if known is None:
            return
        if wait:
            del self.known[ctid]
        if ctid not in self.asking:
            self.ask(known[1].login).addErrback(
                lambda f: log.info("ctrader %s: figures of %s not asked again after a reconnect: %s",
                                   self.venue.name, known[1].login, f.getErrorMessage()))

    def _fetched(self, result, ctid: int) -> None:
        waiters = self.asking.pop(ctid, [])
        if not isinstance(result, Failure):
            self.known[ctid] = (self.venue.clock.seconds(), result)
        for d in waiters:
            d.errback(result) if isinstance(result, Failure) else d.callback(result)

    def follow(self, ctid: int, message) -> None:
        """An account's ExecutionEvent: a balance it reports moves the book at once."""
        if message.HasField("depositWithdraw"):
            op = message.depositWithdraw
            self._balance_moved(ctid, convert.money(op.balance, op.moneyDigits),
                                convert.money(op.equity, op.moneyDigits) if op.HasField("equity") else None)
        elif message.HasField("deal") and message.deal.HasField("closePositionDetail"):
            detail = message.deal.closePositionDetail
            known = self.known.get(ctid)
            if known is not None:  # the close moves its profit from floating to the balance: equity stays
                self._balance_moved(ctid, convert.money(detail.balance, detail.moneyDigits), known[1].equity)

    def _balance_moved(self, ctid: int, balance: Decimal, equity: Decimal | None = None) -> None:
        known = self.known.get(ctid)
        if known is None:
            return
        at, info = known
        equity = info.equity + (balance - info.balance) if equity is None else equity
        self.known[ctid] = (at, AccountInfo(info.login, info.currency, balance, equity, info.hedging))

    @defer.inlineCallbacks
    def _fetch(self, account: Login):
        ctid = account.number
        session = self.venue.session_for(ctid)
        trader = (yield session.request(oa.ProtoOATraderReq(ctidTraderAccountId=ctid))).trader
        if trader.depositAssetId not in self._currency:
            assets = yield session.request(oa.ProtoOAAssetListReq(ctidTraderAccountId=ctid))
            self._currency.update({a.assetId: a.name for a in assets.asset})
        pnl = yield session.request(oa.ProtoOAGetPositionUnrealizedPnLReq(ctidTraderAccountId=ctid))
        balance = convert.money(trader.balance, trader.moneyDigits)
        floating = sum((convert.money(p.netUnrealizedPnL, pnl.moneyDigits) for p in pnl.positionUnrealizedPnL),
                       Decimal(0))
        return AccountInfo(account, self._currency.get(trader.depositAssetId, "?"), balance, balance + floating,
                           trader.accountType == model.HEDGED)
