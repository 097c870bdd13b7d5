"""The trade server's history of one account: orders and deals, their tickets, and the history queries.

:class:`History` books the order and deal of every fill (:meth:`History.record`) and every balance
operation (:meth:`History.balance`), hands out tickets, and answers ``history_deals_get``/
``history_orders_get`` (:meth:`History.deals`, :meth:`History.orders`). Date arguments are compared
with trade-server seconds: an ``int``/``float`` as it is, a naive ``datetime`` by its wall-clock
fields, an aware one by its Unix timestamp (see :func:`date_seconds`).
"""

from __future__ import annotations

import calendar
from datetime import datetime
from decimal import Decimal
from typing import Callable, NamedTuple

from connectors.mt5.terminal import constants as C
from connectors.mt5.terminal.calls import Fail, as_float
from connectors.mt5.terminal.records import TradeDeal, TradeOrder
from connectors.mt5.terminal.symbols import lots, match_group
from connectors.sim.account import Change
from connectors.sim.market import Market

COMMENT_MAX = 31  # MT5 keeps at most 31 characters of a comment


class _Keys(NamedTuple):
    """How the history queries read one kind of record."""

    time: Callable
    ticket: Callable
    position: Callable
    symbol: Callable


_DEALS = _Keys(lambda d: d.time, lambda d: d.order, lambda d: d.position_id, lambda d: d.symbol)
_ORDERS = _Keys(lambda o: o.time_done, lambda o: o.ticket, lambda o: o.position_id, lambda o: o.symbol)


def date_seconds(value: object, what: str) -> int:
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            return int(value.timestamp())
        return calendar.timegm(value.timetuple())
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    raise Fail(C.RES_E_INVALID_PARAMS, f'Invalid "{what}" argument')


def _select(items, keys: _Keys, date_from, date_to, group, ticket, position) -> tuple:
    """By ticket, else by position, else within [date_from, date_to] (and the group if any)."""
    if ticket is not None:
        return tuple(x for x in items if keys.ticket(x) == ticket)
    if position is not None:
        return tuple(x for x in items if keys.position(x) == position)
    if date_from is None or date_to is None:
        raise Fail(C.RES_E_INVALID_PARAMS, 'Invalid "date_from" argument')
    start, end = date_seconds(date_from, "date_from"), date_seconds(date_to, "date_to")
    chosen = (x for x in items if start <= keys.time(x) <= end)
    if group is not None:
        chosen = (x for x in chosen if match_group(keys.symbol(x), group))
    return tuple(chosen)


class History:
    """Orders and deals in booking order; ``now_msc`` gives trade-server time for their times."""

    def __init__(self, market: Market, now_msc: Callable[[], int]) -> None:
        self.market = market
        self.now_msc = now_msc
        self.deal_list: list[TradeDeal] = []
        self.order_list: list[TradeOrder] = []
        self.next_order = 10_000_001
        self.next_deal = 7_000_001

    def _order_id(self) -> int:
        self.next_order += 1
        return self.next_order - 1

    def _deal_id(self) -> int:
        self.next_deal += 1
        return self.next_deal - 1

    def record(self, change: Change, deal_type: int, entry: int, reason: int, magic: int, comment: str,
               filling: int, type_time: int, request_price: Decimal, *, sl=None, tp=None) -> tuple[int, int]:
        """The order and deal of one fill, in the history."""
        now = self.now_msc()
        order, deal = self._order_id(), self._deal_id()
        symbol = change.symbol
        volume = lots(self.market, symbol, change.filled)
        self.order_list.append(TradeOrder(
            order, now // 1000, now, now // 1000, now, 0, deal_type, type_time, filling, C.ORDER_STATE_FILLED,
            magic, change.position_id, 0, reason, volume, 0.0, float(request_price), as_float(sl), as_float(tp),
            float(change.price), 0.0, symbol, comment, ""))
        self.deal_list.append(TradeDeal(
            deal, order, now // 1000, now, deal_type, entry, magic, change.position_id, reason, volume,
            float(change.price), 0.0, 0.0, float(change.profit), 0.0, symbol, comment, ""))
        return order, deal

    def balance(self, amount: Decimal, comment: str) -> TradeDeal:
        """The deal of a deposit or withdrawal (type 2, order 0, symbol '')."""
        now = self.now_msc()
        deal = TradeDeal(self._deal_id(), 0, now // 1000, now, C.DEAL_TYPE_BALANCE, C.DEAL_ENTRY_IN, 0, 0,
                         C.DEAL_REASON_CLIENT, 0.0, 0.0, 0.0, 0.0, float(amount), 0.0, "",
                         comment[:COMMENT_MAX], "")
        self.deal_list.append(deal)
        return deal

    def deals(self, date_from, date_to, group=None, ticket=None, position=None) -> tuple[TradeDeal, ...]:
        """``ticket`` is an order ticket (the deals of that order), ``position`` a position id."""
        return _select(self.deal_list, _DEALS, date_from, date_to, group, ticket, position)

    def orders(self, date_from, date_to, group=None, ticket=None, position=None) -> tuple[TradeOrder, ...]:
        return _select(self.order_list, _ORDERS, date_from, date_to, group, ticket, position)
