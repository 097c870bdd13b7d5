"""The report as one JSON object: counts as numbers, Decimals (money, mean slippage, milliseconds) as
strings, latencies also in integer nanoseconds."""

from __future__ import annotations

import json
from typing import Any

from bridge.report.summary import SCOPES, GroupSummary, Report, ms


def group_dict(summary: GroupSummary) -> dict[str, Any]:
    slip = summary.slippage
    return {
        "group": summary.group,
        "orders": summary.orders,
        "filled": summary.filled,
        "rejected": summary.rejected,
        "pending": summary.pending,
        "skipped": summary.skipped,
        "rejected_by_reason": summary.rejected_by_reason,
        "skipped_by_reason": summary.skipped_by_reason,
        "executions": summary.executions,
        "latency": {
            stage: None if p is None else {"p50_ms": ms(p.p50_ns), "p99_ms": ms(p.p99_ns),
                                           "p50_ns": p.p50_ns, "p99_ns": p.p99_ns}
            for stage, p in summary.latency.items()
        },
        "slippage_points": {
            "count": slip.count,
            "mean": None if slip.mean is None else str(slip.mean),
            "p50": slip.p50,
            "p99": slip.p99,
            "buckets": slip.buckets,
        },
        "slippage_money": {currency: str(total) for currency, total in slip.money.items()},
    }


def report_dict(report: Report) -> dict[str, Any]:
    pools: dict[str, list[dict[str, Any]]] = {}
    for point in report.nav:
        pools.setdefault(point.pool, []).append({"seq": point.seq, "at": point.at.isoformat(), "nav": str(point.nav)})
    return {
        "window": {"from": report.window.start.isoformat(), "to": report.window.end.isoformat()},
        "overall": group_dict(report.overall),
        **{f"by_{scope}": [group_dict(g) for g in report.groups[scope]] for scope in SCOPES},
        "pamm_nav": pools if report.pamm else None,
    }


def render_json(report: Report) -> str:
    return json.dumps(report_dict(report), indent=2) + "\n"
