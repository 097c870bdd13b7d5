"""Allocation benchmark: one block across N accounts, and one master open across N followers.

Inputs are generated from a seeded random source, so every run allocates the
same accounts. Times are wall-clock per call (``time.perf_counter_ns``),
reported as min / p50 / p99 / max over ``repeat`` calls after ``warmup``
calls.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Callable

from allocation.copy import Follower, Master, copy_deal, resolve
from allocation.copy.settings import CopySettings, SizingMode
from allocation.mam import MamGroup, Method, SubAccount, allocate_block
from bridge.domain.deal import DealKind, MasterDeal, Side
from bridge.domain.ids import DealId, Login, Platform, PositionId, ServerId
from bridge.domain.volume import SymbolSpec

TARGET_MS = 20  # one block across 10,000 accounts, on a 2-core machine


@dataclass(frozen=True)
class Timing:
    name: str
    accounts: int
    samples_ns: tuple[int, ...]
    allocated_units: int

    def quantile(self, q: float) -> float:
        """Milliseconds at quantile q (nearest rank)."""
        ordered = sorted(self.samples_ns)
        index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
        return ordered[index] / 1e6

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "accounts": self.accounts,
            "calls": len(self.samples_ns),
            "min_ms": round(self.quantile(0.0), 3),
            "p50_ms": round(self.quantile(0.5), 3),
            "p99_ms": round(self.quantile(0.99), 3),
            "max_ms": round(self.quantile(1.0), 3),
            "allocated_units": self.allocated_units,
        }


def _spec() -> SymbolSpec:
    return SymbolSpec.from_lots("EURUSD", contract_size="100000", min_lots="0.01", max_lots="100",
                                step_lots="0.01")


def _equities(rng: random.Random, n: int) -> list[Decimal]:
    # account sizes spread like a retail book: most small, a few large (cents, exact)
    return [Decimal(int(rng.paretovariate(1.2) * 100_000)).scaleb(-2) for _ in range(n)]


def _time(fn: Callable[[], int], repeat: int, warmup: int) -> tuple[tuple[int, ...], int]:
    result = 0
    for _ in range(warmup):
        result = fn()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter_ns()
        result = fn()
        samples.append(time.perf_counter_ns() - start)
    return tuple(samples), result


def mam_block(accounts: int, repeat: int, warmup: int = 3, seed: int = 7, method: Method = Method.EQUITY) -> Timing:
    rng = random.Random(seed)
    spec = _spec()
    settings = _settings(method, accounts)
    subs = [SubAccount(f"acct-{i:06d}", spec, balance=e, equity=e, setting=settings[i])
            for i, e in enumerate(_equities(rng, accounts))]
    block = spec.to_volume("100")
    group = MamGroup(method)

    def run() -> int:
        return allocate_block(block, spec, Side.BUY, group, subs).allocated

    samples, allocated = _time(run, repeat, warmup)
    return Timing(f"mam-{method.value}", accounts, samples, allocated)


def _settings(method: Method, n: int) -> list[Decimal]:
    """Per-account settings that make sense for the method (percentages sum to exactly 100)."""
    if method is Method.PERCENT:
        share = (Decimal(100) / n).quantize(Decimal("0.0001"), rounding="ROUND_DOWN")
        return [share] * (n - 1) + [Decimal(100) - share * (n - 1)]
    if method is Method.LOT:
        return [Decimal(1) / n] * n
    if method is Method.FIXED:
        return [Decimal("0.01")] * n
    return [Decimal(0)] * n


def copy_fanout(accounts: int, repeat: int, warmup: int = 3, seed: int = 7) -> Timing:
    """One master open sized for every follower; settings resolved once per follower beforehand,
    as the worker keeps them resolved between deals."""
    rng = random.Random(seed)
    spec = _spec()
    now = datetime(2026, 1, 5, 12, tzinfo=timezone.utc)
    login = Login(ServerId(Platform.SIM, "bench"), 1)
    deal = MasterDeal(DealId(Platform.SIM, 1), PositionId(Platform.SIM, 1), login, "EURUSD", DealKind.OPEN,
                      Side.BUY, spec.to_volume("2"), now, price=Decimal("1.10000"), sl=Decimal("1.09500"))
    master = Master(Decimal(50_000), Decimal(50_000), spec)
    specs = {"EURUSD": spec}
    followers = [
        (Follower(f"acct-{i:06d}", e, e, specs),
         resolve(CopySettings(mode=SizingMode.BALANCE), None, CopySettings(multiplier=Decimal(rng.randint(1, 3)))))
        for i, e in enumerate(_equities(rng, accounts))
    ]

    def run() -> int:
        total = 0
        for follower, settings in followers:
            for leg in copy_deal(deal, master, follower, settings, now):
                total += leg.volume
        return total

    samples, allocated = _time(run, repeat, warmup)
    return Timing("copy-balance", accounts, samples, allocated)
