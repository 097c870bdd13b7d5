"""One account's orders as the bridge knows them: the EA's history and open trades, read incrementally.

``Ledger.refresh()`` reads ``TRADES``, ``HISTORY`` and ``TRADES`` again (up to
:data:`READS` times, until both reads of the open tickets agree: nothing was closed
or split between them, so the history and the open trades fit together), the
history incrementally: everything at the first read, then the entries with a ticket
above the highest seen or closed since :data:`SINCE_MARGIN_MS` before the newest
close seen (PROTOCOL.md: an order opened before ``after_ticket`` and closed later has
a lower ticket). It keeps every history entry once, in the order they entered the
history, and teaches :class:`~connectors.mt4.deals.Chains` every link.

Refreshes of one account run one at a time (a ``DeferredLock``).
"""

from __future__ import annotations

import logging

from twisted.internet import defer

from connectors.mt4 import protocol as P
from connectors.mt4.deals import Chains
from connectors.mt4.link import EALink

log = logging.getLogger(__name__)

#: TRADES / HISTORY / TRADES rounds before taking what was read
READS = 3
#: an incremental read reaches back this far before the newest close seen
SINCE_MARGIN_MS = 1000


class Ledger:
    def __init__(self, link: EALink, chains: Chains) -> None:
        self.link = link
        self.chains = chains
        self.history: list[dict] = []
        self.tickets: set[int] = set()
        self.trades: list[dict] = []
        self.top = 0  # the highest history ticket seen
        self.newest_msc: int | None = None
        self.read_once = False
        self.lock = defer.DeferredLock()

    def refresh(self) -> defer.Deferred:
        """Fires with ``(history, trades)`` once read (``history``: every entry known, oldest first)."""
        return self.lock.run(self._refresh)

    @defer.inlineCallbacks
    def _refresh(self):
        trades = (yield self.link.request(P.TRADES))["trades"]
        for _ in range(READS):
            fields = {"after_ticket": self.top}
            if self.read_once and self.newest_msc is not None:
                fields["since_msc"] = max(0, self.newest_msc - SINCE_MARGIN_MS)
            entries = (yield self.link.request(P.HISTORY, **fields))["orders"]
            self._add(entries)
            again = (yield self.link.request(P.TRADES))["trades"]
            same = {t["ticket"] for t in again} == {t["ticket"] for t in trades}
            trades = again
            if same:
                break
        else:
            log.info("mt4 %s: trades kept changing while read; taking the last read", self.link.login)
        closed = self.tickets
        self.trades = [t for t in trades if t["ticket"] not in closed]
        for t in self.trades:
            self.chains.learn(t)
        return self.history, self.trades

    def _add(self, entries: list[dict]) -> None:
        self.read_once = True
        for entry in entries:
            ticket = entry["ticket"]
            if ticket in self.tickets:
                continue
            self.tickets.add(ticket)
            self.history.append(entry)
            self.chains.learn(entry)
            self.top = max(self.top, ticket)
            when = entry.get("close_time_msc")
            if isinstance(when, int) and (self.newest_msc is None or when > self.newest_msc):
                self.newest_msc = when

    def record(self, ticket: int) -> dict | None:
        """The last read TRADE or CLOSED record of ``ticket``."""
        for t in self.trades:
            if t["ticket"] == ticket:
                return t
        for h in reversed(self.history):
            if h["ticket"] == ticket:
                return h
        return None
