"""Links: which follower positions copy which master position.

One row per (master position, master account, follower, follower position):
a netting follower holds one position per master position, a hedging follower
one per master open *and* per master add. The master account is part of the
key because position numbers are per server: two masters on two servers of
one platform may each have a position 7 (migration 0010). Every lookup takes
the master account (``master``); without it (old callers, tests) it matches
any master's position of that number. States:

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
    master_id: str = ""  # str(Login) of the master account ('' only for a link older than migration 0010)


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
        master_id=row.get("master_id") or "",
    )


def _mp(master_position: PositionId) -> str:
    return venue_id_out(master_position, PositionId, "master_position")


def _of(master: str | None, alias: str = "") -> tuple[str, tuple]:
    """The SQL condition (and its parameter) that picks one master account's links; none without one."""
    return ("", ()) if not master else (f" AND {alias}master_id = ?", (str(master),))


class LinkStore(StoreBase):
    """The ``links`` table."""

    def link(self, master_position: PositionId, follower_id: str, follower_position: PositionId,
             symbol: str, side: Side, volume: int, opened_by: str | None, master: str | None = None) -> None:
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
        which, by = _of(master)
        with self.transaction():
            existing = self._one("SELECT * FROM links WHERE master_position = ? AND follower_id = ? "
                                 f"AND follower_position = ?{which}", (_mp(master_position), follower_id, fp, *by))
            if existing is None:
                self.db.conn.execute(
                    "INSERT INTO links (master_position, follower_id, follower_position, symbol, side, volume, "
                    "state, opened_by, master_id) VALUES (?, ?, ?, ?, ?, ?, 'open', ?, ?)",
                    (_mp(master_position), follower_id, fp, symbol, Side(side).value, volume, opened_by,
                     str(master or "")))
                return
            if existing["state"] == "open" and existing["opened_by"] == opened_by:
                return
            raise StoreError(
                f"link {master_position} -> {follower_id}: follower position {fp} is already {existing['state']}; "
                f"a link is never reopened")

    def link_of(self, master_position: PositionId, follower_id: str, master: str | None = None) -> Link | None:
        """The oldest ``open`` link of ``master_position`` on ``follower_id``, or None (see :meth:`links_of`)."""
        links = self.links_of(master_position, follower_id, master)
        return links[0] if links else None

    def links_of(self, master_position: PositionId, follower_id: str, master: str | None = None) -> list[Link]:
        """The ``open`` links of ``master_position`` on ``follower_id``, oldest first."""
        which, by = _of(master)
        return [_link_of(row) for row in self.db.query(
            f"SELECT * FROM links WHERE master_position = ? AND follower_id = ? AND state = 'open'{which} "
            f"ORDER BY rowid", (_mp(master_position), follower_id, *by))]

    def links_of_master(self, master_position: PositionId, master: str | None = None) -> list[Link]:
        """Every follower's ``open`` links to ``master_position``, by follower id, oldest first."""
        which, by = _of(master)
        return [_link_of(row) for row in self.db.query(
            f"SELECT * FROM links WHERE master_position = ? AND state = 'open'{which} ORDER BY follower_id, rowid",
            (_mp(master_position), *by))]

    def link_rows(self, master_position: PositionId, master: str | None = None) -> dict[str, list[Link]]:
        """Every link row to ``master``'s ``master_position`` in any state (open, closed, unlinked), by
        follower id, oldest first: what :meth:`save_links` callers decide on."""
        which, by = _of(master)
        cursor = self.db.conn.execute(
            "SELECT follower_id, follower_position, symbol, side, volume, state, opened_by, master_id FROM links "
            f"WHERE master_position = ?{which} ORDER BY rowid", (_mp(master_position), *by))
        out: dict[str, list[Link]] = {}
        sides = _SIDES
        for follower, position, symbol, side, volume, state, opened_by, master_id in cursor:
            link = Link(master_position, follower, venue_id_in(position, PositionId), symbol,
                        sides.get(side) or Side(side), volume, state, opened_by, master_id)
            out.setdefault(follower, []).append(link)
        return out

    def shared_positions(self, master_position: PositionId, master: str | None = None
                         ) -> dict[tuple[str, PositionId], int]:
        """For each follower position copying ``master_position`` that also copies *other* master
        positions (a netting follower of a hedging master: its venue nets every copy into one
        position), the position's total open volume over all of them, by (follower id, position)."""
        which, by = _of(master, "l.")
        rows = self.db.conn.execute(
            "SELECT l.follower_id, l.follower_position, SUM(o.volume), COUNT(*) FROM links AS l "
            "JOIN links AS o ON o.follower_id = l.follower_id AND o.follower_position = l.follower_position "
            f"AND o.state = 'open' WHERE l.master_position = ? AND l.state = 'open'{which} "
            "GROUP BY l.follower_id, l.follower_position", (_mp(master_position), *by))
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
                         Side(link.side).value, link.volume, link.state, link.opened_by, link.master_id))
        if not rows:
            return
        with self.writing() as conn:
            conn.executemany(
                "INSERT INTO links (master_position, follower_id, follower_position, symbol, side, volume, "
                "state, opened_by, master_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (master_position, master_id, follower_id, follower_position) DO UPDATE SET "
                "symbol = excluded.symbol, side = excluded.side, volume = excluded.volume, "
                "state = excluded.state, opened_by = excluded.opened_by", rows)

    def open_links(self, follower_id: str) -> list[Link]:
        """The ``open`` links of ``follower_id``, in the order they were made."""
        return [_link_of(row) for row in self.db.query(
            "SELECT * FROM links WHERE follower_id = ? AND state = 'open' ORDER BY rowid", (follower_id,))]

    def _update_open(self, master_position: PositionId, follower_id: str, follower_position: PositionId | None,
                     assignments: str, params: dict[str, Any], what: str, master: str | None = None) -> None:
        """Change one open link: the one of ``follower_position``, or, when it is None, the follower's
        only open link to the master position (several: StoreError, name the position)."""
        if follower_position is None:
            links = self.links_of(master_position, follower_id, master)
            if len(links) > 1:
                raise StoreError(f"link {master_position} -> {follower_id}: cannot {what}, {len(links)} open "
                                 f"links: name the follower position")
            if links:
                follower_position = links[0].follower_position
        fp = None if follower_position is None else venue_id_out(follower_position, PositionId, "follower_position")
        cursor = self.db.execute(
            f"UPDATE links SET {assignments} WHERE master_position = :_mp AND follower_id = :_f "
            f"AND follower_position = :_fp AND state = 'open'" + (" AND master_id = :_m" if master else ""),
            {**params, "_mp": _mp(master_position), "_f": follower_id, "_fp": fp, "_m": str(master or "")})
        if cursor.rowcount != 1:
            row = self._one("SELECT state FROM links WHERE master_position = ? AND follower_id = ? "
                            "AND (? IS NULL OR follower_position = ?) ORDER BY rowid DESC",
                            (_mp(master_position), follower_id, fp, fp))
            state = "missing" if row is None else row["state"]
            raise StoreError(f"link {master_position} -> {follower_id}: cannot {what}, the link is {state}")

    def set_link_volume(self, master_position: PositionId, follower_id: str, volume: int,
                        follower_position: PositionId | None = None, master: str | None = None) -> None:
        """The follower position's new open volume (after a partial close); open links only."""
        if int_out(volume, "volume") <= 0:
            raise StoreError(f"link {master_position} -> {follower_id}: volume must be positive "
                             f"(use close_link), got {volume}")
        self._update_open(master_position, follower_id, follower_position, "volume = :volume", {"volume": volume},
                          "set volume", master)

    def close_link(self, master_position: PositionId, follower_id: str,
                   follower_position: PositionId | None = None, master: str | None = None) -> None:
        """``open`` -> ``closed``: the bridge closed the follower position."""
        self._update_open(master_position, follower_id, follower_position, "state = 'closed'", {}, "close", master)

    def unlink(self, master_position: PositionId, follower_id: str,
               follower_position: PositionId | None = None, master: str | None = None) -> None:
        """``open`` -> ``unlinked``: the follower closed the position by hand; never reopened."""
        self._update_open(master_position, follower_id, follower_position, "state = 'unlinked'", {}, "unlink",
                          master)

    def unlinked_followers(self, master_position: PositionId, master: str | None = None) -> set[str]:
        """Followers who closed a copy of ``master_position`` by hand: nothing more is opened for them."""
        which, by = _of(master)
        return {row["follower_id"] for row in self.db.query(
            f"SELECT follower_id FROM links WHERE master_position = ? AND state = 'unlinked'{which}",
            (_mp(master_position), *by))}
