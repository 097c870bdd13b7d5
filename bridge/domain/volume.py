"""Volumes: integers in the canonical unit, and the per-venue symbol spec.

The canonical quantity is **hundredths of a unit of the base asset**, cTrader's
own volume unit: 1 lot of EURUSD (100,000 EUR) is 10,000,000. A volume is a
plain ``int`` in that unit everywhere in the bridge; it is never a float.

MT4/MT5 lots convert through the symbol's contract size, exactly: a lot count
that does not land on a whole canonical unit is an error, not a rounding.

>>> spec = SymbolSpec.from_lots("EURUSD", contract_size="100000", min_lots="0.01",
...                            max_lots="100", step_lots="0.01")
>>> spec.to_volume("0.05")
500000
>>> str(spec.to_lots(500000))
'0.05'
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

#: Canonical units per unit of base asset.
UNITS_PER_BASE = 100


def parse_decimal(value: object, what: str) -> Decimal:
    """A Decimal from a str, int or Decimal; floats are refused (they are inexact)."""
    if isinstance(value, bool):
        raise TypeError(f"{what} must be a decimal number, not a bool")
    if isinstance(value, float):
        raise TypeError(f"{what} must not be a float (got {value!r}); pass a string or Decimal")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, (int, str)):
        try:
            result = Decimal(str(value).strip())
        except InvalidOperation:
            raise ValueError(f"{what} {value!r} is not a number") from None
    else:
        raise TypeError(f"{what} must be a decimal number, not {type(value).__name__}")
    if not result.is_finite():
        raise ValueError(f"{what} {value!r} is not a finite number")
    return result


def decimal_string(raw: object, what: str) -> Decimal:
    """A Decimal carried as a string (JSON bodies and replies): any other type is refused.

    A JSON number would pass through a binary float on the way; a string is exact.
    """
    if not isinstance(raw, str):
        raise ValueError(f"{what} must be a decimal string, got {raw!r}")
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise ValueError(f"{what} {raw!r} is not a decimal") from None
    if not value.is_finite():
        raise ValueError(f"{what} must be finite, got {raw!r}")
    return value


def format_lots(lots: Decimal, places: int) -> str:
    """Lots as a decimal string with at least ``places`` decimals and no float noise."""
    text = format(lots.normalize(), "f")
    whole, _, frac = text.partition(".")
    frac = frac.ljust(places, "0")
    return f"{whole}.{frac}" if frac else whole


@dataclass(frozen=True, slots=True)
class SymbolSpec:
    """One symbol as one venue trades it. Volumes are canonical integers.

    ``min_volume``, ``max_volume`` and ``step_volume`` are in canonical units;
    min and max must lie on the step grid (multiples of the step).
    ``contract_size`` is units of base asset per lot (Decimal, may be fractional
    for some CFDs). ``digits`` is the price precision.
    """

    symbol: str
    contract_size: Decimal
    min_volume: int
    max_volume: int
    step_volume: int
    digits: int = 5

    def __post_init__(self) -> None:
        if not isinstance(self.symbol, str) or not self.symbol.strip():
            raise ValueError("symbol must be a non-empty string")
        if not isinstance(self.contract_size, Decimal) or self.contract_size <= 0:
            raise ValueError(f"{self.symbol}: contract size must be a positive Decimal")
        for name in ("min_volume", "max_volume", "step_volume"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"{self.symbol}: {name} must be an int, not {type(value).__name__}")
        if self.step_volume <= 0:
            raise ValueError(f"{self.symbol}: step must be positive")
        if self.min_volume <= 0:
            raise ValueError(f"{self.symbol}: min must be positive")
        if self.min_volume > self.max_volume:
            raise ValueError(
                f"{self.symbol}: min {self.to_lots(self.min_volume):f} lots is above max "
                f"{self.to_lots(self.max_volume):f} lots"
            )
        for name in ("min_volume", "max_volume"):
            value = getattr(self, name)
            if value % self.step_volume:
                raise ValueError(
                    f"{self.symbol}: {name[:3]} {self.to_lots(value)} lots is not on the step grid "
                    f"{self.to_lots(self.step_volume)}"
                )
        if not isinstance(self.digits, int) or not 0 <= self.digits <= 10:
            raise ValueError(f"{self.symbol}: digits must be an int in 0..10")

    @classmethod
    def from_lots(
        cls,
        symbol: str,
        *,
        contract_size: object,
        min_lots: object,
        max_lots: object,
        step_lots: object,
        digits: int = 5,
    ) -> "SymbolSpec":
        """A spec from MetaTrader-style lot figures (strings or Decimals)."""
        size = parse_decimal(contract_size, "contract size")
        if size <= 0:
            raise ValueError(f"{symbol}: contract size must be positive, got {size}")
        values = {}
        for name, raw in (("min", min_lots), ("max", max_lots), ("step", step_lots)):
            lots = parse_decimal(raw, name)
            if lots <= 0:
                raise ValueError(f"{symbol}: {name} must be positive, got {lots}")
            values[name] = lots_to_volume(lots, size, what=f"{symbol} {name}")
        return cls(symbol, size, values["min"], values["max"], values["step"], digits)

    # -- conversion -------------------------------------------------------
    def to_volume(self, lots: object) -> int:
        """Lots -> canonical volume, exactly (raises if negative or not a whole unit)."""
        value = parse_decimal(lots, "lots")
        if value < 0:
            raise ValueError(f"{self.symbol}: a volume cannot be negative, got {value:f} lots")
        return lots_to_volume(value, self.contract_size, what=self.symbol)

    def to_lots(self, volume: int) -> Decimal:
        """Canonical volume -> lots, exact."""
        return (Decimal(volume) / (self.contract_size * UNITS_PER_BASE)).normalize()

    @property
    def lot_places(self) -> int:
        """Decimal places of the step in lots (0.01 -> 2), for display."""
        exponent = self.to_lots(self.step_volume).as_tuple().exponent
        return max(0, -int(exponent))

    def format_lots(self, volume: int) -> str:
        return format_lots(self.to_lots(volume), self.lot_places)

    # -- grid -------------------------------------------------------------
    def floor(self, volume: int) -> int:
        """Round a non-negative volume down to the step grid."""
        return volume - volume % self.step_volume

    def on_grid(self, volume: int) -> bool:
        return volume % self.step_volume == 0

    def tradable(self, volume: int) -> bool:
        """On the grid and inside [min, max]."""
        return self.min_volume <= volume <= self.max_volume and volume % self.step_volume == 0


def lots_to_volume(lots: Decimal, contract_size: Decimal, *, what: str = "volume") -> int:
    """Lots -> canonical units, refusing anything that is not a whole unit."""
    exact = lots * contract_size * UNITS_PER_BASE
    whole = int(exact)
    if whole != exact:
        raise ValueError(
            f"{what}: {lots:f} lots x contract size {contract_size:f} is not a whole "
            f"hundredth of a unit"
        )
    return whole
