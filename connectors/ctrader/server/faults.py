"""Faults the local server injects, configurable and seeded (all off by default).

Rates are ``Decimal`` fractions in 0..1 drawn from the server's ``random.Random``
(one draw per decision, only for non-zero rates, so a seed replays exactly);
times are whole milliseconds of the server's clock.

- ``disconnect_rate``: a request, instead of being processed, drops its
  connection (the TLS connection is aborted; the request never executes).
- ``lose_reply_rate``: a frame owed to the requester (response, ExecutionEvent
  or OrderErrorEvent carrying its ``clientMsgId``) is silently not sent. The
  request itself was processed.
- ``lose_fill_rate``: an ``ORDER_FILLED`` / ``ORDER_PARTIAL_FILL`` owed to the
  requester is not sent, though the order executed (it is in ReconcileRes and
  DealListRes; other connections watching the account still see it).
- ``reply_delay_ms`` (+ a uniform ``0..reply_jitter_ms``): every frame owed to a
  requester leaves that much later; frames to one connection never reorder.
- ``reject_rate``: a valid order or close is refused with an OrderErrorEvent
  whose code is drawn from ``reject_codes``.
- ``partial_fill_rate``: a market order fills in two deals: ORDER_PARTIAL_FILL
  with about half of it (floored to the symbol's step), then ORDER_FILLED.
- ``slippage_points``: a fill moves by a uniform whole number of points in
  ``-N..N`` (positive = worse for the trader).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from decimal import Decimal

from bridge.domain.volume import parse_decimal

PPM = 1_000_000


@dataclass(frozen=True, slots=True)
class FaultConfig:
    disconnect_rate: Decimal = Decimal(0)
    lose_reply_rate: Decimal = Decimal(0)
    lose_fill_rate: Decimal = Decimal(0)
    reply_delay_ms: int = 0
    reply_jitter_ms: int = 0
    reject_rate: Decimal = Decimal(0)
    reject_codes: tuple[str, ...] = ("MARKET_CLOSED", "NOT_ENOUGH_MONEY", "TRADING_DISABLED")
    partial_fill_rate: Decimal = Decimal(0)
    slippage_points: int = 0

    def __post_init__(self) -> None:
        for name in ("disconnect_rate", "lose_reply_rate", "lose_fill_rate", "reject_rate", "partial_fill_rate"):
            rate = parse_decimal(getattr(self, name), name)
            if not 0 <= rate <= 1:
                raise ValueError(f"{name} must be a fraction in 0..1, got {rate}")
            object.__setattr__(self, name, rate)
        for name in ("reply_delay_ms", "reply_jitter_ms", "slippage_points"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be a non-negative int, got {value!r}")
        if not self.reject_codes or not all(isinstance(c, str) and c for c in self.reject_codes):
            raise ValueError("reject_codes must be a non-empty tuple of ProtoOAErrorCode names")
        object.__setattr__(self, "reject_codes", tuple(self.reject_codes))


class Faults:
    """Decisions drawn from one ``random.Random``; ``config`` may be replaced at runtime."""

    def __init__(self, config: FaultConfig, rng: random.Random) -> None:
        self.config = config
        self.rng = rng

    def chance(self, rate: Decimal) -> bool:
        if rate <= 0:
            return False
        if rate >= 1:
            return True
        return self.rng.randrange(PPM) < int(rate * PPM)

    def delay_ms(self) -> int:
        c = self.config
        return c.reply_delay_ms + (self.rng.randint(0, c.reply_jitter_ms) if c.reply_jitter_ms else 0)

    def slippage(self) -> int:
        n = self.config.slippage_points
        return self.rng.randint(-n, n) if n else 0

    def reject_code(self) -> str | None:
        if self.chance(self.config.reject_rate):
            return self.rng.choice(self.config.reject_codes)
        return None
