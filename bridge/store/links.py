"""Links: which follower positions copy which master position.

One row per (master position, follower, follower position): a netting
follower holds one position per master position, a hedging follower one per
master open *and* per master add. States:

* ``open``: the follower position is open and follows the master position;
* ``closed``: the bridge closed it (the master closed, or a close leg);
* ``unlinked``: the follower closed it by hand (found by reconcile, or by a
  close the venue refused with ``position-not-found``). The master's later
  deals must not touch that position, the bridge opens nothing more for that
  follower on that master position, and the row is never reopened.

Only ``open`` links are returned by the lookups; a follower's links to one
master position come oldest first (the order their positions opened).
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
_SIDES = {side.value: side for side in Side}


# A value, never changed once made. Not frozen: one is built per follower per deal, and a frozen
# dataclass costs about three times as much to build.
@dataclass(slots=True)
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
        is a no-op, so replaying a fill after a crash is safe. Any other link to
        a follower position that already has a row raises :class:`StoreError`:
        a follower position that was closed, or closed by hand, is never linked
        again. Several open links of one follower to one master position are
        allowed: a hedging follower's positions for the master's open and adds.
        """
        if int_out(volume, "volume") <= 0:
            raise StoreError(f"link {master_position} -> {follower_id}: volume must be positive, got {volume}")
        fp = venue_id_out(follower_position, PositionId, "follower_position")
        with self.transaction():
            existing = self._one("SELECT * FROM links WHERE master_position = ? AND follower_id = ? "
                                 "AND follower_position = ?", (_mp(master_position), follower_id, fp))
            if existing is None:
                self.db.conn.execute(
                    "INSERT INTO links (master_position, follower_id, follower_position, symbol, side, volume, "
                    "state, opened_by) VALUES (?, ?, ?, ?, ?, ?, 'open', ?)",
                    (_mp(master_position), follower_id, fp, symbol, Side(side).value, volume, opened_by))
                return
            if existing["state"] == "open" and existing["opened_by"] == opened_by:
                return
            raise StoreError(
                f"link {master_position} -> {follower_id}: follower position {fp} is already {existing['state']}; "
                f"a link is never reopened")

    def link_of(self, master_position: PositionId, follower_id: str) -> Link | None:
        """The oldest ``open`` link of ``master_position`` on ``follower_id``, or None (see :meth:`links_of`)."""
        links = self.links_of(master_position, follower_id)
        return links[0] if links else None

    def links_of(self, master_position: PositionId, follower_id: str) -> list[Link]:
        """The ``open`` links of ``master_position`` on ``follower_id``, oldest first."""
        return [_link_of(row) for row in self.db.query(
            "SELECT * FROM links WHERE master_position = ? AND follower_id = ? AND state = 'open' ORDER BY rowid",
            (_mp(master_position), follower_id))]

    def links_of_master(self, master_position: PositionId) -> list[Link]:
        """Every follower's ``open`` links to ``master_position``, by follower id, oldest first."""
        return [_link_of(row) for row in self.db.query(
            "SELECT * FROM links WHERE master_position = ? AND state = 'open' ORDER BY follower_id, rowid",
            (_mp(master_position),))]

    def link_rows(self, master_position: PositionId) -> dict[str, list[Link]]:
        """Every link row to ``master_position`` in any state (open, closed, unlinked), by follower id,
        oldest first: what :meth:`save_links` callers decide on."""
        cursor = self.db.conn.execute(
            "SELECT follower_id, follower_position, symbol, side, volume, state, opened_by FROM links "
            "WHERE master_position = ? ORDER BY rowid", (_mp(master_position),))
        out: dict[str, list[Link]] = {}
        sides = _SIDES
        for follower, position, symbol, side, volume, state, opened_by in cursor:
            link = Link(master_position, follower, venue_id_in(position, PositionId), symbol,
                        sides.get(side) or Side(side), volume, state, opened_by)
            out.setdefault(follower, []).append(link)
        return out

    def shared_positions(self, master_position: PositionId) -> dict[tuple[str, PositionId], int]:
        """For each follower position copying ``master_position`` that also copies *other* master
        positions (a netting follower of a hedging master: its venue nets every copy into one
        position), the position's total open volume over all of them, by (follower id, position)."""
        rows = self.db.conn.execute(
            "SELECT l.follower_id, l.follower_position, SUM(o.volume), COUNT(*) FROM links AS l "
            "JOIN links AS o ON o.follower_id = l.follower_id AND o.follower_position = l.follower_position "
            "AND o.state = 'open' WHERE l.master_position = ? AND l.state = 'open' "
            "GROUP BY l.follower_id, l.follower_position", (_mp(master_position),))
        return {(follower, venue_id_in(position, PositionId)): total
                for follower, position, total, count in rows if count > 1}

    def save_links(self, links: list[Link]) -> None:
        """Write whole link rows (insert, or replace the row of the same follower position) in one
        statement. The caller decided them under the rules of :meth:`link`, :meth:`set_link_volume`,
        :meth:`close_link` and :meth:`unlink` (the executor's fills)."""
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
                "ON CONFLICT (master_position, follower_id, follower_position) DO UPDATE SET "
                "symbol = excluded.symbol, side = excluded.side, volume = excluded.volume, "
                "state = excluded.state, opened_by = excluded.opened_by", rows)

    def open_links(self, follower_id: str) -> list[Link]:
        """The ``open`` links of ``follower_id``, in the order they were made."""
        return [_link_of(row) for row in self.db.query(
            "SELECT * FROM links WHERE follower_id = ? AND state = 'open' ORDER BY rowid", (follower_id,))]

    def _update_open(self, master_position: PositionId, follower_id: str, follower_position: PositionId | None,
                     assignments: str, params: dict[str, Any], what: str) -> None:
        """Change one open link: the one of ``follower_position``, or, when it is None, the follower's
        only open link to the master position (several: StoreError, name the position)."""
        if follower_position is None:
            links = self.links_of(master_position, follower_id)
            if len(links) > 1:
                raise StoreError(f"link {master_position} -> {follower_id}: cannot {what}, {len(links)} open "
                                 f"links: name the follower position")
            if links:
                follower_position = links[0].follower_position
        fp = None if follower_position is None else venue_id_out(follower_position, PositionId, "follower_position")
        cursor = self.db.execute(
            f"UPDATE links SET {assignments} WHERE master_position = :_mp AND follower_id = :_f "
            f"AND follower_position = :_fp AND state = 'open'",
            {**params, "_mp": _mp(master_position), "_f": follower_id, "_fp": fp})
        if cursor.rowcount != 1:
            row = self._one("SELECT state FROM links WHERE master_position = ? AND follower_id = ? "
                            "AND (? IS NULL OR follower_position = ?) ORDER BY rowid DESC",
                            (_mp(master_position), follower_id, fp, fp))
            state = "missing" if row is None else row["state"]
            raise StoreError(f"link {master_position} -> {follower_id}: cannot {what}, the link is {state}")

    def set_link_volume(self, master_position: PositionId, follower_id: str, volume: int,
                        follower_position: PositionId | None = None) -> None:
        """The follower position's new open volume (after a partial close); open links only."""
        if int_out(volume, "volume") <= 0:
            raise StoreError(f"link {master_position} -> {follower_id}: volume must be positive "
                             f"(use close_link), got {volume}")
        self._update_open(master_position, follower_id, follower_position, "volume = :volume", {"volume": volume},
                          "set volume")

    def close_link(self, master_position: PositionId, follower_id: str,
                   follower_position: PositionId | None = None) -> None:
        """``open`` -> ``closed``: the bridge closed the follower position."""
        self._update_open(master_position, follower_id, follower_position, "state = 'closed'", {}, "close")

    def unlink(self, master_position: PositionId, follower_id: str,
               follower_position: PositionId | None = None) -> None:
        """``open`` -> ``unlinked``: the follower closed the position by hand; never reopened."""
        self._update_open(master_position, follower_id, follower_position, "state = 'unlinked'", {}, "unlink")

    def unlinked_followers(self, master_position: PositionId) -> set[str]:
        """Followers who closed a copy of ``master_position`` by hand: nothing more is opened for them."""
        return {row["follower_id"] for row in self.db.query(
            "SELECT follower_id FROM links WHERE master_position = ? AND state = 'unlinked'",
            (_mp(master_position),))}
