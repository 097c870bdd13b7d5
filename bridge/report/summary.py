"""Counts and statistics of a window's orders, overall and per master, follower and venue.

* ``orders``: intents that were to be sent (every state but ``skipped``); ``filled``, ``rejected``
  (by the venue's or the bridge's reason code), ``pending`` (planned, sent or unknown when read) and
  ``skipped`` (by the plan's reason) are counted apart.
* Latency, over the filled orders with an execution record: nearest-rank p50/p99 in integer ns of the
  whole path (detect -> fill) and of each stage (detect -> decide, decide -> send, send -> fill).
* Slippage in points (signed, positive is worse for the follower): the mean as a Decimal (to 0.01),
  nearest-rank p50/p99, and a count per bucket of :data:`BUCKETS`; in money, summed exactly per
  account currency.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Iterable

from bridge.report.query import NavPoint, Order
from bridge.report.window import Window
from bridge.store.tracking import percentile

#: latency stages: name -> (from column, to column) of :class:`~bridge.report.query.Order`
STAGES = {
    "total": ("detect_ns", "fill_ns"),
    "detect_decide": ("detect_ns", "decide_ns"),
    "decide_send": ("decide_ns", "send_ns"),
    "send_fill": ("send_ns", "fill_ns"),
}
#: slippage buckets in points: (label, lowest, highest), None for an open end
BUCKETS: tuple[tuple[str, int | None, int | None], ...] = (
    ("<=-10", None, -10), ("-9..-5", -9, -5), ("-4..-2", -4, -2), ("-1", -1, -1), ("0", 0, 0),
    ("1", 1, 1), ("2..4", 2, 4), ("5..9", 5, 9), (">=10", 10, None),
)
PENDING_STATES = frozenset({"planned", "sent", "unknown"})
SCOPES = ("master", "follower", "venue")
_CENT = Decimal("0.01")


def bucket_of(points: int) -> str:
    for label, low, high in BUCKETS:
        if (low is None or points >= low) and (high is None or points <= high):
            return label
    raise AssertionError(f"no bucket holds {points}")  # the buckets cover every integer


@dataclass(frozen=True, slots=True)
class Percentiles:
    p50_ns: int
    p99_ns: int


@dataclass(frozen=True, slots=True)
class Slippage:
    count: int  # executions with a slippage figure in points
    mean: Decimal | None
    p50: int | None
    p99: int | None
    buckets: dict[str, int]  # every label of BUCKETS, in order
    money: dict[str, Decimal]  # account currency -> sum, positive cost the followers


@dataclass(frozen=True, slots=True)
class GroupSummary:
    group: str
    orders: int
    filled: int
    rejected: int
    pending: int
    skipped: int
    rejected_by_reason: dict[str, int]
    skipped_by_reason: dict[str, int]
    executions: int  # filled orders with an execution record (what latency is computed over)
    latency: dict[str, Percentiles | None]  # by STAGES name; None without executions
    slippage: Slippage


@dataclass(frozen=True, slots=True)
class Sample:
    """One execution, for the charts: when it was detected, its whole latency, its slippage."""

    detect_ns: int
    latency_ns: int
    slippage_points: int | None


@dataclass(frozen=True, slots=True)
class Report:
    window: Window
    overall: GroupSummary
    groups: dict[str, list[GroupSummary]]  # scope (SCOPES) -> a summary per group, by group name
    samples: list[Sample]
    nav: list[NavPoint]
    pamm: bool  # False: the store has no PAMM pool

    @property
    def empty(self) -> bool:
        return self.overall.orders == 0 and self.overall.skipped == 0


@dataclass(slots=True)
class _Tally:
    """What a group's summary is computed from, gathered in one pass."""

    states: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    stages: dict[str, list[int]] = field(default_factory=lambda: {name: [] for name in STAGES})
    points: list[int] = field(default_factory=list)
    money: dict[str, Decimal] = field(default_factory=dict)

    def add(self, order: Order) -> None:
        self.states[order.state] = self.states.get(order.state, 0) + 1
        if order.state == "rejected":
            reason = order.reject_reason or "rejected"
            self.rejected[reason] = self.rejected.get(reason, 0) + 1
        elif order.state == "skipped":
            reason = order.plan_reason or "none"
            self.skipped[reason] = self.skipped.get(reason, 0) + 1
        if order.state == "filled" and order.executed:
            for name, (start, end) in STAGES.items():
                first, last = getattr(order, start), getattr(order, end)
                if first is not None and last is not None:
                    self.stages[name].append(last - first)
            if order.slippage_points is not None:
                self.points.append(order.slippage_points)
            if order.slippage_money is not None:
                self.money[order.currency] = self.money.get(order.currency, Decimal(0)) + order.slippage_money

    def summary(self, group: str) -> GroupSummary:
        skipped = self.states.get("skipped", 0)
        latency: dict[str, Percentiles | None] = {}
        for name, values in self.stages.items():
            values.sort()
            latency[name] = Percentiles(percentile(values, 50), percentile(values, 99)) if values else None
        points = sorted(self.points)
        buckets = {label: 0 for label, _, _ in BUCKETS}
        for p in points:
            buckets[bucket_of(p)] += 1
        mean = (Decimal(sum(points)) / len(points)).quantize(_CENT, ROUND_HALF_EVEN) if points else None
        return GroupSummary(
            group=group,
            orders=sum(self.states.values()) - skipped,
            filled=self.states.get("filled", 0),
            rejected=self.states.get("rejected", 0),
            pending=sum(n for state, n in self.states.items() if state in PENDING_STATES),
            skipped=skipped,
            rejected_by_reason=dict(sorted(self.rejected.items())),
            skipped_by_reason=dict(sorted(self.skipped.items())),
            executions=len(self.stages["total"]),
            latency=latency,
            slippage=Slippage(
                count=len(points), mean=mean,
                p50=percentile(points, 50) if points else None,
                p99=percentile(points, 99) if points else None,
                buckets=buckets, money=dict(sorted(self.money.items())),
            ),
        )


def summarise(window: Window, orders: Iterable[Order], nav: list[NavPoint] | None = None,
              pamm: bool = False) -> Report:
    """The report of ``orders`` (the window's, as :func:`bridge.report.query.orders` reads them)."""
    overall = _Tally()
    tallies: dict[str, dict[str, _Tally]] = {scope: {} for scope in SCOPES}
    samples = []
    for order in orders:
        overall.add(order)
        for scope, group in (("master", order.master), ("follower", order.follower), ("venue", order.venue)):
            tally = tallies[scope].get(group)
            if tally is None:
                tally = tallies[scope][group] = _Tally()
            tally.add(order)
        if order.state == "filled" and order.executed:
            samples.append(Sample(order.detect_ns, order.fill_ns - order.detect_ns, order.slippage_points))
    return Report(
        window=window,
        overall=overall.summary("all"),
        groups={scope: [tallies[scope][g].summary(g) for g in sorted(tallies[scope])] for scope in SCOPES},
        samples=samples,
        nav=list(nav or []),
        pamm=pamm,
    )


def ms(ns: int | None) -> str:
    """Nanoseconds as milliseconds to the microsecond, e.g. ``3.752``; empty for None."""
    return "" if ns is None else str((Decimal(ns) / 1_000_000).quantize(Decimal("0.001")))
