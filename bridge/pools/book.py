"""The pool book: PAMM pools in the store, every step applied by the pure ledger in one transaction.

What is kept (migration ``0005_pamm``):

* ``pamm_pools``: one row per pool: its master account (``str(Login)``), the
  handling of deposits and withdrawals, the rollover schedule, the settings,
  the opening time, and a snapshot of the ledger's :class:`~allocation.pamm.Pool`
  after its last step;
* ``pamm_steps``: the *input* journal: every deposit / withdrawal request,
  equity mark and rollover with its arguments, time and source. Replaying it
  through the ledger from ``open_pool`` gives the snapshot exactly
  (:meth:`PoolBook.verify` does);
* ``pamm_entries``: the ledger's entries, the *output* journal; folding them
  with :func:`~allocation.pamm.rebuild` gives the same holders;
* ``pamm_settlements``: per rollover, the net cash the master account must
  receive (deposits applied minus payouts; negative: to be paid out of it).
  The broker's back office moves the money, then confirms with :meth:`PoolBook.settle`;
  until then the amount is *due* and a rollover counts it in the pool's equity
  (pool equity = the master account's equity + the due amounts);
* orders a rollover makes on the master account (pool stop, autocorrect):
  ``account_orders`` rows of origin ``pamm`` (owner the pool, batch the
  rollover; :mod:`bridge.store.orders`, migration ``0006_account_orders``),
  written ``planned`` in the rollover's own transaction and worked by the
  daemon (:mod:`bridge.daemon.account_orders`).

Every write is load, apply, write inside one ``store.transaction()``
(``BEGIN IMMEDIATE``): the CLI in one process and the daemon in another
serialize through SQLite, and a step the ledger refuses (:class:`PammError`,
:class:`ConservationError` included) leaves every table as it was. Time never
goes back: the ledger refuses a step before the pool's last one.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Callable, Iterable

import allocation.pamm as pamm
from allocation.pamm import Entry, PammError, Pool, PoolSettings, RolloverResult, Step
from allocation.pamm.schedule import parse_schedule
from bridge.domain.ids import Login
from bridge.pools.audit import apply_step, verify_pool
from bridge.pools.codec import entry_from_dict, entry_to_dict, pool_from_dict, pool_to_dict, settings_to_dict
from bridge.store.base import StoreBase
from bridge.store.errors import StoreError
from bridge.store.orders import AccountOrderRow

POOL_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
HANDLINGS = ("reallocate", "autocorrect")
_ENTRY_COLUMNS = tuple(f.name for f in fields(Entry))


@dataclass(frozen=True, slots=True)
class PoolRow:
    """A pool as listed: its configuration and the figures of its snapshot."""

    id: str
    master: str  # str(Login)
    handling: str
    schedule: str
    opened_at: datetime
    halted: str | None
    rollovers: int
    last_rollover_at: datetime | None
    nav: Decimal | None  # at the last rollover
    units: Decimal
    equity: Decimal  # marked now
    pending: int  # requests queued for a later rollover
    due: Decimal  # settlements not yet confirmed (net cash owed to the master account)
    steps: int
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class SettlementRow:
    pool: str
    rollover: int
    amount: Decimal  # net cash to the master account; negative: out of it
    state: str  # due | settled
    created_at: datetime
    settled_at: datetime | None


class PoolBook:
    """The PAMM pools of one :class:`~bridge.store.Store` (one book per store connection)."""

    def __init__(self, store: StoreBase) -> None:
        self.store = store

    # -- creating and reading -------------------------------------------------
    def create(self, pool_id: str, master: str, settings: PoolSettings, *, handling: str = "reallocate",
               schedule: str = "manual", opened_at: datetime) -> PoolRow:
        """Open a pool. ``master`` is ``str(Login)``; ``schedule`` a :mod:`allocation.pamm.schedule` text
        (stored in its canonical form). A duplicate id is a :class:`PammError`."""
        if not isinstance(pool_id, str) or not POOL_ID.fullmatch(pool_id):
            raise PammError(f"pool id {pool_id!r} must be 1 to 64 of A-Z a-z 0-9 _ . -")
        try:
            master = str(Login.parse(master))
        except (TypeError, ValueError, AttributeError) as exc:
            raise PammError(f"pool master: {exc}") from None
        if handling not in HANDLINGS:
            raise PammError(f"handling {handling!r} is not one of {', '.join(HANDLINGS)}")
        schedule = parse_schedule(schedule).text
        if not isinstance(settings, PoolSettings):
            raise PammError(f"settings must be PoolSettings, got {type(settings).__name__}")
        pool = pamm.open_pool(settings, opened_at)
        with self.store.transaction():
            if self._find(pool_id) is not None:
                raise PammError(f"pool {pool_id!r} already exists")
            self.store.db.execute(
                "INSERT INTO pamm_pools (id, master, handling, schedule, settings, opened_at, state, steps, "
                "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?)",
                (pool_id, master, handling, schedule, _json(settings_to_dict(settings)), opened_at.isoformat(),
                 _json(pool_to_dict(pool)), _now()))
            return self.pool(pool_id)

    def pools(self) -> list[PoolRow]:
        """Every pool, by id."""
        rows = self.store._all("SELECT * FROM pamm_pools ORDER BY id")
        return [self._pool_row(r) for r in rows]

    def pool(self, pool_id: str) -> PoolRow:
        return self._pool_row(self._get(pool_id))

    def load(self, pool_id: str) -> Pool:
        """The pool's ledger state after its last step (from the snapshot)."""
        return pool_from_dict(json.loads(self._get(pool_id)["state"]))

    def entries(self, pool_id: str) -> list[Entry]:
        self._get(pool_id)
        rows = self.store._all("SELECT * FROM pamm_entries WHERE pool = ? ORDER BY seq", (pool_id,))
        return [entry_from_dict({k: r[k] for k in _ENTRY_COLUMNS}) for r in rows]

    def steps(self, pool_id: str) -> list[dict]:
        """The input journal: ``{seq, at, action, args, source}`` in order (``args`` decoded JSON)."""
        self._get(pool_id)
        rows = self.store._all("SELECT seq, at, action, args, source FROM pamm_steps WHERE pool = ? ORDER BY seq",
                               (pool_id,))
        return [{**r, "args": json.loads(r["args"])} for r in rows]

    # -- steps ------------------------------------------------------------------
    def deposit(self, pool_id: str, holder: str, amount: Decimal, at: datetime, auto_close_below: Decimal | None = None,
                source: str = "cli") -> Step:
        """Queue a deposit for the next rollover outside the freeze window (the ledger's rules)."""
        args = {"holder": holder, "amount": _dec(amount), "auto_close_below": _dec(auto_close_below)}
        return self._step(pool_id, "deposit", args, at, source)

    def withdraw(self, pool_id: str, holder: str, amount: Decimal | None, at: datetime, source: str = "cli") -> Step:
        """Queue a withdrawal of ``amount`` (``None``: everything the holder has)."""
        return self._step(pool_id, "withdraw", {"holder": holder, "amount": _dec(amount)}, at, source)

    def rollover(self, pool_id: str, at: datetime, account_equity: Decimal, *, source: str,
                 orders_for: Callable[[RolloverResult], Iterable[AccountOrderRow]] | None = None) -> RolloverResult:
        """Mark the pool and roll it over, all in one transaction.

        Pool equity = ``account_equity`` (the master account's, in cents) + the
        pool's due settlements. Writes the ``equity`` and ``rollover`` steps,
        their entries, the new snapshot, a ``due`` settlement when the net cash
        (deposits applied - payouts) is not zero, and the orders
        ``orders_for(result)`` returns (``planned``). Any error writes nothing.
        """
        if isinstance(account_equity, bool) or not isinstance(account_equity, (Decimal, int)):
            raise PammError(f"account equity must be a decimal amount, got {account_equity!r}")
        with self.store.transaction():
            row = self._get(pool_id)
            pool = pool_from_dict(json.loads(row["state"]))
            equity = Decimal(account_equity) + self._due(pool_id)
            marked = pamm.set_equity(pool, equity, at)
            result = pamm.rollover(marked.pool, at)
            self._write(row, [("equity", {"equity": str(equity), "account_equity": _dec(account_equity)}, at),
                              ("rollover", {}, at)], result.pool, marked.entries + result.entries, source)
            cash = sum((e.amount for e in result.entries if e.kind == "deposit"), Decimal("0.00")) - \
                sum((e.amount for e in result.entries if e.kind == "withdrawal"), Decimal("0.00"))
            if cash != 0:
                self.store.db.execute(
                    "INSERT INTO pamm_settlements (pool, rollover, amount, state, created_at) VALUES (?, ?, ?, 'due', ?)",
                    (pool_id, result.report.number, str(cash), at.isoformat()))
            for order in (orders_for(result) if orders_for is not None else ()):
                self._insert_order(order, pool_id, result.report.number)
            return result

    # -- settlements ------------------------------------------------------------
    def settlements(self, pool_id: str) -> list[SettlementRow]:
        self._get(pool_id)
        rows = self.store._all("SELECT * FROM pamm_settlements WHERE pool = ? ORDER BY rollover", (pool_id,))
        return [_settlement(r) for r in rows]

    def settle(self, pool_id: str, rollover: int, at: datetime) -> SettlementRow:
        """The back office moved rollover ``rollover``'s cash on the master account: due -> settled."""
        _aware(at)
        with self.store.transaction():
            self._get(pool_id)
            row = self.store._one("SELECT * FROM pamm_settlements WHERE pool = ? AND rollover = ?",
                                  (pool_id, rollover))
            if row is None:
                raise PammError(f"pool {pool_id!r} has no settlement for rollover {rollover}")
            if row["state"] == "settled":
                raise PammError(f"pool {pool_id!r}: rollover {rollover} was already settled at {row['settled_at']}")
            self.store.db.execute("UPDATE pamm_settlements SET state = 'settled', settled_at = ? "
                                  "WHERE pool = ? AND rollover = ?", (at.isoformat(), pool_id, rollover))
            return _settlement({**row, "state": "settled", "settled_at": at.isoformat()})

    # -- pool orders --------------------------------------------------------------
    def orders(self, pool_id: str | None = None, states: Iterable[str] | None = None) -> list[AccountOrderRow]:
        """Pool orders, oldest first; of one pool and/or in some states."""
        return self.store.account_orders(("pamm",), pool_id, states)

    def mark_order(self, key: str, state: str, detail: str = "", result: dict | None = None) -> AccountOrderRow:
        """Move an order to ``state`` (with the venue's ``result`` when there is one)."""
        try:
            return self.store.mark_account_order(key, state, detail, result)
        except StoreError as exc:
            raise PammError(str(exc).replace("account order", "pool order")) from None

    # -- what investors and auditors see --------------------------------------------
    def statement(self, pool_id: str, investor: str) -> dict:
        """An investor's own statement (units, NAV, deposits, withdrawals, fees, return); nothing of the
        master's positions or trades, nothing of other holders."""
        pool, entries = self.load(pool_id), self.entries(pool_id)
        return {"pool": pool_id, **pamm.investor_statement(pool, entries, investor)}

    def verify(self, pool_id: str) -> dict:
        """Check the stored pool three ways (:func:`bridge.pools.audit.verify_pool`): a summary, or a
        :class:`PammError` naming the first difference."""
        return verify_pool(self, pool_id)

    # -- internals ------------------------------------------------------------------
    def _step(self, pool_id: str, action: str, args: dict, at: datetime, source: str) -> Step:
        with self.store.transaction():
            row = self._get(pool_id)
            step = apply_step(pool_from_dict(json.loads(row["state"])), {"action": action, "args": args, "at": _iso(at)})
            self._write(row, [(action, args, at)], step.pool, step.entries, source)
            return step

    def _write(self, row: dict, steps: list[tuple[str, dict, datetime]], pool: Pool, entries, source: str) -> None:
        db, pool_id = self.store.db, row["id"]
        for n, (action, args, at) in enumerate(steps, start=row["steps"] + 1):
            db.execute("INSERT INTO pamm_steps (pool, seq, at, action, args, source) VALUES (?, ?, ?, ?, ?, ?)",
                       (pool_id, n, at.isoformat(), action, _json(args), source))
        for e in entries:
            data = entry_to_dict(e)
            db.execute(f"INSERT INTO pamm_entries (pool, {', '.join(_ENTRY_COLUMNS)}) "
                       f"VALUES (?, {', '.join('?' * len(_ENTRY_COLUMNS))})",
                       (pool_id, *(data[k] for k in _ENTRY_COLUMNS)))
        db.execute("UPDATE pamm_pools SET state = ?, steps = ?, updated_at = ? WHERE id = ?",
                   (_json(pool_to_dict(pool)), row["steps"] + len(steps), _now(), pool_id))

    def _insert_order(self, order: AccountOrderRow, pool_id: str, number: int) -> None:
        if not isinstance(order, AccountOrderRow) or order.origin != "pamm":
            raise PammError(f"a pool order must be an AccountOrderRow of origin pamm, got {order!r}")
        if order.owner != pool_id or order.batch != number:
            raise PammError(f"pool order {order.key!r} is for {order.owner!r} rollover {order.batch}, "
                            f"not {pool_id!r} rollover {number}")
        try:
            self.store.insert_account_orders([order])
        except StoreError as exc:
            raise PammError(str(exc).replace("account order", "pool order")) from None

    def _due(self, pool_id: str) -> Decimal:
        rows = self.store._all("SELECT amount FROM pamm_settlements WHERE pool = ? AND state = 'due'", (pool_id,))
        return sum((Decimal(r["amount"]) for r in rows), Decimal("0.00"))

    def _find(self, pool_id: str) -> dict | None:
        return self.store._one("SELECT * FROM pamm_pools WHERE id = ?", (pool_id,))

    def _get(self, pool_id: str) -> dict:
        row = self._find(pool_id)
        if row is None:
            raise PammError(f"unknown pool {pool_id!r}")
        return row

    def _pool_row(self, row: dict) -> PoolRow:
        pool = pool_from_dict(json.loads(row["state"]))
        return PoolRow(row["id"], row["master"], row["handling"], row["schedule"], pool.opened_at, pool.halted,
                       pool.rollovers, pool.last_rollover_at, pool.nav, pool.units, pool.equity, len(pool.pending),
                       self._due(row["id"]), row["steps"], datetime.fromisoformat(row["updated_at"]))


def _settlement(r: dict) -> SettlementRow:
    return SettlementRow(r["pool"], r["rollover"], Decimal(r["amount"]), r["state"],
                         datetime.fromisoformat(r["created_at"]),
                         None if r["settled_at"] is None else datetime.fromisoformat(r["settled_at"]))


def _dec(value: Any) -> str | None:
    """A step argument: an amount as exact text (the ledger checks it when applied)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (Decimal, int)):
        raise PammError(f"amounts must be decimal, got {value!r}")
    return str(value)


def _aware(at: Any) -> datetime:
    if not isinstance(at, datetime) or at.tzinfo is None:
        raise PammError(f"times must be timezone-aware datetimes, got {at!r}")
    return at


def _iso(at: Any) -> str:
    return _aware(at).isoformat()


def _json(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), sort_keys=True)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()
