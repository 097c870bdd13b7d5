"""The report as CSV: a header, then one row for all orders and one per master, follower and venue.

Fixed columns first; then one column per slippage bucket, per rejection reason, per skip reason and
per account currency found in the window (``rejected[no-money]``, ``slippage_money[USD]``...), so every
row has every column (0 or empty where a group has none)."""

from __future__ import annotations

import csv
import io

from bridge.report.summary import BUCKETS, SCOPES, STAGES, GroupSummary, Report, ms

FIXED = ["scope", "group", "orders", "filled", "rejected", "pending", "skipped", "executions",
         *(f"latency_{stage}_{p}_ms" for stage in STAGES for p in ("p50", "p99")),
         "slippage_count", "slippage_mean_points", "slippage_p50_points", "slippage_p99_points",
         *(f"slippage_bucket[{label}]" for label, _, _ in BUCKETS)]


def _text(value) -> str:
    return "" if value is None else str(value)


def render_csv(report: Report) -> str:
    rows: list[tuple[str, GroupSummary]] = [("all", report.overall)]
    rows += [(scope, g) for scope in SCOPES for g in report.groups[scope]]
    rejected = sorted({r for _, g in rows for r in g.rejected_by_reason})
    skipped = sorted({r for _, g in rows for r in g.skipped_by_reason})
    currencies = sorted({c for _, g in rows for c in g.slippage.money})
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(FIXED + [f"rejected[{r}]" for r in rejected] + [f"skipped[{r}]" for r in skipped]
                    + [f"slippage_money[{c}]" for c in currencies])
    for scope, g in rows:
        slip = g.slippage
        latency = [ms(None if p is None else getattr(p, f"{which}_ns"))
                   for p in g.latency.values() for which in ("p50", "p99")]
        writer.writerow([
            scope, g.group, g.orders, g.filled, g.rejected, g.pending, g.skipped, g.executions, *latency,
            slip.count, _text(slip.mean), _text(slip.p50), _text(slip.p99), *slip.buckets.values(),
            *(g.rejected_by_reason.get(r, 0) for r in rejected), *(g.skipped_by_reason.get(r, 0) for r in skipped),
            *(_text(slip.money.get(c)) for c in currencies),
        ])
    return out.getvalue()
