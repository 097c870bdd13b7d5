"""Order execution: market orders, closes, SL/TP amends and server-side closes, as Open API events.

Each request becomes a list of :class:`Emission`; the server sends them (with
the request's ``clientMsgId`` to the requester, without one to every other
connection that authorised the account; OrderErrorEvents only to the requester).

- NewOrderReq (MARKET and MARKET_RANGE): ``ORDER_ACCEPTED`` (order ACCEPTED,
  executedVolume 0, no position), then ``ORDER_FILLED`` (order FILLED with
  executedVolume, executionPrice and positionId; the position; the deal). With
  a partial fill, ``ORDER_PARTIAL_FILL`` (deal PARTIALLY_FILLED) comes between
  them. A netted account adds to, reduces, closes or reverses its one position
  per symbol (the deal then carries ``closePositionDetail``).
- NewOrderReq with ``positionId`` ("reference to the existing position if the
  order is intended to modify it", OpenApiMessages.proto): an order on the
  position's opposite side reduces or closes that position, as ClosePositionReq
  does below, but the order keeps the request's ``clientOrderId``, ``label`` and
  ``comment`` (so OrderListReq finds the close by its clientOrderId). The
  position must be open, on this account and on the order's symbol
  (POSITION_NOT_FOUND; another symbol: INVALID_REQUEST). The docs do not say
  what a volume above the position's does; this server refuses it
  (TRADING_BAD_VOLUME, as for ClosePositionReq) rather than going through flat.
  The position's own side (adding to it) is not simulated: INVALID_REQUEST.
- ClosePositionReq: ACCEPTED (order ``closingOrder``, ``positionId``), then
  FILLED with ``deal.closePositionDetail`` and the position: CLOSED (volume 0),
  or OPEN with the rest (same positionId).
- AmendPositionSLTPReq: ``ORDER_REPLACED`` with the position's new stops and its
  STOP_LOSS_TAKE_PROFIT order (an absent stop removes that stop).
- Server side (:meth:`Engine.trigger`): a position whose SL or TP the price
  reaches, or every position of an account whose equity falls below
  ``stop_out_level`` x used margin (``order.isStopOut``), closes with
  ACCEPTED + FILLED, ``isServerEvent`` true, no clientMsgId.

- :meth:`Engine.change_symbol`: a broker's change of a symbol's min / max /
  step volume, enforced from then on, told to every account with a
  ``SymbolChangedEvent`` (clients reload the symbol with SymbolByIdReq).

Refusals (OrderErrorEvent, documented codes): SYMBOL_NOT_FOUND,
TRADING_BAD_VOLUME (off the step, outside [minVolume, maxVolume], or more than
the position), MARKET_CLOSED, NOT_ENOUGH_MONEY (equity not positive, or the new
margin above free margin), POSITION_NOT_FOUND, TRADING_BAD_STOPS (a stop on the
wrong side of the closing price), or a fault-injected code. Requests the
simulator does not model are ProtoOAErrorRes INVALID_REQUEST (:class:`RequestError`).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

from ctrader_open_api.messages import OpenApiMessages_pb2 as oa
from ctrader_open_api.messages import OpenApiModelMessages_pb2 as model

from bridge.domain.deal import DealKind, Side
from bridge.domain.ids import Platform, PositionId
from bridge.domain.volume import UNITS_PER_BASE
from connectors.ctrader.server.accounts import (
    MONEY_DIGITS,
    CloseDetail,
    DealRecord,
    OrderRecord,
    PositionMeta,
    TraderAccount,
    money,
    side_of,
)
from connectors.ctrader.server.faults import Faults
from connectors.ctrader.server.symbols import SPOT_SCALE, SymbolCatalogue
from connectors.sim.account import Position
from connectors.sim.market import CENT

ABSOLUTE_STOPS = "SL/TP in absolute values are allowed only for order types: [LIMIT, STOP, STOP_LIMIT]"
TEXT_LIMITS = (("clientOrderId", 50), ("label", 100), ("comment", 512))


class RequestError(Exception):
    """A request the server answers with ProtoOAErrorRes."""

    def __init__(self, code: str, description: str) -> None:
        super().__init__(description)
        self.code = code
        self.description = description


@dataclass(frozen=True, slots=True)
class Emission:
    account: int
    message: object
    fill: bool = False  # ORDER_FILLED / ORDER_PARTIAL_FILL: the lose_fill fault applies
    requester_only: bool = False  # OrderErrorEvent


def _lots(volume: int) -> str:
    return f"{Decimal(volume) / 100:.2f}"


class Engine:
    def __init__(self, symbols: SymbolCatalogue, accounts: dict[int, TraderAccount], clock, faults: Faults,
                 stop_out_level: Decimal = Decimal("0.5")) -> None:
        self.symbols = symbols
        self.market = symbols.market
        self.accounts = accounts
        self.clock = clock
        self.faults = faults
        self.stop_out_level = stop_out_level
        self.closed_markets: set[str] = set()
        self._position_ids = itertools.count(100_001)
        self._order_ids = itertools.count(200_001)
        self._deal_ids = itertools.count(300_001)

    def now_ms(self) -> int:
        return int(self.clock.seconds() * 1000)

    # -- requests ---------------------------------------------------------
    def new_order(self, req) -> list[Emission]:
        acct = self.accounts[req.ctidTraderAccountId]
        if req.orderType not in (model.MARKET, model.MARKET_RANGE):
            raise RequestError("INVALID_REQUEST", f"only MARKET orders are simulated, not {model.ProtoOAOrderType.Name(req.orderType)}")
        if req.HasField("stopLoss") or req.HasField("takeProfit"):
            raise RequestError("INVALID_REQUEST", ABSOLUTE_STOPS)
        for name, limit in TEXT_LIMITS:
            if len(getattr(req, name)) > limit:
                raise RequestError("INVALID_REQUEST", f"{name} is longer than {limit} characters")
        symbol = self.symbols.name_of(req.symbolId)
        if symbol is None:
            return [self._error(acct, "SYMBOL_NOT_FOUND", f"Symbol {req.symbolId} not found")]
        if req.HasField("positionId"):
            return self._order_on_position(acct, req, symbol)
        side = side_of(req.tradeSide)
        refusal = self._bad_volume(acct, symbol, req.volume) or self._refusal(acct, symbol, side, req.volume)
        if refusal:
            return [refusal]
        order = self._order(acct, req.symbolId, side, req.volume, client_order_id=req.clientOrderId,
                            label=req.label, comment=req.comment, order_type=req.orderType)
        events = [self._event(acct, model.ORDER_ACCEPTED, order)]
        if req.orderType == model.MARKET_RANGE and self._out_of_range(req, symbol, side):
            return events + [self._cancel(acct, order)]
        parts = self._parts(symbol, req.volume)
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            deal = self._fill(acct, order, symbol, part, last, slip=True)
            if last:
                self._relative_stops(acct, req, order)
            events.append(self._event(acct, model.ORDER_FILLED if last else model.ORDER_PARTIAL_FILL, order,
                                      deal.position_id, deal, fill=True))
        return events

    def _out_of_range(self, req, symbol: str, side: Side) -> bool:
        """MARKET_RANGE: the price now is worse than ``baseSlippagePrice`` by more than ``slippageInPoints``."""
        if not req.HasField("baseSlippagePrice"):
            raise RequestError("INVALID_REQUEST", "MARKET_RANGE needs baseSlippagePrice")
        worse = self.market.fill_price(symbol, side) - Decimal(repr(req.baseSlippagePrice))
        if side is Side.SELL:
            worse = -worse
        return worse > self.market.point(symbol) * req.slippageInPoints

    def _cancel(self, acct: TraderAccount, order: OrderRecord) -> Emission:
        order.status = model.ORDER_STATUS_CANCELLED
        return self._event(acct, model.ORDER_CANCELLED, order)

    def _order_on_position(self, acct: TraderAccount, req, symbol: str) -> list[Emission]:
        """NewOrderReq with ``positionId``: an order on the opposite side reduces or closes that position."""
        pid = req.positionId
        live = acct.book.position(PositionId(Platform.CTRADER, pid))
        if live is None:
            return [self._error(acct, "POSITION_NOT_FOUND", f"Position {pid} not found", pid)]
        if live.symbol != symbol:
            raise RequestError("INVALID_REQUEST", f"position {pid} is on {live.symbol}, not symbol {req.symbolId}")
        side = side_of(req.tradeSide)
        if side is live.side:
            raise RequestError("INVALID_REQUEST", f"an order with positionId on the position's own side ({side}) "
                               "is not simulated: only reducing or closing orders are")
        refusal = self._bad_close(acct, live, req.volume, pid) or self._refusal(acct, symbol, side, 0)
        if refusal:
            return [refusal]
        order = self._order(acct, req.symbolId, side, req.volume, order_type=req.orderType, closing=True,
                            position_id=pid, client_order_id=req.clientOrderId, label=req.label, comment=req.comment)
        if req.orderType == model.MARKET_RANGE and self._out_of_range(req, symbol, side):
            return [self._event(acct, model.ORDER_ACCEPTED, order, pid), self._cancel(acct, order)]
        return self._execute_close(acct, live, order, server=False)

    def _bad_close(self, acct: TraderAccount, live: Position, volume: int, pid: int) -> Emission | None:
        """A closing volume must be a positive multiple of the step and no more than the position's."""
        step = self.symbols.spec(live.symbol).step_volume
        if 0 < volume <= live.volume and not volume % step:
            return None
        return self._error(acct, "TRADING_BAD_VOLUME", f"Cannot close volume {_lots(volume)} of position {pid} "
                           f"(volume {_lots(live.volume)}, step {_lots(step)})", pid)

    def close_position(self, req) -> list[Emission]:
        acct = self.accounts[req.ctidTraderAccountId]
        live = acct.book.position(PositionId(Platform.CTRADER, req.positionId))
        if live is None:
            return [self._error(acct, "POSITION_NOT_FOUND", f"Position {req.positionId} not found", req.positionId)]
        refusal = (self._bad_close(acct, live, req.volume, req.positionId)
                   or self._refusal(acct, live.symbol, live.side.opposite, 0))
        if refusal:
            return [refusal]
        return self._close(acct, live, req.volume, model.MARKET, server=False)

    def amend_sltp(self, req) -> list[Emission]:
        acct = self.accounts[req.ctidTraderAccountId]
        pid = req.positionId
        live = acct.book.position(PositionId(Platform.CTRADER, pid))
        if live is None:
            return [self._error(acct, "POSITION_NOT_FOUND", f"Position {pid} not found", pid)]
        point = self.market.point(live.symbol)
        sl = Decimal(repr(req.stopLoss)).quantize(point) if req.HasField("stopLoss") else None
        tp = Decimal(repr(req.takeProfit)).quantize(point) if req.HasField("takeProfit") else None
        close = self.market.fill_price(live.symbol, live.side.opposite)
        buy = live.side is Side.BUY
        if (sl is not None and (sl <= 0 or (sl >= close if buy else sl <= close))) or (
                tp is not None and (tp <= 0 or (tp <= close if buy else tp >= close))):
            return [self._error(acct, "TRADING_BAD_STOPS", f"SL {sl} / TP {tp} invalid for a {live.side} position "
                                f"at closing price {close}", pid)]
        acct.book.modify(live.position_id, sl, tp)
        meta = acct.positions[pid]
        meta.updated_ms = self.now_ms()
        if meta.protection_order_id is None:
            protection = self._order(acct, meta.symbol_id, live.side.opposite, live.volume,
                                     order_type=model.STOP_LOSS_TAKE_PROFIT, position_id=pid, closing=True,
                                     label=meta.label, comment=meta.comment)
            meta.protection_order_id = protection.order_id
        protection = acct.orders[meta.protection_order_id]
        protection.volume, protection.stop_loss, protection.take_profit = live.volume, sl, tp
        protection.updated_ms = meta.updated_ms
        return [self._event(acct, model.ORDER_REPLACED, protection, pid)]

    def deal_list(self, ctid: int, from_ms: int, to_ms: int, max_rows: int) -> tuple[list[DealRecord], bool]:
        """Deals executed in ``[from_ms, to_ms]``, oldest first, at most ``max_rows``; and whether more match."""
        matching = [d for d in self.accounts[ctid].deals if from_ms <= d.time_ms <= to_ms]
        return matching[:max_rows], len(matching) > max_rows

    def deposit(self, ctid: int, amount: Decimal, note: str = "") -> list[Emission]:
        """A balance operation (negative: a withdrawal) as a DEPOSIT_WITHDRAW ExecutionEvent.

        ``balanceHistoryId`` is drawn from the deal id sequence, so balance operations and deals
        of one account are ordered by id as they happened."""
        acct = self.accounts[ctid]
        acct.book.balance += amount
        acct.balance_version += 1
        op = model.ProtoOADepositWithdraw(
            operationType=model.BALANCE_DEPOSIT if amount >= 0 else model.BALANCE_WITHDRAW,
            balanceHistoryId=next(self._deal_ids), balance=money(acct.book.balance), delta=money(abs(amount)),
            changeBalanceTimestamp=self.now_ms(), externalNote=note, balanceVersion=acct.balance_version,
            equity=money(acct.book.equity()), moneyDigits=MONEY_DIGITS)
        event = oa.ProtoOAExecutionEvent(ctidTraderAccountId=ctid, executionType=model.DEPOSIT_WITHDRAW,
                                         depositWithdraw=op, isServerEvent=True)
        return [Emission(ctid, event)]

    def change_symbol(self, symbol: str, **volumes: int) -> list[Emission]:
        """Change ``symbol``'s min / max / step volume (``SymbolCatalogue.change_spec``) and tell every account:
        one ``SymbolChangedEvent`` per account (publish them with ``server.publish``)."""
        symbol_id = self.symbols.change_spec(symbol, **volumes)
        return [Emission(ctid, oa.ProtoOASymbolChangedEvent(ctidTraderAccountId=ctid, symbolId=[symbol_id]))
                for ctid in self.accounts]

    # -- server side ------------------------------------------------------
    def trigger(self) -> list[Emission]:
        """Close what the current prices stop out: SL/TP hits, then accounts below the stop-out level."""
        events: list[Emission] = []
        for acct in self.accounts.values():
            for p in list(acct.book.positions.values()):
                close = self.market.fill_price(p.symbol, p.side.opposite)
                buy = p.side is Side.BUY
                hit_sl = p.sl is not None and (close <= p.sl if buy else close >= p.sl)
                hit_tp = p.tp is not None and (close >= p.tp if buy else close <= p.tp)
                if (hit_sl or hit_tp) and p.symbol not in self.closed_markets:
                    events += self._close(acct, p, p.volume, model.STOP_LOSS_TAKE_PROFIT, server=True)
            while acct.book.positions and acct.book.equity() < self.used_margin(acct) * self.stop_out_level:
                worst = min(acct.book.positions.values(), key=lambda p: self.floating(acct, p))
                events += self._close(acct, worst, worst.volume, model.MARKET, server=True, stop_out=True)
        return events

    def used_margin(self, acct: TraderAccount) -> Decimal:
        return sum((self.margin(acct, p.symbol, p.volume) for p in acct.book.positions.values()), Decimal(0))

    def margin(self, acct: TraderAccount, symbol: str, volume: int) -> Decimal:
        notional = Decimal(volume) / UNITS_PER_BASE * self.market.quote(symbol).mid
        quote = self.market.definition(symbol).quote
        in_deposit = self.market.convert(notional, quote, acct.definition.currency)
        return (in_deposit / acct.definition.leverage).quantize(CENT, ROUND_HALF_EVEN)

    # -- pieces -----------------------------------------------------------
    def floating(self, acct: TraderAccount, p: Position) -> Decimal:
        """A position's unrealised profit at the closing price, in the account's currency."""
        close = self.market.fill_price(p.symbol, p.side.opposite)
        return self.market.profit(p.symbol, p.side, p.volume, p.open_price, close, acct.definition.currency)

    def _bad_volume(self, acct: TraderAccount, symbol: str, volume: int) -> Emission | None:
        spec = self.symbols.spec(symbol)
        if volume < spec.min_volume:
            why = f"is smaller than group minVolume={_lots(spec.min_volume)}"
        elif volume > spec.max_volume:
            why = f"is bigger than group maxVolume={_lots(spec.max_volume)}"
        elif volume % spec.step_volume:
            why = f"is not a multiple of group stepVolume={_lots(spec.step_volume)}"
        else:
            return None
        return self._error(acct, "TRADING_BAD_VOLUME", f"Order volume {_lots(volume)} {why}.")

    def _refusal(self, acct: TraderAccount, symbol: str, side: Side, volume: int) -> Emission | None:
        if symbol in self.closed_markets:
            return self._error(acct, "MARKET_CLOSED", f"Market is closed for {symbol}")
        code = self.faults.reject_code()
        if code is not None:
            return self._error(acct, code, "rejected by the simulator's fault injection")
        opening = volume
        if not acct.definition.hedged and (current := acct.book.net_position(symbol)) is not None:
            opening = volume if current.side is side else max(volume - current.volume, 0)
        if opening:
            equity = acct.book.equity()
            need, free = self.margin(acct, symbol, opening), equity - self.used_margin(acct)
            if equity <= 0 or need > free:
                return self._error(acct, "NOT_ENOUGH_MONEY", f"Not enough money: margin {need} above free "
                                   f"margin {free} {acct.definition.currency}")
        return None

    def _parts(self, symbol: str, volume: int) -> list[int]:
        step = self.symbols.spec(symbol).step_volume
        first = volume // 2 // step * step
        if first and self.faults.chance(self.faults.config.partial_fill_rate):
            return [first, volume - first]
        return [volume]

    def _order(self, acct: TraderAccount, symbol_id: int, side: Side, volume: int, **fields) -> OrderRecord:
        order = OrderRecord(next(self._order_ids), symbol_id, side, volume, self.now_ms(), **fields)
        acct.orders[order.order_id] = order
        return order

    def _close(self, acct: TraderAccount, live: Position, volume: int, order_type: int, *, server: bool,
               stop_out: bool = False) -> list[Emission]:
        pid = live.position_id.value
        meta = acct.positions[pid]
        order = self._order(acct, meta.symbol_id, live.side.opposite, volume, order_type=order_type, closing=True,
                            position_id=pid, label=meta.label, comment=meta.comment, stop_out=stop_out)
        return self._execute_close(acct, live, order, server=server)

    def _execute_close(self, acct: TraderAccount, live: Position, order: OrderRecord, *, server: bool
                       ) -> list[Emission]:
        pid = live.position_id.value
        events = [self._event(acct, model.ORDER_ACCEPTED, order, pid, server=server)]
        deal = self._fill(acct, order, live.symbol, order.volume, True, slip=not server, closing=live)
        events.append(self._event(acct, model.ORDER_FILLED, order, pid, deal, fill=True, server=server))
        return events

    def _fill(self, acct: TraderAccount, order: OrderRecord, symbol: str, volume: int, last: bool, *, slip: bool,
              closing: Position | None = None) -> DealRecord:
        """Trade ``volume`` of ``order`` now: update the book, record the deal, advance the order."""
        price = self.market.fill_price(symbol, order.side, self.faults.slippage() if slip else 0)
        before = closing if closing is not None else (
            None if acct.definition.hedged else acct.book.net_position(symbol))
        entry = before.open_price if before is not None else None
        if closing is not None:
            change = acct.book.reduce(closing.position_id, volume, price)
        else:
            change = acct.book.open(self._new_position_id, symbol, order.side, volume, price, None, None,
                                    order.client_order_id or None)
        now, pid = self.now_ms(), change.position_id.value
        meta = acct.positions.get(pid)
        if meta is None or change.kind is DealKind.REVERSAL:
            meta = acct.positions.setdefault(pid, PositionMeta(pid, order.symbol_id, order.side, now))
            meta.side, meta.label, meta.comment = order.side, order.label, order.comment
        meta.updated_ms, meta.last_price = now, price
        detail = None
        if change.kind in (DealKind.PARTIAL_CLOSE, DealKind.CLOSE, DealKind.REVERSAL):
            acct.balance_version += 1
            closed = change.position_volume if change.kind is DealKind.REVERSAL else change.volume
            detail = CloseDetail(entry, change.profit, acct.book.balance, closed,
                                 self.market.quote_value(symbol, acct.definition.currency), acct.balance_version)
        sent = order.volume - order.executed_volume
        deal = DealRecord(next(self._deal_ids), order.order_id, pid, order.symbol_id, order.side, sent, volume,
                          price, now, partial=not last, close=detail)
        acct.deals.append(deal)
        paid = (order.execution_price or Decimal(0)) * order.executed_volume + price * volume
        order.executed_volume += volume
        order.execution_price = (paid / order.executed_volume).quantize(self.market.point(symbol) / 1000).normalize()
        order.position_id, order.updated_ms = pid, now
        order.status = model.ORDER_STATUS_FILLED if last else model.ORDER_STATUS_ACCEPTED
        return deal

    def _relative_stops(self, acct: TraderAccount, req, order: OrderRecord) -> None:
        if not (req.relativeStopLoss or req.relativeTakeProfit):
            return
        live = acct.book.position(PositionId(Platform.CTRADER, order.position_id))
        if live is None:
            return
        point = self.market.point(live.symbol)
        sign = 1 if live.side is Side.BUY else -1
        sl, tp = live.sl, live.tp
        if req.relativeStopLoss:
            sl = (order.execution_price - sign * Decimal(req.relativeStopLoss) / SPOT_SCALE).quantize(point)
        if req.relativeTakeProfit:
            tp = (order.execution_price + sign * Decimal(req.relativeTakeProfit) / SPOT_SCALE).quantize(point)
        acct.book.modify(live.position_id, sl, tp)

    def _new_position_id(self) -> PositionId:
        return PositionId(Platform.CTRADER, next(self._position_ids))

    def _event(self, acct: TraderAccount, kind: int, order: OrderRecord, position_id: int | None = None,
               deal: DealRecord | None = None, *, fill: bool = False, server: bool = False) -> Emission:
        event = oa.ProtoOAExecutionEvent(ctidTraderAccountId=acct.ctid, executionType=kind, order=order.message())
        if position_id is not None:
            event.position.CopyFrom(acct.position_message(position_id, self.symbols))
        if deal is not None:
            event.deal.CopyFrom(deal.message())
        if server:
            event.isServerEvent = True
        return Emission(acct.ctid, event, fill=fill)

    def _error(self, acct: TraderAccount, code: str, description: str, position_id: int | None = None) -> Emission:
        event = oa.ProtoOAOrderErrorEvent(ctidTraderAccountId=acct.ctid, errorCode=code, description=description)
        if position_id is not None:
            event.positionId = position_id
        return Emission(acct.ctid, event, requester_only=True)
