"""Close requests: a removal with ``--close-positions``, kept until the copies in flight at that moment are closed.

``bridge copy unsubscribe --close-positions`` and ``bridge mam remove|delete
--close-positions`` plan, in the removal's transaction, one close per follower
position linked to the master's positions
(:meth:`~bridge.store.orders.AccountOrderStore.plan_closes`). A copy still on
its way to the follower then (the master opened a moment before) has no link
yet, so the same transaction also records the request (migration
``0008_close_requests``): the follower, the master, and which of the
follower's intents of that master it covers:

* the intents not final at the removal (``pending``: ``planned``, ``sent``,
  ``unknown``);
* the intents of the master's deals from ``after_seq`` on: deals journalled
  after the removal, or journalled but not yet planned then. The running
  daemon plans them with the routes it holds, and takes the new routes only
  when the CLI's ``reload-routes`` reaches it, between deals;
* up to ``until_seq``, set when the follower follows that master again
  (``bridge copy subscribe``, ``bridge mam add``): what is copied from then on
  belongs to the new route and is never closed by the old request.

The daemon's close service settles a ``waiting`` request
(:meth:`CloseRequestStore.settle_close_request`) once its daemon no longer
copies the master to the follower, every covered intent is final (a fill has
made its link: the executor writes both in one transaction) and no close of
that follower is unfinished (the removal's own closes first: a netting
follower's add in flight grows a link those closes end short). Then, in one
transaction: one close per follower position still linked through a covered
fill (the master position of the intent's deal, the position it filled), its
key derived from the request's number and the position, and the request
``done``. A replay, a restart or a second connection finds it ``done`` and
plans nothing; the keys could not be planned twice anyway.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Callable

from bridge.domain.ids import Login
from bridge.store.base import StoreBase

UNFINISHED_INTENTS = ("planned", "sent", "unknown")
ORIGINS = ("unsubscribe", "mam-remove")


class CloseRequestStore(StoreBase):
    """The ``close_requests`` table (on a store that has intents, links and account orders: ``Store``)."""

    def next_close_batch(self) -> int:
        """The number of the next close request: one above any close's batch or request's number."""
        row = self._one("SELECT MAX(n) AS n FROM (SELECT MAX(batch) AS n FROM account_orders WHERE origin != 'pamm' "
                        "UNION ALL SELECT MAX(batch) FROM close_requests)")
        return (row["n"] or 0) + 1

    def _frontier(self, master: str) -> int:
        """The journal seq from which the master's deals are not yet planned: its oldest deal still ``new``, or
        the next seq (AUTOINCREMENT: a later deal's seq is above every seq there ever was)."""
        row = self._one("SELECT MIN(seq) AS new, (SELECT COALESCE(MAX(seq), 0) + 1 FROM master_deals) AS next "
                        "FROM master_deals WHERE account_id = ? AND state = 'new'", (master,))
        return row["next"] if row["new"] is None else min(row["new"], row["next"])

    def record_close_request(self, batch: int, follower: Login, master: Login, origin: str, owner: str) -> None:
        """Record a removal with closes (inside the removal's transaction)."""
        pending = [r["key"] for r in self._all(
            "SELECT i.key FROM intents AS i JOIN master_deals AS d ON d.seq = i.deal_seq WHERE i.follower_id = ? "
            f"AND d.account_id = ? AND i.state IN ({', '.join('?' * len(UNFINISHED_INTENTS))}) ORDER BY i.deal_seq",
            (str(follower), str(master), *UNFINISHED_INTENTS))]
        with self.writing() as conn:
            conn.execute("INSERT INTO close_requests (batch, origin, owner, follower, master, pending, after_seq, "
                         "state, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'waiting', ?)",
                         (batch, origin, owner, str(follower), str(master), json.dumps(pending),
                          self._frontier(str(master)), _now()))

    def seal_close_requests(self, follower: Login, master: Login) -> int:
        """The follower follows the master again (inside that edit's transaction): the waiting requests of the
        pair cover no deal planned from now on. Returns how many were sealed."""
        cursor = self.db.execute(
            "UPDATE close_requests SET until_seq = ? WHERE follower = ? AND master = ? AND state = 'waiting' "
            "AND until_seq IS NULL", (self._frontier(str(master)), str(follower), str(master)))
        return cursor.rowcount

    def close_requests(self, states: tuple[str, ...] = ("waiting", "done")) -> list[dict]:
        """The requests in some states, oldest first (``pending`` decoded)."""
        rows = self._all(f"SELECT * FROM close_requests WHERE state IN ({', '.join('?' * len(states))}) "
                         "ORDER BY batch", tuple(states))
        return [{**r, "pending": json.loads(r["pending"])} for r in rows]

    def settle_close_request(self, batch: int, routed: Callable[[str, str], bool] = lambda master, follower: False):
        """Plan the closes of request ``batch``'s late copies and mark it ``done``, in one transaction, when it
        can be settled; else nothing. ``routed(master, follower)``: does the daemon still copy along the pair
        (its worker holds routes from before the removal)? Returns the orders planned, or None (still waiting)."""
        if self._settled_covers(batch, routed) is None:  # read first: a write lock only once it can be settled
            return None
        with self.transaction():
            covered = self._settled_covers(batch, routed)
            if covered is None:
                return None
            request = self._one("SELECT * FROM close_requests WHERE batch = ?", (batch,))
            follower = request["follower"]
            filled = {(r["master_position"], r["filled_position_id"]) for r in covered
                      if r["state"] == "filled" and r["action"] == "open" and r["filled_position_id"]}
            links = [link for link in self.open_links(follower)
                     if (str(link.master_position), str(link.follower_position)) in filled
                     and link.master_id in ("", request["master"])]
            orders = self.close_orders(follower, links, request["origin"], request["owner"], batch, late=True)
            self.insert_account_orders(orders)
            self.db.execute("UPDATE close_requests SET state = 'done', done_at = ?, detail = ? WHERE batch = ?",
                            (_now(), f"{len(covered)} copy(ies) in flight at the removal; {len(orders)} late "
                                     f"close(s)", batch))
            return orders

    def _settled_covers(self, batch: int, routed: Callable[[str, str], bool]) -> list[dict] | None:
        """The intents a waiting request covers, all final, when it can be settled now; else None."""
        request = self._one("SELECT * FROM close_requests WHERE batch = ? AND state = 'waiting'", (batch,))
        if request is None:
            return None
        follower, master = request["follower"], request["master"]
        if request["until_seq"] is None and routed(master, follower):
            return None  # the daemon may still plan copies along the pair: they are the request's too
        covered = self._covered(request)
        if any(r["state"] in UNFINISHED_INTENTS for r in covered):
            return None
        if any(o.account == follower for o in self.account_orders(ORIGINS, None, UNFINISHED_INTENTS)):
            return None  # the removal's closes first: a netting add in flight grows a link they end short
        return covered

    def _covered(self, request: dict) -> list[dict]:
        pending = json.loads(request["pending"])
        return self._all(
            "SELECT i.key, i.state, i.action, i.filled_position_id, d.position_id AS master_position FROM intents AS i "
            "JOIN master_deals AS d ON d.seq = i.deal_seq WHERE i.follower_id = ? AND d.account_id = ? AND ("
            f"i.key IN ({', '.join('?' * len(pending))}) OR (i.deal_seq >= ? AND (? IS NULL OR i.deal_seq < ?)))",
            (request["follower"], request["master"], *pending, request["after_seq"], request["until_seq"],
             request["until_seq"]))


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()
