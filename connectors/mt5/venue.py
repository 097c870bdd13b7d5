"""The MetaTrader 5 Venue (connectors/interface.py): one terminal per account, through providers.

Build with the venue's name and ``terminals`` (account login -> provider, see
``providers.py``: native, mt5linux or the simulator; the venue never knows
which), then ``start()``: every terminal is initialised, checked to hold its
account, its symbols and account record loaded; it fires once all are up.

- Calls: each account's terminal has one worker (``pool.py``): a blocking call
  never blocks the reactor or another terminal; a terminal that is down is
  reported (``terminal_status()``, the log) and every call on it fails with
  ``VenueUnavailable`` until a health check has initialised it again.
- Master deals: ``watch_deals`` starts the account's poller (``watch.py``)
  at ``poll_interval_s``; ``deals_since`` reads the history (``deals.py``
  classifies). MT5 keeps no history of SL/TP changes: the poller finds them by
  diffing positions, and ``deals_since(..., stops=)`` (``recovers_stops``)
  compares the open positions with the stops the bridge's journal last told,
  one SLTP deal per difference (an amend made while the bridge was down), ids
  as the poller's (``deals.recovered_stops``). Times are trade-server time
  converted to UTC with ``server_offset_s`` (server minus UTC).
- Orders (``requests.py``, ``retcodes.py``): ``order_send`` at market with the
  symbol's filling mode, ``deviation`` from the order's max slippage, ``magic``
  and ``comment`` carrying the key; CLOSE closes the position's whole volume as
  the terminal reports it at the send (read in the same hop); MODIFY is
  ``TRADE_ACTION_SLTP``. A price already beyond the order's max slippage is
  REJECTED ``requote`` without sending (the executor retries at the next
  price, then gives up with ``max-slippage-exceeded``); so is a server
  requote (10004) or price change (10020). IPC failures after the send
  (-10001/-10002/-10004/-10005), a provider's link lost during the send
  (``ConnectionError``), or no answer within ``timeout_s``, are
  ``AmbiguousOutcome``: look the key up before any resend.
- Idempotency: a key already FILLED here returns that result; a key in flight
  shares its outcome.
- Lookup: a FILLED key known here answers at once, a key in flight waits for
  it; otherwise the account's deals whose comment/magic carry the key
  (``requests.lookup_result``) from :data:`LOOKUP_MARGIN_S` before the send
  (:data:`LOOKUP_WINDOW_S` back for a key this process never sent). The lookup
  runs on the same worker as the send, so after it: a send still blocked in its
  call is answered before the lookup reads anything.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Mapping

from twisted.internet import defer

from allocation.leg import Action
from bridge.domain.ids import DealId, Login, Platform, PositionId, ServerId
from connectors.once import OrdersOnce
from connectors.interface import (
    AmbiguousOutcome, OrderRequest, OrderResult, OrderStatus, Stops, VenueUnavailable, told_stops,
)
from connectors.mt5 import codes as c
from connectors.mt5 import convert, requests, retcodes
from connectors.mt5.deals import Inconsistent, classify, recovered_stops, resume_point
from connectors.mt5.pool import CallFailed, TerminalPool, Worker, checked
from connectors.mt5.watch import AHEAD_S, READS, Poller

log = logging.getLogger(__name__)

P = Platform.MT5
#: a lookup reads deals from this long before the key was sent
LOOKUP_MARGIN_S = 60
#: ... or this far back for a key this process never sent (after a restart)
LOOKUP_WINDOW_S = 7 * 24 * 3600
#: ``deals_since`` after a deal ticket reads the history this far back
BACKFILL_WINDOW_S = 7 * 24 * 3600


# -- hops: run on a terminal's thread ----------------------------------------------
def _load(t, login: int):
    """Every symbol's SymbolInfo (``symbols_get``) and the account record."""
    symbols = checked(t, "symbols_get")
    return {s.name: s for s in symbols}, checked(t, "account_info")


def _send(t, order: OrderRequest, info, spec, netting: bool):
    """One order: (kind, payload). Kinds: "sent" (result, last_error, deal position id or None),
    "beyond" (BeyondSlippage), "gone" (a close of a position the terminal does not hold)."""
    if order.action is Action.CLOSE:
        held = t.positions_get(ticket=order.position_id.value)
        if held is None:
            raise CallFailed("positions_get", t.last_error())
        if not held:
            return "gone", None
        record = held[0]
        order = replace(order, side=convert.side_of(record.type), volume=convert.volume_of(record.volume, info))
    tick = None
    if order.action is not Action.MODIFY:  # an SL/TP request carries no price
        tick = t.symbol_info_tick(order.symbol)
        if tick is None:
            t.symbol_select(order.symbol, True)
            tick = checked(t, "symbol_info_tick", order.symbol)
    try:
        request = requests.order_request(order, info, spec, tick)
    except requests.BeyondSlippage as exc:
        return "beyond", exc
    result = t.order_send(request)
    error = t.last_error() if result is None else None
    position = None
    if result is not None and result.retcode == c.TRADE_RETCODE_DONE and order.action is Action.OPEN and netting:
        deals = t.history_deals_get(ticket=result.order) or ()
        position = next((d.position_id for d in deals if d.position_id), None)
    return "sent", (result, error, position)


def _history(t, start: int, end: int):
    return checked(t, "history_deals_get", start, end)


def _history_and_positions(t, start: int, end: int):
    deals = checked(t, "history_deals_get", start, end)
    for _ in range(READS):
        positions = checked(t, "positions_get")
        again = checked(t, "history_deals_get", start, end)
        if {d.ticket for d in again} == {d.ticket for d in deals}:
            break
        deals = again
    return deals, positions


class MT5Venue:
    platform = Platform.MT5

    def __init__(self, name: str, terminals: dict[int, object], *, reactor, clock, poll_interval_s: float = 0.005,
                 server_offset_s: int = 0, timeout_s: float = 10.0, threads: bool = True) -> None:
        self.name = name
        self.server = ServerId(Platform.MT5, name)
        self.reactor = reactor
        self.clock = clock
        self.poll_interval_s = poll_interval_s
        self.server_clock = convert.ServerClock(timedelta(seconds=server_offset_s))
        self.pool = TerminalPool(terminals, reactor=reactor, clock=clock, threads=threads, timeout_s=timeout_s)
        self.infos: dict[int, dict[str, object]] = {login: {} for login in terminals}  # SymbolInfo records
        self.specs: dict[int, dict[str, object]] = {login: {} for login in terminals}  # SymbolSpec
        self.hedging: dict[int, bool] = {}
        # per login: identifier -> (stops, id) of the last SLTP deal made (the poller's and deals_since's)
        self.told: dict[int, dict] = {login: {} for login in terminals}
        self.pollers: dict[int, Poller] = {}
        self.orders = OrdersOnce()
        self.filled = self.orders.filled  # (login, key) -> the fill, known here
        self.sent_at: dict[tuple[int, str], float] = {}  # clock seconds of the last send of a key

    def login(self, number: int) -> Login:
        return Login(self.server, number)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock.seconds(), timezone.utc)

    # -- lifecycle ---------------------------------------------------------
    def start(self) -> defer.Deferred:
        d = self.pool.start(self._ready)
        return d.addCallback(lambda _: self)

    def stop(self) -> None:
        for poller in self.pollers.values():
            poller.stop()
        self.pool.stop()

    def _ready(self, worker: Worker, account) -> defer.Deferred:
        """After each (re)connect: the symbols and the account's mode, loaded again (a broker may change them)."""
        d = worker.run(_load, worker.login, force=True)
        d.addCallback(self._loaded, worker.login)
        return d

    def _loaded(self, loaded, login: int) -> None:
        infos, account = loaded
        specs = {}
        for name, info in infos.items():
            try:
                specs[name] = convert.spec(info)
            except (ValueError, TypeError) as exc:
                log.warning("mt5 %s: symbol %s skipped: %s", self.name, name, exc)
        self.infos[login].update(infos)
        self.specs[login] = specs
        self.hedging[login] = account.margin_mode == c.ACCOUNT_MARGIN_MODE_RETAIL_HEDGING

    def connection_status(self) -> list[dict]:
        """For ``bridge status``: each terminal (see :meth:`terminal_status`)."""
        return self.terminal_status()

    def terminal_status(self) -> list[dict]:
        """Each terminal, for ``bridge status``: up or down (and why), connects, failures, last error."""
        return self.pool.status()

    def _worker(self, account: Login) -> Worker:
        return self.pool.worker(account.number)

    # -- the Venue interface: reads -----------------------------------------
    def symbol_spec(self, account: Login, symbol: str) -> defer.Deferred:
        spec = self.specs.get(account.number, {}).get(symbol)
        if spec is None:
            return defer.fail(KeyError(symbol))
        return defer.succeed(spec)

    def account_info(self, account: Login) -> defer.Deferred:
        d = defer.maybeDeferred(lambda: self._worker(account).run(checked, "account_info"))
        return d.addCallback(convert.account_info, account)

    def positions(self, account: Login) -> defer.Deferred:
        d = defer.maybeDeferred(lambda: self._worker(account).run(checked, "positions_get"))
        return d.addCallback(lambda records: [
            convert.venue_position(p, account, self.infos[account.number][p.symbol]) for p in records])

    #: ``deals_since`` takes ``stops``: SL/TP changes are no deals in MT5's history (see deals.py)
    recovers_stops = True

    def deals_since(self, account: Login, after: DealId | None,
                    stops: Mapping[PositionId, Stops] | None = None) -> defer.Deferred:
        """The deals after ``after``; with ``stops`` (the SL/TP the bridge last knew for each open position,
        none if absent), then an SLTP deal for each open position whose SL/TP are not those now."""
        point = resume_point(after)
        now_s = self.server_clock.server_seconds(self.now())
        if point is None:
            start = 0
        elif point[0] == "ticket":
            start = now_s - BACKFILL_WINDOW_S
        else:
            start = point[1] // 1000
        d = defer.maybeDeferred(lambda: self._worker(account).run(_history_and_positions, start, now_s + AHEAD_S))
        return d.addCallback(self._since, account, point, stops)

    def _since(self, reads, account: Login, point, stops: Mapping[PositionId, Stops] | None):
        deals, positions = reads
        infos = self.infos[account.number]
        if point is not None and point[0] == "ticket":
            deals = [d for d in deals if d.ticket > point[1]]
        elif point is not None:
            deals = [d for d in deals if d.time_msc >= point[1]]
        try:
            found = classify(deals, positions, account, infos.__getitem__, self.server_clock)
        except Inconsistent as exc:  # a deal between the reads: the caller asks again
            raise VenueUnavailable(f"mt5 {account}: history changed while read ({exc})") from None
        if stops is not None:
            known = told_stops({p.value: s for p, s in stops.items()}, found)
            found += recovered_stops(known, positions, account, infos.__getitem__, self.server_clock,
                                     self.told[account.number])
        return found

    def watch_deals(self, account: Login, callback) -> defer.Deferred:
        poller = self.pollers.get(account.number)
        if poller is None:
            poller = self.pollers[account.number] = Poller(
                account, self._worker(account), clock=self.clock, interval_s=self.poll_interval_s,
                server_clock=self.server_clock, infos=self.infos[account.number], told=self.told[account.number])
        poller.watchers.append(callback)
        return poller.start()

    def unwatch_deals(self, account: Login, callback) -> None:
        poller = self.pollers.get(account.number)
        if poller is None:
            return
        if callback in poller.watchers:
            poller.watchers.remove(callback)
        if not poller.watchers:
            poller.stop()

    # -- the Venue interface: orders ----------------------------------------
    def execute(self, order: OrderRequest) -> defer.Deferred:
        return self.orders.execute((order.account.number, order.key), lambda: self._execute(order))

    def _execute(self, order: OrderRequest) -> defer.Deferred:
        login = order.account.number
        worker = self._worker(order.account)
        info = self.infos[login].get(order.symbol)
        spec = self.specs[login].get(order.symbol)
        if info is None or spec is None:
            return defer.succeed(OrderResult(order.key, OrderStatus.REJECTED, self.now(), reason="unknown-symbol",
                                             message=f"no symbol {order.symbol} on account {login}"))
        self.sent_at[(login, order.key)] = self.clock.seconds()
        d = worker.run_raw(_send, order, info, spec, not self.hedging.get(login, True))
        return d.addCallbacks(self._sent, self._send_failed, callbackArgs=(order, info),
                              errbackArgs=(order, worker))

    def _sent(self, answer, order: OrderRequest, info) -> OrderResult:
        kind, payload = answer
        when = self.now()
        if kind == "gone":
            return OrderResult(order.key, OrderStatus.REJECTED, when, reason="position-not-found",
                               message=f"position {order.position_id.value} is not open")
        if kind == "beyond":
            return OrderResult(order.key, OrderStatus.REJECTED, when, reason="requote", message=str(payload))
        result, error, deal_position = payload
        modify = order.action is Action.MODIFY
        position = order.position_id.value if order.position_id is not None else deal_position
        outcome = retcodes.order_outcome(
            order.key, modify, result, error or (c.RES_S_OK, "Success"), when,
            volume_of=lambda lots: convert.volume_of(lots, info),
            price_of=lambda p: convert.price(p, info.digits), position=position)
        if outcome.status is OrderStatus.FILLED and not modify:
            outcome = replace(outcome, quote_to_account=quote_to_account(info))
        return outcome

    def _send_failed(self, failure, order: OrderRequest, worker: Worker):
        if failure.check(defer.TimeoutError):
            raise AmbiguousOutcome(order.key, f"no answer from terminal {worker.login} within {worker.timeout_s} s")
        if failure.check(ConnectionError):  # the link to the terminal broke: the request may have gone
            raise AmbiguousOutcome(order.key, f"terminal {worker.login}: {failure.value}")
        if failure.check(CallFailed):
            if failure.value.connection:
                worker.mark_down(str(failure.value))
            raise VenueUnavailable(f"order {order.key}: {failure.value} (not sent)")
        return failure

    def lookup(self, account: Login, key: str) -> defer.Deferred:
        ident = (account.number, key)
        known = self.orders.known(ident, lambda: self.lookup(account, key))
        if known is not None:
            return known
        sent = self.sent_at.get(ident)
        now = self.clock.seconds()
        start = now - LOOKUP_WINDOW_S if sent is None else sent - LOOKUP_MARGIN_S
        start_s = self.server_clock.server_seconds(datetime.fromtimestamp(start, timezone.utc))
        end_s = self.server_clock.server_seconds(self.now()) + AHEAD_S
        d = defer.maybeDeferred(lambda: self._worker(account).run(_history, start_s, end_s))
        return d.addCallback(self._looked_up, account, key)

    def _looked_up(self, deals, account: Login, key: str) -> OrderResult | None:
        mine = requests.find(key, deals)
        if not mine:
            return None
        info = self.infos[account.number].get(mine[-1].symbol)
        if info is None:
            raise VenueUnavailable(f"mt5 {account}: symbol {mine[-1].symbol} of key {key} not loaded")
        result = requests.lookup_result(key, deals, info, self.server_clock)
        if result is not None:
            result = replace(result, quote_to_account=quote_to_account(info))
            self.filled[(account.number, key)] = result
        return result


def quote_to_account(info) -> Decimal | None:
    """One unit of the symbol's quote currency in the account currency, from the symbol's tick value:
    ``trade_tick_value`` is what ``trade_tick_size`` of price is worth on one lot (``trade_contract_size``)."""
    try:
        value = Decimal(repr(float(info.trade_tick_value)))
        size = Decimal(repr(float(info.trade_tick_size)))
        contract = convert.contract_size(info)
    except (TypeError, ValueError, AttributeError):
        return None
    if not value or not size or not contract:
        return None
    return (value / (size * contract)).quantize(Decimal("1e-10")).normalize()


__all__ = ["MT5Venue"]
