"""Trading accounts as the Open API sees them: orders, deals and positions over the sim account book.

Positions, balance and profit live in :class:`connectors.sim.account.Account`
(hedging or netting, exact Decimals): this module adds what cTrader reports
around them (order and deal records, a position's label and comment, money as
integers with ``moneyDigits`` = 2, timestamps in Unix ms) and turns records
into the package's protobuf entities.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from ctrader_open_api.messages import OpenApiModelMessages_pb2 as model

from bridge.domain.deal import Side
from bridge.domain.ids import Login, Platform, PositionId, ServerId
from connectors.ctrader.server.credentials import AccountDef
from connectors.ctrader.server.symbols import SymbolCatalogue
from connectors.sim.account import Account

MONEY_DIGITS = 2
SERVER = ServerId(Platform.CTRADER, "sim")


def money(amount: Decimal) -> int:
    """An amount as the Open API's integer (x 10^moneyDigits)."""
    return int(amount.scaleb(MONEY_DIGITS).to_integral_value())


def side_of(trade_side: int) -> Side:
    return Side.BUY if trade_side == model.BUY else Side.SELL


def trade_side(side: Side) -> int:
    return model.BUY if side is Side.BUY else model.SELL


@dataclass(slots=True)
class OrderRecord:
    order_id: int
    symbol_id: int
    side: Side
    volume: int
    created_ms: int
    order_type: int = model.MARKET
    status: int = model.ORDER_STATUS_ACCEPTED
    executed_volume: int = 0
    execution_price: Decimal | None = None
    client_order_id: str = ""
    label: str = ""
    comment: str = ""
    position_id: int | None = None
    closing: bool = False
    stop_out: bool = False
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None
    updated_ms: int = 0

    def message(self) -> model.ProtoOAOrder:
        data = model.ProtoOATradeData(symbolId=self.symbol_id, volume=self.volume, tradeSide=trade_side(self.side),
                                      openTimestamp=self.created_ms, label=self.label, comment=self.comment)
        o = model.ProtoOAOrder(orderId=self.order_id, tradeData=data, orderType=self.order_type,
                               orderStatus=self.status, executedVolume=self.executed_volume,
                               utcLastUpdateTimestamp=self.updated_ms or self.created_ms, closingOrder=self.closing,
                               timeInForce=model.IMMEDIATE_OR_CANCEL, isStopOut=self.stop_out)
        if self.client_order_id:
            o.clientOrderId = self.client_order_id
        if self.execution_price is not None:
            o.executionPrice = float(self.execution_price)
        if self.position_id is not None:
            o.positionId = self.position_id
        if self.stop_loss is not None:
            o.stopLoss = float(self.stop_loss)
        if self.take_profit is not None:
            o.takeProfit = float(self.take_profit)
        return o


@dataclass(frozen=True, slots=True)
class CloseDetail:
    entry_price: Decimal
    gross_profit: Decimal
    balance: Decimal
    closed_volume: int
    quote_to_deposit: Decimal
    balance_version: int

    def message(self) -> model.ProtoOAClosePositionDetail:
        return model.ProtoOAClosePositionDetail(
            entryPrice=float(self.entry_price), grossProfit=money(self.gross_profit), swap=0, commission=0,
            balance=money(self.balance), quoteToDepositConversionRate=float(self.quote_to_deposit),
            closedVolume=self.closed_volume, balanceVersion=self.balance_version, moneyDigits=MONEY_DIGITS)


@dataclass(frozen=True, slots=True)
class DealRecord:
    deal_id: int
    order_id: int
    position_id: int
    symbol_id: int
    side: Side
    volume: int  # the order volume this deal belongs to
    filled_volume: int
    price: Decimal
    time_ms: int
    partial: bool = False
    close: CloseDetail | None = None

    def message(self) -> model.ProtoOADeal:
        d = model.ProtoOADeal(dealId=self.deal_id, orderId=self.order_id, positionId=self.position_id,
                              volume=self.volume, filledVolume=self.filled_volume, symbolId=self.symbol_id,
                              createTimestamp=self.time_ms, executionTimestamp=self.time_ms,
                              utcLastUpdateTimestamp=self.time_ms, executionPrice=float(self.price),
                              tradeSide=trade_side(self.side),
                              dealStatus=model.PARTIALLY_FILLED if self.partial else model.FILLED,
                              commission=0, moneyDigits=MONEY_DIGITS)
        if self.close is not None:
            d.closePositionDetail.CopyFrom(self.close.message())
        return d


@dataclass(slots=True)
class PositionMeta:
    """What cTrader keeps about a position beyond the sim book: ids, label, comment, times."""

    position_id: int
    symbol_id: int
    side: Side
    opened_ms: int
    label: str = ""
    comment: str = ""
    updated_ms: int = 0
    protection_order_id: int | None = None
    last_price: Decimal = Decimal(0)


@dataclass
class TraderAccount:
    definition: AccountDef
    book: Account
    orders: dict[int, OrderRecord] = field(default_factory=dict)
    deals: list[DealRecord] = field(default_factory=list)
    positions: dict[int, PositionMeta] = field(default_factory=dict)  # every position ever opened
    balance_version: int = 0

    @property
    def ctid(self) -> int:
        return self.definition.ctid_trader_account_id

    @staticmethod
    def login_of(ctid: int) -> Login:
        return Login(SERVER, ctid)

    def position_message(self, position_id: int, symbols: SymbolCatalogue) -> model.ProtoOAPosition:
        meta = self.positions[position_id]
        live = self.book.position(PositionId(Platform.CTRADER, position_id))
        side = live.side if live else meta.side
        data = model.ProtoOATradeData(symbolId=meta.symbol_id, volume=live.volume if live else 0,
                                      tradeSide=trade_side(side), openTimestamp=meta.opened_ms, label=meta.label,
                                      comment=meta.comment)
        p = model.ProtoOAPosition(
            positionId=position_id, tradeData=data, swap=0, commission=0, moneyDigits=MONEY_DIGITS,
            positionStatus=model.POSITION_STATUS_OPEN if live else model.POSITION_STATUS_CLOSED,
            price=float(live.open_price if live else meta.last_price),
            utcLastUpdateTimestamp=meta.updated_ms or meta.opened_ms)
        if live is not None and live.sl is not None:
            p.stopLoss = float(live.sl)
        if live is not None and live.tp is not None:
            p.takeProfit = float(live.tp)
        return p

    def trader_message(self, symbols: SymbolCatalogue, registered_ms: int) -> model.ProtoOATrader:
        d = self.definition
        return model.ProtoOATrader(
            ctidTraderAccountId=d.ctid_trader_account_id, balance=money(self.book.balance),
            balanceVersion=self.balance_version, depositAssetId=symbols.asset_id(d.currency) or 0,
            leverageInCents=d.leverage * 100, maxLeverage=d.leverage, traderLogin=d.trader_login,
            accountType=model.HEDGED if d.hedged else model.NETTED, brokerName="copybridge-sim",
            registrationTimestamp=registered_ms, moneyDigits=MONEY_DIGITS, swapFree=True,
            accessRights=model.FULL_ACCESS, totalMarginCalculationType=model.MAX)
