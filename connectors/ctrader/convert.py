"""Open API entities <-> bridge domain types. Nothing from the protos leaves this package.

Volumes: cTrader's hundredths of a unit are the bridge's canonical unit, taken as
they are. Prices: the protos' doubles through ``repr`` (the shortest exact text)
into ``Decimal``. Money: int64 x 10^-moneyDigits. Times: Unix ms, UTC.

A deal's kind comes from the *signed* volume of its position (buy +, sell -)
before and after it: 0 -> x is OPEN; same sign and larger is ADD; same sign and
smaller is PARTIAL_CLOSE; x -> 0 is CLOSE; a sign change is REVERSAL (netted).
"""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

from ctrader_open_api.messages import OpenApiModelMessages_pb2 as model

from bridge.domain.deal import DealKind, MasterDeal, Side, kind_of, signed
from bridge.domain.ids import DealId, Login, OrderId, Platform, PositionId
from bridge.domain.volume import UNITS_PER_BASE, SymbolSpec
from connectors.interface import KEY_LENGTH, OrderResult, OrderStatus, VenuePosition

P = Platform.CTRADER

#: Open API error codes -> bridge reason codes; anything else becomes its own name in kebab case.
REASONS = {
    "NOT_ENOUGH_MONEY": "no-money",
    "TRADING_BAD_VOLUME": "invalid-volume",
    "POSITION_NOT_FOUND": "position-not-found",
    "POSITION_NOT_OPEN": "position-not-found",
    "MARKET_CLOSED": "market-closed",
    "NO_QUOTES": "market-closed",
    "TRADING_BAD_STOPS": "invalid-stops",
    "SYMBOL_NOT_FOUND": "unknown-symbol",
    "TRADING_DISABLED": "trading-disabled",
    "TRADING_NOT_ALLOWED": "trading-disabled",
    "TRADING_BAD_PRICES": "requote",
}


def reason(code: str) -> str:
    return REASONS.get(code) or "ctrader-" + code.lower().replace("_", "-")


def price(value: float) -> Decimal:
    return Decimal(repr(value))


def money(value: int, digits: int) -> Decimal:
    return Decimal(value).scaleb(-digits)


def when(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)


def side_of(trade_side: int) -> Side:
    return Side.BUY if trade_side == model.BUY else Side.SELL


def trade_side(side: Side) -> int:
    return model.BUY if side is Side.BUY else model.SELL


def spec(name: str, symbol) -> SymbolSpec:
    return SymbolSpec(name, Decimal(symbol.lotSize) / UNITS_PER_BASE, symbol.minVolume, symbol.maxVolume,
                      symbol.stepVolume, symbol.digits)


def deal_delta(deal) -> int:
    """What the deal did to its position's signed volume."""
    return signed(side_of(deal.tradeSide), deal.filledVolume)


def master_deal(deal, account: Login, symbol: str, before: int, after: int) -> MasterDeal:
    kind = kind_of(before, after)
    if kind in (DealKind.OPEN, DealKind.ADD, DealKind.REVERSAL):
        side = Side.BUY if after > 0 else Side.SELL
        volume = abs(after) if kind is DealKind.REVERSAL else abs(after) - abs(before)
    else:
        side = Side.BUY if before > 0 else Side.SELL
        volume = abs(before) - abs(after)
    return MasterDeal(DealId(P, deal.dealId), PositionId(P, deal.positionId), account, symbol, kind, side, volume,
                      when(deal.executionTimestamp), abs(before), price(deal.executionPrice))


def stops(position) -> tuple[Decimal | None, Decimal | None]:
    """A position's (stop loss, take profit); None where it has none."""
    return (price(position.stopLoss) if position.HasField("stopLoss") else None,
            price(position.takeProfit) if position.HasField("takeProfit") else None)


def sltp_deal(deal_id: int, position, account: Login, symbol: str, ms: int) -> MasterDeal:
    volume = position.tradeData.volume
    return MasterDeal(DealId(P, deal_id), PositionId(P, position.positionId), account, symbol, DealKind.SLTP,
                      side_of(position.tradeData.tradeSide), 0, when(ms), volume, None, *stops(position))


#: a balance operation's deal id: this + its ``balanceHistoryId``. The ids come from another sequence than
#: dealIds, so a raw one could equal a trade's and the journal (unique per account and id) would refuse
#: that trade as a duplicate; above every int64 and below every SLTP id (``deals.STOPS_SCALE`` x ms)
BALANCE_BASE = 10 ** 19


def balance_deal(op, account: Login) -> MasterDeal:
    return MasterDeal(DealId(P, BALANCE_BASE + op.balanceHistoryId), PositionId(P, 0), account, "", DealKind.BALANCE,
                      Side.BUY, 0, when(op.changeBalanceTimestamp))


def bridge_key(label: str) -> str | None:
    return label if len(label) == KEY_LENGTH and label.startswith("cb") else None


def venue_position(position, account: Login, symbol: str) -> VenuePosition:
    return VenuePosition(PositionId(P, position.positionId), account, symbol, side_of(position.tradeData.tradeSide),
                         position.tradeData.volume, price(position.price), *stops(position),
                         bridge_key(position.tradeData.label))


def filled(key: str, order, deal, ms: int) -> OrderResult:
    return OrderResult(key, OrderStatus.FILLED, when(ms), OrderId(P, order.orderId),
                       PositionId(P, order.positionId) if order.HasField("positionId") else None,
                       DealId(P, deal.dealId) if deal is not None else None, order.executedVolume,
                       price(order.executionPrice) if order.HasField("executionPrice") else None,
                       quote_to_account=(price(deal.closePositionDetail.quoteToDepositConversionRate)
                                         if deal is not None and deal.HasField("closePositionDetail") else None))


def rejected(key: str, code: str, description: str, ms: int) -> OrderResult:
    return OrderResult(key, OrderStatus.REJECTED, when(ms), reason=reason(code), message=description)
