"""Arguments of the trading functions as exact values.

- :func:`parse_request`: an ``order_send``/``order_check`` request dict, type-checked field by field like
  the real package, as a :class:`Parsed` (the ``TradeRequest`` record echoed back, plus ``Decimal``
  volume in lots, price, SL and TP).
- :func:`parse_calc_args`: the arguments of ``order_calc_margin``/``order_calc_profit``.

Bad arguments raise :class:`~.calls.Fail` (``RES_E_INVALID_PARAMS``). Whether a request can execute
is :mod:`.validation`'s business.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from typing import TYPE_CHECKING

from bridge.domain.deal import Side
from connectors.mt5.terminal import constants as C
from connectors.mt5.terminal.calls import Fail
from connectors.mt5.terminal.records import TradeRequest
from connectors.mt5.terminal.symbols import checked_symbol

if TYPE_CHECKING:
    from connectors.mt5.terminal.terminal import Terminal

VOLUME_PLACES = Decimal("1e-8")

_REQUEST_INTS = ("action", "magic", "order", "deviation", "type", "type_filling", "type_time", "expiration",
                 "position", "position_by")
_REQUEST_PRICES = ("price", "stoplimit", "sl", "tp")


@dataclass
class Parsed:
    """A trade request: the record as the caller sent it, and its exact volume (lots), price and stops."""

    request: TradeRequest
    volume: Decimal = Decimal(0)
    price: Decimal = Decimal(0)
    sl: Decimal | None = None
    tp: Decimal | None = None
    extra: dict = field(default_factory=dict)


def parse_request(request: object) -> Parsed:
    if not isinstance(request, dict):
        raise Fail(C.RES_E_INVALID_PARAMS, 'Invalid "request" argument')
    values: dict[str, object] = {}
    for key, value in request.items():
        if key in _REQUEST_INTS:
            if not isinstance(value, int):
                raise Fail(C.RES_E_INVALID_PARAMS, f'Invalid "{key}" argument')
        elif key in _REQUEST_PRICES:
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise Fail(C.RES_E_INVALID_PARAMS, f'Invalid "{key}" argument')
            value = float(value)
        elif key == "volume":
            if not isinstance(value, float):
                raise Fail(C.RES_E_INVALID_PARAMS, 'Invalid "volume" argument')
        elif key in ("symbol", "comment"):
            if not isinstance(value, str):
                raise Fail(C.RES_E_INVALID_PARAMS, f'Invalid "{key}" argument')
        else:
            raise Fail(C.RES_E_INVALID_PARAMS, f'Invalid "{key}" argument')
        values[key] = value
    if "action" not in values:
        raise Fail(C.RES_E_INVALID_PARAMS, 'Invalid "action" argument')
    defaults = {f: 0 for f in TradeRequest._fields}
    defaults.update({"volume": 0.0, "price": 0.0, "stoplimit": 0.0, "sl": 0.0, "tp": 0.0, "symbol": "",
                     "comment": ""})
    defaults.update(values)
    req = TradeRequest(**defaults)
    # MT5 keeps volumes to 8 places, so float noise (0.1 * 3) does not make a volume invalid
    lots = Decimal(repr(req.volume)).quantize(VOLUME_PLACES, ROUND_HALF_EVEN)
    parsed = Parsed(req, lots, Decimal(repr(req.price)))
    parsed.sl = Decimal(repr(req.sl)) if req.sl else None
    parsed.tp = Decimal(repr(req.tp)) if req.tp else None
    return parsed


def parse_calc_args(t: Terminal, action, symbol, volume, *prices) -> tuple[Side, str, int, list[Decimal]]:
    """(side, symbol, volume in units, prices) of an ``order_calc_*`` call."""
    if action not in (C.ORDER_TYPE_BUY, C.ORDER_TYPE_SELL):
        raise Fail(C.RES_E_INVALID_PARAMS, 'Invalid "action" argument')
    symbol = checked_symbol(t, symbol)
    if not isinstance(volume, float):
        raise Fail(C.RES_E_INVALID_PARAMS, 'Invalid "volume" argument')
    try:
        units = t.market.spec(symbol).to_volume(Decimal(repr(volume)).quantize(VOLUME_PLACES, ROUND_HALF_EVEN))
    except ValueError:
        raise Fail(C.RES_E_INVALID_PARAMS, 'Invalid "volume" argument') from None
    values = []
    for name, p in zip(("price_open", "price_close") if len(prices) == 2 else ("price",), prices):
        if not isinstance(p, (int, float)) or isinstance(p, bool):
            raise Fail(C.RES_E_INVALID_PARAMS, f'Invalid "{name}" argument')
        values.append(Decimal(repr(float(p))))
    return (Side.BUY if action == C.ORDER_TYPE_BUY else Side.SELL), symbol, units, values
