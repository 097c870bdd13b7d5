"""The simulated venue's behaviour: latency, slippage, rejections and faults.

All zero (the default) is an ideal venue: every valid order fills at once, at
the current bid/ask, and :meth:`SimVenue.execute` returns an already-fired
Deferred. Rates are fractions (``Decimal`` in 0..1, resolved to one part per
million); latency is whole microseconds of the venue's clock; slippage is whole
points. Nothing here is a float.

- ``fill_latency_us``: an order executes (and its Deferred fires) this long
  after :meth:`execute`, at the prices of that moment.
- ``slippage_points``: each fill moves by a uniform whole number of points in
  ``-N..N`` (positive = worse for the trader).
- ``reject_rate``: the chance a valid order is refused with one of
  ``reject_reasons`` (chosen uniformly).
- ``timeout_before_execute_rate``: the chance an order is lost on the way in:
  it does NOT execute and the caller gets :class:`AmbiguousOutcome`.
- ``timeout_after_execute_rate``: the chance the reply is lost: the order DID
  execute (``lookup`` finds it) and the caller gets :class:`AmbiguousOutcome`.
- ``disconnected``: the venue's starting connection state (the venue's own
  ``disconnected`` attribute can be flipped at runtime).
- ``trigger_stops``: :meth:`SimVenue.step_prices` closes positions whose
  stop-loss or take-profit the new prices reach.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from bridge.domain.volume import parse_decimal

#: Random draws for rates are made in parts per million.
PPM = 1_000_000


@dataclass(frozen=True, slots=True)
class SimConfig:
    fill_latency_us: int = 0
    slippage_points: int = 0
    reject_rate: Decimal = Decimal(0)
    reject_reasons: tuple[str, ...] = ("no-money", "market-closed", "requote")
    timeout_before_execute_rate: Decimal = Decimal(0)
    timeout_after_execute_rate: Decimal = Decimal(0)
    disconnected: bool = False
    trigger_stops: bool = True

    def __post_init__(self) -> None:
        for name in ("fill_latency_us", "slippage_points"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be a non-negative int, got {value!r}")
        for name in ("reject_rate", "timeout_before_execute_rate", "timeout_after_execute_rate"):
            rate = parse_decimal(getattr(self, name), name)
            if not 0 <= rate <= 1:
                raise ValueError(f"{name} must be a fraction in 0..1, got {rate}")
            object.__setattr__(self, name, rate)
        if not self.reject_reasons or not all(isinstance(r, str) and r for r in self.reject_reasons):
            raise ValueError("reject_reasons must be a non-empty tuple of reason codes")
        object.__setattr__(self, "reject_reasons", tuple(self.reject_reasons))

    @property
    def fill_latency_seconds(self) -> float:
        """For ``IReactorTime.callLater``, which takes float seconds; nothing else uses it."""
        return self.fill_latency_us / PPM


@dataclass(frozen=True)
class SimAccount:
    """An account to open on a simulated venue (the daemon's config and ``serve``'s accounts file)."""

    login: int
    balance: Decimal
    currency: str = "USD"
    hedging: bool = True
