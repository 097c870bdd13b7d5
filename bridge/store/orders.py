"""Account orders: orders the bridge sends on one account outside a master deal's fan-out.

Two things make them (migration ``0006_account_orders``), and the daemon sends
every one the same way, exactly once (:mod:`bridge.daemon.account_orders`):

* a PAMM pool's rollover, on the pool's master account (origin ``pamm``; owner
  the pool, batch the rollover number; :mod:`bridge.pools.book` writes them in
  the rollover's own transaction);
* a follower leaving a master, by ``bridge copy unsubscribe --close-positions``
  (origin ``unsubscribe``, owner the subscription) or ``bridge mam remove
  --close-positions`` (origin ``mam-remove``, owner the group): each follower
  position linked to that master's positions is closed at market
  (:meth:`AccountOrderStore.plan_closes`, in the removal's own transaction).
  Such an order names the master positions whose links to its follower
  position it ends (``links``). The removal is recorded as a close request
  (:mod:`bridge.store.close_requests`): a copy still in flight then is closed
  once it fills, by one more order of the same batch.

Lifecycle (``state``)::

    planned -> sent -> filled | rejected
                 '---> unknown -> sent (the venue has no record) | filled | rejected (found by lookup)

A close's final result and what it does to the links are one transaction
(:meth:`AccountOrderStore.finish_account_order`): filled -> the links are
``closed`` (a fill short of the volume asked closes the oldest links' share
and plans one more order for the rest); refused with ``position-not-found``
-> the position was closed outside the bridge: the links are ``unlinked``; any
other refusal leaves them as they are (the position stays open, unmanaged).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Iterable

from bridge.domain.ids import Login, PositionId
from bridge.store.base import StoreBase
from bridge.store.errors import StoreError
from connectors.interface import OrderResult, OrderStatus, idempotency_key

ORIGINS = ("pamm", "unsubscribe", "mam-remove")
ORDER_STATES = ("planned", "sent", "filled", "rejected", "unknown")
UNFINISHED = ("planned", "sent", "unknown")
#: the reason code a venue gives for a close of a position it no longer holds (as bridge.results says)
POSITION_GONE = "position-not-found"


@dataclass(frozen=True, slots=True)
class AccountOrderRow:
    """One ``account_orders`` row."""

    key: str
    origin: str  # pamm | unsubscribe | mam-remove
    owner: str  # the pool, subscription or MAM group
    batch: int  # the pool's rollover number; the close request's number
    reason: str  # pool-stop | autocorrect | unsubscribe | mam-remove | rest (of a close filled short)
    account: str  # str(Login)
    position_id: str  # the venue's number of the position
    symbol: str
    side: str  # the position's side
    volume: int  # canonical units
    action: str  # close | partial-close
    state: str = "planned"
    detail: str = ""
    result: dict | None = None
    created_at: str = ""
    updated_at: str = ""
    links: tuple[str, ...] = ()  # str(PositionId) of the master positions whose links it ends

    def position(self) -> PositionId:
        return PositionId(Login.parse(self.account).server.platform, int(self.position_id))


_COLUMNS = ("key", "origin", "owner", "batch", "reason", "account", "position_id", "symbol", "side", "volume",
            "action", "state", "detail", "result", "links", "created_at", "updated_at")


class AccountOrderStore(StoreBase):
    """The ``account_orders`` table (on a store that has the links: :class:`bridge.store.Store`)."""

    def insert_account_orders(self, rows: Iterable[AccountOrderRow]) -> None:
        """Write ``rows`` ``planned`` (inside the caller's transaction, when there is one)."""
        values = []
        now = _now()
        for row in rows:
            if not isinstance(row, AccountOrderRow):
                raise StoreError(f"an account order must be an AccountOrderRow, got {type(row).__name__}")
            if row.origin not in ORIGINS:
                raise StoreError(f"account order {row.key!r}: origin {row.origin!r} is not one of {', '.join(ORIGINS)}")
            if isinstance(row.volume, bool) or not isinstance(row.volume, int) or row.volume <= 0:
                raise StoreError(f"account order {row.key!r}: volume must be a positive int, got {row.volume!r}")
            values.append((row.key, row.origin, row.owner, row.batch, row.reason, row.account, row.position_id,
                           row.symbol, row.side, row.volume, row.action, "planned", row.detail or "",
                           None if row.result is None else _json(row.result), _json(list(row.links)),
                           row.created_at or now, row.updated_at or now))
        if values:
            with self.writing() as conn:
                conn.executemany(f"INSERT INTO account_orders ({', '.join(_COLUMNS)}) "
                                 f"VALUES ({', '.join('?' * len(_COLUMNS))})", values)

    def account_orders(self, origins: Iterable[str] | None = None, owner: str | None = None,
                       states: Iterable[str] | None = None) -> list[AccountOrderRow]:
        """Account orders, oldest first; of some origins, one owner and/or in some states."""
        where, params = [], []
        for column, wanted in (("origin", origins), ("state", states)):
            if wanted is not None:
                wanted = list(wanted)
                where.append(f"{column} IN ({', '.join('?' * len(wanted))})" if wanted else "0")
                params.extend(wanted)
        if owner is not None:
            where.append("owner = ?")
            params.append(owner)
        sql = "SELECT * FROM account_orders" + (" WHERE " + " AND ".join(where) if where else "") + \
            " ORDER BY batch, created_at, key"
        return [_row(r) for r in self._all(sql, tuple(params))]

    def account_order(self, key: str) -> AccountOrderRow | None:
        r = self._one("SELECT * FROM account_orders WHERE key = ?", (key,))
        return None if r is None else _row(r)

    def mark_account_order(self, key: str, state: str, detail: str = "", result: dict | None = None) -> AccountOrderRow:
        """Move an order to ``state`` (with the venue's ``result`` when there is one)."""
        if state not in ORDER_STATES:
            raise StoreError(f"order state {state!r} is not one of {', '.join(ORDER_STATES)}")
        with self.transaction():
            if self._one("SELECT key FROM account_orders WHERE key = ?", (key,)) is None:
                raise StoreError(f"unknown account order {key!r}")
            sets, params = "state = ?, detail = ?, updated_at = ?", [state, detail, _now()]
            if result is not None:
                sets += ", result = ?"
                params.append(_json(result))
            self.db.execute(f"UPDATE account_orders SET {sets} WHERE key = ?", (*params, key))
            return self.account_order(key)

    def finish_account_order(self, row: AccountOrderRow, result: OrderResult, result_json: dict) -> AccountOrderRow:
        """The venue's final answer to ``row``, and what it does to the links it ends: one transaction."""
        filled = result.status is OrderStatus.FILLED
        detail = "" if filled else f"{result.reason}: {result.message}"
        with self.transaction():
            done = self.mark_account_order(row.key, "filled" if filled else "rejected", detail, result_json)
            if row.links:
                self._end_links(row, result)
            return done

    def _end_links(self, row: AccountOrderRow, result: OrderResult) -> None:
        wanted = set(row.links)
        position = row.position()
        links = [link for link in self.open_links(row.account)
                 if link.follower_position == position and (link_ref(link) in wanted
                                                            or str(link.master_position) in wanted)]
        if result.status is not OrderStatus.FILLED:
            if result.reason == POSITION_GONE:  # closed outside the bridge: never reopened
                self.save_links([replace(link, state="unlinked") for link in links])
            return
        filled = result.volume if 0 < result.volume < row.volume else row.volume
        changed = []
        left = filled
        for link in links:  # oldest first: a fill short of the volume closes the oldest links' share
            if left <= 0:
                break
            take = min(left, link.volume)
            left -= take
            changed.append(replace(link, state="closed") if take == link.volume
                           else replace(link, volume=link.volume - take))
        self.save_links(changed)
        rest = row.volume - filled
        if rest > 0:  # a partly-filled close: the rest is one more order, its key derived from this one's
            remaining = [link_ref(link) for link in changed if link.state == "open"] + \
                [link_ref(link) for link in links[len(changed):]]
            self.insert_account_orders([replace(
                row, key=idempotency_key(f"rest:{row.key}", row.position_id, 0), reason="rest",
                volume=rest, action="partial-close", state="planned",
                detail=f"the rest of {row.key} (filled {filled} of {row.volume})", result=None, created_at="",
                updated_at="", links=tuple(remaining))])

    def plan_closes(self, follower: Login, master: Login, origin: str, owner: str) -> list[AccountOrderRow]:
        """Plan the closes of every ``follower`` position linked to a position of ``master`` (inside the
        caller's transaction: the removal's). One order per follower position: a close, or, when the
        position also copies another master (a netting account), a partial close of this master's share.
        Positions that an unfinished order already closes are left to it. The request is recorded too
        (:mod:`bridge.store.close_requests`): the copies still in flight are closed once they fill."""
        ours = {r["position_id"] for r in self._all(
            "SELECT DISTINCT position_id FROM master_deals WHERE account_id = ?", (str(master),))}
        busy = {r.position_id for r in self.account_orders(None, None, UNFINISHED) if r.account == str(follower)}
        links = [link for link in self.open_links(str(follower))
                 if (link.master_id == str(master) or not link.master_id and str(link.master_position) in ours)
                 and str(link.follower_position.value) not in busy]
        batch = self.next_close_batch()
        self.record_close_request(batch, follower, master, origin, owner)
        orders = self.close_orders(str(follower), links, origin, owner, batch)
        self.insert_account_orders(orders)
        return orders

    def close_orders(self, follower: str, links: list, origin: str, owner: str, batch: int,
                     late: bool = False) -> list[AccountOrderRow]:
        """One close order per follower position of ``links`` (the follower's open links to close): the whole
        position, or, when its other open links copy other masters, a partial close of these links' share.
        Keys derived from the request (``batch``) and the position; ``late``: a copy that filled after it."""
        totals: dict[PositionId, int] = {}
        for link in self.open_links(follower):
            totals[link.follower_position] = totals.get(link.follower_position, 0) + link.volume
        by_position: dict[PositionId, list] = {}
        for link in links:
            by_position.setdefault(link.follower_position, []).append(link)
        now = _now()
        orders = []
        for position, group in by_position.items():
            volume = sum(link.volume for link in group)
            whole = volume >= totals[position]
            orders.append(AccountOrderRow(
                key=idempotency_key(f"{origin}:{owner}:{batch}" + (":late" if late else ""), str(position), 0),
                origin=origin, owner=owner, batch=batch, reason=origin, account=follower,
                position_id=str(position.value), symbol=group[0].symbol, side=group[0].side.value, volume=volume,
                action="close" if whole else "partial-close",
                detail="; ".join(part for part in (
                    "a copy filled after the removal" if late else "",
                    "" if whole else f"this master's share of a position holding {totals[position]}") if part),
                created_at=now, updated_at=now, links=tuple(link_ref(link) for link in group)))
        return orders


def _row(r: dict) -> AccountOrderRow:
    return AccountOrderRow(**{**r, "result": None if r["result"] is None else json.loads(r["result"]),
                              "links": tuple(json.loads(r["links"] or "[]"))})


def _json(data) -> str:
    return json.dumps(data, separators=(",", ":"), sort_keys=True)


def link_ref(link) -> str:
    """How an order names a link it ends: ``MASTER|POSITION`` (a master position's number is per server)."""
    return f"{link.master_id}|{link.master_position}" if link.master_id else str(link.master_position)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()
