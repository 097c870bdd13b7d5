"""Read the store for a report window: every follower order of the master deals detected in it, and the
PAMM pools' NAV after each rollover in it.

An order is an intent; the window is on the master deal's detection time (``master_deals.detected_ns``,
the same clock reading as ``executions.detect_ns``), so a deal and all its followers' orders fall in
the same window. The store is opened as it is: nothing is migrated or written. Rows are read in
batches, and ``progress(n)`` (if given) is called after each batch with its size.
"""

from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Callable, Iterator

from sqlite_utils import Database

from bridge.errors import InputError
from bridge.report.window import Window
from bridge.store.base import connect
from bridge.store.codec import dec_in

#: the tables a report reads; a file without them is not a copybridge store
REQUIRED_TABLES = ("master_deals", "intents", "executions")
BATCH = 2000
UNKNOWN_CURRENCY = "unknown"


@dataclass(frozen=True, slots=True)
class Order:
    """One follower order (an intent) and, if it filled, its execution record."""

    key: str
    master: str  # str(Login) of the master account
    follower: str  # str(Login)
    venue: str  # str(ServerId) of the follower's server
    state: str  # planned, sent, filled, rejected, unknown, skipped
    plan_reason: str | None  # why the plan sized or skipped it (allocation.leg.Reason value)
    reject_reason: str | None
    detect_ns: int
    currency: str  # the follower account's currency, or UNKNOWN_CURRENCY
    # from the execution record (None when there is none):
    decide_ns: int | None = None
    send_ns: int | None = None
    fill_ns: int | None = None
    slippage_points: int | None = None
    slippage_money: Decimal | None = None

    @property
    def executed(self) -> bool:
        return self.fill_ns is not None


@dataclass(frozen=True, slots=True)
class NavPoint:
    """A PAMM pool's NAV after one rollover."""

    pool: str
    seq: int
    at: datetime
    nav: Decimal


@dataclass(frozen=True, slots=True)
class WindowData:
    window: Window
    orders: list[Order]
    nav: list[NavPoint]
    pamm: bool  # False: the store has no PAMM pool (or no PAMM tables: an older store)


def open_db(path: Path) -> Database:
    """The store at ``path``, opened without migrating; an InputError if it is missing or is not one."""
    if not path.is_file():
        raise InputError(f"no store at {path}")
    try:
        db = connect(path)
        tables = set(db.table_names())
    except sqlite3.DatabaseError as e:
        raise InputError(f"{path} is not a copybridge store ({e})") from None
    missing = [t for t in REQUIRED_TABLES if t not in tables]
    if missing:
        db.close()
        raise InputError(f"{path} is not a copybridge store (no {', '.join(missing)} table)")
    return db


@contextmanager
def store_db(path: Path) -> Iterator[Database]:
    """:func:`open_db`, closed on leaving the block."""
    db = open_db(path)
    try:
        yield db
    finally:
        db.close()


_ORDERS = """
SELECT i.key, d.account_id AS master, i.follower_id AS follower, e.venue, i.state, i.reason AS plan_reason,
       i.reject_reason, COALESCE(e.detect_ns, d.detected_ns) AS detect_ns, {currency} AS currency,
       e.decide_ns, e.send_ns, e.fill_ns, e.slippage_points, e.slippage_money
FROM master_deals d
JOIN intents i ON i.deal_seq = d.seq
LEFT JOIN executions e ON e.intent_key = i.key
{accounts}
WHERE d.detected_ns >= ? AND d.detected_ns < ?
ORDER BY d.detected_ns, d.seq, i.follower_id, i.leg
"""


def count_orders(db: Database, window: Window) -> int:
    """How many orders :func:`orders` will read (for a progress bar's length)."""
    row = db.execute("SELECT COUNT(*) FROM master_deals d JOIN intents i ON i.deal_seq = d.seq "
                     "WHERE d.detected_ns >= ? AND d.detected_ns < ?", (window.start_ns, window.end_ns)).fetchone()
    return row[0]


def orders(db: Database, window: Window, progress: Callable[[int], None] | None = None) -> Iterator[Order]:
    """Every order of the master deals detected in ``window``, in detection order."""
    has_accounts = "accounts" in db.table_names()
    sql = _ORDERS.format(currency="a.currency" if has_accounts else "NULL",
                         accounts="LEFT JOIN accounts a ON a.id = i.follower_id" if has_accounts else "")
    cursor = db.execute(sql, (window.start_ns, window.end_ns))
    names = [c[0] for c in cursor.description]
    while True:
        batch = cursor.fetchmany(BATCH)
        if not batch:
            return
        for values in batch:
            row = dict(zip(names, values))
            row["venue"] = row["venue"] or row["follower"].rsplit("/", 1)[0]
            row["currency"] = row["currency"] or UNKNOWN_CURRENCY
            row["slippage_money"] = dec_in(row["slippage_money"])
            yield Order(**row)
        if progress is not None:
            progress(len(batch))


def nav_points(db: Database, window: Window) -> list[NavPoint] | None:
    """Each pool's NAV after every rollover in ``window``, by pool then time; None if the store has no
    PAMM pool (or an older store without the PAMM tables). A row whose time or NAV cannot be read is an
    InputError naming it."""
    if "pamm_pools" not in db.table_names() or not db["pamm_pools"].count:
        return None
    points = []
    for row in db.query("SELECT pool, seq, at, nav FROM pamm_entries WHERE kind = 'rollover' AND nav IS NOT NULL "
                        "ORDER BY pool, seq"):
        try:
            at = datetime.fromisoformat(row["at"])
            nav = Decimal(row["nav"])
        except (TypeError, ValueError, InvalidOperation):
            raise InputError(f"pamm_entries: pool {row['pool']!r} seq {row['seq']}: unreadable time or NAV "
                             f"({row['at']!r}, {row['nav']!r})") from None
        if at.tzinfo is None:
            raise InputError(f"pamm_entries: pool {row['pool']!r} seq {row['seq']}: time {row['at']!r} has no "
                             f"UTC offset")
        at = at.astimezone(timezone.utc)
        if window.holds(at) and nav.is_finite():
            points.append(NavPoint(str(row["pool"]), row["seq"], at, nav))
    return points


def read_window(path: Path, window: Window, progress: Callable[[int], None] | None = None) -> WindowData:
    """Everything a report of ``window`` needs from the store at ``path``, in memory (the CLI streams
    :func:`orders` into the summary instead)."""
    with store_db(path) as db:
        read = list(orders(db, window, progress))
        nav = nav_points(db, window)
    return WindowData(window, read, nav or [], nav is not None)
