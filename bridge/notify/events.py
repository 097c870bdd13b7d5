"""Operator events and the in-process stream they are published on.

Each event is a frozen dataclass with a ``kind`` (the name ``[notify.email]
events`` lists), a one-line :meth:`~OperatorEvent.subject` and its
:meth:`~OperatorEvent.fields` (label, value) for a message body:

==================  ===============  ===========================================================
event               kind             emitted by
==================  ===============  ===========================================================
``PoolStopped``     ``pool-stop``    :class:`bridge.daemon.pools.PoolService`, at the rollover
                                     that halts a pool (all its positions are closed)
``RolloverDone``    ``rollover``     the same, after every applied rollover
``DriftFound``      ``drift``        the worker's reconcile at recovery: a volume mismatch or a
                                     bridge position no link knows
``StopOut``         ``stop-out``     the same reconcile: linked follower positions the venue no
                                     longer holds. The bridge cannot tell a stop-out from a close
                                     by hand or by the follower's own SL/TP; the mail says so
``VenueDown``       ``venue-down``   :class:`bridge.notify.outage.VenueWatch`, once a connection
                                     has been down for ``outage_after_s``
``VenueUp``         ``venue-up``     the same, when a reported outage ends (with its duration)
==================  ===============  ===========================================================

:class:`OperatorEvents` is a tiny publish/subscribe: :meth:`~OperatorEvents.emit`
calls each subscriber in turn and never raises (a subscriber that fails is
logged once, in one line, and kept), so an emitting service never stops over
a notification channel.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Callable, ClassVar

log = logging.getLogger("bridge.notify")

KINDS = ("stop-out", "pool-stop", "rollover", "drift", "venue-down", "venue-up")


def when(at: datetime | float) -> str:
    """A time in UTC, to the second: ``2026-01-01 01:00:00 UTC``."""
    if not isinstance(at, datetime):
        at = datetime.fromtimestamp(at, timezone.utc)
    return at.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def duration(seconds: float) -> str:
    """``45 s``, ``2 min 5 s``, ``1 h 3 min``."""
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s"
    return f"{s // 3600} h {s % 3600 // 60} min"


class OperatorEvent:
    kind: ClassVar[str]

    def subject(self) -> str:
        raise NotImplementedError

    def fields(self) -> list[tuple[str, str]]:
        raise NotImplementedError


@dataclass(frozen=True)
class PoolStopped(OperatorEvent):
    kind: ClassVar[str] = "pool-stop"
    pool: str
    master: str
    rollover: int
    at: datetime
    reason: str
    nav: Decimal
    positions_closed: int

    def subject(self) -> str:
        return f"pool {self.pool} stopped: {self.reason}"

    def fields(self) -> list[tuple[str, str]]:
        return [("Pool", self.pool), ("Master account", self.master), ("Reason", self.reason),
                ("Rollover", f"#{self.rollover} at {when(self.at)}"), ("NAV", str(self.nav)),
                ("Positions to close", str(self.positions_closed)),
                ("What the bridge does", "the pool is halted: no deposits; every open position on the master "
                                         "account is closed now and again at each later rollover")]


@dataclass(frozen=True)
class RolloverDone(OperatorEvent):
    kind: ClassVar[str] = "rollover"
    pool: str
    rollover: int
    source: str  # "schedule" or "operator"
    at: datetime
    nav: Decimal
    equity: Decimal
    halted: str | None
    orders: int

    def subject(self) -> str:
        return f"pool {self.pool}: rollover #{self.rollover} at NAV {self.nav}"

    def fields(self) -> list[tuple[str, str]]:
        return [("Pool", self.pool), ("Rollover", f"#{self.rollover} ({self.source}) at {when(self.at)}"),
                ("NAV", str(self.nav)), ("Equity", str(self.equity)), ("Halted", self.halted or "no"),
                ("Orders", str(self.orders))]


@dataclass(frozen=True)
class DriftFound(OperatorEvent):
    kind: ClassVar[str] = "drift"
    follower: str
    policy: str
    volume_mismatch: tuple[tuple[str, int, int], ...] = ()  # (master position, link volume, venue volume)
    unlinked_bridge_positions: tuple[str, ...] = ()  # follower positions with a bridge key no link knows
    adopted: tuple[str, ...] = ()  # master positions whose link took the venue's volume

    def subject(self) -> str:
        parts = []
        if self.volume_mismatch:
            parts.append(f"{len(self.volume_mismatch)} volume mismatch(es)")
        if self.unlinked_bridge_positions:
            parts.append(f"{len(self.unlinked_bridge_positions)} bridge position(s) no link knows")
        return f"drift on {self.follower}: {', '.join(parts) or 'none'}"

    def fields(self) -> list[tuple[str, str]]:
        out = [("Follower", self.follower), ("Drift policy", self.policy)]
        for master_position, link, venue in self.volume_mismatch:
            out.append(("Volume mismatch", f"master position {master_position}: the link says {link}, "
                                           f"the venue holds {venue} (canonical units)"))
        for position in self.unlinked_bridge_positions:
            out.append(("Bridge position no link knows", f"follower position {position} (left alone)"))
        if self.adopted:
            out.append(("Adopted", ", ".join(self.adopted) + " (the link now says what the venue holds)"))
        return out


@dataclass(frozen=True)
class StopOut(OperatorEvent):
    kind: ClassVar[str] = "stop-out"
    follower: str
    master_positions: tuple[str, ...]  # master positions whose follower position is gone (now unlinked)

    def subject(self) -> str:
        return f"{self.follower}: {len(self.master_positions)} follower position(s) closed by the venue"

    def fields(self) -> list[tuple[str, str]]:
        return [("Follower", self.follower),
                ("Master positions", ", ".join(self.master_positions)),
                ("Seen", "at reconcile: the venue no longer holds the linked follower position(s)"),
                ("Cause", "a stop-out, the follower's own SL/TP, or a close by hand: the venue does not say "
                          "which"),
                ("What the bridge does", "unlinked; nothing is reopened on these master positions")]


@dataclass(frozen=True)
class VenueDown(OperatorEvent):
    kind: ClassVar[str] = "venue-down"
    venue: str
    part: str  # "venue", "connection ctrader-live#1", "account 4001"
    since: float  # seconds since the epoch
    noticed: float
    last_error: str = ""

    def subject(self) -> str:
        return f"venue {self.venue} down: {self.part} for {duration(self.noticed - self.since)}"

    def fields(self) -> list[tuple[str, str]]:
        return [("Venue", self.venue), ("Connection", self.part), ("Down since", when(self.since)),
                ("Last error", self.last_error or "-"),
                ("What the bridge does", "orders for this venue wait and are sent (once) when it is back")]


@dataclass(frozen=True)
class VenueUp(OperatorEvent):
    kind: ClassVar[str] = "venue-up"
    venue: str
    part: str
    since: float
    until: float

    def subject(self) -> str:
        return f"venue {self.venue} up again: {self.part} was down {duration(self.until - self.since)}"

    def fields(self) -> list[tuple[str, str]]:
        return [("Venue", self.venue), ("Connection", self.part), ("Down from", when(self.since)),
                ("Up at", when(self.until)), ("Outage", duration(self.until - self.since))]


class OperatorEvents:
    """The daemon's operator events, in process: ``subscribe(fn)``, ``emit(event)``."""

    def __init__(self) -> None:
        self._subscribers: list[Callable[[OperatorEvent], None]] = []
        self._failing: set[int] = set()
        self.emitted = 0

    def subscribe(self, subscriber: Callable[[OperatorEvent], None]) -> None:
        self._subscribers.append(subscriber)

    def unsubscribe(self, subscriber: Callable[[OperatorEvent], None]) -> None:
        if subscriber in self._subscribers:
            self._subscribers.remove(subscriber)

    def emit(self, event: OperatorEvent) -> None:
        """Hand ``event`` to every subscriber; never raises."""
        self.emitted += 1
        for subscriber in list(self._subscribers):
            try:
                subscriber(event)
            except Exception as exc:
                if id(subscriber) not in self._failing:  # once per subscriber, not per event
                    self._failing.add(id(subscriber))
                    log.error("notify: a subscriber failed on %s and is kept: %s: %s", event.kind,
                              type(exc).__name__, exc)


def reconcile_events(drift, policy) -> list[OperatorEvent]:
    """What one follower's reconcile (:class:`bridge.worker.reconcile.Drift`) tells the operator."""
    out: list[OperatorEvent] = []
    follower = str(drift.follower)
    if drift.closed_outside:
        out.append(StopOut(follower, tuple(_position(p) for p in drift.closed_outside)))
    if not drift.clean:
        out.append(DriftFound(follower, str(getattr(policy, "value", policy)),
                              tuple((_position(p), link, venue) for p, link, venue in drift.volume_mismatch),
                              tuple(_position(p) for p in drift.unlinked_bridge_positions),
                              tuple(_position(p) for p in drift.adopted)))
    return out


def _position(position) -> str:
    return f"#{getattr(position, 'value', position)}"
