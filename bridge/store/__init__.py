"""The bridge's state store: one SQLite file (WAL, ``synchronous=NORMAL``, see base.py) via sqlite-utils.

>>> store = Store.open(path)          # doctest: +SKIP
>>> seq = store.journal_deal(deal, detected_ns)
>>> store.plan(seq, intents)          # one transaction: intents + deal 'planned'

Modules: :mod:`~bridge.store.base` (connection, transactions),
:mod:`~bridge.store.migrations` (named, recorded schema migrations),
:mod:`~bridge.store.codec` (column encodings), :mod:`~bridge.store.journal`
(master deals), :mod:`~bridge.store.intents` (follower orders and their
states), :mod:`~bridge.store.links` (master->follower positions),
:mod:`~bridge.store.tracking` (latency and slippage),
:mod:`~bridge.store.registry` (accounts, specs, strategies, MAM groups),
:mod:`~bridge.store.orders` (account orders: pool orders, closes on unsubscribe),
:mod:`~bridge.store.close_requests` (removals with closes, until the copies in flight then are closed).

One :class:`Store` per thread (sqlite3's ``check_same_thread``); another
process may open the same file (WAL readers never block the writer; writers
wait up to ``busy_timeout``).
"""

from __future__ import annotations

from pathlib import Path

from sqlite_utils import Database

from bridge.store.base import BUSY_TIMEOUT_MS, StoreBase, connect
from bridge.store.close_requests import CloseRequestStore
from bridge.store.errors import StoreError
from bridge.store.intents import IntentRow, IntentState, IntentStore
from bridge.store.journal import JournalEntry, JournalStore
from bridge.store.links import Link, LinkStore
from bridge.store.orders import AccountOrderRow, AccountOrderStore
from bridge.store.migrations import MIGRATIONS, Migration, applied_migrations, apply_migrations
from bridge.store.registry import (
    AccountRow, MamGroupRow, MamMemberRow, RegistryStore, StrategyRow, SubscriptionRow,
)
from bridge.store.tracking import ExecutionRow, ExecutionStats, TrackingStore

__all__ = [
    "AccountOrderRow", "AccountRow", "ExecutionRow", "ExecutionStats", "IntentRow", "IntentState", "JournalEntry", "Link",
    "MIGRATIONS", "MamGroupRow", "MamMemberRow", "Store", "StoreError", "StrategyRow", "SubscriptionRow",
    "applied_migrations", "apply_migrations",
]


class Store(JournalStore, IntentStore, LinkStore, TrackingStore, RegistryStore, AccountOrderStore, CloseRequestStore,
            StoreBase):
    """The whole store: every repository's methods on one object sharing one connection."""

    def __init__(self, db: Database, path: Path | None = None) -> None:
        self.db = db
        self.path = path
        #: migration names applied by this open (empty when the file was up to date)
        self.migrated: list[str] = []

    @classmethod
    def open(cls, path: str | Path, *, migrations: list[Migration] | None = None,
             busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> "Store":
        """Open (creating if needed) the store at ``path`` and apply missing migrations
        (default: all of :data:`~bridge.store.migrations.MIGRATIONS`)."""
        db = connect(path, busy_timeout_ms=busy_timeout_ms)
        try:
            applied = apply_migrations(db, migrations)
        except BaseException:
            db.close()
            raise
        store = cls(db, Path(path))
        store.migrated = applied
        return store

    def migrations(self) -> list[str]:
        """The migration names recorded in this database, in order applied."""
        return applied_migrations(self.db)

    def close(self) -> None:
        """Close the connection (committed data is already durable)."""
        self.db.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
