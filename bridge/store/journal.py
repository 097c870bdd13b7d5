"""The master-deal journal: every master deal once, in arrival order, with its planning state.

A deal is journalled (state ``new``) the moment it is detected, before anything
is decided; :meth:`IntentStore.plan <bridge.store.intents.IntentStore.plan>`
turns it ``planned`` in the same transaction that writes its intents. After a
restart, ``deals_in_state('new')`` is exactly the work left to plan.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bridge.domain.deal import DealKind, MasterDeal, Side
from bridge.domain.ids import DealId, Login, PositionId
from bridge.store.base import StoreBase
from bridge.store.codec import (
    dec_in, dec_out, int_out, time_in, time_out, venue_id_in, venue_id_out,
)
from bridge.store.errors import StoreError

DEAL_STATES = ("new", "planned")


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """A journalled deal: its sequence number, the deal, when the bridge saw it, its state."""

    seq: int
    deal: MasterDeal
    detected_ns: int
    state: str


_DEAL_COLUMNS = ("venue_deal_id", "account_id", "position_id", "symbol", "kind", "side", "volume",
                 "position_volume", "price", "sl", "tp", "time", "detected_ns")


def _deal_row(deal: MasterDeal, detected_ns: int) -> dict[str, Any]:
    if not isinstance(deal, MasterDeal):
        raise StoreError(f"journal_deal needs a MasterDeal, not {type(deal).__name__}")
    return {
        "venue_deal_id": venue_id_out(deal.deal_id, DealId, "deal_id"),
        "account_id": str(deal.account),
        "position_id": venue_id_out(deal.position_id, PositionId, "position_id"),
        "symbol": deal.symbol,
        "kind": DealKind(deal.kind).value,
        "side": Side(deal.side).value,
        "volume": int_out(deal.volume, "volume"),
        "position_volume": int_out(deal.position_volume, "position_volume"),
        "price": dec_out(deal.price, "price"),
        "sl": dec_out(deal.sl, "sl"),
        "tp": dec_out(deal.tp, "tp"),
        "time": time_out(deal.time),
        "detected_ns": int_out(detected_ns, "detected_ns"),
    }


_JOURNAL = (f"INSERT INTO master_deals ({', '.join(_DEAL_COLUMNS)}, state) "
            f"VALUES ({', '.join('?' * (len(_DEAL_COLUMNS) + 1))}) ON CONFLICT DO NOTHING")  # (account_id, venue_deal_id): a redelivery


def _deal_of(row: dict[str, Any]) -> MasterDeal:
    return MasterDeal(
        deal_id=venue_id_in(row["venue_deal_id"], DealId),
        position_id=venue_id_in(row["position_id"], PositionId),
        account=Login.parse(row["account_id"]),
        symbol=row["symbol"],
        kind=DealKind(row["kind"]),
        side=Side(row["side"]),
        volume=row["volume"],
        time=time_in(row["time"]),
        position_volume=row["position_volume"],
        price=dec_in(row["price"]),
        sl=dec_in(row["sl"]),
        tp=dec_in(row["tp"]),
    )


def _entry_of(row: dict[str, Any]) -> JournalEntry:
    return JournalEntry(row["seq"], _deal_of(row), row["detected_ns"], row["state"])


class JournalStore(StoreBase):
    """The ``master_deals`` table."""

    def journal_deal(self, deal: MasterDeal, detected_ns: int, *, state: str = "new") -> int | None:
        """Journal ``deal`` as ``new``; return its seq, or None if its venue deal id is
        already journalled (a duplicate delivery: live feed and backfill overlap).

        One ``INSERT ... ON CONFLICT DO NOTHING``: atomic and committed (fsynced)
        on return.
        """
        if state not in DEAL_STATES:
            raise StoreError(f"unknown deal state {state!r} (expected one of {', '.join(DEAL_STATES)})")
        row = _deal_row(deal, detected_ns)
        with self.writing() as conn:
            cursor = conn.execute(_JOURNAL, (*row.values(), state))
        return cursor.lastrowid if cursor.rowcount == 1 else None

    def journal_entry(self, seq: int) -> JournalEntry:
        """The journalled deal ``seq`` with its state (StoreError if there is none)."""
        row = self._one("SELECT * FROM master_deals WHERE seq = ?", (seq,))
        if row is None:
            raise StoreError(f"no master deal with seq {seq}")
        return _entry_of(row)

    def deal_at(self, seq: int) -> MasterDeal:
        """The master deal journalled as ``seq``, rebuilt exactly (StoreError if there is none)."""
        return self.journal_entry(seq).deal

    def deal_seq(self, deal_id: DealId, account: Login | None = None) -> int | None:
        """The seq ``account``'s venue deal was journalled under, or None. Deal ids are unique per account
        only (numbered per server): without ``account``, the first account's with that id (one master)."""
        out = venue_id_out(deal_id, DealId, "deal_id")
        if account is None:
            row = self.db.conn.execute("SELECT min(seq) FROM master_deals WHERE venue_deal_id = ?", (out,)).fetchone()
        else:
            row = self.db.conn.execute("SELECT seq FROM master_deals WHERE account_id = ? AND venue_deal_id = ?",
                                       (str(account), out)).fetchone()
        return None if row is None else row[0]

    def deals_in_state(self, state: str = "new") -> list[JournalEntry]:
        """Journalled deals in ``state`` (``new`` or ``planned``), oldest (lowest seq) first."""
        if state not in DEAL_STATES:
            raise StoreError(f"unknown deal state {state!r} (expected one of {', '.join(DEAL_STATES)})")
        return [_entry_of(row) for row in self.db.query(
            "SELECT * FROM master_deals WHERE state = ? ORDER BY seq", (state,))]

    def last_seq(self) -> int:
        """The highest seq journalled, 0 for an empty journal."""
        row = self._one("SELECT MAX(seq) AS seq FROM master_deals")
        return row["seq"] or 0

    def last_deal_id(self, account: Login, trades_only: bool = False) -> DealId | None:
        """The venue id of ``account``'s most recently journalled deal (highest seq), or None.

        ``trades_only``: the most recent trade, skipping SL/TP changes and balance operations. That is
        where a backfill (``Venue.deals_since``) resumes: on some platforms (cTrader) those two are not
        deals in the venue's history and carry ids of another sequence, so resuming after one of them
        could skip real deals. Resuming after the last trade re-delivers at most a few deals the
        journal already holds, and drops them as duplicates."""
        skip = " AND kind NOT IN ('sltp', 'balance')" if trades_only else ""
        row = self._one(
            f"SELECT venue_deal_id FROM master_deals WHERE account_id = ?{skip} ORDER BY seq DESC LIMIT 1",
            (str(account),),
        )
        return None if row is None else venue_id_in(row["venue_deal_id"], DealId)

    def known_stops(self, account: Login) -> dict[PositionId, tuple]:
        """The SL/TP the journal last told for each of ``account``'s positions it holds open, where it told
        any: an SLTP deal's, or an open's or reversal's (a position's stops start there); a close forgets
        the position. What a backfill compares the venue's positions with on a venue whose history holds
        no SL/TP changes (``Venue.deals_since(..., stops=)``). One pass over the account's deals."""
        stops: dict[str, tuple] = {}
        for position, kind, sl, tp in self.db.conn.execute(
                "SELECT position_id, kind, sl, tp FROM master_deals WHERE account_id = ? "
                "AND kind IN ('open', 'reversal', 'sltp', 'close') ORDER BY seq", (str(account),)):
            if kind == "close":
                stops.pop(position, None)
            else:
                stops[position] = (dec_in(sl), dec_in(tp))
        return {venue_id_in(p, PositionId): s for p, s in stops.items() if s != (None, None)}
