"""What the EA publishes: the diff of the terminal's pools (:class:`Scanner`) and the event ring.

:class:`Scanner` does what the real EA must do on every timer tick, from nothing but
what MQL4 shows (the open pool, and the history pool from the position it had read):

- a ticket that left the open pool is in the history: if its history comment is ``to #<new>``
  (or an order with comment ``from #<old>`` appeared) it was a **partial** close, else a
  **close** whose ``reason`` comes from the comment (``[sl]``, ``[tp]``, ``so:``, else ``client``);
- a new ticket that is not a partial close's remainder is an **open** (also when it was opened
  and closed between two scans: it is then found in the history alone, and both are reported);
- an open ticket whose SL or TP changed is a **modify** (a remainder is compared with its parent);
- a new balance entry of the history is a **balance**.

Within one scan events are ordered by the time of what they report; within one millisecond, opens
first, then the history's entries in the order they entered it, then modifies.
The first scan after construction only takes the snapshot: events are changes.

:class:`EventRing` numbers events (``seq`` 1, 2, ... per epoch) and keeps the last ``capacity``
for ``REPLAY``.
"""

from __future__ import annotations

import re
from collections import deque
from decimal import Decimal

from connectors.mt4 import protocol as P
from connectors.mt4.simulator.orders import Order, closed_record, time_string, trade_record

_TO = re.compile(r"to #(\d+)")
_FROM = re.compile(r"from #(\d+)")


def reason(comment: str) -> str:
    """The close ``reason`` MT4 writes into a closed order's comment."""
    if "[sl]" in comment:
        return "sl"
    if "[tp]" in comment:
        return "tp"
    if comment.startswith("so:"):
        return "so"
    return "client"


def _link(pattern: re.Pattern, comment: str) -> int | None:
    match = pattern.fullmatch(comment)
    return int(match.group(1)) if match else None


class Scanner:
    """Diffs the terminal's pools between two calls of :meth:`scan`."""

    def __init__(self, terminal) -> None:
        self.terminal = terminal
        with terminal.lock:
            self._changes = terminal.changes
            self._open: dict[int, Order] = {o.ticket: o for o in terminal.open_orders()}
            self._history_read = terminal.history_total()

    def scan(self) -> list[dict]:
        """The changes since the last scan, as event bodies (``ev``, ``time_msc`` and the event's fields)."""
        t = self.terminal
        with t.lock:
            if t.changes == self._changes:
                return []
            self._changes = t.changes
            now = t.now_msc()
            current = {o.ticket: o for o in t.open_orders()}
            total = t.history_total()
            fresh = [t.history_order(i) for i in range(self._history_read, total)]
            self._history_read = total
        closed = {h.ticket: h for h in fresh if not h.is_balance}
        # remainder ticket -> the ticket it was split from
        parent: dict[int, int] = {}
        for h in closed.values():
            child = _link(_TO, h.comment)
            if child is not None:
                parent[child] = h.ticket
        for o in [*current.values(), *closed.values()]:
            old = _link(_FROM, o.comment)
            if old is not None and old in closed and o.ticket not in parent:
                parent[o.ticket] = old
        child_of = {old: new for new, old in parent.items()}

        def created_lots(ticket: int) -> Decimal:
            if ticket in current:
                return current[ticket].lots
            h = closed[ticket]
            return h.lots + (created_lots(child_of[ticket]) if ticket in child_of else 0)

        events: list[tuple[int, int, int, dict]] = []

        def add(time_msc: int, rank: int, body: dict) -> None:
            events.append((time_msc, rank, len(events), {"ev": body["ev"], "time_msc": time_msc, **body}))

        # in one millisecond: opens, then the history's entries in the order they entered it, then modifies
        for h in closed.values():
            if h.ticket not in self._open and h.ticket not in parent:
                add(h.open_time_msc, 0, {"ev": P.EV_OPEN, **self._opened(h, created_lots(h.ticket))})
        for h in fresh:
            if h.is_balance:
                add(h.close_time_msc, 1, {"ev": P.EV_BALANCE, "ticket": h.ticket, "amount": h.profit,
                                          "comment": h.comment})
            elif h.ticket in child_of:
                new = child_of[h.ticket]
                add(h.close_time_msc, 1, {"ev": P.EV_PARTIAL, "ticket": h.ticket, "closed_lots": h.lots,
                                          "close_price": h.close_price, "remainder": new,
                                          "remainder_lots": created_lots(new), "symbol": h.symbol,
                                          "type": h.type, "profit": h.profit})
            else:
                add(h.close_time_msc, 1, {"ev": P.EV_CLOSE, **closed_record(h), "reason": reason(h.comment)})
        for o in current.values():
            before = self._open.get(o.ticket) or self._open.get(parent.get(o.ticket, 0))
            if o.ticket not in self._open and o.ticket not in parent:
                add(o.open_time_msc, 0, {"ev": P.EV_OPEN, **self._opened(o, o.lots)})
            elif before is not None and (before.sl, before.tp) != (o.sl, o.tp):
                add(now, 2, {"ev": P.EV_MODIFY, "ticket": o.ticket, "symbol": o.symbol, "type": o.type,
                             "lots": o.lots, "sl": o.sl, "tp": o.tp})
        self._open = current
        events.sort(key=lambda e: e[:3])
        return [body for *_, body in events]

    @staticmethod
    def _opened(order: Order, lots: Decimal) -> dict:
        record = trade_record(order)
        record["lots"] = lots
        return record


class EventRing:
    """The last ``capacity`` events of one epoch, numbered from 1."""

    def __init__(self, capacity: int = P.EVENT_RING) -> None:
        self.seq = 0
        self._events: deque[dict] = deque(maxlen=capacity)

    def add(self, epoch: str, body: dict) -> dict:
        """``body`` numbered: ``{"epoch", "seq", "ev", "time", "time_msc", ...}``, kept for ``REPLAY``."""
        self.seq += 1
        event = {"epoch": epoch, "seq": self.seq, "ev": body["ev"], "time": time_string(body["time_msc"] // 1000),
                 **body}
        self._events.append(event)
        return event

    def since(self, after_seq: int) -> list[dict] | None:
        """Every event with ``seq > after_seq``, oldest first; ``None`` when some of them are gone."""
        if after_seq >= self.seq:
            return []
        oldest = self._events[0]["seq"] if self._events else self.seq + 1
        if after_seq + 1 < oldest:
            return None
        return [e for e in self._events if e["seq"] > after_seq]
