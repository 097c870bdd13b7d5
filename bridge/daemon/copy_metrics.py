"""Copy metrics from the results the executor applies: latency, slippage, orders and rejections.

The executor calls :meth:`CopyMetrics.applied` once per batch of results it
has written (:meth:`bridge.executor.Executor.apply`): one list append, nothing
per order on the order path. The batches are folded into the histograms and
counters when the worker goes idle (between deals, not amid a fan-out) and at
scrape time; a worker that is never idle folds once :data:`FOLD_AFTER` batches
wait, so memory stays bounded. The figures are the execution records'
own: latency is detect -> fill (``fill_ns - detect_ns``), slippage the signed
points the record holds (positive is worse for the follower).
"""

from __future__ import annotations

from bridge.daemon.metrics import Registry
from bridge.results import adverse_price, slippage_points
from connectors.interface import OrderStatus

FOLD_AFTER = 1024  # batches held before they are folded without a scrape
LATENCY_BUCKETS_S = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
SLIPPAGE_BUCKETS = (-50, -20, -10, -5, -2, -1, 0, 1, 2, 5, 10, 20, 50, 100)


class CopyMetrics:
    def __init__(self, registry: Registry, executor) -> None:
        self.registry, self.executor = registry, executor
        self.latency = registry.histogram(
            "copybridge_copy_latency_seconds", "Master deal detected -> follower order filled, per follower "
            "platform (the execution records' detect_ns -> fill_ns).", ("platform",), LATENCY_BUCKETS_S,
            scale=1_000_000_000)
        self.slippage = registry.histogram(
            "copybridge_slippage_points", "Slippage of filled follower orders against the master's price, in "
            "points of the follower's symbol (positive is worse for the follower).", ("platform",),
            SLIPPAGE_BUCKETS)
        self.orders = registry.counter(
            "copybridge_orders_total", "Follower order results applied, by follower platform and state.",
            ("platform", "state"))
        self.rejections = registry.counter(
            "copybridge_rejections_total", "Follower orders rejected, by reason.", ("reason",))
        self._pending: list = []
        self._platforms: dict[str, str] = {}  # follower id -> platform label

    def applied(self, entry, items) -> None:
        """The executor's hook: ``items`` ((intent, sent_ns, result, done_ns) each) of ``entry`` are written."""
        pending = self._pending
        pending.append((entry, items))
        if len(pending) >= FOLD_AFTER:
            self.fold()

    def fold(self) -> None:
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        platforms = self._platforms
        for entry, items in pending:
            deal, detected_ns = entry.deal, entry.detected_ns
            for row, _sent_ns, result, done_ns in items:
                platform = platforms.get(row.follower_id)
                if platform is None:
                    login = self.executor.login_of(row.follower_id)
                    platform = platforms[row.follower_id] = str(login.server.platform)
                status = result.status
                self.orders.inc((platform, str(status)))
                if status is OrderStatus.REJECTED:
                    self.rejections.inc((result.reason or "unknown",))
                    continue
                self.latency.observe((platform,), done_ns - detected_ns)
                login = self.executor.login_of(row.follower_id)
                points = slippage_points(adverse_price(row, deal, result), self.executor._digits(login, row.symbol))
                if points is not None:
                    self.slippage.observe((platform,), points)
