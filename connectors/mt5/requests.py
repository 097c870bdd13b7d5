"""Follower orders as ``order_send`` request dicts, and finding an order again by its key.

Requests (:func:`order_request`):

- OPEN: ``TRADE_ACTION_DEAL`` on the order's side; CLOSE / PARTIAL_CLOSE: the
  opposite side with ``position`` = the ticket (closes or reduces that position,
  hedging or netting). Price: the tick's ``ask`` to buy, ``bid`` to sell, as the
  terminal gave them (no arithmetic on the floats).
- ``deviation`` (points, a point being 10^-digits): what is left of the order's
  ``max_slippage_points`` once the current price's own distance from the
  master's ``reference_price`` is taken off (adverse only), rounded *down*
  (one point too generous would let a fill land beyond the limit). Already
  beyond the limit: :class:`BeyondSlippage`, and nothing should be sent (the
  connector answers REJECTED ``requote``, which the executor retries at the next
  price). No limit: :data:`ANY_DEVIATION`. No reference: the limit itself.
- ``type_filling`` from the symbol's ``filling_mode`` bitmask: FOK if allowed,
  else IOC if allowed, else RETURN (the mode every symbol without either bit takes).
- ``type_time`` GTC; ``magic`` = ``interface.magic_number(key)``; ``comment`` =
  the key (19 characters; MetaTrader keeps 31).
- MODIFY: ``TRADE_ACTION_SLTP`` with ``position``, ``sl`` and ``tp``; a stop of
  None is 0.0, which MetaTrader reads as no stop (MODIFY sets both stops, as on
  the other venues).

Decimals become floats here and only here: ``float(Decimal)`` is the nearest
double, which the terminal reads back as the same decimal.

Lookup (:func:`find`, :func:`lookup_result`): the deals (and orders, positions)
whose ``comment`` is the key, or whose ``magic`` is the key's magic number and
whose comment is a non-empty prefix of the key (a server that shortens comments
still leaves the magic number whole).
"""

from __future__ import annotations

from decimal import ROUND_FLOOR, Decimal

from allocation.leg import Action
from bridge.domain.deal import Side
from bridge.domain.ids import DealId, OrderId, Platform, PositionId
from bridge.domain.volume import SymbolSpec
from connectors.interface import OrderRequest, OrderResult, OrderStatus, magic_number
from connectors.mt5 import codes as c
from connectors.mt5 import convert

P = Platform.MT5

#: MetaTrader's comment field holds this many characters
COMMENT_LENGTH = 31
#: ``deviation`` for an order without a slippage limit: 10^6 points is any price of any symbol
#: at its own precision (100 units at 4 digits); the field is an unsigned 64-bit integer.
ANY_DEVIATION = 1_000_000


class BeyondSlippage(Exception):
    """The current price is already further from the reference than the order allows."""

    def __init__(self, key: str, points: Decimal) -> None:
        super().__init__(f"order {key}: price already {points:f} points beyond the reference")
        self.key = key
        self.points = points


def filling(info) -> int:
    mode = info.filling_mode
    if mode & c.SYMBOL_FILLING_FOK:
        return c.ORDER_FILLING_FOK
    if mode & c.SYMBOL_FILLING_IOC:
        return c.ORDER_FILLING_IOC
    return c.ORDER_FILLING_RETURN


def comment(key: str) -> str:
    if len(key) > COMMENT_LENGTH:
        raise ValueError(f"key {key!r} is longer than MetaTrader's {COMMENT_LENGTH}-character comment")
    return key


def traded_side(order: OrderRequest) -> Side:
    """The side the order trades: an open's own, a close's opposite (``order.side`` is the position's)."""
    return order.side if order.action is Action.OPEN else order.side.opposite


def deviation(order: OrderRequest, quote: Decimal, digits: int) -> int:
    """``deviation`` in points for an order trading at ``quote`` (see the module doc)."""
    if order.max_slippage_points is None:
        return ANY_DEVIATION
    if order.reference_price is None:
        return order.max_slippage_points
    distance = quote - order.reference_price if traded_side(order) is Side.BUY else order.reference_price - quote
    adverse = max(Decimal(0), distance.scaleb(digits))  # in points
    left = (order.max_slippage_points - adverse).to_integral_value(rounding=ROUND_FLOOR)
    if left < 0:
        raise BeyondSlippage(order.key, adverse - order.max_slippage_points)
    return int(left)


def _stop(value: Decimal | None) -> float:
    return 0.0 if value is None else float(value)


def order_request(order: OrderRequest, info, spec: SymbolSpec, tick) -> dict:
    """The ``order_send`` dict for ``order``; ``info`` and ``tick``: the symbol's SymbolInfo and Tick,
    ``spec``: its SymbolSpec (``convert.spec(info)``). Raises :class:`BeyondSlippage`."""
    if order.action is Action.MODIFY:
        return sltp_request(order)
    side = traded_side(order)
    quote = tick.ask if side is Side.BUY else tick.bid
    request = {
        "action": c.TRADE_ACTION_DEAL,
        "symbol": order.symbol,
        "volume": convert.lots_of(order.volume, spec),
        "type": convert.order_type(side),
        "price": quote,
        "deviation": deviation(order, convert.price(quote, info.digits), info.digits),
        "type_filling": filling(info),
        "type_time": c.ORDER_TIME_GTC,
        "magic": magic_number(order.key),
        "comment": comment(order.key),
    }
    if order.action is Action.OPEN:
        if order.sl is not None:
            request["sl"] = float(order.sl)
        if order.tp is not None:
            request["tp"] = float(order.tp)
    else:
        request["position"] = order.position_id.value
    return request


def sltp_request(order: OrderRequest) -> dict:
    return {
        "action": c.TRADE_ACTION_SLTP,
        "symbol": order.symbol,
        "position": order.position_id.value,
        "sl": _stop(order.sl),
        "tp": _stop(order.tp),
        "magic": magic_number(order.key),
        "comment": comment(order.key),
    }


# -- lookup -----------------------------------------------------------------------
def carries(record, key: str) -> bool:
    """Whether a TradeDeal, TradeOrder or TradePosition was made by the order with ``key``."""
    text = record.comment
    if text == key:
        return True
    return bool(text) and record.magic == magic_number(key) and key.startswith(text)


def find(key: str, records) -> list:
    """The records carrying ``key``, in the order given."""
    return [r for r in records if carries(r, key)]


def lookup_result(key: str, deals, info, clock: convert.ServerClock) -> OrderResult | None:
    """The FILLED result of the order with ``key`` from its deals (``history_deals_get`` over the send's
    window; other records ignored), or None if none traded. Several deals of one order (partial fills)
    add up; the price is their volume-weighted mean (28 significant digits, Decimal's default context)."""
    mine = [d for d in find(key, deals) if d.type in (c.DEAL_TYPE_BUY, c.DEAL_TYPE_SELL)]
    if not mine:
        return None
    last = max(mine, key=lambda d: d.ticket)
    volumes = [convert.volume_of(d.volume, info) for d in mine]
    prices = [convert.price(d.price, info.digits) for d in mine]
    total = sum(volumes)
    if len(mine) == 1:
        fill = prices[0]
    else:
        fill = sum(v * p for v, p in zip(volumes, prices)) / total if total else None
    return OrderResult(key, OrderStatus.FILLED, clock.utc_ms(last.time_msc), OrderId(P, last.order),
                       PositionId(P, last.position_id), DealId(P, last.ticket), total, fill)

