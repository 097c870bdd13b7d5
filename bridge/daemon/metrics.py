"""A small metrics registry and the Prometheus text exposition format (version 0.0.4).

Counters, gauges and histograms with fixed buckets, each with a fixed tuple of
label names; a sample is keyed by the tuple of its label values. Nothing here
locks: the daemon updates and renders on the reactor thread only.

>>> r = Registry()
>>> c = r.counter("demo_total", "Demo things.", ("kind",))
>>> c.inc(("a",)); c.inc(("a",), 2)
>>> print(r.render(), end="")
# HELP demo_total Demo things.
# TYPE demo_total counter
demo_total{kind="a"} 3
"""

from __future__ import annotations

import math
from bisect import bisect_left

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def escape_label(value: str) -> str:
    """A label value as the text format wants it: backslash, double quote and newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def number(value: float | int) -> str:
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def _labels(names: tuple[str, ...], values: tuple, extra: str = "") -> str:
    parts = [f'{n}="{escape_label(str(v))}"' for n, v in zip(names, values)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


class Metric:
    kind = "untyped"

    def __init__(self, name: str, help: str, labelnames: tuple[str, ...] = ()) -> None:
        self.name, self.help, self.labelnames = name, help, tuple(labelnames)

    def header(self) -> list[str]:
        return [f"# HELP {self.name} {escape_help(self.help)}", f"# TYPE {self.name} {self.kind}"]


class Counter(Metric):
    """Only goes up. ``set_total`` mirrors a count kept elsewhere (a service's own counter)."""

    kind = "counter"

    def __init__(self, name: str, help: str, labelnames: tuple[str, ...] = ()) -> None:
        super().__init__(name, help, labelnames)
        self.values: dict[tuple, int | float] = {} if labelnames else {(): 0}

    def inc(self, labels: tuple = (), n: int | float = 1) -> None:
        self.values[labels] = self.values.get(labels, 0) + n

    def set_total(self, labels: tuple, value: int | float) -> None:
        self.values[labels] = value

    def lines(self) -> list[str]:
        return [f"{self.name}{_labels(self.labelnames, k)} {number(v)}" for k, v in sorted(self.values.items())]


class Gauge(Counter):
    """Goes up and down; set at scrape time from the state it reports."""

    kind = "gauge"

    def set(self, labels: tuple, value: int | float) -> None:
        self.values[labels] = value


class Histogram(Metric):
    """Fixed buckets (upper bounds, ascending). ``scale``: observations come in units of 1/scale of the
    exposed unit (nanoseconds for a histogram in seconds: scale 1e9); bounds are compared in the
    observed unit, so an observation is one bisect on ints and a few integer increments."""

    kind = "histogram"

    def __init__(self, name: str, help: str, labelnames: tuple[str, ...], buckets: tuple[float, ...],
                 scale: int = 1) -> None:
        super().__init__(name, help, labelnames)
        if list(buckets) != sorted(set(buckets)):
            raise ValueError(f"{name}: buckets must be ascending and distinct")
        self.buckets = tuple(buckets)
        self.scale = scale
        self._bounds = [b * scale for b in buckets]
        self.series: dict[tuple, list] = {}  # labels -> [per-bucket counts..., +Inf count, sum, count]

    def observe(self, labels: tuple, value: int | float) -> None:
        s = self.series.get(labels)
        if s is None:
            s = self.series[labels] = [0] * (len(self._bounds) + 1) + [0, 0]
        s[bisect_left(self._bounds, value)] += 1  # le: a value equal to a bound falls in that bucket
        s[-2] += value
        s[-1] += 1

    def lines(self) -> list[str]:
        out = []
        n = len(self.buckets)
        for labels, s in sorted(self.series.items()):
            cumulative = 0
            for i, bound in enumerate((*self.buckets, math.inf)):
                cumulative += s[i]
                le = 'le="' + ("+Inf" if i == n else number(bound)) + '"'
                out.append(f"{self.name}_bucket{_labels(self.labelnames, labels, le)} {cumulative}")
            total = s[-2] / self.scale if self.scale != 1 else s[-2]
            out.append(f"{self.name}_sum{_labels(self.labelnames, labels)} {number(total)}")
            out.append(f"{self.name}_count{_labels(self.labelnames, labels)} {s[-1]}")
        return out


class Registry:
    def __init__(self) -> None:
        self.metrics: dict[str, Metric] = {}

    def _add(self, metric: Metric):
        if metric.name in self.metrics:
            raise ValueError(f"metric {metric.name} registered twice")
        self.metrics[metric.name] = metric
        return metric

    def counter(self, name: str, help: str, labelnames: tuple[str, ...] = ()) -> Counter:
        return self._add(Counter(name, help, labelnames))

    def gauge(self, name: str, help: str, labelnames: tuple[str, ...] = ()) -> Gauge:
        return self._add(Gauge(name, help, labelnames))

    def histogram(self, name: str, help: str, labelnames: tuple[str, ...], buckets: tuple[float, ...],
                  scale: int = 1) -> Histogram:
        return self._add(Histogram(name, help, labelnames, buckets, scale))

    def render(self) -> str:
        lines: list[str] = []
        for metric in self.metrics.values():
            lines += metric.header()
            lines += metric.lines()
        return "\n".join(lines) + "\n"
