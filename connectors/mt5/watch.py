"""The master poller: one ``LoopingCall`` per watched account, every ``poll_interval_s`` on the injected clock.

MT5 pushes nothing. Each poll runs one hop on the account's terminal worker
(:mod:`.pool`) that reads, as ``deals.py`` requires, deals, then positions,
then deals again (up to :data:`READS` times until the second read brings
nothing new, so the positions lie between two equal reads of the deals), and
hands them to the account's :class:`~connectors.mt5.deals.AccountPoll`, which
classifies what is new (each deal ticket once; SL/TP changes from position
diffs). The master deals go to every watcher in the order the poll gives.

The window: ``history_deals_get(from, to)`` in server seconds, from the newest
deal seen (less :data:`PAD_S`: the windows overlap, and duplicates are
dropped by ticket) to a day past the server's now. A poll skipped because the
terminal was down (or that failed) leaves the window where it was, so the
first poll after the gap reads everything since the newest deal seen: the
backfill. The first read (the baseline) starts :data:`PAD_S` before the
watch: deals already there count as seen, positions as the SL/TP baseline.

A poll still running when the next is due is not doubled: the tick is skipped.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Callable

from twisted.internet import defer, task

from bridge.domain.deal import MasterDeal
from bridge.domain.ids import Login
from connectors.interface import VenueUnavailable
from connectors.mt5 import convert
from connectors.mt5.deals import AccountPoll, Inconsistent
from connectors.mt5.pool import Worker, checked

log = logging.getLogger(__name__)

#: seconds the deal windows overlap (a deal's ``time`` is whole seconds)
PAD_S = 1
#: seconds past the server's now that a window reaches (a terminal clock running ahead)
AHEAD_S = 86_400
#: deal / positions / deal reads in one poll before giving up until the next
READS = 3


def read(t, start: int, end: int, known):
    """Deals, positions, deals (again until stable); plus the SymbolInfo of any deal symbol not in ``known``
    (a mapping only read here). Runs on the terminal's thread."""
    deals = checked(t, "history_deals_get", start, end)
    for _ in range(READS):
        positions = checked(t, "positions_get")
        again = checked(t, "history_deals_get", start, end)
        if {d.ticket for d in again} == {d.ticket for d in deals}:
            break
        deals = again
    symbols = {d.symbol for d in deals if d.symbol} | {p.symbol for p in positions}
    infos = {}
    for symbol in symbols:
        if symbol in known:
            continue
        info = t.symbol_info(symbol)
        if info is None:
            t.symbol_select(symbol, True)
            info = checked(t, "symbol_info", symbol)
        infos[symbol] = info
    return deals, positions, infos


class Poller:
    """One watched account: its poll state, its watchers and its loop."""

    def __init__(self, account: Login, worker: Worker, *, clock, interval_s: float, server_clock: convert.ServerClock,
                 infos: dict, told: dict | None = None) -> None:
        self.account = account
        self.worker = worker
        self.clock = clock
        self.interval_s = interval_s
        self.server_clock = server_clock
        self.infos = infos  # symbol -> SymbolInfo of this terminal (shared with the venue)
        self.poll = AccountPoll(account, self.info_of, server_clock, told)
        self.watchers: list[Callable[[MasterDeal], None]] = []
        self.baselined = False
        self.since_s: int | None = None
        self.busy = False
        self.polls = 0
        self.skipped = 0  # ticks while the terminal was down
        self.inconsistent = 0
        self._live: list[defer.Deferred] = []
        self._loop = task.LoopingCall(self.tick)
        self._loop.clock = clock

    def info_of(self, symbol: str):
        return self.infos[symbol]

    def server_now_s(self) -> int:
        return self.server_clock.server_seconds(datetime.fromtimestamp(self.clock.seconds(), timezone.utc))

    def start(self) -> defer.Deferred:
        """Start polling; fires once the baseline has been read."""
        if self.since_s is None:
            self.since_s = self.server_now_s() - PAD_S
        if not self._loop.running:
            self._loop.start(self.interval_s, now=False)
        if self.baselined:
            return defer.succeed(None)
        d = defer.Deferred()
        self._live.append(d)
        self.tick()
        return d

    def stop(self) -> None:
        if self._loop.running:
            self._loop.stop()

    def tick(self) -> None:
        if self.busy:
            return
        if self.worker.down is not None:
            self.skipped += 1
            return
        self.busy = True
        start = self.since_s if self.poll.newest_msc is None else self.poll.newest_msc // 1000 - PAD_S
        d = self.worker.run(read, start, self.server_now_s() + AHEAD_S, self.infos)
        d.addCallbacks(self._got, self._failed)
        d.addBoth(self._done)

    def _got(self, reads) -> None:
        deals, positions, infos = reads
        self.infos.update(infos)
        self.polls += 1
        if not self.baselined:
            self.poll.baseline(positions, deals)
            self.baselined = True
            live, self._live = self._live, []
            for d in live:
                d.callback(None)
            return
        try:
            found = self.poll.poll(deals, positions)
        except Inconsistent as exc:  # read again on the next tick; nothing was consumed
            self.inconsistent += 1
            log.info("mt5 %s: %s; reading again", self.account, exc)
            return
        for deal in found:
            for callback in list(self.watchers):
                try:
                    callback(deal)
                except Exception:
                    log.exception("mt5 %s: a watcher failed on deal %s", self.account, deal.deal_id)

    def _failed(self, failure) -> None:
        if not failure.check(VenueUnavailable):
            log.warning("mt5 %s: poll failed: %s", self.account, failure.getErrorMessage())

    def _done(self, _) -> None:
        self.busy = False
