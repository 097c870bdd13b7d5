"""Money: an exact ``Decimal`` amount with its currency.

Arithmetic is only defined between amounts of the same currency; mixing
currencies or floats is a ``TypeError``/``ValueError``, never a silent result.

>>> Money("100.50", "USD") + Money("0.25", "USD")
Money('100.75', 'USD')
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from bridge.domain.volume import parse_decimal


@dataclass(frozen=True, slots=True, init=False)
class Money:
    amount: Decimal
    currency: str

    def __init__(self, amount: object, currency: str) -> None:
        if not isinstance(currency, str) or len(currency) != 3 or not currency.isalpha():
            raise ValueError(f"currency must be a 3-letter code, got {currency!r}")
        object.__setattr__(self, "amount", parse_decimal(amount, "amount"))
        object.__setattr__(self, "currency", currency.upper())

    def __repr__(self) -> str:
        return f"Money('{self.amount}', '{self.currency}')"

    def __str__(self) -> str:
        return f"{self.amount} {self.currency}"

    def _same(self, other: object) -> "Money":
        if not isinstance(other, Money):
            raise TypeError(f"cannot combine Money with {type(other).__name__}")
        if other.currency != self.currency:
            raise ValueError(f"currency mismatch: {self.currency} vs {other.currency}")
        return other

    def __add__(self, other: "Money") -> "Money":
        return Money(self.amount + self._same(other).amount, self.currency)

    def __sub__(self, other: "Money") -> "Money":
        return Money(self.amount - self._same(other).amount, self.currency)

    def __neg__(self) -> "Money":
        return Money(-self.amount, self.currency)

    def __mul__(self, factor: object) -> "Money":
        if isinstance(factor, Money):
            raise TypeError("cannot multiply Money by Money")
        return Money(self.amount * parse_decimal(factor, "factor"), self.currency)

    __rmul__ = __mul__

    def __lt__(self, other: "Money") -> bool:
        return self.amount < self._same(other).amount

    def __le__(self, other: "Money") -> bool:
        return self.amount <= self._same(other).amount

    def __gt__(self, other: "Money") -> bool:
        return self.amount > self._same(other).amount

    def __ge__(self, other: "Money") -> bool:
        return self.amount >= self._same(other).amount

    def quantize(self, places: int = 2) -> "Money":
        """Rounded down (toward zero) to ``places`` decimals: money is never rounded up."""
        from decimal import ROUND_DOWN

        return Money(self.amount.quantize(Decimal(1).scaleb(-places), rounding=ROUND_DOWN), self.currency)
