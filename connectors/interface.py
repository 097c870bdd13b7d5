"""The connector interface: the same for every platform.

A connector exposes one :class:`Venue` per trade server. Everything crossing
this boundary is a bridge type (``bridge.domain``); protobuf messages,
MetaTrader records and EA replies never leave their connector package.

All calls that touch the venue return Twisted ``Deferred`` objects. An
*ambiguous* outcome (the request may or may not have reached the venue) fails
with :class:`AmbiguousOutcome`; the caller then resolves it with
:meth:`Venue.lookup` before anything is resent. A definite refusal is an
:class:`OrderResult` with status ``REJECTED``, never an exception.

Idempotency: every :class:`OrderRequest` carries ``key``, which the connector
puts in the venue's own fields (cTrader ``clientOrderId`` and ``label``,
MT4/MT5 ``comment`` and ``magic``), so :meth:`Venue.lookup` can find the order
by key in the venue's records, and the venue-side reconcile can tell which
positions the bridge opened.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Callable, Mapping, Protocol, runtime_checkable

from twisted.internet.defer import Deferred

from allocation.leg import Action
from bridge.domain.deal import DealKind, MasterDeal, Side
from bridge.domain.ids import DealId, Login, OrderId, Platform, PositionId

#: MetaTrader's order comment holds 31 characters; keys stay well inside it.
KEY_LENGTH = 19


#: hex digits of a key naming the master deal; the rest name the follower and leg
DEAL_DIGITS = 6


def idempotency_key(master_deal: str, follower: str, leg: int) -> str:
    """A short, stable key for one follower leg of one master deal (``cb`` + 17 hex digits).

    The first 6 digits hash the master deal alone, the last 11 the deal, the
    follower and the leg: every key of one deal shares its prefix, so a deal's
    intents sit together in the store's key index (one fan-out writes a few
    index pages, not one per follower). Two legs of one deal collide with
    probability about n^2 / 2^45 (n legs): 3e-8 for 1,000 followers.
    """
    return keys_of_deal(master_deal)(follower, leg)


def keys_of_deal(master_deal: str) -> Callable[[str, int], str]:
    """``idempotency_key`` for one master deal: the deal's part hashed once, for a whole fan-out."""
    prefix = "cb" + hashlib.blake2b(master_deal.encode(), digest_size=4).hexdigest()[:DEAL_DIGITS]
    tail = KEY_LENGTH - 2 - DEAL_DIGITS
    blake2b = hashlib.blake2b

    def key(follower: str, leg: int) -> str:
        return prefix + blake2b(f"{master_deal}|{follower}|{leg}".encode(), digest_size=8).hexdigest()[:tail]

    return key


def magic_number(key: str) -> int:
    """The key as a MetaTrader magic number (a positive 31-bit int, from the follower-and-leg digits),
    for EAs that filter by magic."""
    return int(key[-8:], 16) & 0x7FFFFFFF


class OrderStatus(str, Enum):
    FILLED = "filled"
    REJECTED = "rejected"

    def __str__(self) -> str:
        return self.value


# A value, never changed once made (a connector must not alter it). Not frozen: one is built per
# follower order on the order path, and a frozen dataclass costs about three times as much to build.
@dataclass(slots=True)
class OrderRequest:
    """One follower order. ``side`` is the side of the *position* (for a close, the side being closed)."""

    key: str
    account: Login
    action: Action  # OPEN, CLOSE, PARTIAL_CLOSE or MODIFY
    symbol: str
    side: Side
    volume: int  # canonical units; 0 for MODIFY
    position_id: PositionId | None = None  # required for CLOSE, PARTIAL_CLOSE, MODIFY
    sl: Decimal | None = None
    tp: Decimal | None = None
    reference_price: Decimal | None = None  # the master's price, for slippage
    # a fill worse than reference_price by more than this (adverse only, in the direction traded)
    # is refused with reason "requote"; None: any price
    max_slippage_points: int | None = None

    def __post_init__(self) -> None:
        if self.action is Action.NONE or self.action is Action.PENDING:
            raise ValueError(f"order {self.key}: {self.action} is not an order action")
        if self.action is not Action.OPEN and self.position_id is None:
            raise ValueError(f"order {self.key}: {self.action} needs a position id")
        if self.action is not Action.MODIFY and self.volume <= 0:
            raise ValueError(f"order {self.key}: volume must be positive")


@dataclass(frozen=True, slots=True)
class OrderResult:
    """What the venue did with one order (found by executing it, or by looking its key up)."""

    key: str
    status: OrderStatus
    time: datetime
    order_id: OrderId | None = None
    position_id: PositionId | None = None  # the position opened, closed or modified
    deal_id: DealId | None = None
    volume: int = 0  # filled volume
    price: Decimal | None = None  # fill price
    reason: str | None = None  # for REJECTED: a bridge reason code, e.g. "no-money", "market-closed"
    message: str = ""  # the venue's own words, for the log
    # what one unit of the symbol's quote currency was worth in the account's currency at the fill
    # (1 when they are the same): turns a price difference into money. None if the venue cannot say.
    quote_to_account: Decimal | None = None


@dataclass(frozen=True, slots=True)
class VenuePosition:
    """An open position as the venue reports it (reconcile)."""

    position_id: PositionId
    account: Login
    symbol: str
    side: Side
    volume: int
    open_price: Decimal
    sl: Decimal | None = None
    tp: Decimal | None = None
    key: str | None = None  # the idempotency key of the order that opened it, if the bridge did


#: a position's (stop loss, take profit), None where it has none
Stops = tuple[Decimal | None, Decimal | None]
NO_STOPS: Stops = (None, None)


def told_stops(known: Mapping[int, Stops], deals: list[MasterDeal]) -> dict[int, Stops]:
    """The stops the bridge knows per open position once ``deals`` (a backfill, oldest first) are journalled
    on top of ``known`` (``Store.known_stops``): as the journal counts them, an open's, a reversal's or an
    SLTP deal's stops; a close forgets the position."""
    stops = dict(known)
    for deal in deals:
        pid = deal.position_id.value
        if deal.kind in (DealKind.OPEN, DealKind.REVERSAL, DealKind.SLTP):
            stops[pid] = (deal.sl, deal.tp)
        elif deal.kind is DealKind.CLOSE:
            stops.pop(pid, None)
    return stops


@dataclass(frozen=True, slots=True)
class AccountInfo:
    login: Login
    currency: str
    balance: Decimal
    equity: Decimal
    hedging: bool  # False: netting (one position per symbol)


class AmbiguousOutcome(Exception):
    """The order may or may not have reached the venue (timeout, lost connection).

    Never resend on this: look the key up first (:meth:`Venue.lookup`).
    """

    def __init__(self, key: str, why: str) -> None:
        super().__init__(f"order {key}: outcome unknown ({why})")
        self.key = key
        self.why = why


class VenueUnavailable(Exception):
    """The venue cannot be reached at all; nothing was sent."""


@runtime_checkable
class Venue(Protocol):
    """One trade server, as the bridge sees it.

    Master deals: every position change is a :class:`MasterDeal` in venue
    order (an SL/TP change included, with volume 0); a balance operation has
    an empty symbol. ``deals_since`` and ``watch_deals`` may overlap: the
    worker takes each venue deal id once and orders by it.
    """

    platform: Platform
    name: str

    def execute(self, order: OrderRequest) -> Deferred:
        """Send one order; fires with an :class:`OrderResult`, or fails with :class:`AmbiguousOutcome`."""

    def lookup(self, account: Login, key: str) -> Deferred:
        """Fires with the :class:`OrderResult` of the *filled* order carrying ``key``, or None.

        A refused order leaves nothing to find: it may be sent again.

        None is proof that the order never executed only once no request with
        that key can still arrive (the connection it was sent on is closed).
        """

    def positions(self, account: Login) -> Deferred:
        """Fires with the account's open positions, a list of :class:`VenuePosition`."""

    def account_info(self, account: Login) -> Deferred:
        """Fires with an :class:`AccountInfo`."""

    def symbol_spec(self, account: Login, symbol: str) -> Deferred:
        """Fires with the :class:`SymbolSpec` of ``symbol`` on this account's server (KeyError if unknown)."""

    def deals_since(self, account: Login, after: DealId | None) -> Deferred:
        """Fires with the account's master deals after ``after`` (all, if None), oldest first: the backfill.

        A venue whose history holds no SL/TP changes (cTrader) sets ``recovers_stops = True`` and takes
        ``stops``, a mapping of open position id -> :data:`Stops` the bridge last knew (a position absent:
        none): it then adds an SLTP deal for each open position whose stops are not those now, with an
        id that is the same for the same change however it is found."""

    def watch_deals(self, account: Login, callback: Callable[[MasterDeal], None]):
        """Call ``callback`` with every new master deal on ``account``, in venue order.

        May return a Deferred that fires once the watch is live (a remote venue)."""

    def unwatch_deals(self, account: Login, callback: Callable[[MasterDeal], None]) -> None:
        """Stop calling ``callback``."""
