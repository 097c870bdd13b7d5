"""The allocation worker: journal each master deal, plan it, have it executed; oldest first.

One loop serves startup, recovery and normal running alike (crash-only);
:meth:`Worker.recover` only settles what was in flight and reconciles first:

* the next deal to work on is the oldest one that is either ``new`` (not yet
  planned) or has an intent not yet final (``planned``, ``sent``,
  ``unknown``);
* a ``new`` deal is planned: account snapshots from the venues, links from
  the store, :func:`~bridge.worker.planning.plan_deal`, and every intent
  written in one transaction (skipped legs included, with their reasons);
* then the executor runs the deal's unfinished intents to the end.

Deals are worked one at a time, in journal order, because a later deal of the
same master position needs the links an earlier one's fills create (a partial
close needs the follower position its open made). After a crash the same loop
simply finds where it stopped.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Mapping

from twisted.internet import defer

from bridge.domain.deal import DealKind, MasterDeal
from bridge.domain.ids import Login, ServerId
from bridge.executor import Executor
from bridge.store import Store
from bridge.store.intents import IntentRow, IntentState
from bridge.worker.planning import AccountSnapshot, CopyRoute, Link, MamRoute, plan_deal
from bridge.worker.reconcile import reconcile

log = logging.getLogger("bridge.worker")

UNFINISHED = ("planned", "sent", "unknown")


@dataclass
class Routes:
    """Who follows each master: copy subscriptions and MAM groups."""

    copy: dict[Login, list[CopyRoute]] = field(default_factory=dict)
    mam: dict[Login, list[MamRoute]] = field(default_factory=dict)
    _slippage_index: tuple[int, dict] | None = field(default=None, repr=False, compare=False)

    def followers(self, master: Login) -> list[Login]:
        out = [r.follower for r in self.copy.get(master, [])]
        out += [login for group in self.mam.get(master, []) for login, _ in group.members]
        return list(dict.fromkeys(out))

    def max_slippage_points(self, master: Login, follower: str) -> int | None:
        """The follower's tolerance for fills worse than the master's price (copy routes only).

        Asked once per order: answered from an index, rebuilt when routes were added."""
        size = sum(len(routes) for routes in self.copy.values())
        if self._slippage_index is None or self._slippage_index[0] != size:
            index = {(m, str(r.follower)): r.settings.max_slippage_points
                     for m, routes in self.copy.items() for r in routes}
            self._slippage_index = (size, index)
        return self._slippage_index[1].get((master, follower))

    def symbols_for(self, master: Login, follower: Login, symbol: str) -> set[str]:
        wanted = {symbol}
        wanted |= {r.settings.map_symbol(symbol) for r in self.copy.get(master, []) if r.follower == follower}
        return wanted


class Worker:
    def __init__(self, store: Store, executor: Executor, routes: Routes, venues: Mapping[ServerId, object], *,
                 clock_ns: Callable[[], int] = time.time_ns) -> None:
        self.store = store
        self.executor = executor
        self.routes = routes
        self.venues = venues
        self.clock_ns = clock_ns
        self.duplicates = 0
        self._running: defer.Deferred | None = None
        self._again = False
        self._stuck: set[int] = set()
        self._specs: dict[tuple[Login, str], object] = {}  # symbol specs change rarely: kept in memory

    def retry_stuck(self) -> defer.Deferred:
        """Work again on deals left with unresolved intents (a venue that was unreachable, say)."""
        self._stuck.clear()
        return self.kick()

    @property
    def has_stuck(self) -> bool:
        """Some deal was left with unresolved intents (see :meth:`retry_stuck`)."""
        return bool(self._stuck)

    @property
    def idle(self) -> bool:
        return self._running is None

    @defer.inlineCallbacks
    def recover(self):
        """Startup and reconnect: resolve what was in flight, reconcile every follower, then work on.

        In flight first: an order sent just before a crash may have filled, and
        until its result is applied a reconcile would take the bridge's own
        close for a close by hand.
        """
        self.executor.verify_planned = True  # anything unfinished may have reached a venue: look first
        try:
            for seq in sorted({row.deal_seq for row in self.store.intents_in_state(*UNFINISHED)}):
                yield self.executor.execute_deal(seq)
        finally:
            self.executor.verify_planned = False
        drifts = []
        for master in list(self.routes.copy) + [m for m in self.routes.mam if m not in self.routes.copy]:
            for follower in self.routes.followers(master):
                drift = yield reconcile(self.store, self.venues[follower.server], follower)
                drifts.append(drift)
        yield self.kick()
        return drifts

    def accept(self, deal: MasterDeal, detected_ns: int | None = None) -> int | None:
        """Journal a master deal (a second delivery of the same deal is counted and ignored), then work."""
        seq = self.store.journal_deal(deal, detected_ns or self.clock_ns())
        if seq is None:
            self.duplicates += 1
        self.kick()
        return seq

    def kick(self) -> defer.Deferred:
        """Work until nothing is left; fires when idle. Calls while working make it look again."""
        if self._running is not None:
            self._again = True
            return self._running
        self._running = self._drain()

        def idle(result):
            self._running = None
            return result

        return self._running.addBoth(idle)

    @defer.inlineCallbacks
    def _drain(self):
        while True:
            self._again = False
            seq = self._next()
            while seq is not None:
                yield self._process(seq)
                seq = self._next()
            if not self._again:
                return

    def _next(self) -> int | None:
        candidates = {e.seq for e in self.store.deals_in_state("new")}
        candidates |= {row.deal_seq for row in self.store.intents_in_state(*UNFINISHED)}
        candidates -= self._stuck
        return min(candidates) if candidates else None

    @defer.inlineCallbacks
    def _process(self, seq: int):
        entry = self.store.journal_entry(seq)
        rows = None  # a deal planned before (recovery): the executor reads its intents' current states
        if entry.state == "new":
            rows = yield self._plan(seq, entry.deal)
            self.store.plan(seq, rows)
        yield self.executor.execute_deal(seq, entry, rows)
        unfinished = self.store.db.execute(
            "SELECT count(*) FROM intents WHERE deal_seq = ? AND state IN ('planned', 'sent', 'unknown')",
            (seq,)).fetchone()[0]
        if unfinished:
            self._stuck.add(seq)  # reported, retried at the next start; the loop goes on with later deals
            log.error("worker: deal %s left with unresolved intents", seq)

    @defer.inlineCallbacks
    def _plan(self, seq: int, deal: MasterDeal):
        if deal.kind is DealKind.BALANCE:
            return []  # a deposit or withdrawal on the master is not a trade: nothing to copy
        master = yield self._snapshot(deal.account, {deal.symbol})
        followers = self.routes.followers(deal.account)
        accounts: dict[Login, AccountSnapshot] = {}
        links: dict[Login, Link] = {}
        linked = {link.follower_id: link for link in self.store.links_of_master(deal.position_id)}
        for follower in followers:
            accounts[follower] = yield self._snapshot(
                follower, self.routes.symbols_for(deal.account, follower, deal.symbol))
            link = linked.get(str(follower))
            if link is not None:
                links[follower] = Link(link.follower_position, link.symbol, link.side, link.volume)
        now = datetime.now(timezone.utc)
        hand_closed = frozenset(Login.parse(f) for f in self.store.unlinked_followers(deal.position_id))
        intents = plan_deal(deal, master, self.routes.copy.get(deal.account, []),
                            self.routes.mam.get(deal.account, []), accounts, links, now, hand_closed)
        planned_ns = self.clock_ns()
        return [
            IntentRow(key=i.key, deal_seq=seq, follower_id=str(i.follower), leg=i.leg_no, action=i.leg.action,
                      symbol=i.leg.symbol, side=i.leg.side, volume=i.leg.volume, ideal=i.leg.ideal,
                      planned_ns=planned_ns, reason=i.leg.reason, position_id=i.position_id, sl=i.leg.sl,
                      tp=i.leg.tp, reference_price=deal.price,
                      state=IntentState.PLANNED if i.sendable else IntentState.SKIPPED)
            for i in intents
        ]

    @defer.inlineCallbacks
    def _snapshot(self, login: Login, symbols: set[str]):
        venue = self.venues[login.server]
        info = yield venue.account_info(login)
        specs = {}
        for symbol in sorted(symbols):
            spec = self._specs.get((login, symbol))
            if spec is None:
                spec = self.store.spec(login, symbol)
            if spec is None:
                try:
                    spec = yield venue.symbol_spec(login, symbol)
                except KeyError:
                    continue  # not traded there: the leg says unknown-symbol
                self.store.upsert_spec(login, spec)
            self._specs[(login, symbol)] = spec
            specs[symbol] = spec
        return AccountSnapshot(login, info.balance, info.equity, specs, hedging=info.hedging)
