"""Risk limits: when a follower's drawdown over a period stops its copying.

A :class:`~allocation.copy.settings.RiskLimit` watches one period (day, week,
month, lifetime; all in UTC, weeks starting on Monday) on one basis (balance or
equity). Drawdown is measured from the highest value seen since the period
started: ``(peak - current) / peak``. A drawdown *above* the limit stops
copying (and, if the limit says so, closes the follower's copied positions).
The stop-out is recorded with its reason by the caller and stays until an
operator clears it; a new period does not clear it.

Limits are additive along the settings chain: the first breached limit (in
chain order) is the one reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Mapping

from allocation.copy.settings import Basis, Period, RiskLimit


@dataclass(frozen=True, slots=True)
class StopOut:
    limit: RiskLimit
    drawdown: Decimal  # fraction, e.g. 0.25
    peak: Decimal
    current: Decimal

    @property
    def reason(self) -> str:
        return (f"{self.limit.basis} drawdown {_pct(self.drawdown)} over {self.limit.period} "
                f"exceeds {_pct(self.limit.max_drawdown)} (peak {self.peak}, now {self.current})")


def period_start(period: Period, now: datetime) -> datetime | None:
    """When the period containing ``now`` began (UTC); None for lifetime."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    now = now.astimezone(timezone.utc)
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period is Period.DAY:
        return day
    if period is Period.WEEK:
        return day - timedelta(days=day.weekday())
    if period is Period.MONTH:
        return day.replace(day=1)
    return None


def drawdown(peak: Decimal, current: Decimal) -> Decimal:
    if peak <= 0:
        return Decimal(0)
    return max((peak - current) / peak, Decimal(0))


def breached(
    limits: tuple[RiskLimit, ...],
    peaks: Mapping[tuple[Period, Basis], Decimal],
    current: Mapping[Basis, Decimal],
) -> StopOut | None:
    """The first limit whose drawdown is above its maximum, or None.

    ``peaks`` holds the highest balance/equity seen in each period so far;
    ``current`` the value now. A period with no peak recorded yet uses the
    current value (no drawdown).
    """
    for limit in limits:
        now_value = current[limit.basis]
        peak = max(peaks.get((limit.period, limit.basis), now_value), now_value)
        dd = drawdown(peak, now_value)
        if dd > limit.max_drawdown:
            return StopOut(limit, dd, peak, now_value)
    return None


def _pct(fraction: Decimal) -> str:
    return f"{(fraction * 100).quantize(Decimal('0.01'))}%"
