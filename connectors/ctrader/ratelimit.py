"""A token bucket per request class and connection, on an injected clock.

cTrader allows 50 requests per second per connection (5 for historical ones) and
answers REQUEST_FREQUENCY_EXCEEDED beyond that. A bucket of ``burst`` tokens
refilled at ``rate`` per second lets through at most ``burst + rate`` requests in
any one-second window, so the defaults (24 + 24 = 48; 2 + 2 = 4 historical) stay
under the limits with a margin. A request leaves at once while tokens remain;
otherwise it waits in order for the next token (no fixed flush timer). If the
server refuses one anyway (another client of the same connection budget, a
stricter server), the session sends it again after a backoff (``session.py``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Budget:
    rate: float  # tokens per second
    burst: int  # bucket size

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst < 1:
            raise ValueError("a budget needs a positive rate and a burst of at least 1")


LIVE = Budget(24.0, 24)
HISTORICAL = Budget(2.0, 2)


class TokenBucket:
    def __init__(self, budget: Budget, clock) -> None:
        self.budget = budget
        self.clock = clock
        self._tokens = float(budget.burst)
        self._at = clock.seconds()

    def _refill(self) -> None:
        now = self.clock.seconds()
        self._tokens = min(self.budget.burst, self._tokens + (now - self._at) * self.budget.rate)
        self._at = now

    def take(self, reserve: int = 0) -> bool:
        """Spend one token if there is one beyond ``reserve`` (tokens kept for more urgent requests)."""
        self._refill()
        if self._tokens >= 1 + reserve:
            self._tokens -= 1
            return True
        return False

    def wait_s(self, reserve: int = 0) -> float:
        """Seconds until a token beyond ``reserve`` is available."""
        self._refill()
        return max(0.0, (1 + reserve - self._tokens) / self.budget.rate)
