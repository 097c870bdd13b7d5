"""Per-connection request limits: 50 requests per second, 5 per second for historical ones.

A sliding one-second window on the server's clock. A request over the limit is
answered with ``ProtoOAErrorRes`` ``REQUEST_FREQUENCY_EXCEEDED`` and not
processed; refused requests do not count. Heartbeats are never counted.
"""

from __future__ import annotations

from collections import deque

REQUESTS_PER_SECOND = 50
HISTORICAL_PER_SECOND = 5


class RateLimiter:
    def __init__(self, per_second: int = REQUESTS_PER_SECOND, historical_per_second: int = HISTORICAL_PER_SECOND,
                 window_s: float = 1.0) -> None:
        self._limits = {False: per_second, True: historical_per_second}
        self._seen: dict[bool, deque[float]] = {False: deque(), True: deque()}
        self._window = window_s

    def allow(self, now: float, historical: bool) -> bool:
        seen = self._seen[historical]
        while seen and seen[0] <= now - self._window:
            seen.popleft()
        if len(seen) >= self._limits[historical]:
            return False
        seen.append(now)
        return True
