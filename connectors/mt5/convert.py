"""MetaTrader5 package records <-> bridge domain types. Nothing from the package leaves ``connectors.mt5``.

The package hands out floats (lots, prices, money). Each crosses the boundary
once, here, as ``Decimal(repr(x))`` (``repr`` is the shortest text that reads back
as the same double, so a price the server stores as 1.12345 arrives as exactly
that) and is then brought to the figure's own precision by :func:`exact`:

- volumes to the decimals of the symbol's ``volume_step``, prices to its
  ``digits``, money to the account's ``currency_digits``: the server keeps
  every such figure at that precision, so anything beyond it is binary noise from
  the terminal's double arithmetic (0.30000000000000004). Noise is dropped
  (rounded half-even); a difference larger than :data:`NOISE_PLACES` more places
  than the precision is not noise and is an error, never a rounding.
- lots then become canonical volume (hundredths of a base unit) through the
  contract size exactly (``bridge.domain.volume.lots_to_volume``), or an error.

Times: ``time`` (s) and ``time_msc`` (ms) in the records are the trade server's
wall clock written as if it were UTC. :class:`ServerClock` holds the configured
offset (server minus UTC) and converts both ways. A broker whose server shifts
with daylight saving needs the offset reconfigured at the switch (or a clock
that knows the zone); a fixed offset is all this module assumes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import ROUND_HALF_EVEN, Decimal

from bridge.domain.deal import Side
from bridge.domain.ids import Login, Platform, PositionId
from bridge.domain.volume import SymbolSpec, lots_to_volume
from connectors import interface
from connectors.mt5 import codes

#: a float may differ from its figure's precision by less than 10^-(places + NOISE_PLACES) and be noise
NOISE_PLACES = 3

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def exact(value: float | int, places: int, what: str) -> Decimal:
    """``value`` (a float from the package) as a Decimal with ``places`` decimals; ValueError if it
    is further from that grid than binary noise (see the module doc)."""
    if isinstance(value, bool) or not isinstance(value, (float, int)):
        raise TypeError(f"{what}: expected a number from the terminal, got {value!r}")
    raw = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    if not raw.is_finite():
        raise ValueError(f"{what}: {value!r} is not a finite number")
    grid = Decimal(1).scaleb(-places)
    rounded = raw.quantize(grid, rounding=ROUND_HALF_EVEN)  # noise only: checked just below
    if abs(raw - rounded) >= Decimal(1).scaleb(-(places + NOISE_PLACES)):
        raise ValueError(f"{what}: {value!r} is not a multiple of {grid}")
    return rounded


def places_of(step: float) -> int:
    """Decimal places of a step such as ``volume_step`` or ``point`` (0.01 -> 2, 1.0 -> 0)."""
    exponent = Decimal(repr(float(step))).normalize().as_tuple().exponent
    return max(0, -int(exponent))


# -- volumes ------------------------------------------------------------------
def lots(value: float, info) -> Decimal:
    """A lot figure of ``info``'s symbol (a SymbolInfo), exact to its volume step's decimals."""
    return exact(value, places_of(info.volume_step), f"{info.name} lots")


def volume_of(value: float, info) -> int:
    """Lots (float) -> canonical volume, exactly, or ValueError."""
    amount = lots(value, info)
    if amount < 0:
        raise ValueError(f"{info.name}: a volume cannot be negative, got {value!r} lots")
    return lots_to_volume(amount, contract_size(info), what=info.name)


def lots_of(volume: int, spec: SymbolSpec) -> float:
    """Canonical volume -> the float the package wants. ``to_lots`` is exact; the float is the double
    nearest to it, which the terminal reads back as the same decimal (at most 15 significant digits)."""
    return float(spec.to_lots(volume))


def contract_size(info) -> Decimal:
    # contract sizes are whole or short decimals (100000, 1, 0.1): six places hold every one seen
    return exact(info.trade_contract_size, 6, f"{info.name} contract size").normalize()


def spec(info) -> SymbolSpec:
    """SymbolInfo -> the bridge's SymbolSpec (min, max and step in canonical units, the price digits)."""
    return SymbolSpec.from_lots(info.name, contract_size=contract_size(info), min_lots=lots(info.volume_min, info),
                                max_lots=lots(info.volume_max, info), step_lots=lots(info.volume_step, info),
                                digits=info.digits)


# -- prices and money -------------------------------------------------------------
def price(value: float, digits: int) -> Decimal:
    """A quote, fill price or stop, exact to the symbol's ``digits``."""
    return exact(value, digits, "price")


def stop(value: float, digits: int) -> Decimal | None:
    """An ``sl``/``tp`` field: 0.0 means none."""
    return None if value == 0 else price(value, digits)


def average_price(value: float) -> Decimal:
    """A position's ``price_open``: on a netting account a volume-weighted average, which need not lie on
    the tick grid, so it is taken as the terminal gives it (its shortest text), not rounded."""
    return Decimal(repr(value))


def money(value: float, currency_digits: int) -> Decimal:
    return exact(value, currency_digits, "money")


def account_info(info, login: Login) -> interface.AccountInfo:
    """AccountInfo record -> the bridge's; ``margin_mode`` 2 (retail hedging) is hedging, 0 and 1 netting."""
    digits = info.currency_digits
    return interface.AccountInfo(login, info.currency, money(info.balance, digits), money(info.equity, digits),
                                 info.margin_mode == codes.ACCOUNT_MARGIN_MODE_RETAIL_HEDGING)


def bridge_key(comment: str, magic: int) -> str | None:
    """The idempotency key a position's or deal's comment carries, if the bridge made it: a key-shaped
    comment whose magic number agrees (a manual order with a look-alike comment has magic 0)."""
    if len(comment) == interface.KEY_LENGTH and comment.startswith("cb") and magic == interface.magic_number(comment):
        return comment
    return None


def venue_position(position, account: Login, info) -> interface.VenuePosition:
    """A TradePosition as the bridge's VenuePosition (reconcile); ``info``: its symbol's SymbolInfo."""
    return interface.VenuePosition(PositionId(Platform.MT5, position.identifier), account, position.symbol,
                                   side_of(position.type), volume_of(position.volume, info),
                                   average_price(position.price_open), stop(position.sl, info.digits),
                                   stop(position.tp, info.digits), bridge_key(position.comment, position.magic))


# -- sides --------------------------------------------------------------------
def side_of(kind: int) -> Side:
    """A deal, order or position type (0 buy, 1 sell) as a side."""
    if kind == codes.DEAL_TYPE_BUY:
        return Side.BUY
    if kind == codes.DEAL_TYPE_SELL:
        return Side.SELL
    raise ValueError(f"type {kind} is neither buy nor sell")


def order_type(side: Side) -> int:
    return codes.ORDER_TYPE_BUY if side is Side.BUY else codes.ORDER_TYPE_SELL


# -- time ---------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ServerClock:
    """The trade server's clock: ``offset`` = server wall time minus UTC (e.g. +2 h or +3 h)."""

    offset: timedelta = timedelta(0)

    def utc(self, seconds: int) -> datetime:
        """A ``time`` field (server seconds) in UTC."""
        return EPOCH + timedelta(seconds=seconds) - self.offset

    def utc_ms(self, ms: int) -> datetime:
        """A ``time_msc`` field (server milliseconds) in UTC."""
        return EPOCH + timedelta(milliseconds=ms) - self.offset

    def server_seconds(self, when: datetime) -> int:
        """A UTC datetime as server seconds (for ``history_deals_get`` bounds; ints are unambiguous,
        datetimes are not). Rounded down: a lower bound must not skip the second it starts in."""
        if when.tzinfo is None:
            raise ValueError("server_seconds needs a timezone-aware datetime")
        return (when - EPOCH + self.offset) // timedelta(seconds=1)

    def server_ms(self, when: datetime) -> int:
        if when.tzinfo is None:
            raise ValueError("server_ms needs a timezone-aware datetime")
        return (when - EPOCH + self.offset) // timedelta(milliseconds=1)
