"""The simulated venue: a :class:`connectors.interface.Venue` over a random-walk market.

Determinism: time comes only from ``clock.seconds()`` (a Twisted
``IReactorTime``: ``task.Clock`` in tests, the reactor in production), read as
UTC microseconds since the epoch; randomness only from the ``random.Random``
passed in. The same seed, config and script give the same prices, fills, ids
and deals. Random draws happen only for non-zero config values, in a fixed
order per order: timeout-before, reject, slippage, timeout-after.

Orders (:meth:`SimVenue.execute`):

- OPEN opens a new position (hedging), or on a netting account opens, adds to,
  reduces, closes or reverses the symbol's one position. CLOSE closes the whole
  position (whatever ``volume`` says); PARTIAL_CLOSE closes ``volume`` of it and
  keeps its id (closing all of it is a CLOSE); MODIFY sets both stops.
- Refusals are ``REJECTED`` results with a reason code: ``unknown-account``,
  ``unknown-symbol``, ``invalid-volume`` (off the step grid, outside
  [min, max], or more than the position), ``position-not-found`` (also when
  the position's symbol or side differ from the order's), ``invalid-stops``
  (a stop on the wrong side of the closing price, or off the tick),
  ``requote`` (the fill is more than ``max_slippage_points`` worse than
  ``reference_price``), ``no-money`` (equity not positive), or a random one
  from ``SimConfig.reject_reasons``.
- Idempotency: a FILLED order is recorded under ``(account, key)``; the same
  key again returns that result without trading, whatever the new request
  says. Rejections are not recorded: a rejected key may be sent again.
  ``lookup`` answers from the same record. An empty key marks a manual order
  (the manual API below): never recorded, and its position has ``key`` None.
- Faults (``SimConfig``): latency delays the execution itself; an order lost
  before execution or a reply lost after it fails with ``AmbiguousOutcome``
  when the reply would have come. Disconnected: every request fails at once
  with ``VenueUnavailable``; an order in flight when the connection drops is
  not executed and fails with ``AmbiguousOutcome``.

Deals: every position change on any account (bridge order, manual trade,
stop triggered by :meth:`step_prices`) and every balance operation becomes a
:class:`MasterDeal` with the next venue-wide deal id, appended to the account's
history and delivered to its watchers in deal order (delivery is queued, so a
watcher that trades from its callback does not reorder anything). A MODIFY
takes a deal id too (kind SLTP, volume 0, ``position_volume`` = the current
volume). A BALANCE deal has position id 0, symbol ``""`` and volume 0. While
the venue is disconnected, deals are recorded but not delivered: watchers
catch up with :meth:`deals_since`, as they must on a real venue.
"""

from __future__ import annotations

import itertools
import logging
import random
from collections import deque
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Callable

from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall

from allocation.leg import Action
from bridge.domain.deal import DealKind, MasterDeal, Side
from bridge.domain.ids import DealId, Login, OrderId, Platform, PositionId, ServerId
from bridge.domain.volume import SymbolSpec, parse_decimal
from connectors.interface import (
    AccountInfo,
    AmbiguousOutcome,
    OrderRequest,
    OrderResult,
    OrderStatus,
    VenueUnavailable,
)
from connectors.sim.account import Account, Change
from connectors.sim.config import PPM, SimConfig
from connectors.sim.market import DEFAULT_SYMBOLS, Market, SymbolDef

log = logging.getLogger(__name__)

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
MANUAL = ""  # the key of a manual order


class SimRejected(Exception):
    """A manual trade the venue refused; ``result`` is the REJECTED :class:`OrderResult`."""

    def __init__(self, result: OrderResult) -> None:
        super().__init__(f"rejected: {result.reason} ({result.message})")
        self.result = result
        self.reason = result.reason


class SimVenue:
    """One simulated trade server."""

    platform = Platform.SIM

    def __init__(self, name: str, clock, rng: random.Random, config: SimConfig = SimConfig(), *,
                 symbols: tuple[SymbolDef, ...] = DEFAULT_SYMBOLS) -> None:
        if not isinstance(config, SimConfig):
            raise TypeError("config must be a SimConfig")
        self.name = name
        self.server = ServerId(Platform.SIM, name)
        self.clock = clock
        self.rng = rng
        self.config = config  # may be replaced at runtime
        self.disconnected = config.disconnected  # may be flipped at runtime
        self.market = Market(symbols)
        self._accounts: dict[Login, Account] = {}
        self._watchers: dict[Login, list[Callable[[MasterDeal], None]]] = {}
        self._outbox: deque[tuple[Login, MasterDeal]] = deque()
        self._delivering = False
        self._order_ids = itertools.count(1)
        self._position_ids = itertools.count(1)
        self._deal_ids = itertools.count(1)
        self._feed: LoopingCall | None = None

    # -- time and chance --------------------------------------------------
    def now(self) -> datetime:
        """The clock as an aware UTC datetime, to the microsecond."""
        return EPOCH + timedelta(microseconds=round(self.clock.seconds() * PPM))

    def _chance(self, rate: Decimal) -> bool:
        if rate <= 0:
            return False
        if rate >= 1:
            return True
        return self.rng.randrange(PPM) < int(rate * PPM)

    # -- accounts and market ----------------------------------------------
    def login(self, number: int) -> Login:
        """A login on this venue's server."""
        return Login(self.server, number)

    def add_account(self, login: Login, balance: Decimal, currency: str = "USD", hedging: bool = True) -> None:
        if not isinstance(login, Login) or login.platform is not Platform.SIM:
            raise ValueError(f"{login}: a sim venue holds sim logins only")
        if login in self._accounts:
            raise ValueError(f"{login}: account exists")
        missing = sorted(q for q in self.market.quote_currencies() if not self.market.can_convert(q, currency))
        if missing:
            raise ValueError(f"{login}: no symbol converts {', '.join(missing)} profits to {currency}")
        self._accounts[login] = Account(login, currency, hedging, parse_decimal(balance, "balance"), self.market)

    def account(self, login: Login) -> Account:
        """The account's live state (KeyError if unknown): for tests and the demo."""
        return self._accounts[login]

    def step_prices(self) -> None:
        """Advance every symbol's random walk one step, then trigger any stops the prices reach."""
        self.market.step(self.rng)
        if self.config.trigger_stops:
            self._trigger_stops()

    def start_price_feed(self, interval_us: int) -> LoopingCall:
        """Call :meth:`step_prices` every ``interval_us`` microseconds of the venue's clock."""
        if self._feed is not None and self._feed.running:
            raise RuntimeError("price feed already running")
        self._feed = LoopingCall(self.step_prices)
        self._feed.clock = self.clock
        self._feed.start(interval_us / PPM, now=False)
        return self._feed

    def stop_price_feed(self) -> None:
        if self._feed is not None and self._feed.running:
            self._feed.stop()

    # -- the Venue interface ----------------------------------------------
    def execute(self, order: OrderRequest) -> Deferred:
        if self.disconnected:
            return defer.fail(VenueUnavailable(f"{self.name}: disconnected"))
        latency = self.config.fill_latency_us
        if latency == 0:
            try:
                return defer.succeed(self._arrive(order))
            except Exception:
                return defer.fail()
        d = Deferred()

        def arrive() -> None:
            try:
                result = self._arrive(order)
            except Exception:
                d.errback()
            else:
                d.callback(result)

        self.clock.callLater(self.config.fill_latency_seconds, arrive)
        return d

    def lookup(self, account: Login, key: str) -> Deferred:
        return self._answer(lambda: self._accounts[account].orders.get(key) if key else None)

    def positions(self, account: Login) -> Deferred:
        return self._answer(lambda: [p.view(account) for p in self._accounts[account].positions.values()])

    def account_info(self, account: Login) -> Deferred:
        def info() -> AccountInfo:
            a = self._accounts[account]
            return AccountInfo(account, a.currency, a.balance, a.equity(), a.hedging)

        return self._answer(info)

    def symbol_spec(self, account: Login, symbol: str) -> Deferred:
        def spec() -> SymbolSpec:
            self._accounts[account]
            return self.market.spec(symbol)

        return self._answer(spec)

    def deals_since(self, account: Login, after: DealId | None) -> Deferred:
        def since() -> list[MasterDeal]:
            deals = self._accounts[account].deals
            return list(deals) if after is None else [d for d in deals if d.deal_id.value > after.value]

        return self._answer(since)

    def watch_deals(self, account: Login, callback: Callable[[MasterDeal], None]) -> None:
        self._accounts[account]  # KeyError for an unknown account
        self._watchers.setdefault(account, []).append(callback)

    def unwatch_deals(self, account: Login, callback: Callable[[MasterDeal], None]) -> None:
        self._watchers.get(account, []).remove(callback)

    def _answer(self, query: Callable[[], object]) -> Deferred:
        if self.disconnected:
            return defer.fail(VenueUnavailable(f"{self.name}: disconnected"))
        try:
            return defer.succeed(query())
        except Exception:
            return defer.fail()

    # -- the manual API -----------------------------------------------------
    def trade(self, account: Login, symbol: str, side: Side, amount: object,
              sl: Decimal | None = None, tp: Decimal | None = None) -> PositionId:
        """A manual market order; ``amount`` is lots as a Decimal or str, or canonical volume as an int.

        Returns the position it opened or changed. Raises :class:`SimRejected`.
        """
        volume = self._volume(symbol, amount)
        order = OrderRequest(MANUAL, account, Action.OPEN, symbol, side, volume, sl=sl, tp=tp)
        return self._manual(order).position_id

    def close(self, account: Login, position_id: PositionId, amount: object = None) -> MasterDeal:
        """Close a position manually: all of it, or ``amount`` (lots as Decimal/str, volume as int)."""
        p = self._manual_position(account, position_id)
        volume = p.volume if amount is None else self._volume(p.symbol, amount)
        action = Action.CLOSE if amount is None else Action.PARTIAL_CLOSE
        order = OrderRequest(MANUAL, account, action, p.symbol, p.side, volume, position_id)
        return self._last_deal(account, self._manual(order))

    def modify(self, account: Login, position_id: PositionId, sl: Decimal | None, tp: Decimal | None) -> MasterDeal:
        """Set a position's stops manually (None removes one)."""
        p = self._manual_position(account, position_id)
        order = OrderRequest(MANUAL, account, Action.MODIFY, p.symbol, p.side, 0, position_id, sl=sl, tp=tp)
        return self._last_deal(account, self._manual(order))

    def deposit(self, account: Login, amount: Decimal) -> MasterDeal:
        """Credit (or, negative, debit) the balance; produces a BALANCE deal."""
        a = self._accounts[account]
        value = parse_decimal(amount, "amount")
        a.balance += value
        deal = MasterDeal(self._deal_id(), PositionId(Platform.SIM, 0), account, "", DealKind.BALANCE,
                          Side.BUY if value >= 0 else Side.SELL, 0, self.now())
        self._publish(a, deal)
        return deal

    def _volume(self, symbol: str, amount: object) -> int:
        if isinstance(amount, int) and not isinstance(amount, bool):
            return amount
        if symbol not in self.market:
            raise SimRejected(self._reject(MANUAL, "unknown-symbol", f"{symbol} is not traded here"))
        return self.market.spec(symbol).to_volume(amount)

    def _manual_position(self, account: Login, position_id: PositionId):
        p = self._accounts[account].position(position_id)
        if p is None:
            raise SimRejected(self._reject(MANUAL, "position-not-found", f"{position_id} is not open"))
        return p

    def _manual(self, order: OrderRequest) -> OrderResult:
        result = self._process(order, faults=False)
        if result.status is OrderStatus.REJECTED:
            raise SimRejected(result)
        return result

    def _last_deal(self, account: Login, result: OrderResult) -> MasterDeal:
        return next(d for d in reversed(self._accounts[account].deals) if d.deal_id == result.deal_id)

    # -- execution --------------------------------------------------------
    def _arrive(self, order: OrderRequest) -> OrderResult:
        """The order reaches the venue (now): faults, then the fill."""
        cfg = self.config
        if self.disconnected:
            raise AmbiguousOutcome(order.key, "connection lost while in flight")
        if self._chance(cfg.timeout_before_execute_rate):
            raise AmbiguousOutcome(order.key, "timeout (the order never reached the venue)")
        result = self._process(order, faults=True)
        if self._chance(cfg.timeout_after_execute_rate):
            raise AmbiguousOutcome(order.key, "timeout (the reply was lost)")
        return result

    def _process(self, order: OrderRequest, *, faults: bool) -> OrderResult:
        key = order.key
        account = self._accounts.get(order.account)
        if account is None:
            return self._reject(key, "unknown-account", f"{order.account} is not on {self.name}")
        if key and key in account.orders:
            return account.orders[key]
        if order.symbol not in self.market:
            return self._reject(key, "unknown-symbol", f"{order.symbol} is not traded here")
        if faults and self._chance(self.config.reject_rate):
            return self._reject(key, self.rng.choice(self.config.reject_reasons), "random rejection")
        if order.action is Action.OPEN:
            change = self._open(account, order, faults)
        elif order.action is Action.MODIFY:
            change = self._modify(account, order)
        else:
            change = self._close(account, order, faults)
        if isinstance(change, OrderResult):
            return change
        deal = self._record(account, change)
        result = OrderResult(key, OrderStatus.FILLED, deal.time, OrderId(Platform.SIM, next(self._order_ids)),
                             change.position_id, deal.deal_id, change.filled, change.price,
                             quote_to_account=self.market.quote_value(order.symbol, account.currency))
        if key:
            account.orders[key] = result
        return result

    def _open(self, account: Account, order: OrderRequest, faults: bool) -> Change | OrderResult:
        spec = self.market.spec(order.symbol)
        if not spec.tradable(order.volume):
            return self._reject(order.key, "invalid-volume", f"{order.volume} is not a tradable {order.symbol} volume")
        stops = self._check_stops(order.key, order.symbol, order.side, order.sl, order.tp)
        if stops is not None:
            return stops
        if account.equity() <= 0:
            return self._reject(order.key, "no-money", f"equity {account.equity()}")
        price = self._price(order, order.side, faults)
        if isinstance(price, OrderResult):
            return price
        return account.open(self._position_id, order.symbol, order.side, order.volume, price, order.sl, order.tp,
                            order.key or None)

    def _close(self, account: Account, order: OrderRequest, faults: bool) -> Change | OrderResult:
        p = account.position(order.position_id)
        if p is None or p.symbol != order.symbol or p.side is not order.side:
            return self._reject(order.key, "position-not-found",
                                f"no open {order.side} {order.symbol} position {order.position_id}")
        volume = p.volume
        if order.action is Action.PARTIAL_CLOSE:
            volume = order.volume
            if not self.market.spec(p.symbol).tradable(volume) or volume > p.volume:
                return self._reject(order.key, "invalid-volume", f"cannot close {volume} of {p.volume}")
        price = self._price(order, p.side.opposite, faults)
        if isinstance(price, OrderResult):
            return price
        return account.reduce(p.position_id, volume, price)

    def _modify(self, account: Account, order: OrderRequest) -> Change | OrderResult:
        p = account.position(order.position_id)
        if p is None or p.symbol != order.symbol:
            return self._reject(order.key, "position-not-found", f"no open position {order.position_id}")
        stops = self._check_stops(order.key, p.symbol, p.side, order.sl, order.tp)
        if stops is not None:
            return stops
        return account.modify(p.position_id, order.sl, order.tp)

    def _price(self, order: OrderRequest, direction: Side, faults: bool) -> Decimal | OrderResult:
        """The fill price of a ``direction`` deal, slipped; a requote beyond the order's tolerance."""
        slip = self.config.slippage_points
        points = self.rng.randint(-slip, slip) if faults and slip else 0
        price = self.market.fill_price(order.symbol, direction, points)
        if order.reference_price is not None and order.max_slippage_points is not None:
            worse = price - order.reference_price if direction is Side.BUY else order.reference_price - price
            if worse > order.max_slippage_points * self.market.point(order.symbol):
                return self._reject(order.key, "requote", f"price {price} vs reference {order.reference_price}")
        return price

    def _check_stops(self, key: str, symbol: str, side: Side, sl, tp) -> OrderResult | None:
        close = self.market.fill_price(symbol, side.opposite)
        for name, stop, loss in (("sl", sl, True), ("tp", tp, False)):
            if stop is None:
                continue
            if not isinstance(stop, Decimal):
                raise TypeError(f"{name} must be a Decimal or None, not {type(stop).__name__}")
            below = (side is Side.BUY) == loss  # a buy's sl and a sell's tp lie below the closing price
            if not self.market.on_tick(symbol, stop) or stop <= 0 or (stop >= close if below else stop <= close):
                return self._reject(key, "invalid-stops", f"{name} {stop} against closing price {close}")
        return None

    def _trigger_stops(self) -> None:
        for account in self._accounts.values():
            for p in list(account.positions.values()):
                close = self.market.fill_price(p.symbol, p.side.opposite)
                buy = p.side is Side.BUY
                hit_sl = p.sl is not None and (close <= p.sl if buy else close >= p.sl)
                hit_tp = p.tp is not None and (close >= p.tp if buy else close <= p.tp)
                if hit_sl or hit_tp:
                    self._record(account, account.reduce(p.position_id, p.volume, close))

    def _reject(self, key: str, reason: str, message: str) -> OrderResult:
        return OrderResult(key, OrderStatus.REJECTED, self.now(), reason=reason, message=message)

    # -- deals ------------------------------------------------------------
    def _position_id(self) -> PositionId:
        return PositionId(Platform.SIM, next(self._position_ids))

    def _deal_id(self) -> DealId:
        return DealId(Platform.SIM, next(self._deal_ids))

    def _record(self, account: Account, c: Change) -> MasterDeal:
        deal = MasterDeal(self._deal_id(), c.position_id, account.login, c.symbol, c.kind, c.side, c.volume,
                          self.now(), c.position_volume, c.price, c.sl, c.tp)
        self._publish(account, deal)
        return deal

    def _publish(self, account: Account, deal: MasterDeal) -> None:
        account.deals.append(deal)
        if self.disconnected:
            return
        self._outbox.append((account.login, deal))
        if self._delivering:
            return
        self._delivering = True
        try:
            while self._outbox:
                login, queued = self._outbox.popleft()
                for callback in list(self._watchers.get(login, ())):
                    try:
                        callback(queued)
                    except Exception:
                        log.exception("deal watcher failed on %s", queued.deal_id)
        finally:
            self._delivering = False
