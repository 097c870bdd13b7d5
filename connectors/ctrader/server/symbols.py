"""Symbols and assets as the Open API shows them, over :class:`connectors.sim.market.Market`.

Symbol ids are 1, 2, ... in the market's symbol order; asset ids are 1, 2, ...
over the sorted set of base and quote currencies (the ``depositAssetId`` of a
Trader is its currency's asset id). Volumes are the market's canonical
hundredths of a unit, which are cTrader's own: ``lotSize`` = contract size x 100
(EURUSD 10,000,000), ``minVolume`` / ``maxVolume`` / ``stepVolume`` from the
symbol's spec. ``pipPosition`` is ``digits - 1``. Spot prices are integers in
1/100000 of a price unit.

A broker may change a symbol's trading spec while clients are connected:
:meth:`SymbolCatalogue.change_spec` replaces the min, max or step volume of one
symbol (``spec`` is what the server then enforces and SymbolByIdRes shows); the
engine tells every authorised account with a ``SymbolChangedEvent``
(``Engine.change_symbol``).
"""

from __future__ import annotations

from dataclasses import replace

from ctrader_open_api.messages import OpenApiModelMessages_pb2 as model

from bridge.domain.volume import UNITS_PER_BASE, SymbolSpec
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
        self._changed: dict[str, SymbolSpec] = {}

    def spec(self, name: str) -> SymbolSpec:
        """The symbol's trading spec as the server enforces it now (the market's, unless changed)."""
        return self._changed.get(name) or self.market.spec(name)

    def change_spec(self, name: str, **volumes: int) -> int:
        """Replace ``min_volume``, ``max_volume`` and/or ``step_volume`` of ``name``; returns its symbol id."""
        unknown = set(volumes) - {"min_volume", "max_volume", "step_volume"}
        if unknown:
            raise ValueError(f"only the volumes of a symbol can change, not {sorted(unknown)}")
        self._changed[name] = replace(self.spec(name), **volumes)  # SymbolSpec checks the new grid
        return self._ids[name]

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
        return int(self.spec(name).contract_size * UNITS_PER_BASE)

    # -- messages ---------------------------------------------------------
    def light(self, symbol_id: int) -> model.ProtoOALightSymbol:
        d = self.market.definition(self._names[symbol_id])
        return model.ProtoOALightSymbol(symbolId=symbol_id, symbolName=d.symbol, enabled=True,
                                        baseAssetId=self._assets[d.base], quoteAssetId=self._assets[d.quote],
                                        symbolCategoryId=CATEGORY, description=f"{d.base} vs {d.quote}")

    def full(self, symbol_id: int) -> model.ProtoOASymbol:
        name = self._names[symbol_id]
        spec, d = self.spec(name), self.market.definition(name)
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
