"""Symbols and assets as the Open API shows them, over :class:`connectors.sim.market.Market`.

Symbol ids are 1, 2, ... in the market's symbol order; asset ids are 1, 2, ...
over the sorted set of base and quote currencies (the ``depositAssetId`` of a
Trader is its currency's asset id). Volumes are the market's canonical
hundredths of a unit, which are cTrader's own: ``lotSize`` = contract size x 100
(EURUSD 10,000,000), ``minVolume`` / ``maxVolume`` / ``stepVolume`` from the
symbol's spec. ``pipPosition`` is ``digits - 1``. Spot prices are integers in
1/100000 of a price unit.
"""

from __future__ import annotations

from ctrader_open_api.messages import OpenApiModelMessages_pb2 as model

from bridge.domain.volume import UNITS_PER_BASE
from connectors.sim.market import Market

SPOT_SCALE = 100_000
CATEGORY = 1  # one symbol category for everything


class SymbolCatalogue:
    def __init__(self, market: Market) -> None:
        self.market = market
        self._ids = {name: i for i, name in enumerate(market.symbols, start=1)}
        self._names = {i: name for name, i in self._ids.items()}
        currencies = sorted({c for name in market.symbols for c in (market.definition(name).base,
                                                                     market.definition(name).quote)})
        self._assets = {c: i for i, c in enumerate(currencies, start=1)}

    def id_of(self, name: str) -> int:
        return self._ids[name]

    def name_of(self, symbol_id: int) -> str | None:
        return self._names.get(symbol_id)

    @property
    def ids(self) -> tuple[int, ...]:
        return tuple(self._names)

    def asset_id(self, currency: str) -> int | None:
        return self._assets.get(currency)

    def lot_size(self, name: str) -> int:
        return int(self.market.spec(name).contract_size * UNITS_PER_BASE)

    # -- messages ---------------------------------------------------------
    def light(self, symbol_id: int) -> model.ProtoOALightSymbol:
        d = self.market.definition(self._names[symbol_id])
        return model.ProtoOALightSymbol(symbolId=symbol_id, symbolName=d.symbol, enabled=True,
                                        baseAssetId=self._assets[d.base], quoteAssetId=self._assets[d.quote],
                                        symbolCategoryId=CATEGORY, description=f"{d.base} vs {d.quote}")

    def full(self, symbol_id: int) -> model.ProtoOASymbol:
        name = self._names[symbol_id]
        spec, d = self.market.spec(name), self.market.definition(name)
        return model.ProtoOASymbol(
            symbolId=symbol_id, digits=d.digits, pipPosition=max(d.digits - 1, 0), enableShortSelling=True,
            minVolume=spec.min_volume, maxVolume=spec.max_volume, stepVolume=spec.step_volume,
            lotSize=self.lot_size(name), tradingMode=model.ENABLED, swapLong=0.0, swapShort=0.0,
            scheduleTimeZone="UTC", commission=0, preciseTradingCommissionRate=0)

    def assets(self) -> list[model.ProtoOAAsset]:
        return [model.ProtoOAAsset(assetId=i, name=c, displayName=c, digits=2) for c, i in self._assets.items()]

    def spot(self, name: str) -> tuple[int, int]:
        """``(bid, ask)`` in 1/100000."""
        q = self.market.quote(name)
        return int(q.bid * SPOT_SCALE), int(q.ask * SPOT_SCALE)
