"""Builders shared by the tests: symbol specs from lot figures, a fixed clock, a master login."""

from __future__ import annotations

from datetime import datetime, timezone

from bridge.domain.ids import Login, Platform, ServerId
from bridge.domain.volume import SymbolSpec

NOW = datetime(2024, 3, 4, 12, 0, tzinfo=timezone.utc)
MASTER_LOGIN = Login(ServerId(Platform.SIM, "master"), 1001)


def spec(
    symbol: str = "EURUSD",
    contract: object = "100000",
    min_lots: object = "0.01",
    max_lots: object = "100",
    step: object = "0.01",
) -> SymbolSpec:
    """A symbol spec from MetaTrader-style lot figures (a spot-FX symbol by default)."""
    return SymbolSpec.from_lots(symbol, contract_size=contract, min_lots=min_lots, max_lots=max_lots, step_lots=step)
