"""MT4 orders as the terminal holds them (:class:`Order`, MQL4 field names), trade errors, server time.

An :class:`Order` is one entry of the terminal's open pool (``MODE_TRADES``) or of
its history pool (``MODE_HISTORY``): a market order (``type`` 0 buy, 1 sell) or a
balance operation (``type`` 6, symbol ``""``, ``profit`` = the amount). Prices,
lots and money are ``Decimal``; ``open_time``/``close_time`` are MQL4 datetimes
(trade-server seconds since 1970, ``0`` for an open order's close time) and
``*_msc`` the same in milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal

from connectors.mt4.protocol import ERROR_TEXT, OP_BALANCE, OP_BUY

ZERO = Decimal(0)
TIME_FORMAT = "%Y.%m.%d %H:%M:%S"


class TradeError(Exception):
    """A trade the terminal refused: ``code`` is the MQL4 error (``GetLastError()``)."""

    def __init__(self, code: int, text: str | None = None) -> None:
        self.code = code
        self.text = text or ERROR_TEXT.get(code, f"error {code}")
        super().__init__(f"{code} {self.text}")


@dataclass
class Order:
    ticket: int
    symbol: str
    type: int
    lots: Decimal
    open_price: Decimal
    open_time: int
    open_time_msc: int
    sl: Decimal = ZERO
    tp: Decimal = ZERO
    magic: int = 0
    comment: str = ""
    close_price: Decimal = ZERO
    close_time: int = 0
    close_time_msc: int = 0
    profit: Decimal = ZERO
    swap: Decimal = ZERO
    commission: Decimal = ZERO

    @property
    def is_balance(self) -> bool:
        return self.type == OP_BALANCE

    @property
    def is_buy(self) -> bool:
        return self.type == OP_BUY


def time_string(server_seconds: int) -> str:
    """An MQL4 datetime as ``TimeToString(t, TIME_DATE|TIME_SECONDS)`` writes it."""
    return datetime.fromtimestamp(server_seconds, timezone.utc).strftime(TIME_FORMAT)


def trade_record(order: Order) -> dict:
    """The protocol's TRADE object of an open order."""
    return {"ticket": order.ticket, "symbol": order.symbol, "type": order.type, "lots": order.lots,
            "open_price": order.open_price, "open_time": time_string(order.open_time),
            "open_time_msc": order.open_time_msc, "sl": order.sl, "tp": order.tp, "magic": order.magic,
            "comment": order.comment, "profit": order.profit, "swap": order.swap, "commission": order.commission}


def closed_record(order: Order) -> dict:
    """The protocol's CLOSED object of a history order (a closed trade or a balance operation)."""
    return {**trade_record(order), "close_price": order.close_price, "close_time": time_string(order.close_time),
            "close_time_msc": order.close_time_msc}
