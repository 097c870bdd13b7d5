"""Inline SVG charts drawn from the report's figures: no script, no library, no network.

Coordinates are computed in Decimal from the exact integer and Decimal figures (a NAV never goes
through a float) and written to 0.1 px. Every text that came from the store is escaped. Each chart is
one ``<svg class="chart" id="...">`` with a ``<title>``; a chart without data says so inside its SVG.
"""

from __future__ import annotations

from decimal import Decimal
from html import escape

from bridge.report.query import NavPoint
from bridge.report.summary import Sample, ms
from bridge.report.window import from_ns, to_ns

WIDTH, HEIGHT = 640, 240
LEFT, RIGHT, TOP, BOTTOM = 60, 20, 20, 40
HISTOGRAM_BINS = 20
MAX_POINTS = 2000  # the slippage scatter draws every n-th execution beyond this
_PX = Decimal("0.1")


def _scale(value: int | Decimal, low: int | Decimal, high: int | Decimal, start: int, end: int) -> str:
    """``value`` in ``[low, high]`` mapped onto ``[start, end]`` pixels (the middle when low == high)."""
    if high == low:
        return str((Decimal(start + end) / 2).quantize(_PX))
    return str((start + (Decimal(value) - low) * (end - start) / (Decimal(high) - low)).quantize(_PX))


def _open(chart_id: str, title: str) -> list[str]:
    return [f'<svg class="chart" id="{escape(chart_id)}" xmlns="http://www.w3.org/2000/svg" role="img" '
            f'width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}">',
            f"<title>{escape(title)}</title>",
            f'<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="#fff" stroke="#ccc"/>']


def _axes(x_low: str, x_high: str, y_low: str, y_high: str, x_name: str, y_name: str) -> list[str]:
    bottom, right = HEIGHT - BOTTOM, WIDTH - RIGHT
    return [
        f'<line x1="{LEFT}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="#333"/>',
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{bottom}" stroke="#333"/>',
        f'<text x="{LEFT}" y="{bottom + 15}" font-size="11">{escape(x_low)}</text>',
        f'<text x="{right}" y="{bottom + 15}" font-size="11" text-anchor="end">{escape(x_high)}</text>',
        f'<text x="{(LEFT + right) // 2}" y="{HEIGHT - 6}" font-size="11" text-anchor="middle">{escape(x_name)}</text>',
        f'<text x="{LEFT - 4}" y="{bottom}" font-size="11" text-anchor="end">{escape(y_low)}</text>',
        f'<text x="{LEFT - 4}" y="{TOP + 10}" font-size="11" text-anchor="end">{escape(y_high)}</text>',
        f'<text x="12" y="{(TOP + bottom) // 2}" font-size="11" text-anchor="middle" '
        f'transform="rotate(-90 12 {(TOP + bottom) // 2})">{escape(y_name)}</text>',
    ]


def _empty(lines: list[str], message: str) -> str:
    lines.append(f'<text class="empty" x="{WIDTH // 2}" y="{HEIGHT // 2}" font-size="14" text-anchor="middle">'
                 f"{escape(message)}</text></svg>")
    return "\n".join(lines)


def _time(ns: int) -> str:
    """UTC to the millisecond (a burst of deals can span less than a second)."""
    return from_ns(ns).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def latency_histogram(samples: list[Sample]) -> str:
    """Executions per band of whole-path latency (detect -> fill)."""
    lines = _open("latency-histogram", "Latency histogram: executions by detect-to-fill latency (ms)")
    if not samples:
        return _empty(lines, "no executions in this window")
    latencies = [s.latency_ns for s in samples]
    low, high = min(latencies), max(latencies)
    width = max(1, -(-(high - low + 1) // HISTOGRAM_BINS))
    counts = [0] * HISTOGRAM_BINS
    for value in latencies:
        counts[min((value - low) // width, HISTOGRAM_BINS - 1)] += 1
    top = max(counts)
    bottom, right = HEIGHT - BOTTOM, WIDTH - RIGHT
    lines += _axes(f"{ms(low)} ms", f"{ms(low + width * HISTOGRAM_BINS)} ms", "0", str(top),
                   "detect -> fill latency (ms)", "executions")
    for i, count in enumerate(counts):
        x0 = _scale(i, 0, HISTOGRAM_BINS, LEFT, right)
        x1 = _scale(i + 1, 0, HISTOGRAM_BINS, LEFT, right)
        y = _scale(count, 0, top, bottom, TOP)
        band = f"{ms(low + i * width)} to {ms(low + (i + 1) * width)} ms: {count}"
        lines.append(f'<rect class="bar" x="{x0}" y="{y}" width="{Decimal(x1) - Decimal(x0) - 1}" '
                     f'height="{Decimal(bottom) - Decimal(y)}" fill="#4a7ab5"><title>{escape(band)}</title></rect>')
    lines.append("</svg>")
    return "\n".join(lines)


def slippage_over_time(samples: list[Sample]) -> str:
    """Each execution's slippage in points at the time its master deal was detected."""
    lines = _open("slippage-over-time", "Slippage over time (points, positive is worse for the follower)")
    points = [s for s in samples if s.slippage_points is not None]
    if not points:
        return _empty(lines, "no slippage figures in this window")
    step = -(-len(points) // MAX_POINTS)
    drawn = points[::step]
    t_low, t_high = min(s.detect_ns for s in points), max(s.detect_ns for s in points)
    y_low = min(0, *(s.slippage_points for s in points))
    y_high = max(0, *(s.slippage_points for s in points))
    bottom, right = HEIGHT - BOTTOM, WIDTH - RIGHT
    lines += _axes(_time(t_low), _time(t_high), str(y_low), str(y_high), "master deal detected (UTC)", "points")
    zero = _scale(0, y_low, y_high, bottom, TOP)
    lines.append(f'<line class="zero" x1="{LEFT}" y1="{zero}" x2="{right}" y2="{zero}" stroke="#999" '
                 f'stroke-dasharray="4 3"/>')
    for s in drawn:
        colour = "#c0392b" if s.slippage_points > 0 else "#27ae60" if s.slippage_points < 0 else "#555"
        lines.append(f'<circle class="point" cx="{_scale(s.detect_ns, t_low, t_high, LEFT, right)}" '
                     f'cy="{_scale(s.slippage_points, y_low, y_high, bottom, TOP)}" r="2" fill="{colour}">'
                     f"<title>{escape(_time(s.detect_ns))}: {s.slippage_points}</title></circle>")
    if step > 1:
        lines.append(f'<text x="{right}" y="{TOP + 10}" font-size="10" text-anchor="end">every {step}th of '
                     f"{len(points)} executions</text>")
    lines.append("</svg>")
    return "\n".join(lines)


def nav_curves(nav: list[NavPoint], pamm: bool) -> list[str]:
    """One NAV curve per PAMM pool; one SVG saying why when there is none."""
    if not pamm or not nav:
        lines = _open("pamm-nav", "PAMM NAV per pool")
        return [_empty(lines, "no PAMM pools" if not pamm else "no PAMM rollovers in this window")]
    pools: dict[str, list[NavPoint]] = {}
    for point in nav:
        pools.setdefault(point.pool, []).append(point)
    charts = []
    for n, (pool, points) in enumerate(sorted(pools.items())):
        points.sort(key=lambda p: (p.at, p.seq))
        lines = _open(f"pamm-nav-{n}", f"PAMM NAV of pool {pool}")
        t_low, t_high = to_ns(points[0].at), to_ns(points[-1].at)
        v_low, v_high = min(p.nav for p in points), max(p.nav for p in points)
        bottom, right = HEIGHT - BOTTOM, WIDTH - RIGHT
        lines += _axes(_time(t_low), _time(t_high), str(v_low), str(v_high), f"rollover (UTC), pool {pool}", "NAV")
        coords = [(_scale(to_ns(p.at), t_low, t_high, LEFT, right), _scale(p.nav, v_low, v_high, bottom, TOP))
                  for p in points]
        lines.append('<polyline class="nav" fill="none" stroke="#8e44ad" stroke-width="2" points="'
                     + " ".join(f"{x},{y}" for x, y in coords) + '"/>')
        for (x, y), p in zip(coords, points):
            lines.append(f'<circle cx="{x}" cy="{y}" r="2.5" fill="#8e44ad"><title>'
                         f"{escape(p.at.isoformat())}: {escape(str(p.nav))}</title></circle>")
        lines.append("</svg>")
        charts.append("\n".join(lines))
    return charts
