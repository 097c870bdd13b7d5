"""The allocation worker: journal each master deal, plan it, have it executed; oldest first.

One loop serves startup, recovery and normal running alike (crash-only);
:meth:`Worker.recover` only settles what was in flight and reconciles first:

* deals arrive in an in-memory inbox, in arrival order, and are journalled
  from its head only, so every journalled deal is older than every deal still
  in the inbox; a deal lost from the inbox by a crash is newer than the last
  journalled one, so the startup backfill (from the last journalled deal's
  venue id) fetches it again;
* the next deal to work on is the oldest journalled one that is ``new`` (not
  yet planned) or has an intent not yet final (``planned``, ``sent``,
  ``unknown``); when there is none, the inbox's head is planned and then
  journalled *already planned*, its intents in the same transaction (one
  commit: the common case, a deal arriving at an idle worker);
* a deal is planned from the account book (:mod:`bridge.worker.accounts`),
  the links in the store and :func:`~bridge.worker.planning.plan_deal`, and
  every intent is written in one transaction (skipped legs included, with
  their reasons), each follower's first leg already marked ``sent``;
* then the executor runs the deal's unfinished intents to the end.

Deals are worked one at a time, in journal order, because a later deal of the
same master position needs the links an earlier one's fills create (a partial
close needs the follower position its open made). After a crash the same loop
simply finds where it stopped.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, deque
from dataclasses import replace
from datetime import datetime, timezone
from typing import Callable, Mapping

from twisted.internet import defer

from bridge.domain.deal import DealKind, MasterDeal
from bridge.domain.ids import Login, ServerId
from bridge.executor import Executor
from bridge.store import Store
from bridge.store.intents import IntentRow, IntentState
from bridge.store.journal import JournalEntry
from bridge.worker.accounts import AccountBook
from bridge.worker.gather import gather
from bridge.worker.planning import AccountSnapshot, Link, plan_deal
from bridge.worker.progress import ProgressLog
from bridge.worker.reconcile import DriftPolicy, reconcile
from bridge.worker.routes import Routes
from connectors.interface import AmbiguousOutcome, VenueUnavailable

log = logging.getLogger("bridge.worker")

UNFINISHED = ("planned", "sent", "unknown")
_ON_POSITION = frozenset({DealKind.CLOSE, DealKind.PARTIAL_CLOSE, DealKind.REVERSAL})  # may close a share


class Worker:
    def __init__(self, store: Store, executor: Executor, routes: Routes, venues: Mapping[ServerId, object], *,
                 clock_ns: Callable[[], int] = time.time_ns, accounts: AccountBook | None = None) -> None:
        self.store = store
        self.executor = executor
        self.routes = routes
        self.venues = venues
        self.clock_ns = clock_ns
        self.accounts = accounts or AccountBook(venues)
        self.on_idle: list[Callable[[], None]] = []  # called each time the worker runs out of work
        self.drift_policy = DriftPolicy.REPORT  # what reconcile may heal (see bridge.worker.reconcile)
        self.duplicates = 0
        self.journalled = 0  # deals journalled by this process
        self._running: defer.Deferred | None = None
        self._again = False
        self._stuck: set[int] = set()
        self._specs: dict[tuple[Login, str], object] = {}  # symbol specs change rarely: kept in memory
        self._inbox: deque[tuple[MasterDeal, int]] = deque()  # taken, not yet journalled: see the module doc
        self._inbox_ids: set = set()
        self._newest: dict[Login, int] = {}  # the highest venue deal id taken, per master
        self._recovering = False
        #: shutdown (bridge.daemon.drain): no new deal is taken or started; the one being worked on finishes
        self.stopping = False
        self._blocked = False  # the oldest deal could not be planned: nothing moves until a retry
        self._clean = False  # True once the store is known to hold no work (see _next)
        # (master, symbol) -> (routes version, [master, *followers], each one's specs, the same logins by
        # their text): a deal's fan-out
        self._fans: dict[tuple[Login, str], tuple[int, list[Login], list[dict], dict[str, Login]]] = {}
        self._next_routes: Routes | None = None  # routes changed at runtime, taken before the next deal

    def use_routes(self, routes: Routes) -> None:
        """Copy along ``routes`` from now on (the CLI changed them): at once when idle, else before the
        next deal is planned, never amid a deal's fan-out."""
        self._next_routes = routes
        if self._running is None:
            self._take_routes()

    def _take_routes(self) -> None:
        routes, self._next_routes = self._next_routes, None
        routes.succeed(self.routes)  # a new version: the fan-out caches are rebuilt
        self.routes = routes
        self.executor.slippage_limit = routes.max_slippage_points

    def retry_stuck(self) -> defer.Deferred:
        """Work again on deals left with unresolved intents (a venue that was unreachable, say)."""
        self._stuck.clear()
        self._blocked = False
        self._clean = False
        return self.kick()

    @property
    def pending_routes(self) -> Routes | None:
        """Routes given at runtime that replace the current ones before the next deal (None: none)."""
        return self._next_routes

    @property
    def has_stuck(self) -> bool:
        """Some deal was left with unresolved intents, or could not be planned (see :meth:`retry_stuck`)."""
        return bool(self._stuck) or self._blocked

    @property
    def idle(self) -> bool:
        return self._running is None and not self._inbox

    @property
    def working(self) -> bool:
        """A deal is being planned or has orders in flight, or recovery is resolving orders: a stop waits."""
        return self._running is not None or self._recovering

    @defer.inlineCallbacks
    def recover(self):
        """Startup and reconnect: resolve what was in flight, reconcile every follower, then work on.

        In flight first: an order sent just before a crash may have filled, and
        until its result is applied a reconcile would take the bridge's own
        close for a close by hand.
        """
        self.executor.verify_planned = True  # anything unfinished may have reached a venue: look first
        self._recovering = True  # deals arriving meanwhile wait in the inbox
        try:
            unfinished = self.store.intents_in_state(*UNFINISHED)
            seqs = sorted({row.deal_seq for row in unfinished})
            if unfinished:
                log.info("worker: recovery: %d order(s) of %d deal(s) were in flight (%s); looking each up at its "
                         "venue before anything is sent again", len(unfinished), len(seqs),
                         ", ".join(f"{n} {state}" for state, n in sorted(Counter(r.state for r in unfinished).items())))
            for seq in seqs:
                if self.stopping:
                    break  # the rest stay unfinished: the next start resolves them
                yield self.executor.execute_deal(seq)
            if unfinished:
                after = Counter(row.state for seq in seqs for row in self.store.intents_of_deal(seq))
                log.info("worker: recovery: in-flight orders resolved: %s",
                         ", ".join(f"{n} {state}" for state, n in sorted(after.items())))
            drifts = []
            masters = list(self.routes.copy) + [m for m in self.routes.mam if m not in self.routes.copy]
            progress = ProgressLog(log, "worker: reconcile", sum(len(self.routes.followers(m)) for m in masters),
                                   "followers")  # a line every 500 followers or 5 s: a long reconcile shows
            for master in masters:
                for follower in self.routes.followers(master):
                    drift = yield reconcile(self.store, self.venues[follower.server], follower, self.drift_policy)
                    drifts.append(drift)
                    progress.step()
            progress.finish()
        finally:
            self.executor.verify_planned = False
            self._recovering = False
        yield self.kick()
        return drifts

    def accept(self, deal: MasterDeal, detected_ns: int | None = None) -> bool:
        """Take a master deal into the inbox and work; False for a second delivery of one already
        taken (counted and ignored) or one that arrives while stopping (the next start backfills it)."""
        if self.stopping:
            return False
        if (deal.account, deal.deal_id) in self._inbox_ids or (
                not self._newer(deal) and self.store.deal_seq(deal.deal_id, deal.account)):
            self.duplicates += 1
            return False
        self._inbox.append((deal, detected_ns or self.clock_ns()))
        self._inbox_ids.add((deal.account, deal.deal_id))
        if not self._recovering:
            self.kick()
        return True

    def _newer(self, deal: MasterDeal) -> bool:
        """The deal's venue id is above every id journalled for its master, so it cannot be journalled
        already (the store need not be asked). Answered from memory after the first deal of a master."""
        newest = self._newest.get(deal.account)
        if newest is None:
            last = self.store.last_deal_id(deal.account)
            newest = self._newest[deal.account] = -1 if last is None else last.value
        if deal.deal_id.value > newest:
            self._newest[deal.account] = deal.deal_id.value
            return True
        return False

    def kick(self) -> defer.Deferred:
        """Work until nothing is left; fires when idle. Calls while working make it look again."""
        if self._running is not None:
            self._again = True
            return self._running
        self._running = self._drain()

        def idle(result):
            self._running = None
            for hook in self.on_idle:
                try:
                    hook()
                except Exception:
                    log.exception("worker: idle hook failed")
            return result

        return self._running.addBoth(idle)

    @defer.inlineCallbacks
    def _drain(self):
        while True:
            if self.stopping:
                return  # whatever is left is in the journal or the venues' history: the next start goes on
            self._again = False
            seq = self._next()
            try:
                if seq is not None:
                    self._journal_inbox()  # they are newer: journalled before any older work, order kept
                    yield self._process(seq)
                elif self._inbox:
                    yield self._process_fresh()
                elif not self._again:
                    return
            except (VenueUnavailable, AmbiguousOutcome) as e:
                self._blocked = True  # the deal stays new, and everything after it waits: order matters
                log.error("worker: cannot plan the next deal yet (%s); trying again shortly", e)
                return
            except Exception:
                self._blocked = True
                log.exception("worker: the next deal could not be worked on; trying again shortly")
                return

    def _journal_inbox(self) -> None:
        """Journal every deal waiting in the inbox, oldest first, in one transaction."""
        if not self._inbox:
            return
        self._clean = False
        with self.store.transaction():
            for deal, detected_ns in self._inbox:
                self._journalled(self.store.journal_deal(deal, detected_ns))
        self._inbox.clear()
        self._inbox_ids.clear()

    def _journalled(self, seq: int | None) -> None:
        if seq is None:
            self.duplicates += 1  # already in the journal (a backfill and the live feed overlapped)
        else:
            self.journalled += 1

    def _next(self) -> int | None:
        """The oldest journalled deal that is new or has an intent not yet final, leaving out stuck ones.

        Once the answer is "none", it stays so until this worker journals a deal ``new`` (only
        :meth:`_journal_inbox` does) or stuck deals are retried: the store is not asked again."""
        if self._clean:
            return None
        stuck = sorted(self._stuck)
        marks = ", ".join("?" * len(stuck))
        seq = self.store.db.conn.execute(
            f"SELECT min(seq) FROM (SELECT min(seq) AS seq FROM master_deals WHERE state = 'new' "
            f"AND seq NOT IN ({marks}) UNION ALL SELECT min(deal_seq) FROM intents "
            f"WHERE state IN ('planned', 'sent', 'unknown') AND deal_seq NOT IN ({marks}))",
            stuck + stuck).fetchone()[0]
        self._clean = seq is None
        return seq

    @defer.inlineCallbacks
    def _process_fresh(self):
        """The inbox's head, with nothing older left: plan it, then journal it planned with its intents."""
        deal, detected_ns = self._inbox[0]
        try:
            intents, planned_ns = yield self._plan(deal)
        except Exception:
            self._journal_inbox()  # journalled new, so that it is retried (and nothing behind it jumps it)
            raise
        self._inbox.popleft()
        self._inbox_ids.discard((deal.account, deal.deal_id))
        planned = self.store.journal_planned(deal, detected_ns,
                                             lambda seq: self._rows(seq, deal, intents, planned_ns))
        if planned is None:  # journalled meanwhile (a recovery's backfill): nothing more to do here
            self._journalled(None)
            return
        seq, rows = planned
        self._journalled(seq)
        yield self._execute(JournalEntry(seq, deal, detected_ns, "planned"), rows)

    @defer.inlineCallbacks
    def _process(self, seq: int):
        entry = self.store.journal_entry(seq)
        rows = None  # a deal planned before (recovery): the executor reads its intents' current states
        if entry.state == "new":
            intents, planned_ns = yield self._plan(entry.deal)
            rows = self._rows(seq, entry.deal, intents, planned_ns)
            self.store.plan(seq, rows)  # with each follower's first leg marked sent: it leaves now
        yield self._execute(entry, rows)

    @defer.inlineCallbacks
    def _execute(self, entry: JournalEntry, rows: list[IntentRow] | None):
        seq = entry.seq
        yield self.executor.execute_deal(seq, entry, rows, fresh=rows is not None)
        if self.executor.closed:
            return  # the worker stopped and its store is closed: the next start resolves what is left
        if rows is not None:  # the orders are out: bring the figures up to date for the next deal
            login_of = self.executor.login_of
            yield self.accounts.refresh([entry.deal.account, *(login_of(r.follower_id) for r in rows
                                                                if r.state is not IntentState.SKIPPED)])
        unfinished = self.store.db.execute(
            "SELECT count(*) FROM intents WHERE deal_seq = ? AND state IN ('planned', 'sent', 'unknown')",
            (seq,)).fetchone()[0]
        if unfinished:
            self._stuck.add(seq)  # reported, retried at the next start; the loop goes on with later deals
            log.error("worker: deal %s left with unresolved intents", seq)

    @defer.inlineCallbacks
    def _plan(self, deal: MasterDeal):
        """Fires with (the deal's intents, when they were planned)."""
        if self._next_routes is not None:
            self._take_routes()
        if deal.kind is DealKind.BALANCE:
            self.accounts.forget(deal.account)  # its balance changed: asked afresh at its next deal
            return [], self.clock_ns()  # a deposit or withdrawal on the master is not a trade: nothing to copy
        routes = self.routes
        version = routes.refresh()
        fan = self._fans.get((deal.account, deal.symbol))
        if fan is None or fan[0] != version:
            # the first deal of this master on this symbol (or the routes changed): who is in it, and
            # the symbol specs each needs (a mapped symbol included), fetched once and kept
            logins = [deal.account, *routes.followers(deal.account)]
            wanted = [{deal.symbol}] + [routes.symbols_for(deal.account, f, deal.symbol) for f in logins[1:]]
            yield self._fetch_specs(logins, wanted)
            specs = self._specs
            fan = (version, logins, [{symbol: specs[(login, symbol)] for symbol in symbols
                                             if (login, symbol) in specs} for login, symbols in zip(logins, wanted)],
                   {str(login): login for login in logins})
            self._fans[(deal.account, deal.symbol)] = fan
        _, logins, spec_maps, by_id = fan
        infos = yield self.accounts.infos(logins[0], logins[1:])  # the book asks the venues it must, at once
        snapshots = [AccountSnapshot(login, info.balance, info.equity, spec_map, hedging=info.hedging)
                     for login, spec_map, info in zip(logins, spec_maps, infos)]
        master = snapshots[0]
        accounts: dict[Login, AccountSnapshot] = dict(zip(logins[1:], snapshots[1:]))
        links: dict[Login, Link] = {}
        hand_closed = set()
        # an open starts a master position: nothing can be linked to it yet
        link_rows = {} if deal.kind is DealKind.OPEN else self.store.link_rows(deal.position_id, str(deal.account))
        # only a netting follower's venue nets several master positions into one of its positions
        netting = link_rows and deal.kind in _ON_POSITION and any(not a.hedging for a in accounts.values())
        shared = self.store.shared_positions(deal.position_id, str(deal.account)) if netting else {}
        login_of = self.executor.login_of
        for follower_id, rows in link_rows.items():
            # the routes' own Login (the planner looks links up with it: the same object is found at once)
            follower = by_id.get(follower_id) or login_of(follower_id)
            if len(rows) == 1:  # the common case: one follower position for the master position
                row = rows[0]
                if row.state == "open":
                    # positional: (follower_position, symbol, side, volume, positions, shared_total)
                    links[follower] = Link(row.follower_position, row.symbol, row.side, row.volume, (),
                                           shared.get((follower_id, row.follower_position)) if shared else None)
                elif row.state == "unlinked":
                    hand_closed.add(follower)
                continue
            held = [(row.follower_position, row.volume) for row in rows if row.state == "open"]
            if held:
                link = Link.of(held, rows[0].symbol, next(r.side for r in rows if r.state == "open"))
                total = shared.get((follower_id, link.follower_position)) if len(held) == 1 else None
                links[follower] = replace(link, shared_total=total) if total else link
            if any(row.state == "unlinked" for row in rows):
                hand_closed.add(follower)
        now = datetime.now(timezone.utc)
        intents = plan_deal(deal, master, routes.copy.get(deal.account, []), routes.mam.get(deal.account, []),
                            accounts, links, now, frozenset(hand_closed))
        return intents, self.clock_ns()

    @staticmethod
    def _rows(seq: int, deal: MasterDeal, intents, planned_ns: int) -> list[IntentRow]:
        price = deal.price
        # each follower's first leg to send is marked sent in the plan's own transaction (the executor
        # sends it as soon as that commits); later legs wait for the result of the one before
        first: dict[Login, int] = {}
        for i in intents:
            if i.leg.sent and i.leg_no < first.get(i.follower, i.leg_no + 1):
                first[i.follower] = i.leg_no
        rows = []
        append = rows.append
        skipped, sent, planned = IntentState.SKIPPED, IntentState.SENT, IntentState.PLANNED
        for i in intents:
            leg = i.leg
            if not leg.sent:
                state, attempts, sent_ns = skipped, 0, None
            elif first[i.follower] == i.leg_no:
                state, attempts, sent_ns = sent, 1, planned_ns
            else:
                state, attempts, sent_ns = planned, 0, None
            # positional, in IntentRow's field order (key, deal_seq, follower_id, leg, action, symbol, side,
            # volume, ideal, planned_ns, reason, position_id, sl, tp, reference_price, state, attempts,
            # sent_ns): one is built per follower before the first order leaves
            append(IntentRow(i.key, seq, str(i.follower), i.leg_no, leg.action, leg.symbol, leg.side, leg.volume,
                             leg.ideal, planned_ns, leg.reason, i.position_id, leg.sl, leg.tp, price, state,
                             attempts, sent_ns))
        return rows

    def forget_specs(self) -> None:
        """Symbol specs changed (the new ones written to the store): read them again at the next deal."""
        self._specs.clear()
        self._fans.clear()

    def _fetch_specs(self, logins: list[Login], wanted: list[set[str]]) -> defer.Deferred:
        """Symbol specs into the cache: from the store, else from the venue (then stored).
        A symbol the venue does not trade stays out (its legs say unknown-symbol)."""
        missing = []
        for login, symbols in zip(logins, wanted):
            for symbol in symbols:
                if (login, symbol) not in self._specs:
                    spec = self.store.spec(login, symbol)
                    if spec is None:
                        missing.append((login, symbol))
                    else:
                        self._specs[(login, symbol)] = spec
        if not missing:
            return defer.succeed(None)

        def fetched(found):
            for (login, symbol), spec in zip(missing, found):
                if spec is not None:
                    self.store.upsert_spec(login, spec)
                    self._specs[(login, symbol)] = spec

        return gather([_spec_or_none(self.venues[login.server], login, symbol)
                        for login, symbol in missing]).addCallback(fetched)


def _spec_or_none(venue, login: Login, symbol: str) -> defer.Deferred:
    def unknown(failure):
        failure.trap(KeyError)
        return None  # not traded there: the leg says unknown-symbol

    return defer.maybeDeferred(venue.symbol_spec, login, symbol).addErrback(unknown)
