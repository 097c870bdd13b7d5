"""A PAMM pool's settings, checked once when the pool is opened.

Percentages are percent (``20`` is 20 %), never fractions; times are seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import Enum

from allocation.pamm.errors import PammError

CENT = Decimal("0.01")


class LossSharing(str, Enum):
    PRO_RATA = "pro-rata"
    MANAGER_FIRST_LOSS = "manager-first-loss"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class PoolSettings:
    manager: str
    loss_sharing: LossSharing = LossSharing.PRO_RATA
    initial_nav: Decimal = Decimal("1.00")
    performance_fee: Decimal = Decimal(0)  # percent of new profit above the investor's HWM
    performance_every: int = 1  # charged every N-th rollover (and on any withdrawal)
    management_fee: Decimal = Decimal(0)  # percent of equity per year (365 days)
    entry_fee: Decimal = Decimal(0)  # percent of each deposit
    exit_fee: Decimal = Decimal(0)  # percent of each withdrawal
    manager_minimum: Decimal = Decimal(0)  # below it the pool takes no new investors
    freeze_seconds: int = 0  # requests this close to a rollover wait for the next one
    lockup_seconds: int = 0  # from an investor's first applied deposit
    minimum_remaining: Decimal = Decimal(0)  # a partial withdrawal must leave at least this
    stop_drawdown: Decimal | None = None  # percent below the highest NAV: the pool halts

    def __post_init__(self) -> None:
        if not isinstance(self.manager, str) or not self.manager:
            raise PammError("manager must be a non-empty holder id")
        if not isinstance(self.loss_sharing, LossSharing):
            raise PammError(f"loss_sharing must be one of {', '.join(m.value for m in LossSharing)}")
        for name in ("performance_fee", "management_fee", "entry_fee", "exit_fee"):
            value = _decimal(getattr(self, name), name)
            if not 0 <= value < 100:
                raise PammError(f"{name} must be a percentage in [0, 100), got {value}")
        if _decimal(self.initial_nav, "initial_nav") <= 0:
            raise PammError(f"initial_nav must be positive, got {self.initial_nav}")
        for name in ("manager_minimum", "minimum_remaining"):
            value = _decimal(getattr(self, name), name)
            if value < 0 or value != value.quantize(CENT):
                raise PammError(f"{name} must be a non-negative amount in cents, got {value}")
        for name in ("freeze_seconds", "lockup_seconds"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise PammError(f"{name} must be a non-negative whole number of seconds, got {value!r}")
        every = self.performance_every
        if not isinstance(every, int) or isinstance(every, bool) or every < 1:
            raise PammError(f"performance_every must be a whole number of rollovers >= 1, got {every!r}")
        if self.stop_drawdown is not None:
            value = _decimal(self.stop_drawdown, "stop_drawdown")
            if not 0 < value <= 100:
                raise PammError(f"stop_drawdown must be a percentage in (0, 100], got {value}")


def _decimal(value: object, name: str) -> Decimal:
    if not isinstance(value, Decimal) or not value.is_finite():
        raise PammError(f"{name} must be a finite Decimal, got {value!r}")
    return value
