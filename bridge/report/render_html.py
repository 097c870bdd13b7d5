"""The report as one self-contained HTML page: the charts (inline SVG, :mod:`bridge.report.charts`) and
the tables. No script, no stylesheet or font from elsewhere (the page's Content-Security-Policy forbids
any fetch); every text from the store is escaped."""

from __future__ import annotations

from html import escape

from bridge.report import charts
from bridge.report.render_table import HEADERS, group_row
from bridge.report.summary import SCOPES, Report, ms

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 13px; }
th, td { border: 1px solid #ddd; padding: 3px 6px; text-align: right; }
th:first-child, td:first-child, td.text { text-align: left; }
figure { display: inline-block; margin: 0 1em 1em 0; }
figcaption { font-size: 13px; color: #555; }
"""


def _table(headers: list[str], rows: list[list[str]], css_class: str) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in row) + "</tr>" for row in rows)
    return f'<table class="{css_class}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _figure(figure_id: str, caption: str, svgs: list[str]) -> str:
    return (f'<figure id="{figure_id}">' + "\n".join(svgs)
            + f"<figcaption>{escape(caption)}</figcaption></figure>")


def render_html(report: Report) -> str:
    o = report.overall
    window = escape(report.window.label())
    stages = [[stage.replace("_", " -> "), ms(p.p50_ns) if p else "", ms(p.p99_ns) if p else ""]
              for stage, p in o.latency.items()]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; style-src \'unsafe-inline\'">',
        f"<title>copybridge report {window}</title><style>{_STYLE}</style></head><body>",
        "<h1>copybridge report</h1>",
        f'<p class="window">{window}</p>',
        f'<p class="overall">{o.orders} orders, {o.filled} filled, {o.rejected} rejected, {o.pending} pending, '
        f"{o.skipped} skipped" + (" (nothing in this window)" if report.empty else "") + "</p>",
        '<section id="charts"><h2>Charts</h2>',
        _figure("chart-latency", "Latency histogram (detect -> fill)", [charts.latency_histogram(report.samples)]),
        _figure("chart-slippage", "Slippage over time", [charts.slippage_over_time(report.samples)]),
        _figure("chart-nav", "PAMM NAV per pool", charts.nav_curves(report.nav, report.pamm)),
        "</section>",
        "<h2>Latency by stage, all orders</h2>",
        _table(["stage", "p50 ms", "p99 ms"], stages, "stages"),
        "<h2>Slippage distribution, all orders</h2>",
        _table(["points", "executions"], [[label, str(n)] for label, n in o.slippage.buckets.items()], "buckets"),
    ]
    for scope in SCOPES:
        parts += [f"<h2>Per {scope}</h2>",
                  _table([scope, *HEADERS], [group_row(g) for g in report.groups[scope]], f"per-{scope}")]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
