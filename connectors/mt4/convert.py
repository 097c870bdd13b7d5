"""EA records (PROTOCOL.md) <-> bridge domain types. Nothing shaped like an EA reply leaves ``connectors.mt4``.

Numbers: a frame's numbers decode as ``Decimal`` (with a fraction) or ``int``
(``protocol.decode``); they never pass through a float here. Prices are brought
to the symbol's ``digits`` (a price off that grid is an error, never rounded),
lots become canonical volume through the contract size exactly
(``SymbolSpec.to_volume``), and the other way lots are written with the lot
step's decimals (at least two, as the protocol writes lots).

Times: ``*_msc`` fields are the trade server's clock in ms; :class:`ServerClock`
(shared with MT5: the offset is server minus UTC) turns them into UTC.
"""

from __future__ import annotations

import re
from decimal import Decimal

from bridge.domain.deal import Side
from bridge.domain.ids import Login, Platform, PositionId
from bridge.domain.volume import SymbolSpec
from connectors import interface
from connectors.mt4 import protocol as P
from connectors.mt5.convert import ServerClock

__all__ = ["ServerClock", "account_info", "bridge_key", "lots_of", "number", "price", "side_of", "spec", "stop",
           "venue_position", "volume_of"]

M4 = Platform.MT4
_FROM = re.compile(r"from #(\d+)")
_TO = re.compile(r"to #(\d+)")


def number(value: object, what: str) -> Decimal:
    """A JSON number of a reply (int or Decimal) as a Decimal; anything else is refused."""
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        raise ValueError(f"{what}: expected a number, got {value!r}")
    result = Decimal(value)
    if not result.is_finite():
        raise ValueError(f"{what}: {value!r} is not finite")
    return result


# -- symbols and volumes ---------------------------------------------------------
def spec(record: dict) -> SymbolSpec:
    """A ``SYMBOL`` result -> the bridge's SymbolSpec (min, max, step in canonical units; the digits)."""
    name = record["symbol"]
    return SymbolSpec.from_lots(name, contract_size=number(record["contract_size"], f"{name} contract size"),
                                min_lots=number(record["min_lot"], f"{name} min lot"),
                                max_lots=number(record["max_lot"], f"{name} max lot"),
                                step_lots=number(record["lot_step"], f"{name} lot step"),
                                digits=int(record["digits"]))


def volume_of(lots: object, symbol_spec: SymbolSpec) -> int:
    """Lots of a reply or event -> canonical volume, exactly (ValueError if not a whole unit)."""
    return symbol_spec.to_volume(number(lots, f"{symbol_spec.symbol} lots"))


def lots_of(volume: int, symbol_spec: SymbolSpec) -> Decimal:
    """Canonical volume -> the lots a command carries (exact: at least two decimals, the step's if more)."""
    lots = symbol_spec.to_lots(volume)
    places = max(2, symbol_spec.lot_places)
    written = lots.quantize(Decimal(1).scaleb(-places))
    if written != lots:
        raise ValueError(f"{symbol_spec.symbol}: volume {volume} is {lots} lots, not on a {places}-decimal grid")
    return written


def quote_to_account(record: dict) -> Decimal | None:
    """One unit of the quote currency in the account currency: ``tick_value`` is what ``tick_size`` of price
    is worth on one lot (``contract_size``). None when the record cannot say."""
    try:
        value = number(record["tick_value"], "tick value")
        size = number(record["tick_size"], "tick size")
        contract = number(record["contract_size"], "contract size")
    except (KeyError, ValueError):
        return None
    if not value or not size or not contract:
        return None
    return (value / (size * contract)).quantize(Decimal("1e-10")).normalize()


# -- prices -------------------------------------------------------------------------
def price(value: object, digits: int, what: str = "price") -> Decimal:
    """A price of a reply at the symbol's ``digits``, exactly (ValueError if it is off that grid)."""
    amount = number(value, what)
    grid = Decimal(1).scaleb(-digits)
    on_grid = amount.quantize(grid)
    if on_grid != amount:
        raise ValueError(f"{what}: {amount} has more than {digits} decimals")
    return on_grid


def stop(value: object, digits: int) -> Decimal | None:
    """An ``sl``/``tp`` field: 0 means none."""
    amount = number(value, "stop")
    return None if amount == 0 else price(amount, digits, "stop")


def price_field(value: Decimal | None, digits: int) -> Decimal | int:
    """A price for a command: at the symbol's digits, 0 for none."""
    if value is None or value == 0:
        return 0
    return price(value, digits)


# -- sides ----------------------------------------------------------------------------
def side_of(kind: int) -> Side:
    if kind == P.OP_BUY:
        return Side.BUY
    if kind == P.OP_SELL:
        return Side.SELL
    raise ValueError(f"order type {kind!r} is neither buy nor sell")


def order_type(side: Side) -> int:
    return P.OP_BUY if side is Side.BUY else P.OP_SELL


# -- comments ---------------------------------------------------------------------------
def bridge_key(comment: str, magic: int) -> str | None:
    """The idempotency key an order's comment carries, if the bridge placed it: a key-shaped comment (MT4 may
    append ``[sl]``/``[tp]`` when it closes) whose magic number agrees (a trade by hand has magic 0)."""
    key = comment[:interface.KEY_LENGTH]
    rest = comment[interface.KEY_LENGTH:]
    if len(key) == interface.KEY_LENGTH and key.startswith("cb") and (not rest or rest.startswith("[")) \
            and magic == interface.magic_number(key):
        return key
    return None


def parent_of(comment: str) -> int | None:
    """``from #N``: the ticket this remainder was split from (MT4 may append ``[sl]`` and the like)."""
    match = _FROM.match(comment)
    return int(match.group(1)) if match else None


def child_of(comment: str) -> int | None:
    """``to #N``: the remainder ticket a partially closed order's history entry names."""
    match = _TO.match(comment)
    return int(match.group(1)) if match else None


# -- records ------------------------------------------------------------------------------
def account_info(record: dict, login: Login) -> interface.AccountInfo:
    """An ``ACCOUNT`` result; MT4 accounts always hedge (one order per trade)."""
    return interface.AccountInfo(login, record["currency"], number(record["balance"], "balance"),
                                 number(record["equity"], "equity"), True)


def venue_position(trade: dict, root: int, key: str | None, account: Login,
                   symbol_spec: SymbolSpec) -> interface.VenuePosition:
    """A ``TRADES`` entry as the bridge's VenuePosition, named by its chain's root ticket."""
    digits = symbol_spec.digits
    return interface.VenuePosition(PositionId(M4, root), account, trade["symbol"], side_of(trade["type"]),
                                   volume_of(trade["lots"], symbol_spec), price(trade["open_price"], digits),
                                   stop(trade["sl"], digits), stop(trade["tp"], digits), key)
