"""The report as aligned text tables: a line for all orders, a table per master, follower and venue,
latency by stage and the slippage distribution of all orders."""

from __future__ import annotations

from bridge.cli.render import table
from bridge.report.summary import SCOPES, STAGES, GroupSummary, Report, ms

HEADERS = ["orders", "filled", "rejected", "pending", "skipped", "p50 ms", "p99 ms",
           "slip mean", "slip p50", "slip p99", "slip money", "rejected by reason", "skipped by reason"]


def _reasons(counts: dict[str, int]) -> str:
    return ", ".join(f"{reason}={n}" for reason, n in counts.items())


def group_row(g: GroupSummary) -> list[str]:
    total, slip = g.latency["total"], g.slippage
    return [
        g.group, str(g.orders), str(g.filled), str(g.rejected), str(g.pending), str(g.skipped),
        ms(total.p50_ns) if total else "", ms(total.p99_ns) if total else "",
        "" if slip.mean is None else str(slip.mean), "" if slip.p50 is None else str(slip.p50),
        "" if slip.p99 is None else str(slip.p99),
        "; ".join(f"{currency} {total}" for currency, total in slip.money.items()),
        _reasons(g.rejected_by_reason), _reasons(g.skipped_by_reason),
    ]


def render_table(report: Report) -> str:
    o = report.overall
    parts = [
        f"copybridge report: {report.window.label()}",
        f"all: {o.orders} orders, {o.filled} filled, {o.rejected} rejected, {o.pending} pending, "
        f"{o.skipped} skipped" + ("" if not report.empty else " (nothing in this window)"),
    ]
    for scope in SCOPES:
        parts += ["", f"per {scope}", table([scope, *HEADERS], [group_row(g) for g in report.groups[scope]])]
    stages = [[stage.replace("_", " -> "), ms(p.p50_ns) if p else "", ms(p.p99_ns) if p else ""]
              for stage, p in o.latency.items() if stage in STAGES]
    parts += ["", "latency by stage, all orders", table(["stage", "p50 ms", "p99 ms"], stages)]
    buckets = [[label, str(n)] for label, n in o.slippage.buckets.items()]
    parts += ["", "slippage distribution, all orders (points, positive is worse for the follower)",
              table(["points", "executions"], buckets)]
    if report.pamm:
        pools = sorted({p.pool for p in report.nav})
        parts += ["", f"PAMM pools with rollovers in the window: {', '.join(pools) or 'none'}"]
    else:
        parts += ["", "no PAMM pools"]
    return "\n".join(parts) + "\n"
