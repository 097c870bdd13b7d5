"""What a venue's answer to an order means: requotes, a position gone, the links a fill changes,
and the money and points of its slippage.

Pure functions over bridge types; the executor (:mod:`bridge.executor`) writes what they decide.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_EVEN, Decimal

from allocation.leg import Action
from bridge.domain.deal import MasterDeal
from bridge.domain.ids import PositionId
from bridge.domain.volume import UNITS_PER_BASE
from bridge.store import Link as StoredLink, StoreError
from bridge.store.intents import IntentRow
from connectors.interface import OrderResult, OrderStatus

#: the reason code a venue gives for a close or modify of a position it no longer holds
POSITION_GONE = "position-not-found"
#: a fill refused because the price moved: retried at the new price, up to REQUOTE_RETRIES times
REQUOTES = frozenset({"requote", "price-changed"})
REQUOTE_RETRIES = 3
SLIPPAGE_EXCEEDED = "max-slippage-exceeded"


def requoted(result: OrderResult) -> bool:
    return result.status is OrderStatus.REJECTED and result.reason in REQUOTES


def open_row(rows: list[StoredLink], position: PositionId | None) -> StoredLink | None:
    for link in rows:
        if link.follower_position == position and link.state == "open":
            return link
    return None


def put(rows: list[StoredLink], changed: dict, link: StoredLink) -> None:
    """``link`` replaces its follower position's row in ``rows`` (or joins them) and is to be saved."""
    for n, old in enumerate(rows):
        if old.follower_position == link.follower_position:
            rows[n] = link
            break
    else:
        rows.append(link)
    changed[(link.follower_id, link.follower_position)] = link


def relinked(deal: MasterDeal, row: IntentRow, result: OrderResult, rows: list[StoredLink]) -> StoredLink | None:
    """The link row a fill changes or makes (``rows``: the follower's rows to this master position, any
    state), or None when none changes. Raises where a link may not be made (see LinkStore.link)."""
    if row.action is Action.OPEN:
        same = next((link for link in rows if link.follower_position == result.position_id), None)
        if same is None:  # a new position: the first copy, or a hedging follower's copy of an add
            return StoredLink(deal.position_id, row.follower_id, result.position_id, row.symbol, row.side,
                              result.volume, "open", row.key, str(deal.account))
        if same.state != "open":
            raise StoreError(f"link {deal.position_id} -> {row.follower_id}: follower position "
                             f"{same.follower_position} is already {same.state}; a link is never reopened")
        return replace(same, volume=same.volume + result.volume)  # a netting follower's add
    current = open_row(rows, row.position_id)
    if current is None:
        return None
    if row.action is Action.CLOSE:
        return replace(current, state="closed")
    if row.action is Action.PARTIAL_CLOSE:
        volume = current.volume - result.volume
        if volume == 0:  # this master position's whole share of a position shared with others
            return replace(current, state="closed")
        if volume < 0:
            raise StoreError(f"link {deal.position_id} -> {row.follower_id}: a partial close of "
                             f"{result.volume} leaves {volume}")
        return replace(current, volume=volume)
    return None


def adverse_price(row: IntentRow, deal: MasterDeal, result: OrderResult) -> Decimal | None:
    """How much worse the fill price is than the master's, positive when worse for the follower.

    Measured when the follower trades in the master's direction (the master's
    deal price is then the same side of the spread); a reversed copy has no
    such reference and gets None. In points (rounded half-even to a whole
    point) it is the ``slippage_points`` of the execution record."""
    if deal.price is None or result.price is None or row.action is Action.MODIFY:
        return None
    buying = (row.side.value == "buy") == (row.action is Action.OPEN)
    master_buying = (deal.side.value == "buy") == (deal.kind.value in ("open", "add", "reversal"))
    if buying != master_buying:
        return None  # a reversed copy: the master's price is the other side of the spread, no reference
    return (result.price - deal.price) if buying else (deal.price - result.price)


def slippage_points(adverse: Decimal | None, digits: int | None) -> int | None:
    """The adverse price difference in whole points (half-even), or None without one or the digits."""
    if adverse is None or digits is None:
        return None
    return int(adverse.scaleb(digits).to_integral_value(ROUND_HALF_EVEN))


def slippage_money(adverse: Decimal | None, result: OrderResult) -> Decimal | None:
    """The slippage in the follower's account currency, positive when it cost the follower.

    The exact price difference is in the quote currency per base unit; x the
    filled base units (volume / 100) gives quote currency; x the venue's
    ``quote_to_account`` rate at the fill gives account currency. Rounded
    half-even to 6 decimal places (a reporting figure, never booked). None when
    a factor is missing (no reference price, a reversed copy, a venue that
    gives no rate)."""
    if adverse is None or result.quote_to_account is None or not result.volume:
        return None
    return (adverse * result.volume / UNITS_PER_BASE * result.quote_to_account).quantize(MONEY_PLACES,
                                                                                      ROUND_HALF_EVEN)


MONEY_PLACES = Decimal("0.000001")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def ns(moment: datetime | None) -> int:
    """An aware datetime as integer nanoseconds since the epoch (no float on the way)."""
    return 0 if moment is None else (moment - _EPOCH) // timedelta(microseconds=1) * 1000
