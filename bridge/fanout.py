"""One master deal's orders on their way: the executor's fast path (see :class:`FanOut`)."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING

from twisted.internet import defer
from twisted.python.failure import Failure

from bridge.results import SLIPPAGE_EXCEEDED, requoted
from bridge.store.intents import IntentRow, IntentState
from connectors.interface import AmbiguousOutcome, OrderResult, VenueUnavailable

if TYPE_CHECKING:
    from bridge.executor import Executor

log = logging.getLogger("bridge.executor")


class FanOut:
    """One master deal's orders on their way: the fast path of the executor.

    Every follower whose next leg is freshly ``planned`` (not at startup) has
    it marked ``sent`` (one statement for all) and sent at once; its later legs
    follow as each result comes back. Results that come back while the fan-out
    is still being sent are written together at the end, in the same
    transaction; later ones together with those that came back in the same
    reactor turn. Anything out of the ordinary (an
    ambiguous outcome, a requote, an intent that must be looked up first)
    hands that follower's remaining legs to the executor's careful path, after
    writing what is buffered so that each follower's results stay in order.
    """

    def __init__(self, executor: Executor, entry) -> None:
        self.executor = executor
        self.entry = entry
        self.done = defer.Deferred()
        self._buffer: list[tuple[IntentRow, int | None, OrderResult, int]] = []
        self._sending = True
        self._flush_due = False
        self._open = 0

    def start(self, followers: list[list[IntentRow]], fresh: bool = False) -> None:
        ex = self.executor
        self._open = len(followers)
        marked, unmarked, careful = [], [], []
        for rows in followers:
            rows.sort(key=_leg)
            state = rows[0].state
            if fresh and state is IntentState.SENT:
                marked.append(rows)  # marked sent with the plan, not sent yet
            elif state is IntentState.PLANNED and not ex.verify_planned:
                unmarked.append(rows)
            else:
                careful.append(rows)
        try:
            if unmarked or careful:
                # one transaction for the sent marks and every result a venue answers at once; safe because
                # startup looks every unfinished intent up, `planned` ones included, before sending anything
                with ex.store.transaction():
                    self._send_all(marked, unmarked, careful)
            else:
                self._send_all(marked, unmarked, careful)  # marked sent by the plan: nothing to write first
        finally:
            self._sending = False
        self._check_done()

    def _send_all(self, marked, unmarked, careful) -> None:
        ex = self.executor
        if unmarked:
            ex.store.mark_sent_many([rows[0].key for rows in unmarked], ex.clock_ns())
            marked = marked + unmarked
        ex.sent += len(marked)
        for rows in marked:
            self._send(rows, 0, ex.clock_ns())
        for rows in careful:
            self._careful(rows)
        self._sending = False
        self._flush()  # results that came back while sending: inside the transaction, if there is one

    def _send(self, rows: list[IntentRow], i: int, sent_ns: int) -> None:
        ex = self.executor
        order = ex.order(self.entry, rows[i])
        try:
            d = ex.venues[order.account.server].execute(order)
        except Exception:
            d = defer.fail()
        d.addCallbacks(self._result, self._failed, callbackArgs=(rows, i, sent_ns), errbackArgs=(rows, i))

    def _result(self, result: OrderResult, rows: list[IntentRow], i: int, sent_ns: int) -> None:
        ex = self.executor
        row = rows[i]
        try:
            if requoted(result) and ex.requote_retries > 0:
                self._flush()
                ex.store.mark_unknown(row.key, f"{result.reason}: trying again (1)")
                self._careful([ex.store.intent(row.key), *rows[i + 1:]], requotes=1)
                return
            if requoted(result):
                result = replace(result, reason=SLIPPAGE_EXCEEDED, message=f"{result.reason}: {result.message}")
            self._buffer.append((row, sent_ns, result, ex.clock_ns()))
            if not self._sending and not self._flush_due:
                # results that come back together are written together: on the reactor's next turn
                if ex.reactor is None:
                    self._flush()
                else:
                    self._flush_due = True
                    ex.reactor.callLater(0, self._flush)
            if i + 1 < len(rows):
                sent_ns = ex.clock_ns()
                ex.store.mark_sent(rows[i + 1].key, sent_ns)
                ex.sent += 1
                self._send(rows, i + 1, sent_ns)
                return
        except Exception:
            log.exception("executor: intent %s failed unexpectedly", row.key)
        self._finished()

    def _failed(self, failure: Failure, rows: list[IntentRow], i: int) -> None:
        ex = self.executor
        row = rows[i]
        if not failure.check(AmbiguousOutcome, VenueUnavailable):
            log.error("executor: intent %s failed unexpectedly: %s", row.key, failure.getTraceback())
            self._finished()
            return
        log.warning("executor: %s", failure.getErrorMessage())
        try:
            self._flush()
            ex.store.mark_unknown(row.key, failure.getErrorMessage())
            self._careful([ex.store.intent(row.key), *rows[i + 1:]])
        except Exception:
            log.exception("executor: intent %s failed unexpectedly", row.key)
            self._finished()

    def _careful(self, rows: list[IntentRow], requotes: int = 0) -> None:
        self._flush()
        d = self.executor._in_order(self.entry, rows, requotes)
        d.addBoth(lambda _: self._finished())

    def _flush(self) -> None:
        self._flush_due = False
        if self._buffer:
            items, self._buffer = self._buffer, []
            self.executor.apply(self.entry, items)

    def _finished(self) -> None:
        self._open -= 1
        self._check_done()

    def _check_done(self) -> None:
        if self._open <= 0 and not self._sending and not self.done.called:
            try:
                self._flush()
            except Exception:
                log.exception("executor: results of deal %s could not be recorded", self.entry.seq)
            self.done.callback(None)


def _leg(row: IntentRow) -> int:
    return row.leg
