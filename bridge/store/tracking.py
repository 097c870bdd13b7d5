"""Execution tracking: latency stages and slippage of every filled order, and their summaries.

Times are the bridge's clock in integer nanoseconds UTC; prices and money are
Decimals stored as TEXT. Summaries are computed in Python from those exact
values: latencies are integer percentiles (nearest rank), mean slippage is a
Decimal (money never goes through a float).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from decimal import Decimal
from typing import Any

from bridge.store.base import StoreBase
from bridge.store.codec import dec_in, dec_out, int_out
from bridge.store.errors import StoreError

#: execution_stats(group_by) -> the column grouped on.
GROUP_COLUMNS = {"venue": "venue", "master": "master_account", "follower": "follower_id"}


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutionRow:
    """One filled order's timeline. ``venue`` is the follower's server (``str(ServerId)``)."""

    intent_key: str
    follower_id: str
    master_account: str
    venue: str
    detect_ns: int  # the bridge saw the master deal
    decide_ns: int  # the deal's intents were planned
    send_ns: int  # the order left
    fill_ns: int  # the result came back
    master_price: Decimal | None = None
    master_time_ns: int | None = None  # the master deal's venue time
    fill_price: Decimal | None = None
    fill_time_ns: int | None = None  # the fill's venue time
    slippage_points: int | None = None  # signed; positive is worse for the follower
    slippage_money: Decimal | None = None  # in the follower's account currency


@dataclass(frozen=True, slots=True)
class ExecutionStats:
    """A summary of one group's executions.

    ``latency``: detect -> fill (the bridge's whole path, venue included);
    ``venue_latency``: send -> fill. Percentiles are nearest-rank, in ns.
    Means leave out executions without that slippage figure; None if none has it.
    """

    group: str
    count: int
    p50_latency_ns: int
    p99_latency_ns: int
    p50_venue_latency_ns: int
    p99_venue_latency_ns: int
    mean_slippage_points: Decimal | None
    mean_slippage_money: Decimal | None


_COLUMNS = tuple(f.name for f in fields(ExecutionRow))
_DECIMALS = ("master_price", "fill_price", "slippage_money")
_INTS = frozenset(name for name in _COLUMNS if name.endswith("_ns") or name == "slippage_points")
_INSERT = (f"INSERT OR REPLACE INTO executions ({', '.join(_COLUMNS)}) "
           f"VALUES ({', '.join('?' for _ in _COLUMNS)})")


def percentile(sorted_values: list[int], p: int) -> int:
    """Nearest-rank percentile ``p`` (1..100) of a non-empty ascending list, in integers."""
    if not sorted_values:
        raise ValueError("percentile of no values")
    rank = -(-p * len(sorted_values) // 100)  # ceil(p * n / 100), exact
    return sorted_values[max(rank, 1) - 1]


def _mean(values: list[Decimal]) -> Decimal | None:
    return sum(values, Decimal(0)) / len(values) if values else None


class TrackingStore(StoreBase):
    """The ``executions`` table."""

    def record_execution(self, execution: ExecutionRow) -> None:
        """Record (or replace: recording the same intent again is idempotent) one execution."""
        if not isinstance(execution, ExecutionRow):
            raise StoreError(f"record_execution needs an ExecutionRow, not {type(execution).__name__}")
        self.record_executions([execution])

    def record_executions(self, executions: list[ExecutionRow]) -> None:
        """:meth:`record_execution` for many, in one statement."""
        rows = []
        for execution in executions:
            if not isinstance(execution, ExecutionRow):
                raise StoreError(f"record_execution needs an ExecutionRow, not {type(execution).__name__}")
            row = []
            for name in _COLUMNS:
                value = getattr(execution, name)
                if name in _DECIMALS:
                    value = dec_out(value, name)
                elif name in _INTS:
                    value = int_out(value, name)
                row.append(value)
            rows.append(row)
        if rows:
            with self.writing() as conn:
                conn.executemany(_INSERT, rows)

    def execution(self, intent_key: str) -> ExecutionRow | None:
        """The execution recorded for ``intent_key``, or None."""
        row = self._one("SELECT * FROM executions WHERE intent_key = ?", (intent_key,))
        if row is None:
            return None
        return ExecutionRow(**{name: dec_in(row[name]) if name in _DECIMALS else row[name]
                               for name in _COLUMNS})

    def execution_stats(self, group_by: str, *, since_ns: int | None = None) -> list[ExecutionStats]:
        """Count, p50/p99 latencies and mean slippage per ``venue``, ``master`` or ``follower``,
        ordered by group; only executions detected at or after ``since_ns`` if given."""
        if group_by not in GROUP_COLUMNS:
            raise StoreError(f"execution_stats: group_by must be one of {', '.join(GROUP_COLUMNS)}, "
                             f"not {group_by!r}")
        column = GROUP_COLUMNS[group_by]
        sql = (f"SELECT {column} AS grp, detect_ns, send_ns, fill_ns, slippage_points, slippage_money "
               f"FROM executions")
        params: tuple = ()
        if since_ns is not None:
            sql += " WHERE detect_ns >= ?"
            params = (int_out(since_ns, "since_ns"),)
        groups: dict[str, list[dict[str, Any]]] = {}
        for row in self.db.query(sql, params):
            groups.setdefault(row["grp"], []).append(row)
        stats = []
        for group in sorted(groups):
            rows = groups[group]
            latency = sorted(r["fill_ns"] - r["detect_ns"] for r in rows)
            venue = sorted(r["fill_ns"] - r["send_ns"] for r in rows)
            points = [Decimal(r["slippage_points"]) for r in rows if r["slippage_points"] is not None]
            money = [dec_in(r["slippage_money"]) for r in rows if r["slippage_money"] is not None]
            stats.append(ExecutionStats(
                group=group,
                count=len(rows),
                p50_latency_ns=percentile(latency, 50),
                p99_latency_ns=percentile(latency, 99),
                p50_venue_latency_ns=percentile(venue, 50),
                p99_venue_latency_ns=percentile(venue, 99),
                mean_slippage_points=_mean(points),
                mean_slippage_money=_mean(money),
            ))
        return stats
