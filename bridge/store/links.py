"""Links: which follower position copies which master position.

One row per (master position, follower). States:

* ``open``: the follower position is open and follows the master position;
* ``closed``: the bridge closed it (the master closed, or a close leg);
* ``unlinked``: the follower closed it by hand (found by reconcile). The
  master's later partial closes and closes must not touch that follower, and
  the link is never reopened: :meth:`LinkStore.link` refuses the pair.

Only ``open`` links are returned by the lookups.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bridge.domain.deal import Side
from bridge.domain.ids import PositionId
from bridge.store.base import StoreBase
from bridge.store.codec import int_out, venue_id_in, venue_id_out
from bridge.store.errors import StoreError

LINK_STATES = ("open", "closed", "unlinked")


@dataclass(frozen=True, slots=True)
class Link:
    master_position: PositionId
    follower_id: str  # str(Login)
    follower_position: PositionId
    symbol: str
    side: Side
    volume: int  # the follower position's open volume, canonical units
    state: str
    opened_by: str | None  # the intent key whose fill opened it


def _link_of(row: dict[str, Any]) -> Link:
    return Link(
        master_position=venue_id_in(row["master_position"], PositionId),
        follower_id=row["follower_id"],
        follower_position=venue_id_in(row["follower_position"], PositionId),
        symbol=row["symbol"],
        side=Side(row["side"]),
        volume=row["volume"],
        state=row["state"],
        opened_by=row["opened_by"],
    )


def _mp(master_position: PositionId) -> str:
    return venue_id_out(master_position, PositionId, "master_position")


class LinkStore(StoreBase):
    """The ``links`` table."""

    def link(self, master_position: PositionId, follower_id: str, follower_position: PositionId,
             symbol: str, side: Side, volume: int, opened_by: str | None) -> None:
        """Record an ``open`` link (after the follower's open filled).

        Repeating the same open link (same follower position and ``opened_by``)
        is a no-op, so replaying a fill after a crash is safe. A closed or
        unlinked row is replaced by a link to a *different* follower position
        (a netting master keeps its position id through a reversal, and the new
        side is a new follower position); relinking the *same* follower position
        raises :class:`StoreError`, as does a second open link: a follower
        position that was closed, or closed by hand, is never linked again.
        """
        if int_out(volume, "volume") <= 0:
            raise StoreError(f"link {master_position} -> {follower_id}: volume must be positive, got {volume}")
        row = {
            "master_position": _mp(master_position),
            "follower_id": follower_id,
            "follower_position": venue_id_out(follower_position, PositionId, "follower_position"),
            "symbol": symbol,
            "side": Side(side).value,
            "volume": volume,
            "state": "open",
            "opened_by": opened_by,
        }
        conn = self.db.conn
        with self.transaction():
            existing = self._one("SELECT * FROM links WHERE master_position = ? AND follower_id = ?",
                                 (row["master_position"], follower_id))
            if existing is None:
                conn.execute(
                    f"INSERT INTO links ({', '.join(row)}) VALUES ({', '.join(':' + c for c in row)})", row)
                return
            if (existing["state"] == "open" and existing["follower_position"] == row["follower_position"]
                    and existing["opened_by"] == opened_by):
                return
            if existing["state"] != "open" and existing["follower_position"] != row["follower_position"]:
                conn.execute(
                    f"UPDATE links SET {', '.join(f'{c} = :{c}' for c in row)} "
                    "WHERE master_position = :master_position AND follower_id = :follower_id", row)
                return
            raise StoreError(
                f"link {master_position} -> {follower_id}: already {existing['state']} "
                f"(follower position {existing['follower_position']}); a link is never reopened")

    def link_of(self, master_position: PositionId, follower_id: str) -> Link | None:
        """The ``open`` link of ``master_position`` on ``follower_id``, or None (none, closed, unlinked)."""
        row = self._one(
            "SELECT * FROM links WHERE master_position = ? AND follower_id = ? AND state = 'open'",
            (_mp(master_position), follower_id))
        return None if row is None else _link_of(row)

    def links_of_master(self, master_position: PositionId) -> list[Link]:
        """Every follower's ``open`` link to ``master_position``, by follower id."""
        return [_link_of(row) for row in self.db.query(
            "SELECT * FROM links WHERE master_position = ? AND state = 'open' ORDER BY follower_id",
            (_mp(master_position),))]

    def link_rows(self, master_position: PositionId) -> dict[str, Link]:
        """Every follower's link row to ``master_position`` in any state (open, closed, unlinked),
        by follower id: what :meth:`save_links` callers decide on."""
        cursor = self.db.conn.execute("SELECT * FROM links WHERE master_position = ?", (_mp(master_position),))
        names = [d[0] for d in cursor.description]
        return {row["follower_id"]: _link_of(row) for row in (dict(zip(names, r)) for r in cursor)}

    def save_links(self, links: list[Link]) -> None:
        """Write whole link rows (insert, or replace the row of the same master position and
        follower) in one statement. The caller decided them under the rules of :meth:`link`,
        :meth:`set_link_volume`, :meth:`close_link` and :meth:`unlink` (the executor's fills)."""
        rows = []
        for link in links:
            if link.state not in LINK_STATES:
                raise StoreError(f"link {link.master_position} -> {link.follower_id}: bad state {link.state!r}")
            if int_out(link.volume, "volume") <= 0:
                raise StoreError(f"link {link.master_position} -> {link.follower_id}: volume must be positive, "
                                 f"got {link.volume}")
            rows.append((_mp(link.master_position), link.follower_id,
                         venue_id_out(link.follower_position, PositionId, "follower_position"), link.symbol,
                         Side(link.side).value, link.volume, link.state, link.opened_by))
        if not rows:
            return
        with self.writing() as conn:
            conn.executemany(
                "INSERT INTO links (master_position, follower_id, follower_position, symbol, side, volume, "
                "state, opened_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (master_position, follower_id) DO UPDATE SET "
                "follower_position = excluded.follower_position, symbol = excluded.symbol, "
                "side = excluded.side, volume = excluded.volume, state = excluded.state, "
                "opened_by = excluded.opened_by", rows)

    def open_links(self, follower_id: str) -> list[Link]:
        """The ``open`` links of ``follower_id``, in the order they were made."""
        return [_link_of(row) for row in self.db.query(
            "SELECT * FROM links WHERE follower_id = ? AND state = 'open' ORDER BY rowid", (follower_id,))]

    def _update_open(self, master_position: PositionId, follower_id: str, assignments: str,
                     params: dict[str, Any], what: str) -> None:
        cursor = self.db.execute(
            f"UPDATE links SET {assignments} WHERE master_position = :_mp AND follower_id = :_f "
            f"AND state = 'open'",
            {**params, "_mp": _mp(master_position), "_f": follower_id})
        if cursor.rowcount != 1:
            row = self._one("SELECT state FROM links WHERE master_position = ? AND follower_id = ?",
                            (_mp(master_position), follower_id))
            state = "missing" if row is None else row["state"]
            raise StoreError(f"link {master_position} -> {follower_id}: cannot {what}, the link is {state}")

    def set_link_volume(self, master_position: PositionId, follower_id: str, volume: int) -> None:
        """The follower position's new open volume (after a partial close); open links only."""
        if int_out(volume, "volume") <= 0:
            raise StoreError(f"link {master_position} -> {follower_id}: volume must be positive "
                             f"(use close_link), got {volume}")
        self._update_open(master_position, follower_id, "volume = :volume", {"volume": volume}, "set volume")

    def close_link(self, master_position: PositionId, follower_id: str) -> None:
        """``open`` -> ``closed``: the bridge closed the follower position."""
        self._update_open(master_position, follower_id, "state = 'closed'", {}, "close")

    def unlink(self, master_position: PositionId, follower_id: str) -> None:
        """``open`` -> ``unlinked``: the follower closed the position by hand; never reopened."""
        self._update_open(master_position, follower_id, "state = 'unlinked'", {}, "unlink")

    def unlinked_followers(self, master_position: PositionId) -> set[str]:
        """Followers who closed their copy of ``master_position`` by hand: nothing more is opened for them."""
        return {row["follower_id"] for row in self.db.query(
            "SELECT follower_id FROM links WHERE master_position = ? AND state = 'unlinked'",
            (_mp(master_position),))}
