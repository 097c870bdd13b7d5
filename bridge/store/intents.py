"""Intents: one row per follower leg of a master deal, the write-ahead log of orders.

Lifecycle (``state``)::

    planned --mark_sent--> sent --mark_filled--> filled
       |                    |  --mark_rejected-> rejected
       |                    '--mark_unknown--> unknown --mark_sent--> sent (resend after lookup found nothing)
       |                                          |------mark_filled/mark_rejected (lookup found it)
       '--mark_rejected (the bridge refused before sending)
    skipped  (written so by plan(): a leg with nothing to send; final)

``mark_sent`` is called *before* the order goes out, so after a crash every
order that may have reached a venue is ``sent`` or ``unknown``, never
``planned``, and is looked up by its key before anything is resent.
Each mark is a single compare-and-set ``UPDATE ... WHERE state IN (...)``:
atomic, committed on return (or part of an enclosing ``store.transaction()``).
An illegal transition, or an unknown key, raises :class:`StoreError`.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, fields
from decimal import Decimal
from enum import Enum
from typing import Any, Callable

from allocation.leg import Action, Reason
from bridge.domain.deal import Side
from bridge.domain.ids import OrderId, PositionId
from bridge.store.base import StoreBase
from bridge.store.codec import dec_in, dec_out, int_out, venue_id_in, venue_id_out
from bridge.store.errors import StoreError
from connectors.interface import OrderResult, OrderStatus


class IntentState(str, Enum):
    PLANNED = "planned"
    SENT = "sent"
    FILLED = "filled"
    REJECTED = "rejected"
    UNKNOWN = "unknown"
    SKIPPED = "skipped"

    def __str__(self) -> str:
        return self.value


#: target state -> the states it may be reached from.
TRANSITIONS: dict[IntentState, frozenset[IntentState]] = {
    IntentState.SENT: frozenset({IntentState.PLANNED, IntentState.UNKNOWN}),
    IntentState.FILLED: frozenset({IntentState.SENT, IntentState.UNKNOWN}),
    IntentState.REJECTED: frozenset({IntentState.PLANNED, IntentState.SENT, IntentState.UNKNOWN}),
    IntentState.UNKNOWN: frozenset({IntentState.SENT}),
}

#: the states plan() may write (values: a str Enum member does not hash like its value).
PLAN_STATES = frozenset({IntentState.PLANNED.value, IntentState.SKIPPED.value})


@dataclass(slots=True)
class IntentRow:
    """One intent, typed. Construct with keywords; plan() needs the first block only.

    A value: never changed once made (use ``dataclasses.replace``). Not declared frozen only
    because a frozen dataclass of 25 fields costs three times as much to build, and a deal's
    fan-out builds one per follower on the order path; for the same reason the worker's plan
    builds them with positional arguments (in field order: half the cost of keywords)."""

    key: str  # connectors.interface.idempotency_key(str(deal_id), follower_id, leg)
    deal_seq: int
    follower_id: str  # str(Login)
    leg: int
    action: Action
    symbol: str
    side: Side
    volume: int  # canonical units; 0 for MODIFY / NONE
    ideal: Decimal
    planned_ns: int
    reason: Reason | None = None
    position_id: PositionId | None = None  # the follower position to close or modify
    sl: Decimal | None = None
    tp: Decimal | None = None
    reference_price: Decimal | None = None
    state: IntentState = IntentState.PLANNED
    # written by the mark_* transitions:
    attempts: int = 0
    sent_ns: int | None = None
    done_ns: int | None = None
    order_id: OrderId | None = None
    filled_position_id: PositionId | None = None
    fill_price: Decimal | None = None
    fill_volume: int | None = None
    reject_reason: str | None = None
    message: str | None = None


_COLUMNS = tuple(f.name for f in fields(IntentRow))
#: what a plan writes: everything up to ``sent_ns``; the results (``done_ns`` on) come with the marks
_PLAN_COLUMNS = _COLUMNS[:_COLUMNS.index("sent_ns") + 1]
_RESULT_FIELDS = _COLUMNS[len(_PLAN_COLUMNS):]
_INSERT = (f"INSERT INTO intents ({', '.join(_PLAN_COLUMNS)}) "
           f"VALUES ({', '.join('?' for _ in _PLAN_COLUMNS)})")


def _checked_row(intent: IntentRow) -> tuple:
    """:func:`_intent_row` the careful way: every value through the codec, errors naming the field."""
    what = f"intent {intent.key}"
    for name in _RESULT_FIELDS:
        if getattr(intent, name) is not None:
            raise StoreError(f"{what}: a plan holds no results, but {name} is set")
    try:
        reason = None if intent.reason is None else Reason(intent.reason).value
        action, side, state = Action(intent.action).value, Side(intent.side).value, IntentState(intent.state).value
    except ValueError as e:  # an enum value that is not one
        raise StoreError(f"{what}: {e}") from None
    return (
        intent.key, int_out(intent.deal_seq, f"{what} deal_seq"), intent.follower_id,
        int_out(intent.leg, f"{what} leg"), action, intent.symbol, side, int_out(intent.volume, f"{what} volume"),
        dec_out(intent.ideal, f"{what} ideal"), int_out(intent.planned_ns, f"{what} planned_ns"), reason,
        venue_id_out(intent.position_id, PositionId, f"{what} position_id"), dec_out(intent.sl, f"{what} sl"),
        dec_out(intent.tp, f"{what} tp"), dec_out(intent.reference_price, f"{what} reference_price"), state,
        int_out(intent.attempts, f"{what} attempts"), int_out(intent.sent_ns, f"{what} sent_ns"),
    )


def _intent_row(intent: IntentRow) -> tuple:
    """A planned intent as the row plan() writes (:data:`_PLAN_COLUMNS` order), every value checked (no
    float reaches a column; a plan holds no results).

    The common case (a freshly planned intent: enums, ints, Decimals, no venue
    ids but the position to close) is checked by exact type and written at
    once; anything else goes through :func:`_checked_row`, which refuses or
    converts each value as the codec says."""
    if type(intent) is not IntentRow:
        if not isinstance(intent, IntentRow):
            raise StoreError(f"plan() needs IntentRow objects, not {type(intent).__name__}")
        return _checked_row(intent)
    action, side, state, reason = intent.action, intent.side, intent.state, intent.reason
    ideal, sl, tp, ref, position = intent.ideal, intent.sl, intent.tp, intent.reference_price, intent.position_id
    if not (type(action) is Action and type(side) is Side and type(state) is IntentState
            and (reason is None or type(reason) is Reason)
            and type(intent.deal_seq) is int and type(intent.leg) is int and type(intent.volume) is int
            and type(intent.planned_ns) is int and type(intent.attempts) is int
            and type(ideal) is Decimal and ideal.is_finite()
            and (sl is None or type(sl) is Decimal and sl.is_finite())
            and (tp is None or type(tp) is Decimal and tp.is_finite())
            and (ref is None or type(ref) is Decimal and ref.is_finite())
            and (position is None or type(position) is PositionId)
            and (intent.sent_ns is None or type(intent.sent_ns) is int)
            and intent.done_ns is None and intent.order_id is None and intent.filled_position_id is None
            and intent.fill_price is None and intent.fill_volume is None and intent.reject_reason is None
            and intent.message is None):
        return _checked_row(intent)
    return (
        intent.key, intent.deal_seq, intent.follower_id, intent.leg, action.value, intent.symbol, side.value,
        intent.volume, str(ideal), intent.planned_ns, None if reason is None else reason.value,
        None if position is None else str(position), None if sl is None else str(sl),
        None if tp is None else str(tp), None if ref is None else str(ref), state.value, intent.attempts,
        intent.sent_ns,
    )


def _intent_of(row: dict[str, Any]) -> IntentRow:
    return IntentRow(
        key=row["key"],
        deal_seq=row["deal_seq"],
        follower_id=row["follower_id"],
        leg=row["leg"],
        action=Action(row["action"]),
        symbol=row["symbol"],
        side=Side(row["side"]),
        volume=row["volume"],
        ideal=dec_in(row["ideal"]),
        planned_ns=row["planned_ns"],
        reason=None if row["reason"] is None else Reason(row["reason"]),
        position_id=venue_id_in(row["position_id"], PositionId),
        sl=dec_in(row["sl"]),
        tp=dec_in(row["tp"]),
        reference_price=dec_in(row["reference_price"]),
        state=IntentState(row["state"]),
        attempts=row["attempts"],
        sent_ns=row["sent_ns"],
        done_ns=row["done_ns"],
        order_id=venue_id_in(row["order_id"], OrderId),
        filled_position_id=venue_id_in(row["filled_position_id"], PositionId),
        fill_price=dec_in(row["fill_price"]),
        fill_volume=row["fill_volume"],
        reject_reason=row["reject_reason"],
        message=row["message"],
    )


def _states(states: tuple[str, ...]) -> list[str]:
    try:
        return [IntentState(s).value for s in states]
    except ValueError as e:
        raise StoreError(str(e)) from None


class IntentStore(StoreBase):
    """The ``intents`` table, and ``plan()`` which moves a deal from ``new`` to ``planned``."""

    def plan(self, seq: int, intents: list[IntentRow]) -> None:
        """Write all ``intents`` of deal ``seq`` and mark the deal ``planned``, in ONE transaction.

        * Already ``planned``: a no-op (whatever ``intents`` holds), so a replan
          after a crash between two deals never writes anything twice.
        * Any failure (a duplicate key, an intent of another deal, a bad value)
          raises :class:`StoreError` and leaves no intent of the deal and the
          deal ``new``.

        Every intent must have ``deal_seq == seq`` and state ``planned`` or
        ``skipped``, or ``sent`` with ``attempts`` 1 and its ``sent_ns``: an
        intent about to leave is marked sent in the plan's own transaction
        (``planned -> sent`` made at once, so it is durably ``sent`` before the
        order leaves). An empty list is allowed (a deal nobody copies).
        """
        rows = self._checked_plan(seq, intents)  # validate before touching the db
        conn = self.db.conn
        with self.transaction():
            # the deal turns planned only if it was new: otherwise nothing is written
            if conn.execute("UPDATE master_deals SET state = 'planned' WHERE seq = ? AND state = 'new'",
                            (seq,)).rowcount != 1:
                if conn.execute("SELECT 1 FROM master_deals WHERE seq = ?", (seq,)).fetchone() is None:
                    raise StoreError(f"plan(): no master deal with seq {seq}")
                return  # planned already
            self._insert_plan(seq, rows)

    def journal_planned(self, deal, detected_ns: int,
                        plan: Callable[[int], list[IntentRow]]) -> tuple[int, list[IntentRow]] | None:
        """Journal ``deal`` already ``planned``, with the intents ``plan(seq)`` gives, in ONE transaction
        (one commit for a deal the worker could plan at once). None, writing nothing, if the deal is
        journalled already. The same checks as :meth:`plan`; any failure leaves nothing written."""
        with self.transaction():
            seq = self.journal_deal(deal, detected_ns, state="planned")
            if seq is None:
                return None
            intents = plan(seq)
            self._insert_plan(seq, self._checked_plan(seq, intents))
        return seq, intents

    def _checked_plan(self, seq: int, intents: list[IntentRow]) -> list[tuple]:
        rows = [_intent_row(intent) for intent in intents]
        state_at, seq_at = _PLAN_COLUMNS.index("state"), _PLAN_COLUMNS.index("deal_seq")
        for row, intent in zip(rows, intents):
            if row[seq_at] != seq:
                raise StoreError(f"intent {intent.key} belongs to deal {row[seq_at]}, not {seq}")
            if row[state_at] not in PLAN_STATES and not (
                    row[state_at] == "sent" and intent.attempts == 1 and intent.sent_ns is not None):
                raise StoreError(f"intent {intent.key}: plan() writes planned or skipped intents, or sent ones "
                                 f"with attempts 1 and sent_ns, not {row[state_at]}")
        return rows

    def _insert_plan(self, seq: int, rows: list[tuple]) -> None:
        try:
            self.db.conn.executemany(_INSERT, rows)
        except sqlite3.IntegrityError as e:
            raise StoreError(f"plan() of deal {seq} refused, nothing written: {e}") from e

    # -- reads ----------------------------------------------------------------
    def intent(self, key: str) -> IntentRow | None:
        """The intent with ``key``, or None."""
        row = self._one("SELECT * FROM intents WHERE key = ?", (key,))
        return None if row is None else _intent_of(row)

    def intents_in_state(self, *states: str) -> list[IntentRow]:
        """Intents in any of ``states``, ordered by (deal_seq, follower_id, leg)."""
        if not states:
            raise StoreError("intents_in_state() needs at least one state")
        wanted = _states(states)
        marks = ", ".join("?" for _ in wanted)
        return [_intent_of(row) for row in self.db.query(
            f"SELECT * FROM intents WHERE state IN ({marks}) ORDER BY deal_seq, follower_id, leg", wanted)]

    def intents_of_deal(self, seq: int) -> list[IntentRow]:
        """All intents of deal ``seq``, ordered by (follower_id, leg)."""
        return [_intent_of(row) for row in self.db.query(
            "SELECT * FROM intents WHERE deal_seq = ? ORDER BY follower_id, leg", (seq,))]

    def intent_counts(self) -> dict[str, int]:
        """How many intents are in each state (states with none are left out)."""
        return {row["state"]: row["n"] for row in self.db.query(
            "SELECT state, COUNT(*) AS n FROM intents GROUP BY state ORDER BY state")}

    # -- transitions ----------------------------------------------------------
    def _transition(self, key: str, target: IntentState, assignments: str, params: dict[str, Any]) -> None:
        sources = sorted(s.value for s in TRANSITIONS[target])
        marks = ", ".join(f":_from{i}" for i in range(len(sources)))
        params = {**params, "_key": key, "_to": target.value,
                  **{f"_from{i}": s for i, s in enumerate(sources)}}
        cursor = self.db.execute(
            f"UPDATE intents SET state = :_to{', ' if assignments else ''}{assignments} "
            f"WHERE key = :_key AND state IN ({marks})",
            params,
        )
        if cursor.rowcount == 1:
            return
        row = self._one("SELECT state FROM intents WHERE key = ?", (key,))
        if row is None:
            raise StoreError(f"intent {key}: no such intent")
        raise StoreError(f"intent {key}: illegal transition {row['state']} -> {target.value} "
                         f"(only from {' or '.join(sources)})")

    def mark_sent(self, key: str, sent_ns: int) -> None:
        """``planned``/``unknown`` -> ``sent``; counts the attempt. Call before the order leaves."""
        self._transition(key, IntentState.SENT, "attempts = attempts + 1, sent_ns = :sent_ns",
                         {"sent_ns": int_out(sent_ns, "sent_ns")})

    def mark_sent_many(self, keys: list[str], sent_ns: int) -> None:
        """:meth:`mark_sent` for many intents at once (one statement): a deal's fan-out.

        All or nothing: if any key is unknown or not ``planned``/``unknown``, the
        error names the first such key and, inside a transaction, the caller's
        rollback undoes the others."""
        if not keys:
            return
        sent_ns = int_out(sent_ns, "sent_ns")
        with self.writing() as conn:
            cursor = conn.executemany(
                "UPDATE intents SET state = 'sent', attempts = attempts + 1, sent_ns = ? "
                "WHERE key = ? AND state IN ('planned', 'unknown')", [(sent_ns, key) for key in keys])
            if cursor.rowcount != len(keys):
                self._explain_refused(keys, IntentState.SENT)

    def mark_results(self, items: list[tuple[str, OrderResult, int]]) -> None:
        """:meth:`mark_filled` or :meth:`mark_rejected` (by each result's status) for many intents:
        two statements in all. ``items``: (key, the venue's result, done_ns). All or nothing, as
        :meth:`mark_sent_many`."""
        filled, rejected = [], []
        for key, result, done_ns in items:
            if not isinstance(result, OrderResult) or result.key != key:
                raise StoreError(f"intent {key}: the result {result!r} is not this intent's")
            done = int_out(done_ns, "done_ns")
            order_id = venue_id_out(result.order_id, OrderId, "order_id")
            if result.status is OrderStatus.FILLED:
                filled.append((done, order_id, venue_id_out(result.position_id, PositionId, "position_id"),
                               dec_out(result.price, "fill price"), int_out(result.volume, "fill volume"),
                               result.message or None, key))
            else:
                rejected.append((done, result.reason or "rejected", result.message or None, order_id, key))
        with self.writing() as conn:
            if filled:
                cursor = conn.executemany(
                    "UPDATE intents SET state = 'filled', done_ns = ?, order_id = ?, filled_position_id = ?, "
                    "fill_price = ?, fill_volume = ?, message = ? WHERE key = ? AND state IN ('sent', 'unknown')",
                    filled)
                if cursor.rowcount != len(filled):
                    self._explain_refused([f[-1] for f in filled], IntentState.FILLED)
            if rejected:
                cursor = conn.executemany(
                    "UPDATE intents SET state = 'rejected', done_ns = ?, reject_reason = ?, message = ?, "
                    "order_id = COALESCE(?, order_id) WHERE key = ? AND state IN ('planned', 'sent', 'unknown')",
                    rejected)
                if cursor.rowcount != len(rejected):
                    self._explain_refused([r[-1] for r in rejected], IntentState.REJECTED)

    def _explain_refused(self, keys: list[str], target: IntentState) -> None:
        """A many-rows transition changed fewer rows than asked: raise naming the first culprit.

        Reads the rows as they are now (after the statement), so a key that
        appears twice in one batch is reported too."""
        sources = sorted(s.value for s in TRANSITIONS[target])
        seen: set[str] = set()
        for key in keys:
            row = self._one("SELECT state FROM intents WHERE key = ?", (key,))
            if row is None:
                raise StoreError(f"intent {key}: no such intent")
            if key in seen or row["state"] != target.value:
                raise StoreError(f"intent {key}: illegal transition {row['state']} -> {target.value} "
                                 f"(only from {' or '.join(sources)})")
            seen.add(key)
        raise StoreError(f"{target.value}: fewer intents changed than asked")

    def mark_unknown(self, key: str, message: str | None = None) -> None:
        """``sent`` -> ``unknown``: the outcome is ambiguous; look the key up before resending."""
        self._transition(key, IntentState.UNKNOWN, "message = COALESCE(:message, message)",
                         {"message": message})

    def mark_filled(self, key: str, result: OrderResult, done_ns: int) -> None:
        """``sent``/``unknown`` -> ``filled``, with the venue's order id, position, price and volume."""
        if not isinstance(result, OrderResult) or result.status is not OrderStatus.FILLED:
            raise StoreError(f"intent {key}: mark_filled needs a FILLED OrderResult, got {result!r}")
        if result.key != key:
            raise StoreError(f"intent {key}: the result is for order {result.key}")
        self._transition(
            key, IntentState.FILLED,
            "done_ns = :done_ns, order_id = :order_id, filled_position_id = :position_id, "
            "fill_price = :price, fill_volume = :volume, message = :message",
            {
                "done_ns": int_out(done_ns, "done_ns"),
                "order_id": venue_id_out(result.order_id, OrderId, "order_id"),
                "position_id": venue_id_out(result.position_id, PositionId, "position_id"),
                "price": dec_out(result.price, "fill price"),
                "volume": int_out(result.volume, "fill volume"),
                "message": result.message or None,
            },
        )

    def mark_rejected(self, key: str, result: OrderResult | str, done_ns: int) -> None:
        """``planned``/``sent``/``unknown`` -> ``rejected``.

        ``result`` is the venue's REJECTED :class:`OrderResult`, or a bridge reason
        code (a str) when the bridge itself refused the order.
        """
        if isinstance(result, OrderResult):
            if result.status is not OrderStatus.REJECTED:
                raise StoreError(f"intent {key}: mark_rejected needs a REJECTED OrderResult, got {result!r}")
            if result.key != key:
                raise StoreError(f"intent {key}: the result is for order {result.key}")
            params = {"reason": result.reason or "rejected", "message": result.message or None,
                      "order_id": venue_id_out(result.order_id, OrderId, "order_id")}
        elif isinstance(result, str) and result:
            params = {"reason": result, "message": None, "order_id": None}
        else:
            raise StoreError(f"intent {key}: mark_rejected needs an OrderResult or a reason, got {result!r}")
        params["done_ns"] = int_out(done_ns, "done_ns")
        self._transition(
            key, IntentState.REJECTED,
            "done_ns = :done_ns, reject_reason = :reason, message = :message, "
            "order_id = COALESCE(:order_id, order_id)",
            params,
        )
