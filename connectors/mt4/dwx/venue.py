"""The MT4 Venue over Darwinex's DWX ZeroMQ Server EA (DWX.md): for terminals that already run it.

``DwxVenue(name, terminals, *, ctx, reactor, clock, server_offset_s=0, timeout_s=10.0, poll_ms=100,
specs=None)``: ``terminals`` maps each login to its DWX EA's ``(command_endpoint, reply_endpoint)``
and ``poll_ms`` is one period for all, or one per login
(the EA's PULL, default port 32768, and PUSH, 32769). ``start()`` fires once every EA answered a
``HEARTBEAT`` and its open trades were read.

- Master deals: ``watch_deals`` polls ``GET_OPEN_TRADES`` every ``poll_ms`` and diffs the snapshots
  (``feed.py``); ``deals_since`` answers from the deals this process has seen so (the EA has no history
  command: nothing before this process's first poll, nothing that opened and closed between two polls).
  ``deals_since(..., stops=)`` compares a fresh snapshot with the stops the bridge's journal last told (an
  amend made while the bridge was down: one SLTP deal per open position, as ``MT4Venue`` does).
- Orders: ``TRADE;OPEN`` with the idempotency key as the comment and ``magic_number(key)`` as the magic,
  without stops; an order's SL/TP then follow as a ``TRADE;MODIFY`` of point distances from the fill price
  (a stop left unset is sent as the distance that puts it at 0, MT4's "none"). ``CLOSE`` closes the
  position's current ticket, ``PARTIAL_CLOSE`` is ``TRADE;CLOSE_PARTIAL`` of the order's lots (refused here
  when it would close it all: the EA closes everything for a size above the order's). The EA's price and
  slippage are its own (``MaximumSlippage``): ``reference_price``/``max_slippage_points`` are not sent.
- Idempotency: a key FILLED here returns that result; a key in flight shares its outcome. The EA keeps no
  journal, so an OPEN first reads the open trades and answers from the one carrying its key, if any (a
  resend while the position is open never trades twice; once it is closed, it would). After an ambiguous
  outcome (no reply within ``timeout_s``, an unreadable reply) ``lookup`` finds an
  OPEN by its key in the open trades' comments, and a CLOSE, PARTIAL_CLOSE or MODIFY sent from this process by
  the state it left (the position gone; its lots down by the order's; the stops at the order's levels). A
  closed or never-opened OPEN cannot be told apart (both: not found). A CLOSE sent again after a lost reply
  finds its position gone and is FILLED (reply lost, position gone) without sending.
- Symbols: DWX has no symbol command; specs come from ``specs`` (symbol -> SymbolSpec), by default the
  simulator's table (``connectors.sim.market.DEFAULT_SYMBOLS``: EURUSD, GBPUSD, USDJPY, XAUUSD, US500). Any
  other symbol is KeyError / ``REJECTED unknown-symbol``, and a master's trade in it is left out (logged).
- Accounts: DWX has no account command: ``account_info`` fails with ``VenueUnavailable`` (balance-based
  sizing cannot use a DWX account; MT4 accounts always hedge).
"""

from __future__ import annotations

import logging
from collections import deque
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Mapping

import zmq
from twisted.internet import defer
from twisted.internet.task import LoopingCall

from allocation.leg import Action
from bridge.domain.deal import Side
from bridge.domain.ids import DealId, Login, OrderId, Platform, PositionId, ServerId
from bridge.domain.volume import SymbolSpec
from connectors.interface import AmbiguousOutcome, OrderRequest, OrderResult, OrderStatus, Stops, VenueUnavailable
from connectors.interface import magic_number
from connectors.mt4 import convert, deals
from connectors.mt4.deals import Chains
from connectors.mt4.dwx import protocol as D
from connectors.mt4.dwx.feed import SnapshotDiff
from connectors.mt4.dwx.link import DwxClosed, DwxLink, DwxTimeout
from connectors.mt4.dwx.reply import ReplyError
from connectors.mt4.venue import MT4Venue, _Refused
from connectors.once import OrdersOnce

log = logging.getLogger(__name__)

M4 = Platform.MT4
#: master deals kept per account for ``deals_since``
REMEMBER = 10_000


def default_specs() -> dict[str, SymbolSpec]:
    from connectors.sim.market import DEFAULT_SYMBOLS

    return {d.symbol: d.spec() for d in DEFAULT_SYMBOLS}


class DwxVenue(MT4Venue):
    """Shares :class:`MT4Venue`'s lifecycle, ``execute`` (each key once), ``lookup`` (what this process knows
    first), volume checks and watcher bookkeeping; the reads, the order path and the deal feed are DWX's."""

    def __init__(self, name: str, terminals: dict[int, tuple[str, str]], *, ctx: zmq.Context, reactor, clock,
                 server_offset_s: int = 0, timeout_s: float = 10.0, poll_ms: int | dict[int, int] = 100,
                 specs: dict[str, SymbolSpec] | None = None, heartbeat_s: float = 1.0) -> None:
        if not terminals:
            raise ValueError("a DWX venue needs at least one terminal")
        polls = poll_ms if isinstance(poll_ms, dict) else {login: poll_ms for login in terminals}
        if any(not isinstance(ms, int) or ms <= 0 for ms in polls.values()) or set(polls) != set(terminals):
            raise ValueError("poll_ms must be a positive number of ms (per terminal, if a dict)")
        self.name = name
        self.server = ServerId(Platform.MT4, name)
        self.reactor = reactor
        self.clock = clock
        self.poll_s = {login: ms / 1000 for login, ms in polls.items()}
        self.server_clock = convert.ServerClock(timedelta(seconds=server_offset_s))
        self.links = {login: DwxLink(login, command, replies, ctx=ctx, reactor=reactor, timeout_s=timeout_s,
                                     heartbeat_s=heartbeat_s)
                      for login, (command, replies) in terminals.items()}
        self.chains = {login: Chains() for login in terminals}
        self.told: dict[int, dict] = {login: {} for login in terminals}  # root -> (stops, id) of the last SLTP
        # symbol -> spec, one table for every terminal (MT4Venue.specs is per login, from the EA)
        self.symbol_specs = dict(specs) if specs is not None else default_specs()
        self.seen: dict[int, deque] = {login: deque(maxlen=REMEMBER) for login in terminals}
        self.watches: dict[int, _Watch] = {}
        self.unresolved: dict[tuple[int, str], tuple[OrderRequest, dict | None]] = {}
        self.orders = OrdersOnce()
        self.filled = self.orders.filled
        self._warned: set = set()  # symbols and tickets logged once

    # -- lifecycle ----------------------------------------------------------------------
    @defer.inlineCallbacks
    def _start(self, login: int, link: DwxLink):
        try:
            yield link.start()
        except (DwxTimeout, DwxClosed, ReplyError) as exc:
            raise VenueUnavailable(f"dwx {self.name}: the EA at {link.command_endpoint} does not answer: {exc}")
        yield self.snapshot(self.login(login))

    # -- reads ----------------------------------------------------------------------------
    def snapshot(self, account: Login) -> defer.Deferred:
        """The account's open market orders (TRADE records, by ticket); the chains learn their comments."""
        d = defer.maybeDeferred(lambda: self._link(account).request(D.trade(D.GET_OPEN_TRADES)))

        def read(reply):
            try:
                trades = D.open_trades(reply)
            except D.DwxRecordError as exc:
                raise VenueUnavailable(f"dwx {account}: {exc}") from None
            for t in trades:
                self.chains[account.number].learn(t)
            return trades

        def failed(failure):
            if failure.check(DwxTimeout, DwxClosed, ReplyError):
                raise VenueUnavailable(f"dwx {account}: GET_OPEN_TRADES: {failure.getErrorMessage()}")
            return failure
        return d.addCallbacks(read, failed)

    def known(self, trades: list[dict]) -> list[dict]:
        """The trades the bridge can read: a symbol with a spec, lots on its grid, prices at its digits. Each
        other symbol, and each trade that does not fit its spec, is logged once and left out."""
        out = []
        for t in trades:
            spec = self.symbol_specs.get(t["symbol"])
            if spec is None:
                self._warn(t["symbol"], f"no spec for {t['symbol']} (DWX has no symbol command): its trades are "
                                        f"left out")
                continue
            try:
                convert.volume_of(t["lots"], spec)
                for name in ("open_price", "sl", "tp"):
                    convert.price(t[name], spec.digits, name)
            except ValueError as exc:
                self._warn(t["ticket"], f"ticket {t['ticket']} does not fit the {t['symbol']} spec ({exc}): "
                                        f"left out")
                continue
            out.append(t)
        return out

    def _warn(self, what, message: str) -> None:
        if what not in self._warned:
            self._warned.add(what)
            log.warning("dwx %s: %s", self.name, message)

    def symbol_spec(self, account: Login, symbol: str) -> defer.Deferred:
        self._link(account)
        spec = self.symbol_specs.get(symbol)
        return defer.succeed(spec) if spec is not None else defer.fail(KeyError(symbol))

    def account_info(self, account: Login) -> defer.Deferred:
        self._link(account)
        return defer.fail(VenueUnavailable(f"dwx {account}: the DWX EA has no account command "
                                           f"(balance and equity are unknown)"))

    @defer.inlineCallbacks
    def positions(self, account: Login):
        trades = self.known((yield self.snapshot(account)))
        chains = self.chains[account.number]
        return [convert.venue_position(t, chains.root(t["ticket"]), deals.key_of(t), account, self.symbol_specs[t["symbol"]])
                for t in trades]

    def deals_since(self, account: Login, after: DealId | None,
                    stops: Mapping[PositionId, Stops] | None = None) -> defer.Deferred:
        """The deals this process polled after ``after``; with ``stops``, then an SLTP deal for each open trade
        whose position's stops are not those (read from a fresh snapshot; see ``MT4Venue.deals_since``)."""
        self._link(account)
        found = deals.after(list(self.seen[account.number]), after, self.server_clock)
        if stops is None:
            return defer.succeed(found)
        d = self.snapshot(account)
        return d.addCallback(lambda trades: found + self.recovered_stops(account, stops, found, self.known(trades)))

    def spec_table(self, login: int) -> dict:
        return self.symbol_specs

    def watch_deals(self, account: Login, callback) -> defer.Deferred:
        self._link(account)
        watch = self.watches.get(account.number)
        if watch is None:
            watch = self.watches[account.number] = _Watch(self, account)
        watch.watchers.append(callback)
        return watch.start()

    # -- orders -----------------------------------------------------------------------------
    def _rejected(self, key: str, reason: str, message: str) -> OrderResult:
        return OrderResult(key, OrderStatus.REJECTED, self.now(), reason=reason, message=message)

    def _spec_of(self, order: OrderRequest) -> SymbolSpec:
        spec = self.symbol_specs.get(order.symbol)
        if spec is None:
            raise _Refused("unknown-symbol", f"no spec for {order.symbol} (DWX has no symbol command)")
        return spec

    @defer.inlineCallbacks
    def _trade(self, order: OrderRequest, text: str, state: dict | None = None):
        """Send a trading command; a lost or unreadable reply is ambiguous (remembered for ``lookup``)."""
        try:
            reply = yield self._link(order.account).request(text)
        except (DwxTimeout, DwxClosed, ReplyError) as exc:
            self.unresolved[(order.account.number, order.key)] = (order, state)
            raise AmbiguousOutcome(order.key, str(exc)) from None
        return reply

    def _refused(self, order: OrderRequest, reply: dict, state: dict | None = None) -> OrderResult:
        reason = D.refusal(reply)
        if reason is None or reason == "ambiguous":
            self.unresolved[(order.account.number, order.key)] = (order, state)
            raise AmbiguousOutcome(order.key, f"the EA's reply says neither done nor why not: {dict(reply)}")
        return self._rejected(order.key, reason, D.text_of(reply))

    @defer.inlineCallbacks
    def _send(self, order: OrderRequest):
        spec = self._spec_of(order)
        if order.action is Action.OPEN:
            return (yield self._open(order, spec))
        root = order.position_id.value
        trades = yield self.snapshot(order.account)
        trade = self._current(order.account, trades, root)
        resolved = self._resolved(order, trade)
        if resolved is not None:
            return resolved
        if trade is None:
            raise _Refused("position-not-found", f"position {root} is not open on account {order.account.number}")
        if order.action is Action.MODIFY:
            return (yield self._modify(order, spec, trade))
        if order.action is Action.CLOSE:
            text = D.trade(D.CLOSE, symbol=trade["symbol"], ticket=trade["ticket"])
        else:
            lots = self._lots(order, spec)
            if lots >= trade["lots"]:
                raise _Refused("invalid-volume", f"a partial close of {lots} lots would close all "
                                                 f"{trade['lots']} of ticket {trade['ticket']}")
            text = D.trade(D.CLOSE_PARTIAL, symbol=trade["symbol"], lots=lots, ticket=trade["ticket"])
        state = {"ticket": trade["ticket"], "lots": trade["lots"]}
        reply = yield self._trade(order, text, state)
        if "_close_lots" not in reply:
            return self._refused(order, reply, state)
        closed = D.number(reply["_close_lots"], "_close_lots")
        return OrderResult(order.key, OrderStatus.FILLED, self.now(), OrderId(M4, trade["ticket"]),
                           PositionId(M4, root), deals.close_id(trade["ticket"]), convert.volume_of(closed, spec),
                           convert.price(D.number(reply["_close_price"], "_close_price"), spec.digits),
                           message="closed" if order.action is Action.CLOSE else "partly closed")

    def _current(self, account: Login, trades: list[dict], root: int) -> dict | None:
        chains = self.chains[account.number]
        return next((t for t in trades if chains.root(t["ticket"]) == root), None)

    @defer.inlineCallbacks
    def _open(self, order: OrderRequest, spec: SymbolSpec):
        lots = self._lots(order, spec)
        found = self._found(order.account, order.key, (yield self.snapshot(order.account)))
        if found is not None:  # sent before (a lost reply, another process): the EA has no journal to ask
            return found
        text = D.trade(D.OPEN, type=convert.order_type(order.side), symbol=order.symbol, comment=order.key,
                       lots=lots, magic=magic_number(order.key))
        reply = yield self._trade(order, text)
        if not isinstance(reply.get("_ticket"), int):
            return self._refused(order, reply)
        ticket = reply["_ticket"]
        price = convert.price(D.number(reply["_open_price"], "_open_price"), spec.digits)
        message = "opened"
        if order.sl is not None or order.tp is not None:
            trade = {"ticket": ticket, "symbol": order.symbol, "type": convert.order_type(order.side),
                     "open_price": price}
            try:
                stops = yield self._link(order.account).request(self._stops(trade, order, spec))
                if "_sl" not in stops:
                    message = f"opened; stops not set: {D.text_of(stops)}"
            except (DwxTimeout, DwxClosed, ReplyError) as exc:
                message = f"opened; stops not known to be set: {exc}"
        return OrderResult(order.key, OrderStatus.FILLED, self._opened_at(reply), OrderId(M4, ticket),
                           PositionId(M4, ticket), deals.open_id(ticket), order.volume, price, message=message)

    def _opened_at(self, reply: dict) -> datetime:
        try:
            opened = datetime.strptime(reply["_open_time"], D.TIME_FORMAT).replace(tzinfo=timezone.utc)
        except (KeyError, TypeError, ValueError):
            return self.now()
        return opened - self.server_clock.offset

    @staticmethod
    def _stops(trade: dict, order: OrderRequest, spec: SymbolSpec) -> str:
        """``TRADE;MODIFY`` of ``order``'s levels as the EA reads them: points from the open price (DWX.md)."""
        point = Decimal(1).scaleb(-spec.digits)
        direction = 1 if convert.side_of(trade["type"]) is Side.BUY else -1
        opened = Decimal(trade["open_price"])
        sl = order.sl if order.sl is not None else Decimal(0)
        tp = order.tp if order.tp is not None else Decimal(0)
        sl_points = ((opened - sl) * direction / point).to_integral_value()
        tp_points = ((tp - opened) * direction / point).to_integral_value()
        return D.trade(D.MODIFY, symbol=trade["symbol"], sl=sl_points, tp=tp_points, ticket=trade["ticket"])

    @defer.inlineCallbacks
    def _modify(self, order: OrderRequest, spec: SymbolSpec, trade: dict):
        root = order.position_id.value
        state = {"ticket": trade["ticket"]}
        reply = yield self._trade(order, self._stops(trade, order, spec), state)
        if "_sl" not in reply and D.refusal(reply) != "mt4-1":  # 1: nothing changed, the levels are set
            return self._refused(order, reply, state)
        return OrderResult(order.key, OrderStatus.FILLED, self.now(), OrderId(M4, trade["ticket"]),
                           PositionId(M4, root), message="stops set")

    def _resolved(self, order: OrderRequest, trade: dict | None) -> OrderResult | None:
        """What the account's state says of an order already sent once from here with no answer; for a MODIFY,
        levels already in place. None: it must (still) be sent."""
        login = order.account.number
        spec = self.symbol_specs[order.symbol]
        root = order.position_id.value
        if order.action is Action.MODIFY:
            if trade is not None and (convert.stop(trade["sl"], spec.digits), convert.stop(trade["tp"], spec.digits)) \
                    == (order.sl, order.tp):
                return OrderResult(order.key, OrderStatus.FILLED, self.now(), OrderId(M4, trade["ticket"]),
                                   PositionId(M4, root), message="stops already set")
            return None
        earlier = self.unresolved.get((login, order.key))
        if earlier is None:
            return None
        state = earlier[1] or {}
        if order.action is Action.CLOSE and trade is None:
            return OrderResult(order.key, OrderStatus.FILLED, self.now(), OrderId(M4, state.get("ticket", root)),
                               PositionId(M4, root), volume=order.volume,
                               message="closed (the reply was lost; the position is gone)")
        if order.action is Action.PARTIAL_CLOSE and trade is not None and state.get("lots") is not None and \
                trade["ticket"] != state.get("ticket") and \
                convert.volume_of(trade["lots"], spec) == convert.volume_of(state["lots"], spec) - order.volume:
            return OrderResult(order.key, OrderStatus.FILLED, self.now(), OrderId(M4, state["ticket"]),
                               PositionId(M4, root), deals.close_id(state["ticket"]), order.volume,
                               message="partly closed (the reply was lost; the remainder is open)")
        return None

    # -- lookup ---------------------------------------------------------------------------------
    @defer.inlineCallbacks
    def _lookup(self, account: Login, key: str):
        trades = yield self.snapshot(account)
        found = self._found(account, key, trades)
        if found is not None:
            return found
        earlier = self.unresolved.get((account.number, key))
        if earlier is None or earlier[0].action is Action.OPEN:
            return None
        order = earlier[0]
        result = self._resolved(order, self._current(account, trades, order.position_id.value))
        if result is not None:
            self.filled[(account.number, key)] = result
        return result

    def _found(self, account: Login, key: str, trades: list[dict]) -> OrderResult | None:
        """The open trade whose comment and magic carry ``key``, as the fill of that key (remembered)."""
        for t in self.known(trades):
            if deals.key_of(t) == key:
                spec = self.symbol_specs[t["symbol"]]
                result = OrderResult(key, OrderStatus.FILLED, self.server_clock.utc_ms(t["open_time_msc"]),
                                     OrderId(M4, t["ticket"]), PositionId(M4, t["ticket"]),
                                     deals.open_id(t["ticket"]), convert.volume_of(t["lots"], spec),
                                     convert.price(t["open_price"], spec.digits), message="opened (found by key)")
                self.filled[(account.number, key)] = result
                return result
        return None


class _Watch:
    """One polled master account: a ``GET_OPEN_TRADES`` every ``poll_s``, its diff delivered in order."""

    def __init__(self, venue: DwxVenue, account: Login) -> None:
        self.venue = venue
        self.account = account
        self.watchers: list = []
        self.diff = SnapshotDiff(account, venue.chains[account.number], venue.symbol_specs.__getitem__,
                                 venue.server_clock)
        self.loop = LoopingCall(self.poll)
        self.loop.clock = venue.reactor
        self.busy = False
        self.failing: str | None = None
        self.polls = 0
        self.delivered = 0
        self._ready: defer.Deferred | None = None
        self._waiting: list[defer.Deferred] = []

    def start(self) -> defer.Deferred:
        if self._ready is not None and self._ready.called:
            return defer.succeed(None)
        d = defer.Deferred()
        self._waiting.append(d)
        if self._ready is None:
            self._ready = defer.Deferred()
            self.loop.start(self.venue.poll_s[self.account.number], now=True)
        return d

    def stop(self) -> None:
        if self.loop.running:
            self.loop.stop()

    def poll(self) -> None:
        if self.busy:
            return
        self.busy = True
        d = self.venue.snapshot(self.account)
        d.addCallback(self._read)
        d.addErrback(self._failed)
        d.addBoth(self._done)

    def _done(self, _) -> None:
        self.busy = False

    def _read(self, trades: list[dict]) -> None:
        self.polls += 1
        if self.failing is not None:
            log.info("dwx %s: polling again (%s)", self.account, self.failing)
            self.failing = None
        found = self.diff.update(self.venue.known(trades), self.venue.now())
        told = self.venue.told[self.account.number]
        for deal in found:
            deal = deals.told_deal(deal, told)  # an SLTP a backfill found already keeps its id
            self.venue.seen[self.account.number].append(deal)
            self.delivered += 1
            for callback in list(self.watchers):
                try:
                    callback(deal)
                except Exception:
                    log.exception("dwx %s: a watcher failed on deal %s", self.account, deal.deal_id)
        if self._ready is not None and not self._ready.called:
            self._ready.callback(None)
            waiting, self._waiting = self._waiting, []
            for w in waiting:
                w.callback(None)

    def _failed(self, failure) -> None:
        why = failure.getErrorMessage()
        if why != self.failing:
            log.warning("dwx %s: poll failed: %s", self.account, why)
            self.failing = why
