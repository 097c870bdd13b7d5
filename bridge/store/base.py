"""The connection, its pragmas, and the transaction every atomic write uses.

Transactions
------------
:meth:`StoreBase.transaction` is the one way the store groups writes:

* outermost: ``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on any exception).
  IMMEDIATE takes the write lock up front, so a read-then-write inside the
  block (``plan()`` reads the deal's state, then inserts) cannot be overtaken by
  another writer and never hits the deferred-upgrade ``SQLITE_BUSY``;
* nested: a savepoint (sqlite-utils' ``Database.atomic()``), rolled back alone
  on an exception, committed with the outer transaction.

So a caller can make several store calls one unit, e.g.
``with store.transaction(): store.mark_filled(...); store.link(...)``.

A single-statement write (one ``INSERT``/``UPDATE``) outside any block commits
on its own (sqlite-utils' ``Database.execute`` commits implicit transactions).

Durability: WAL journal with ``synchronous=NORMAL``. A commit is in the WAL
file when the call returns, so a crash of the process (SIGKILL included) loses
nothing committed; anything uncommitted is rolled back on the next open. A
power cut may lose the last commits (the WAL is fsynced at checkpoints, not at
every commit, which keeps a commit at tens of microseconds instead of an fsync).
The bridge is built to survive that: the master-deal journal is refilled from
the venues' deal history, plans are deterministic (same keys), and at startup
every unfinished intent, ``planned`` ones included, is looked up at its venue
by key before anything is sent (see ``bridge.executor``).

File modes: a new store file is created mode 0600 (the service user's only)
before SQLite opens it, and SQLite gives its ``-wal`` and ``-shm`` files the
database file's mode. An existing store keeps its mode (an operator may have
chosen one); one that group or others may read is logged as a warning.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from sqlite_utils import Database

#: How long a writer waits for another connection's lock before ``database is locked``.
BUSY_TIMEOUT_MS = 5000


def connect(path: str | Path, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> Database:
    """Open ``path`` (created if missing) as a sqlite-utils Database with the store's pragmas.

    The connection keeps Python's default (legacy) transaction handling, which
    sqlite-utils requires, and ``check_same_thread=True``: one thread only.
    """
    _private_file(path)
    conn = sqlite3.connect(str(path), timeout=busy_timeout_ms / 1000)
    db = Database(conn)
    # Pragmas that change per connection; none of them may run inside a transaction.
    db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    db.enable_wal()
    db.execute("PRAGMA synchronous = NORMAL")
    db.execute("PRAGMA foreign_keys = ON")
    return db


def _private_file(path: str | Path) -> None:
    """Create ``path`` empty and mode 0600 when it does not exist (SQLite makes a database of an empty file);
    warn when an existing one is open to group or others."""
    if str(path) in ("", ":memory:") or str(path).startswith("file:"):
        return
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        return
    except FileExistsError:
        pass
    except OSError:
        return  # no such directory, no permission...: sqlite3.connect says so
    mode = stat.S_IMODE(os.stat(path).st_mode)
    if mode & 0o077:
        logging.getLogger("bridge.store").warning(
            "store %s is mode %04o: group or others may read it; chmod 600 %s (and its -wal, -shm files)",
            path, mode, path)


class StoreBase:
    """What every part of the store shares: the Database and its transactions."""

    db: Database

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One atomic unit: ``BEGIN IMMEDIATE`` outermost, a savepoint when nested."""
        conn = self.db.conn
        if conn.in_transaction:
            with self.db.atomic():
                yield
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        try:
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    # -- small helpers --------------------------------------------------------
    @contextmanager
    def writing(self) -> Iterator[sqlite3.Connection]:
        """The raw connection for a batch of writes: inside the caller's transaction when there is
        one (no savepoint: the caller's rollback covers it), else in a transaction of its own."""
        conn = self.db.conn
        if conn.in_transaction:
            yield conn
            return
        with self.transaction():
            yield conn

    def _one(self, sql: str, params: tuple | dict = ()) -> dict[str, Any] | None:
        """The first row of a query as a dict, or None."""
        return next(iter(self.db.query(sql, params)), None)

    def _all(self, sql: str, params: tuple | dict = ()) -> list[dict[str, Any]]:
        return list(self.db.query(sql, params))
