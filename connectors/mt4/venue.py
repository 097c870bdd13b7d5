"""The MetaTrader 4 Venue (connectors/interface.py): one terminal per account, each reached through the
copybridge EA over ZeroMQ (PROTOCOL.md).

``MT4Venue(name, terminals, *, ctx, reactor, clock, server_offset_s=0, timeout_s=10.0)``:
``terminals`` maps each account login to its EA's ``(command_endpoint, event_endpoint)``; ``curve`` (optional)
maps a login to the CURVE keys its link connects with (the EA a CURVE server, PROTOCOL.md, Security). ``start()``
fires once every terminal answered ``PING`` and its account record (``ACCOUNT``) and the symbols of its
open trades (``SYMBOL``) are loaded; ``stop()`` closes every link.

- Links (``link.py``): one DEALER + one SUB per terminal; every request has an id and times out after
  ``timeout_s``; a ``PING`` every second (``connection_status()`` / ``terminal_status()`` for ``bridge
  status``).
- Symbols: the protocol has no command listing them, so a symbol's spec (``SYMBOL`` -> ``convert.spec``) is
  loaded the first time an account needs it and kept; an unknown symbol is ``KeyError`` for
  ``symbol_spec`` and ``REJECTED unknown-symbol`` for an order.
- Positions: a position is named by its chain's root ticket (``deals.py``); before a CLOSE or MODIFY the
  root is mapped to its current open ticket from ``TRADES`` and, if that does not tell, the history
  (``ledger.py``). A CLOSE closes the whole current ticket (``lots`` 0); a PARTIAL_CLOSE the order's
  volume, the rest reopening under a new ticket (the position keeps its root id).
- Orders: volumes off the symbol's step grid or outside min..max are ``REJECTED invalid-volume`` without
  sending (the EA would round down and trade). ``price`` is the order's ``reference_price`` and
  ``slippage`` its ``max_slippage_points`` when both are given (the EA refuses 138 beyond it), else 0 and
  0 (any price). Error replies map through ``errors.py``: a definite refusal is ``REJECTED`` with the
  table's reason; ``128``, no reply within ``timeout_s``, or a link closed with the command unanswered,
  are ``AmbiguousOutcome``.
- Idempotency: a key FILLED here returns that result; a key in flight shares its outcome. After an
  ambiguous outcome the caller looks the key up (``LOOKUP``, answered from the EA's journal); if it then
  sends again, it sends with the same key, and the EA's journal answers a command it executed already
  with the journalled result (``repeat``), so a resend never trades twice. This connector itself never
  resends a trading command. A CLOSE whose root has no open ticket asks ``LOOKUP`` before answering
  ``position-not-found`` (an earlier attempt with this key may have closed it).
- Master deals: ``deals_since`` classifies the history and trades (``deals.classify``, venue order);
  ``watch_deals`` follows the EA's events (``watch.py``: seq, REPLAY, resync on a new epoch or a gap).
  MT4 keeps no history of SL/TP changes and a restarted watch starts from the trades' stops as they are:
  ``deals_since(..., stops=)`` (``recovers_stops``) compares the open trades with the stops the bridge's
  journal last told, one SLTP deal per difference (an amend made while the bridge was down), its id
  from the time it is found and kept per position and stops (``deals.sltp_deals``, ``told``: a backfill
  asked again, or the EA's event of the same change, gives the same id).
- Time: the EA's ``*_msc`` server times become UTC with ``server_offset_s`` (server minus UTC).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from typing import Mapping

import zmq
from twisted.internet import defer

from allocation.leg import Action
from bridge.bus.curve import CurveKeys
from bridge.domain.ids import DealId, Login, OrderId, Platform, PositionId, ServerId
from connectors.once import OrdersOnce
from connectors.interface import (
    NO_STOPS,
    AmbiguousOutcome,
    OrderRequest,
    OrderResult,
    OrderStatus,
    Stops,
    VenueUnavailable,
    magic_number,
    told_stops,
)
from connectors.mt4 import convert, deals, errors
from connectors.mt4 import protocol as P
from connectors.mt4.deals import Chains
from connectors.mt4.errors import EAError
from connectors.mt4.ledger import Ledger
from connectors.mt4.link import EALink, LinkClosed, LinkTimeout
from connectors.mt4.watch import AccountWatch

log = logging.getLogger(__name__)

M4 = Platform.MT4


class _Refused(Exception):
    """A refusal found before anything was sent (unknown symbol, volume off the grid, no such position)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class MT4Venue:
    platform = Platform.MT4

    def __init__(self, name: str, terminals: dict[int, tuple[str, str]], *, ctx: zmq.Context, reactor, clock,
                 server_offset_s: int = 0, timeout_s: float = 10.0, ping_s: float = 1.0,
                 curve: dict[int, CurveKeys] | None = None) -> None:
        if not terminals:
            raise ValueError("an MT4 venue needs at least one terminal")
        self.name = name
        self.server = ServerId(Platform.MT4, name)
        self.reactor = reactor
        self.clock = clock
        self.timeout_s = timeout_s
        self.server_clock = convert.ServerClock(timedelta(seconds=server_offset_s))
        self.links = {login: EALink(login, command, events, ctx=ctx, reactor=reactor, timeout_s=timeout_s,
                                    ping_s=ping_s, curve=(curve or {}).get(login))
                      for login, (command, events) in terminals.items()}
        self.chains = {login: Chains() for login in terminals}
        self.told: dict[int, dict] = {login: {} for login in terminals}  # root -> (stops, id) of the last SLTP
        self.ledgers = {login: Ledger(link, self.chains[login]) for login, link in self.links.items()}
        self.specs: dict[int, dict] = {login: {} for login in terminals}
        self.records: dict[int, dict] = {login: {} for login in terminals}  # SYMBOL results
        self.unknown: dict[int, set[str]] = {login: set() for login in terminals}
        self.accounts: dict[int, dict] = {}
        self.keys: dict[tuple[int, int], str] = {}  # (login, root) -> the key that opened it
        self.watches: dict[int, AccountWatch] = {}
        self.orders = OrdersOnce()
        self.filled = self.orders.filled  # (login, key) -> the fill, known here

    def login(self, number: int) -> Login:
        return Login(self.server, number)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock.seconds(), timezone.utc)

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> defer.Deferred:
        d = defer.gatherResults([self._start(login, link) for login, link in self.links.items()],
                                consumeErrors=True)
        d.addErrback(lambda f: f.value.subFailure if f.check(defer.FirstError) else f)
        return d.addCallback(lambda _: self)

    @defer.inlineCallbacks
    def _start(self, login: int, link: EALink):
        yield link.start()
        self.accounts[login] = yield link.request(P.ACCOUNT)
        if self.accounts[login].get("login") not in (None, login):
            raise VenueUnavailable(f"mt4 {self.name}: the EA at {link.command_endpoint} is logged in to "
                                   f"{self.accounts[login].get('login')}, not {login}")
        trades = (yield link.request(P.TRADES))["trades"]
        yield self.load_specs(login, {t["symbol"] for t in trades})

    def stop(self) -> None:
        for watch in self.watches.values():
            watch.stop()
        self.watches.clear()
        for link in self.links.values():
            link.stop()

    def connection_status(self) -> list[dict]:
        """For ``bridge status``: each terminal's link (see :meth:`terminal_status`)."""
        return self.terminal_status()

    def terminal_status(self) -> list[dict]:
        """Each terminal: up or not, the EA's epoch and the stream's seq, timeouts, replays, resyncs, last error."""
        return [link.status() for link in self.links.values()]

    def _link(self, account: Login) -> EALink:
        link = self.links.get(account.number)
        if link is None:
            raise KeyError(f"mt4 {self.name}: account {account.number} has no terminal on this venue")
        return link

    def _query(self, account: Login, cmd: str, **fields) -> defer.Deferred:
        """A query: a timeout or closed link is VenueUnavailable (nothing changed at the venue)."""
        d = defer.maybeDeferred(lambda: self._link(account).request(cmd, **fields))
        return d.addErrback(self._unavailable, account, cmd)

    @staticmethod
    def _unavailable(failure, account: Login, cmd: str):
        if failure.check(LinkTimeout, LinkClosed):
            raise VenueUnavailable(f"mt4 {account}: {cmd}: {failure.getErrorMessage()}")
        return failure

    # -- symbols ------------------------------------------------------------------------
    def load_specs(self, login: int, symbols) -> defer.Deferred:
        """Load the spec of every symbol of ``symbols`` not known yet (an unknown one is remembered as such)."""
        missing = [s for s in symbols if s and s not in self.specs[login] and s not in self.unknown[login]]
        return defer.gatherResults([self._load_spec(login, s) for s in missing], consumeErrors=True)

    def _load_spec(self, login: int, symbol: str) -> defer.Deferred:
        d = self.links[login].request(P.SYMBOL, symbol=symbol)

        def loaded(record):
            self.records[login][symbol] = record
            self.specs[login][symbol] = convert.spec(record)

        def failed(failure):
            if failure.check(EAError) and failure.value.error == P.UNKNOWN_SYMBOL:
                self.unknown[login].add(symbol)
                return None
            return failure
        return d.addCallbacks(loaded, failed)

    def _spec(self, account: Login, symbol: str) -> defer.Deferred:
        """Fires with the symbol's spec, or fails with KeyError."""
        login = account.number
        self._link(account)
        known = self.specs[login].get(symbol)
        if known is not None:
            return defer.succeed(known)
        self.unknown[login].discard(symbol)  # ask again: a broker may add symbols
        d = self.load_specs(login, [symbol])
        d.addErrback(lambda f: self._unavailable(f.value.subFailure if f.check(defer.FirstError) else f,
                                                 account, P.SYMBOL))

        def found(_):
            spec = self.specs[login].get(symbol)
            if spec is None:
                raise KeyError(symbol)
            return spec
        return d.addCallback(found)

    # -- the Venue interface: reads ---------------------------------------------------------
    def symbol_spec(self, account: Login, symbol: str) -> defer.Deferred:
        return self._spec(account, symbol)

    def account_info(self, account: Login) -> defer.Deferred:
        d = self._query(account, P.ACCOUNT)
        return d.addCallback(convert.account_info, account)

    @defer.inlineCallbacks
    def _state(self, account: Login):
        """The account's history and open trades (``ledger.py``), every symbol's spec loaded."""
        try:
            history, trades = yield self.ledgers[self._link(account).login].refresh()
        except (LinkTimeout, LinkClosed) as exc:
            raise VenueUnavailable(f"mt4 {account}: {exc}") from None
        symbols = {r["symbol"] for r in [*history, *trades] if r["type"] != P.OP_BALANCE}
        yield self.load_specs(account.number, symbols)
        return history, trades

    @defer.inlineCallbacks
    def positions(self, account: Login):
        _, trades = yield self._state(account)
        login = account.number
        chains, ledger = self.chains[login], self.ledgers[login]
        out = []
        for t in trades:
            root = chains.root(t["ticket"])
            record = ledger.record(root)
            key = deals.key_of(record) if record is not None else None
            key = key or self.keys.get((login, root))
            out.append(convert.venue_position(t, root, key, account, self.specs[login][t["symbol"]]))
        return out

    #: ``deals_since`` takes ``stops``: MT4 keeps no history of SL/TP changes (OrderModify)
    recovers_stops = True

    @defer.inlineCallbacks
    def deals_since(self, account: Login, after: DealId | None, stops: Mapping[PositionId, Stops] | None = None):
        """The deals after ``after``; with ``stops`` (the SL/TP the bridge last knew for each open position,
        none if absent), then an SLTP deal for each open position whose SL/TP are not those now (an amend made
        while the bridge was down: the EA's events of it are gone)."""
        history, trades = yield self._state(account)
        login = account.number
        spec_of = self.specs[login].__getitem__
        found = deals.classify(history, trades, account, spec_of, self.server_clock, self.chains[login])
        found = deals.after(found, after, self.server_clock)
        if stops is not None:
            found += self.recovered_stops(account, stops, found, trades)
        return found

    def recovered_stops(self, account: Login, stops: Mapping[PositionId, Stops], found: list, trades: list[dict]):
        """SLTP deals for the open ``trades`` whose position's stops are not those ``stops`` (the journal's) and
        the deals ``found`` (the backfill, journalled next) tell. Ids of the time found, or the one told."""
        login = account.number
        chains, spec_of = self.chains[login], self.spec_table(login).__getitem__
        known = told_stops({p.value: s for p, s in stops.items()}, found)
        changed = [t for t in trades
                   if deals.stops_of(t, spec_of(t["symbol"])) != known.get(chains.root(t["ticket"]), NO_STOPS)]
        return deals.sltp_deals(changed, account, spec_of, self.server_clock, chains, self.server_now_ms(),
                                self.told[login])

    def spec_table(self, login: int) -> dict:
        """Symbol -> SymbolSpec of ``login``'s terminal."""
        return self.specs[login]

    def server_now_ms(self) -> int:
        return self.server_clock.server_ms(self.now())

    def watch_deals(self, account: Login, callback) -> defer.Deferred:
        self._link(account)
        watch = self.watches.get(account.number)
        if watch is None:
            watch = self.watches[account.number] = AccountWatch(account, self)
        watch.watchers.append(callback)
        return watch.start()

    def unwatch_deals(self, account: Login, callback) -> None:
        watch = self.watches.get(account.number)
        if watch is None:
            return
        if callback in watch.watchers:
            watch.watchers.remove(callback)
        if not watch.watchers:
            watch.stop()
            del self.watches[account.number]

    # -- positions: root -> the open ticket ------------------------------------------------
    @defer.inlineCallbacks
    def current_ticket(self, account: Login, root: int):
        """The open ticket of the position named ``root`` (its chain's current remainder), or None."""
        login = account.number
        trades = (yield self._query(account, P.TRADES))["trades"]
        chains = self.chains[login]
        for t in trades:
            chains.learn(t)
        for t in trades:
            if chains.root(t["ticket"]) == root:
                return t
        _, trades = yield self._state(account)  # the history teaches the links TRADES alone cannot
        for t in trades:
            if chains.root(t["ticket"]) == root:
                return t
        return None

    # -- the Venue interface: orders --------------------------------------------------------
    def execute(self, order: OrderRequest) -> defer.Deferred:
        return self.orders.execute((order.account.number, order.key), lambda: self._execute(order))

    @defer.inlineCallbacks
    def _execute(self, order: OrderRequest):
        try:
            result = yield self._send(order)
        except _Refused as exc:
            return OrderResult(order.key, OrderStatus.REJECTED, self.now(), reason=exc.reason, message=str(exc))
        return result

    @defer.inlineCallbacks
    def _send(self, order: OrderRequest):
        account, login = order.account, order.account.number
        link = self._link(account)
        try:
            spec = yield self._spec(account, order.symbol)
        except KeyError:
            raise _Refused("unknown-symbol", f"no symbol {order.symbol} on account {login}") from None
        slippage = {}
        if order.reference_price is not None and order.max_slippage_points is not None and \
                order.action is not Action.MODIFY:
            slippage = {"price": convert.price_field(order.reference_price, spec.digits),
                        "slippage": order.max_slippage_points}
        if order.action is Action.OPEN:
            lots = self._lots(order, spec)
            command = {"symbol": order.symbol, "type": convert.order_type(order.side), "lots": lots,
                       "price": 0, "slippage": 0, **slippage,
                       "sl": convert.price_field(order.sl, spec.digits),
                       "tp": convert.price_field(order.tp, spec.digits), "magic": magic_number(order.key)}
            cmd = P.OPEN
            root = None
        else:
            root = order.position_id.value
            trade = yield self.current_ticket(account, root)
            if trade is None:
                found = yield self._lookup(account, order.key)  # not lookup(): this key is in flight
                if found is not None:
                    return found
                raise _Refused("position-not-found", f"position {root} is not open on account {login}")
            if order.action is Action.MODIFY:
                cmd = P.MODIFY
                command = {"ticket": trade["ticket"], "sl": convert.price_field(order.sl, spec.digits),
                           "tp": convert.price_field(order.tp, spec.digits)}
            else:
                cmd = P.CLOSE
                lots = 0 if order.action is Action.CLOSE else self._lots(order, spec, closing=True)
                command = {"ticket": trade["ticket"], "lots": lots, "price": 0, "slippage": 0, **slippage}
        try:
            reply = yield link.request(cmd, key=order.key, **command)
        except (LinkTimeout, LinkClosed) as exc:
            raise AmbiguousOutcome(order.key, str(exc)) from None
        except EAError as exc:
            reason = errors.reason(exc.error)
            if reason == errors.AMBIGUOUS:
                raise AmbiguousOutcome(order.key, f"{exc.error} {exc.text}") from None
            return OrderResult(order.key, OrderStatus.REJECTED, self.now(), reason=reason,
                               message=f"{exc.error} {exc.text}")
        return self._result(order.key, login, cmd, reply, spec, root)

    def _lots(self, order: OrderRequest, spec, closing: bool = False):
        if not spec.tradable(order.volume):
            raise _Refused("invalid-volume", f"{order.volume} is {spec.to_lots(order.volume)} lots of "
                                             f"{order.symbol}: off the step or outside min..max")
        return convert.lots_of(order.volume, spec)

    def _result(self, key: str, login: int, cmd: str, reply: dict, spec, root: int | None) -> OrderResult:
        """A trading command's result (or a journalled one) as an OrderResult; the chains learn a remainder."""
        chains = self.chains[login]
        when = self.server_clock.utc_ms(reply["time_msc"]) if "time_msc" in reply else self.now()
        ticket = reply["ticket"]
        if cmd == P.OPEN:
            self.keys[(login, ticket)] = key
            return OrderResult(key, OrderStatus.FILLED, when, OrderId(M4, ticket), PositionId(M4, ticket),
                               deals.open_id(ticket), convert.volume_of(reply["lots"], spec),
                               convert.price(reply["price"], spec.digits), message="opened",
                               quote_to_account=convert.quote_to_account(self.records[login].get(spec.symbol, {})))
        if root is None:
            root = chains.root(ticket)
        if cmd == P.CLOSE:
            if reply.get("remainder"):
                chains.link(reply["remainder"], ticket)
            return OrderResult(key, OrderStatus.FILLED, when, OrderId(M4, ticket), PositionId(M4, root),
                               deals.close_id(ticket), convert.volume_of(reply["closed_lots"], spec),
                               convert.price(reply["price"], spec.digits), message="closed",
                               quote_to_account=convert.quote_to_account(self.records[login].get(spec.symbol, {})))
        return OrderResult(key, OrderStatus.FILLED, when, OrderId(M4, ticket), PositionId(M4, root),
                           message="stops set")

    def lookup(self, account: Login, key: str) -> defer.Deferred:
        ident = (account.number, key)
        known = self.orders.known(ident, lambda: self._lookup(account, key))
        if known is not None:
            return known
        return self._lookup(account, key)

    @defer.inlineCallbacks
    def _lookup(self, account: Login, key: str):
        login = account.number
        answer = yield self._query(account, P.LOOKUP, key=key)
        if not answer.get("found"):
            return None
        cmd, reply = answer["cmd"], answer["reply"]
        symbol = reply.get("symbol")
        if symbol is None:  # a CLOSE or MODIFY result names only the ticket: its record names the symbol
            yield self._state(account)
            record = self.ledgers[login].record(reply["ticket"])
            if record is None:
                raise VenueUnavailable(f"mt4 {account}: ticket {reply['ticket']} of key {key} is in no record")
            symbol = record["symbol"]
        spec = yield self._spec(account, symbol)
        result = self._result(key, login, cmd, reply, spec, None)
        self.filled[(login, key)] = result
        return result


__all__ = ["MT4Venue"]
