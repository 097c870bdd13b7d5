"""Named schema migrations, recorded in the database.

``MIGRATIONS`` is an ordered list of ``(name, function)``. :func:`apply_migrations`
runs, in order, each one whose name is not yet in the ``migrations`` table,
each inside its own transaction together with the row that records it, so a
migration is applied completely and recorded, or not at all. Opening an
existing database applies only the missing ones. Names are never reused and
a released migration is never edited: change the schema with a new one.

Column conventions (see :mod:`bridge.store.codec`): money, prices, contract
sizes and other Decimals are TEXT; volumes are INTEGER canonical units; the
bridge's own clock readings are INTEGER nanoseconds UTC (``*_ns`` columns);
a master deal's venue time is ISO-8601 UTC TEXT; ``applied_at`` is ISO text.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone
from typing import Callable

from sqlite_utils import Database

Migration = tuple[str, Callable[[Database], None]]


def _run(db: Database, script: str) -> None:
    """Run a DDL script statement by statement, inside the caller's transaction
    (``executescript`` would commit). A ``;`` inside a comment does not split."""
    buffer = ""
    for piece in script.split(";"):
        buffer += piece + ";"
        if sqlite3.complete_statement(buffer):
            if buffer.strip(" \n;"):
                db.execute(buffer)
            buffer = ""
    if buffer.strip(" \n;"):
        raise ValueError(f"incomplete statement in migration: {buffer.strip()[:80]!r}")


def m0001_core(db: Database) -> None:
    """Accounts, symbol specs, strategies and subscriptions, MAM groups; the deal journal,
    the intents planned from it, and the master-to-follower position links."""
    _run(db, """
    CREATE TABLE accounts (
        id TEXT PRIMARY KEY,                 -- str(Login): platform/server/login
        platform TEXT NOT NULL,
        server TEXT NOT NULL,
        login INTEGER NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('master', 'follower')),
        currency TEXT NOT NULL,
        hedging INTEGER NOT NULL CHECK (hedging IN (0, 1))
    );
    CREATE TABLE symbol_specs (
        account_id TEXT NOT NULL,
        symbol TEXT NOT NULL,
        contract_size TEXT NOT NULL,         -- Decimal
        min_volume INTEGER NOT NULL,         -- canonical units
        max_volume INTEGER NOT NULL,
        step_volume INTEGER NOT NULL,
        digits INTEGER NOT NULL,
        PRIMARY KEY (account_id, symbol)
    );
    CREATE TABLE strategies (
        id TEXT PRIMARY KEY,
        master_id TEXT NOT NULL,             -- str(Login)
        settings TEXT NOT NULL               -- JSON
    );
    CREATE TABLE subscriptions (
        id TEXT PRIMARY KEY,
        strategy_id TEXT NOT NULL REFERENCES strategies(id),
        follower_id TEXT NOT NULL,           -- str(Login)
        settings TEXT NOT NULL,              -- JSON: the strategy's terms for this follower
        follower_settings TEXT NOT NULL,     -- JSON: the follower's own limits
        active INTEGER NOT NULL CHECK (active IN (0, 1)),
        stopped_out TEXT                     -- why copying stopped (equity stop...), or NULL
    );
    CREATE INDEX subscriptions_by_strategy ON subscriptions (strategy_id);
    CREATE INDEX subscriptions_by_follower ON subscriptions (follower_id);
    CREATE TABLE mam_groups (
        id TEXT PRIMARY KEY,
        master_id TEXT NOT NULL,             -- str(Login) of the manager's account
        method TEXT NOT NULL,                -- allocation.mam.Method value
        leftover TEXT NOT NULL,              -- allocation.mam.Leftover value
        force_minimum INTEGER NOT NULL CHECK (force_minimum IN (0, 1))
    );
    CREATE TABLE mam_members (
        group_id TEXT NOT NULL REFERENCES mam_groups(id) ON DELETE CASCADE,
        account_id TEXT NOT NULL,            -- str(Login)
        setting TEXT,                        -- Decimal: percent, multiplier or lots; NULL if unused
        PRIMARY KEY (group_id, account_id)
    );
    CREATE TABLE master_deals (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,   -- journal order; never reused
        venue_deal_id TEXT UNIQUE NOT NULL,      -- str(DealId): a redelivery is refused here
        account_id TEXT NOT NULL,                -- str(Login)
        position_id TEXT NOT NULL,               -- str(PositionId)
        symbol TEXT NOT NULL,
        kind TEXT NOT NULL,                      -- DealKind value
        side TEXT NOT NULL,                      -- Side value
        volume INTEGER NOT NULL,
        position_volume INTEGER NOT NULL,
        price TEXT, sl TEXT, tp TEXT,            -- Decimals or NULL
        time TEXT NOT NULL,                      -- venue time, ISO-8601 UTC
        detected_ns INTEGER NOT NULL,            -- bridge clock, ns UTC
        state TEXT NOT NULL DEFAULT 'new' CHECK (state IN ('new', 'planned'))
    );
    CREATE INDEX master_deals_by_state ON master_deals (state, seq);
    CREATE INDEX master_deals_by_account ON master_deals (account_id, seq);
    CREATE TABLE intents (
        key TEXT PRIMARY KEY,                    -- connectors.interface.idempotency_key
        deal_seq INTEGER NOT NULL REFERENCES master_deals(seq),
        follower_id TEXT NOT NULL,
        leg INTEGER NOT NULL,
        action TEXT NOT NULL,                    -- allocation.leg.Action value
        symbol TEXT NOT NULL,
        side TEXT NOT NULL,
        volume INTEGER NOT NULL,
        ideal TEXT NOT NULL,                     -- Decimal, canonical units
        reason TEXT,                             -- allocation.leg.Reason value
        position_id TEXT,                        -- str(PositionId) to close/modify
        sl TEXT, tp TEXT, reference_price TEXT,  -- Decimals
        state TEXT NOT NULL CHECK (state IN ('planned', 'sent', 'filled', 'rejected', 'unknown', 'skipped')),
        attempts INTEGER NOT NULL DEFAULT 0,
        planned_ns INTEGER NOT NULL,
        sent_ns INTEGER,
        done_ns INTEGER,
        order_id TEXT,                           -- str(OrderId)
        filled_position_id TEXT,                 -- str(PositionId)
        fill_price TEXT,                         -- Decimal
        fill_volume INTEGER,
        reject_reason TEXT,
        message TEXT,
        UNIQUE (deal_seq, follower_id, leg)
    );
    CREATE INDEX intents_by_state ON intents (state, deal_seq, follower_id, leg);
    CREATE TABLE links (
        master_position TEXT NOT NULL,           -- str(PositionId) on the master
        follower_id TEXT NOT NULL,
        follower_position TEXT NOT NULL,         -- str(PositionId) on the follower
        symbol TEXT NOT NULL,
        side TEXT NOT NULL,
        volume INTEGER NOT NULL,                 -- the follower position's open volume
        state TEXT NOT NULL CHECK (state IN ('open', 'closed', 'unlinked')),
        opened_by TEXT,                          -- the intent key that opened it
        PRIMARY KEY (master_position, follower_id)
    );
    CREATE INDEX links_by_follower ON links (follower_id, state)
    """)


def m0002_executions(db: Database) -> None:
    """Per-order execution records: latency stages and slippage, for reports."""
    _run(db, """
    CREATE TABLE executions (
        intent_key TEXT PRIMARY KEY,
        follower_id TEXT NOT NULL,
        master_account TEXT NOT NULL,
        venue TEXT NOT NULL,                     -- str(ServerId) of the follower's server
        master_price TEXT,                       -- Decimal
        master_time_ns INTEGER,
        fill_price TEXT,                         -- Decimal
        fill_time_ns INTEGER,
        slippage_points INTEGER,                 -- signed, positive = worse for the follower
        slippage_money TEXT,                     -- Decimal, account currency
        detect_ns INTEGER NOT NULL,              -- bridge saw the master deal
        decide_ns INTEGER NOT NULL,              -- intents planned
        send_ns INTEGER NOT NULL,                -- order sent
        fill_ns INTEGER NOT NULL                 -- result received
    );
    CREATE INDEX executions_by_venue ON executions (venue);
    CREATE INDEX executions_by_master ON executions (master_account);
    CREATE INDEX executions_by_follower ON executions (follower_id)
    """)


def m0003_links_per_position(db: Database) -> None:
    """A link per follower *position*: a hedging follower holds a position per master open and add,
    all copying one master position. Key (master position, follower, follower position)."""
    _run(db, """
    CREATE TABLE links_v3 (
        master_position TEXT NOT NULL,           -- str(PositionId) on the master
        follower_id TEXT NOT NULL,
        follower_position TEXT NOT NULL,         -- str(PositionId) on the follower
        symbol TEXT NOT NULL,
        side TEXT NOT NULL,
        volume INTEGER NOT NULL,                 -- the follower position's open volume
        state TEXT NOT NULL CHECK (state IN ('open', 'closed', 'unlinked')),
        opened_by TEXT,                          -- the intent key that opened it
        PRIMARY KEY (master_position, follower_id, follower_position)
    );
    INSERT INTO links_v3 (master_position, follower_id, follower_position, symbol, side, volume, state, opened_by)
        SELECT master_position, follower_id, follower_position, symbol, side, volume, state, opened_by
        FROM links ORDER BY rowid;
    DROP TABLE links;
    ALTER TABLE links_v3 RENAME TO links;
    CREATE INDEX links_by_follower ON links (follower_id, state)
    """)


#: Every migration, in the order it is applied. Append only.
def m0004_intents_state_check(db: Database) -> None:
    """The intents table rebuilt with its ``state`` CHECK written as ``=`` terms joined by OR instead of
    ``IN (six values)``: the same rule. SQLite evaluates an IN list of more than two constants by building
    a temporary index of the list, and a CHECK does so again for every row inserted or updated (about 2
    microseconds each: a tenth of the write of a 1,000-follower fan-out); the OR chain costs nothing."""
    _run(db, """
    CREATE TABLE intents_v4 (
        key TEXT PRIMARY KEY,                    -- connectors.interface.idempotency_key
        deal_seq INTEGER NOT NULL REFERENCES master_deals(seq),
        follower_id TEXT NOT NULL,
        leg INTEGER NOT NULL,
        action TEXT NOT NULL,                    -- allocation.leg.Action value
        symbol TEXT NOT NULL,
        side TEXT NOT NULL,
        volume INTEGER NOT NULL,
        ideal TEXT NOT NULL,                     -- Decimal, canonical units
        reason TEXT,                             -- allocation.leg.Reason value
        position_id TEXT,                        -- str(PositionId) to close/modify
        sl TEXT, tp TEXT, reference_price TEXT,  -- Decimals
        state TEXT NOT NULL CHECK (state = 'planned' OR state = 'sent' OR state = 'filled'
                                   OR state = 'rejected' OR state = 'unknown' OR state = 'skipped'),
        attempts INTEGER NOT NULL DEFAULT 0,
        planned_ns INTEGER NOT NULL,
        sent_ns INTEGER,
        done_ns INTEGER,
        order_id TEXT,                           -- str(OrderId)
        filled_position_id TEXT,                 -- str(PositionId)
        fill_price TEXT,                         -- Decimal
        fill_volume INTEGER,
        reject_reason TEXT,
        message TEXT,
        UNIQUE (deal_seq, follower_id, leg)
    );
    INSERT INTO intents_v4 (key, deal_seq, follower_id, leg, action, symbol, side, volume, ideal, reason,
                            position_id, sl, tp, reference_price, state, attempts, planned_ns, sent_ns, done_ns,
                            order_id, filled_position_id, fill_price, fill_volume, reject_reason, message)
        SELECT key, deal_seq, follower_id, leg, action, symbol, side, volume, ideal, reason,
               position_id, sl, tp, reference_price, state, attempts, planned_ns, sent_ns, done_ns,
               order_id, filled_position_id, fill_price, fill_volume, reject_reason, message
        FROM intents ORDER BY rowid;
    DROP TABLE intents;
    ALTER TABLE intents_v4 RENAME TO intents;
    CREATE INDEX intents_by_state ON intents (state, deal_seq, follower_id, leg)
    """)


def m0005_pamm(db: Database) -> None:
    """PAMM pools (bridge.pools.book): the pool with a JSON snapshot of its ledger state, the input
    journal of its steps (replaying it from the opening gives the snapshot), the ledger's entries,
    the cash the back office owes the master account per rollover, and the orders a rollover makes
    on the master account (pool stop, autocorrect)."""
    _run(db, """
    CREATE TABLE pamm_pools (
        id TEXT PRIMARY KEY,
        master TEXT NOT NULL,                -- str(Login)
        handling TEXT NOT NULL CHECK (handling IN ('reallocate', 'autocorrect')),
        schedule TEXT NOT NULL,              -- allocation.pamm.schedule text, e.g. 'daily 21:00'
        settings TEXT NOT NULL,              -- JSON: PoolSettings, Decimals as strings
        opened_at TEXT NOT NULL,             -- ISO-8601 with offset
        state TEXT NOT NULL,                 -- JSON snapshot of the Pool after the last step
        steps INTEGER NOT NULL,              -- how many rows pamm_steps holds for this pool
        updated_at TEXT NOT NULL
    );
    CREATE TABLE pamm_steps (
        pool TEXT NOT NULL REFERENCES pamm_pools(id),
        seq INTEGER NOT NULL,
        at TEXT NOT NULL,
        action TEXT NOT NULL CHECK (action IN ('deposit', 'withdraw', 'equity', 'rollover')),
        args TEXT NOT NULL,                  -- JSON, Decimals as strings
        source TEXT NOT NULL,                -- cli, schedule, operator...
        PRIMARY KEY (pool, seq)
    );
    CREATE TABLE pamm_entries (
        pool TEXT NOT NULL REFERENCES pamm_pools(id),
        seq INTEGER NOT NULL,
        at TEXT NOT NULL,
        kind TEXT NOT NULL,
        holder TEXT,
        amount TEXT NOT NULL,                -- Decimal
        units TEXT NOT NULL,                 -- Decimal
        counterparty TEXT,
        hwm TEXT,                            -- Decimal or NULL
        detail TEXT NOT NULL,
        covered TEXT,                        -- Decimal or NULL
        nav TEXT,                            -- Decimal or NULL
        PRIMARY KEY (pool, seq)
    );
    CREATE TABLE pamm_settlements (
        pool TEXT NOT NULL REFERENCES pamm_pools(id),
        rollover INTEGER NOT NULL,
        amount TEXT NOT NULL,                -- Decimal: deposits applied - payouts; negative = paid out of the master
        state TEXT NOT NULL CHECK (state IN ('due', 'settled')),
        created_at TEXT NOT NULL,
        settled_at TEXT,
        PRIMARY KEY (pool, rollover)
    );
    CREATE TABLE pamm_orders (
        key TEXT PRIMARY KEY,
        pool TEXT NOT NULL REFERENCES pamm_pools(id),
        rollover INTEGER NOT NULL,
        reason TEXT NOT NULL,                -- 'pool-stop' | 'autocorrect'
        account TEXT NOT NULL,               -- str(Login)
        position_id TEXT NOT NULL,
        symbol TEXT NOT NULL,
        side TEXT NOT NULL,
        volume INTEGER NOT NULL,             -- canonical units
        action TEXT NOT NULL CHECK (action IN ('close', 'partial-close')),
        state TEXT NOT NULL CHECK (state IN ('planned', 'sent', 'filled', 'rejected', 'unknown')),
        detail TEXT NOT NULL DEFAULT '',
        result TEXT,                         -- JSON: the venue's answer
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX pamm_orders_by_state ON pamm_orders (state)
    """)


def m0006_account_orders(db: Database) -> None:
    """One table for the orders the bridge sends on an account outside a master deal's fan-out
    (bridge.store.orders): a PAMM pool's on its master account (``pamm_orders`` moves here, origin
    ``pamm``, owner the pool, batch the rollover) and the closes of a follower's copied positions
    when it is unsubscribed or leaves a MAM group (origins ``unsubscribe``, ``mam-remove``), with
    the master positions whose links each close ends."""
    _run(db, """
    CREATE TABLE account_orders (
        key TEXT PRIMARY KEY,
        origin TEXT NOT NULL CHECK (origin IN ('pamm', 'unsubscribe', 'mam-remove')),
        owner TEXT NOT NULL,                 -- the pool, subscription or MAM group
        batch INTEGER NOT NULL,              -- the pool's rollover number; the close request's number
        reason TEXT NOT NULL,                -- 'pool-stop' | 'autocorrect' | 'unsubscribe' | 'mam-remove' | 'rest'
        account TEXT NOT NULL,               -- str(Login)
        position_id TEXT NOT NULL,
        symbol TEXT NOT NULL,
        side TEXT NOT NULL,
        volume INTEGER NOT NULL,             -- canonical units
        action TEXT NOT NULL CHECK (action IN ('close', 'partial-close')),
        state TEXT NOT NULL CHECK (state IN ('planned', 'sent', 'filled', 'rejected', 'unknown')),
        detail TEXT NOT NULL DEFAULT '',
        result TEXT,                         -- JSON: the venue's answer
        links TEXT NOT NULL DEFAULT '[]',    -- JSON: master positions whose link to this position it ends
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    INSERT INTO account_orders (key, origin, owner, batch, reason, account, position_id, symbol, side, volume,
                                action, state, detail, result, created_at, updated_at)
        SELECT key, 'pamm', pool, rollover, reason, account, position_id, symbol, side, volume, action, state,
               detail, result, created_at, updated_at FROM pamm_orders ORDER BY rowid;
    DROP TABLE pamm_orders;
    CREATE INDEX account_orders_by_state ON account_orders (state, origin);
    CREATE INDEX account_orders_by_owner ON account_orders (origin, owner, batch)
    """)


def m0007_masters(db: Database) -> None:
    """Master accounts added at runtime (``bridge accounts add --master``), beside bridge.toml's
    ``[[master]]``: the account, when it was added, and the venue deal its copying starts after
    (recorded when the daemon first watches it: ``''`` for an account with no deal yet, NULL until then).
    Deals up to that one are history from before the master was added, and are never copied."""
    _run(db, """
    CREATE TABLE masters (
        id TEXT PRIMARY KEY,                 -- str(Login)
        added_at TEXT NOT NULL,
        start_after TEXT                     -- str(DealId), '' (no deal yet), or NULL (not yet watched)
    )
    """)


def m0008_close_requests(db: Database) -> None:
    """A removal with ``--close-positions`` recorded as a request (bridge.store.close_requests), in the removal's
    transaction, beside the closes it plans at once: the follower's copies of that master still in flight then
    (intents not final, deals journalled but not yet planned, deals planned before the daemon took the new
    routes) are closed once they fill. ``batch`` is the request's number, shared with its account orders."""
    _run(db, """
    CREATE TABLE close_requests (
        batch INTEGER PRIMARY KEY,           -- the request's number: the batch of the closes it plans
        origin TEXT NOT NULL CHECK (origin = 'unsubscribe' OR origin = 'mam-remove'),
        owner TEXT NOT NULL,                 -- the subscription or MAM group
        follower TEXT NOT NULL,              -- str(Login)
        master TEXT NOT NULL,                -- str(Login)
        pending TEXT NOT NULL DEFAULT '[]',  -- JSON: keys of the follower's intents of the master's deals not final then
        after_seq INTEGER NOT NULL,          -- the master's deals from this journal seq on are covered too
        until_seq INTEGER,                   -- set when the follower follows the master again: not covered from it on
        state TEXT NOT NULL CHECK (state = 'waiting' OR state = 'done'),
        detail TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL,
        done_at TEXT
    );
    CREATE INDEX close_requests_by_state ON close_requests (state, follower)
    """)


def m0009_deals_unique_per_account(db: Database) -> None:
    """A master deal is unique by (account, venue deal id), no longer by the venue deal id alone: deal
    tickets are numbered per server, so two masters on two servers of one platform (two MT5 servers, two
    sim venues) can have deals of the same number, and the second was refused as a duplicate (lost).

    The table is rebuilt with its rows and seqs by SQLite's own procedure for a table others refer to
    (https://sqlite.org/lang_altertable.html, "making other kinds of table schema changes"): foreign keys
    off for this migration (:func:`apply_migrations` sees ``FOREIGN_KEYS_OFF``), a new table filled, the
    old one dropped, the new one renamed; the intents' ``REFERENCES master_deals`` then name the new table,
    which has every seq the old one had (``foreign_key_check`` before the commit)."""
    _run(db, """
    CREATE TABLE master_deals_v9 (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,   -- journal order; never reused
        venue_deal_id TEXT NOT NULL,             -- str(DealId): unique per account (below)
        account_id TEXT NOT NULL,                -- str(Login)
        position_id TEXT NOT NULL,               -- str(PositionId)
        symbol TEXT NOT NULL,
        kind TEXT NOT NULL,                      -- DealKind value
        side TEXT NOT NULL,                      -- Side value
        volume INTEGER NOT NULL,
        position_volume INTEGER NOT NULL,
        price TEXT, sl TEXT, tp TEXT,            -- Decimals or NULL
        time TEXT NOT NULL,                      -- venue time, ISO-8601 UTC
        detected_ns INTEGER NOT NULL,            -- bridge clock, ns UTC
        state TEXT NOT NULL DEFAULT 'new' CHECK (state IN ('new', 'planned')),
        UNIQUE (account_id, venue_deal_id)       -- a redelivery is refused here
    );
    INSERT INTO master_deals_v9 (seq, venue_deal_id, account_id, position_id, symbol, kind, side, volume,
                                 position_volume, price, sl, tp, time, detected_ns, state)
        SELECT seq, venue_deal_id, account_id, position_id, symbol, kind, side, volume, position_volume,
               price, sl, tp, time, detected_ns, state FROM master_deals ORDER BY seq;
    DROP TABLE master_deals;
    ALTER TABLE master_deals_v9 RENAME TO master_deals;
    CREATE INDEX master_deals_by_state ON master_deals (state, seq);
    CREATE INDEX master_deals_by_account ON master_deals (account_id, seq)
    """)
    broken = db.execute("PRAGMA foreign_key_check").fetchall()
    if broken:
        raise RuntimeError(f"0009: foreign keys broken by the rebuild: {broken[:5]}")


m0009_deals_unique_per_account.FOREIGN_KEYS_OFF = True  # type: ignore[attr-defined]


def m0010_links_per_master(db: Database) -> None:
    """Links carry their master account, and it is part of their key: position numbers are per server, so
    two masters on two servers of one platform may each have a position 7, and their copies were taken for
    one master position's (one master's close closed the other's copies). An existing link's master is the
    account of the deal whose intent opened it (``opened_by``), else of the latest deal of that position."""
    _run(db, """
    CREATE TABLE links_v10 (
        master_position TEXT NOT NULL,           -- str(PositionId) on the master
        master_id TEXT NOT NULL DEFAULT '',      -- str(Login) of the master account
        follower_id TEXT NOT NULL,
        follower_position TEXT NOT NULL,         -- str(PositionId) on the follower
        symbol TEXT NOT NULL,
        side TEXT NOT NULL,
        volume INTEGER NOT NULL,                 -- the follower position's open volume
        state TEXT NOT NULL CHECK (state IN ('open', 'closed', 'unlinked')),
        opened_by TEXT,                          -- the intent key that opened it
        PRIMARY KEY (master_position, master_id, follower_id, follower_position)
    );
    INSERT INTO links_v10 (master_position, master_id, follower_id, follower_position, symbol, side, volume, state,
                           opened_by)
        SELECT l.master_position,
               COALESCE((SELECT d.account_id FROM intents AS i JOIN master_deals AS d ON d.seq = i.deal_seq
                         WHERE i.key = l.opened_by),
                        (SELECT d.account_id FROM master_deals AS d WHERE d.position_id = l.master_position
                         ORDER BY d.seq DESC LIMIT 1), ''),
               l.follower_id, l.follower_position, l.symbol, l.side, l.volume, l.state, l.opened_by
        FROM links AS l ORDER BY l.rowid;
    DROP TABLE links;
    ALTER TABLE links_v10 RENAME TO links;
    CREATE INDEX links_by_follower ON links (follower_id, state)
    """)


MIGRATIONS: list[Migration] = [
    ("0001_core", m0001_core),
    ("0002_executions", m0002_executions),
    ("0003_links_per_position", m0003_links_per_position),
    ("0004_intents_state_check", m0004_intents_state_check),
    ("0005_pamm", m0005_pamm),
    ("0006_account_orders", m0006_account_orders),
    ("0007_masters", m0007_masters),
    ("0008_close_requests", m0008_close_requests),
    ("0009_deals_unique_per_account", m0009_deals_unique_per_account),
    ("0010_links_per_master", m0010_links_per_master),
]

_MIGRATIONS_TABLE = "CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"


def applied_migrations(db: Database) -> list[str]:
    """Names recorded in ``migrations``, in the order they were applied."""
    if not db["migrations"].exists():
        return []
    return [row["name"] for row in db.query("SELECT name FROM migrations ORDER BY rowid")]


def apply_migrations(db: Database, migrations: list[Migration] | None = None) -> list[str]:
    """Apply every migration of ``migrations`` (default :data:`MIGRATIONS`) not yet recorded.

    Each runs in its own ``BEGIN IMMEDIATE`` transaction with the ``INSERT`` that
    records it; the recorded-check is repeated inside that transaction, so two
    processes opening the same file at once apply each migration once. Returns
    the names applied now (empty when the database was up to date).
    """
    migrations = MIGRATIONS if migrations is None else migrations
    names = [name for name, _ in migrations]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate migration names in {names}")
    conn = db.conn
    if conn.in_transaction:
        raise RuntimeError("apply_migrations() must not run inside a transaction")
    db.execute(_MIGRATIONS_TABLE)
    done = set(applied_migrations(db))
    applied: list[str] = []
    for name, function in migrations:
        if name in done:
            continue
        # a migration that rebuilds a table others refer to runs with foreign keys off (SQLite's procedure:
        # the pragma is a no-op inside a transaction) and checks them itself before its commit
        keys_off = getattr(function, "FOREIGN_KEYS_OFF", False)
        if keys_off:
            conn.execute("PRAGMA foreign_keys = OFF")
        conn.execute("BEGIN IMMEDIATE")
        try:
            if conn.execute("SELECT 1 FROM migrations WHERE name = ?", (name,)).fetchone() is None:
                function(db)
                conn.execute(
                    "INSERT INTO migrations (name, applied_at) VALUES (?, ?)",
                    (name, datetime.now(timezone.utc).isoformat()),
                )
                applied.append(name)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        finally:
            if keys_off:
                conn.execute("PRAGMA foreign_keys = ON")
    return applied
