"""Shared input parsing for the what-if commands: symbols, ID=VALUE pairs, lots."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from bridge.config.strict import Table
from bridge.domain.volume import SymbolSpec, parse_decimal
from bridge.errors import InputError

#: A spot-FX symbol as most MetaTrader servers define it.
DEFAULT_SYMBOL = {"name": "EURUSD", "contract_size": Decimal(100000), "min": Decimal("0.01"),
                  "max": Decimal(100), "step": Decimal("0.01")}


@dataclass
class SymbolFields:
    """A symbol spec being assembled from a file and options (lots, not canonical units)."""

    name: str = DEFAULT_SYMBOL["name"]
    contract_size: Decimal = DEFAULT_SYMBOL["contract_size"]
    min: Decimal = DEFAULT_SYMBOL["min"]
    max: Decimal = DEFAULT_SYMBOL["max"]
    step: Decimal = DEFAULT_SYMBOL["step"]

    def read(self, table: Table | None) -> "SymbolFields":
        if table is not None:
            self.name = table.str("name", self.name)
            for key in ("contract_size", "min", "max", "step"):
                setattr(self, key, table.decimal(key, getattr(self, key)))
            table.finish()
        return self

    def override(self, **options) -> "SymbolFields":
        for key, value in options.items():
            if value is not None:
                setattr(self, key, value)
        return self

    def spec(self, name: str | None = None, what: str = "symbol") -> SymbolSpec:
        for key in ("contract_size", "min", "max", "step"):
            if getattr(self, key) <= 0:
                raise InputError(f"{what}: {key.replace('_', ' ')} must be positive, got {getattr(self, key)}")
        try:
            return SymbolSpec.from_lots(name or self.name, contract_size=self.contract_size,
                                        min_lots=self.min, max_lots=self.max, step_lots=self.step)
        except (ValueError, TypeError) as exc:
            raise InputError(f"{what}: {exc}") from None


def lots_to_volume(spec: SymbolSpec, lots: Decimal, what: str) -> int:
    if lots <= 0:
        raise InputError(f"{what} must be positive, got {lots}")
    try:
        return spec.to_volume(lots)
    except (ValueError, TypeError) as exc:
        raise InputError(f"{what}: {exc}") from None


def parse_pairs(values: tuple[str, ...] | list[str], option: str, *, value_required: bool = True
                ) -> list[tuple[str, Decimal | None]]:
    """``("A=4500", "B=3500")`` -> ``[("A", Decimal(4500)), ...]``; one line naming a malformed one."""
    out: list[tuple[str, Decimal | None]] = []
    for text in values:
        key, sep, raw = text.partition("=")
        key = key.strip()
        if not key or (sep and not raw.strip()) or (value_required and not sep):
            raise InputError(f"{option} {text!r}: expected ID=VALUE, e.g. {option} A=4500")
        value = None
        if sep:
            try:
                value = parse_decimal(raw, f"{option} {key}")
            except (TypeError, ValueError) as exc:
                raise InputError(f"{option} {text!r}: {exc}") from None
        out.append((key, value))
    return out


def decimal_or_none(table: Table | None, key: str) -> Decimal | None:
    return None if table is None else table.decimal(key, None)
