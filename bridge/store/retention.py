"""Keeping the store's size in check while the daemon runs: an online backup, and pruning old detail.

A 1,000-follower deal writes about a thousand intent rows and as many
execution records; a busy master fills gigabytes a year. What may go, and
what must stay:

* the journal (``master_deals``) stays whole: one small row per master deal,
  and the record that makes a deal delivered again (a backfill, a replay) a
  duplicate instead of a new trade. Pruning never weakens exactly-once;
* a deal's intents and execution records go once the deal is older than the
  cutoff and every intent of it is final (filled, rejected, skipped): nothing
  is in flight, nothing is left to look up. Reports over a pruned period count
  the deals but no longer their orders;
* a master position's links that are no longer open (closed, unlinked) go once
  the position is closed at the master (its last journalled trade is a full
  close) and that deal is older than the cutoff: an ``unlinked`` link (a copy
  closed by hand) must outlive every later deal of its master position, since
  it is what keeps the bridge from reopening that copy;
* open links, PAMM tables (the ledger is an audit trail) and account orders
  are never pruned.

Each batch of deals is one short ``BEGIN IMMEDIATE`` transaction, so a running
daemon waits at most one batch (well under its busy timeout) to write.

A backup is ``VACUUM INTO``: a consistent snapshot of the store taken in one
read transaction (the daemon goes on writing meanwhile), written compacted to
a new file, created mode 0600, then checked with ``PRAGMA quick_check``.
"""

from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from bridge.store.errors import StoreError

#: deals pruned per transaction: a daemon writing meanwhile waits for one batch at most
BATCH = 200
FINAL = ("filled", "rejected", "skipped")


@dataclass
class PruneResult:
    deals: int = 0  # deals whose detail went (their journal rows stay)
    intents: int = 0
    executions: int = 0
    links: int = 0
    kept_unfinished: int = 0  # old deals kept because an intent of theirs is not final

    def as_dict(self) -> dict:
        return dict(vars(self))


def prunable_deals(conn: sqlite3.Connection, cutoff_ns: int) -> tuple[list[int], int]:
    """(seqs of deals older than ``cutoff_ns`` with detail left and every intent final, how many old deals
    are kept because an intent of theirs is not final)."""
    old = [seq for (seq,) in conn.execute(
        "SELECT seq FROM master_deals WHERE detected_ns < ? AND state = 'planned' "
        "AND EXISTS (SELECT 1 FROM intents WHERE deal_seq = seq) ORDER BY seq", (cutoff_ns,))]
    unfinished = {seq for (seq,) in conn.execute(
        "SELECT DISTINCT deal_seq FROM intents WHERE deal_seq IN (SELECT seq FROM master_deals WHERE detected_ns < ?) "
        "AND (state = 'planned' OR state = 'sent' OR state = 'unknown')", (cutoff_ns,))}
    return [seq for seq in old if seq not in unfinished], len(unfinished)


def prune(store, cutoff_ns: int, *, dry_run: bool = False, progress: Callable[[int], None] | None = None,
          plan: tuple[list[int], int] | None = None) -> PruneResult:
    """Delete the detail of deals older than ``cutoff_ns`` (bridge clock, ns since the epoch) as the module
    says; with ``dry_run``, count what would go and delete nothing. ``plan``: :func:`prunable_deals`'s answer,
    when the caller read it already (each batch is checked again in its transaction)."""
    conn = store.db.conn
    seqs, kept = plan if plan is not None else prunable_deals(conn, cutoff_ns)
    result = PruneResult(kept_unfinished=kept)
    for start in range(0, len(seqs), BATCH):
        batch = seqs[start:start + BATCH]
        marks = ", ".join("?" * len(batch))
        keys = f"SELECT key FROM intents WHERE deal_seq IN ({marks})"
        if dry_run:
            result.executions += conn.execute(f"SELECT count(*) FROM executions WHERE intent_key IN ({keys})",
                                              batch).fetchone()[0]
            result.intents += conn.execute(f"SELECT count(*) FROM intents WHERE deal_seq IN ({marks})",
                                           batch).fetchone()[0]
        else:
            with store.transaction():
                # again inside the transaction: an intent of these deals may have changed since they were read
                if conn.execute(f"SELECT count(*) FROM intents WHERE deal_seq IN ({marks}) AND NOT (state = "
                                f"'filled' OR state = 'rejected' OR state = 'skipped')", batch).fetchone()[0]:
                    raise StoreError("an intent of an old deal is not final any more: nothing of this batch pruned")
                result.executions += conn.execute(f"DELETE FROM executions WHERE intent_key IN ({keys})",
                                                  batch).rowcount
                result.intents += conn.execute(f"DELETE FROM intents WHERE deal_seq IN ({marks})", batch).rowcount
        result.deals += len(batch)
        if progress:
            progress(len(batch))
    result.links = _prune_links(store, cutoff_ns, dry_run)
    return result


def _prune_links(store, cutoff_ns: int, dry_run: bool) -> int:
    """Links no longer open of master positions closed at the master before the cutoff."""
    # each master position's last trade (one pass over the journal, grouped), kept where it closed it in full;
    # a position is its master's (numbers are per server): links name both
    closed_positions = (
        "SELECT d.account_id, d.position_id FROM master_deals AS d JOIN (SELECT max(seq) AS seq FROM master_deals "
        "WHERE kind != 'sltp' AND kind != 'balance' GROUP BY account_id, position_id) AS last ON d.seq = last.seq "
        "WHERE d.kind = 'close' AND d.detected_ns < ?")
    where = f"state != 'open' AND (master_id, master_position) IN ({closed_positions}) " \
            f"AND NOT EXISTS (SELECT 1 FROM links AS o WHERE o.master_position = links.master_position " \
            f"AND o.master_id = links.master_id AND o.state = 'open')"
    conn = store.db.conn
    if dry_run:
        return conn.execute(f"SELECT count(*) FROM links WHERE {where}", (cutoff_ns,)).fetchone()[0]
    with store.transaction():
        return conn.execute(f"DELETE FROM links WHERE {where}", (cutoff_ns,)).rowcount


def backup(store, target: Path) -> dict:
    """A consistent, compacted copy of the store at ``target`` (a new file, mode 0600), checked."""
    target = Path(target)
    if target.exists():
        raise StoreError(f"{target} exists: a backup never overwrites a file")
    if not target.parent.is_dir():
        raise StoreError(f"{target.parent} is not a directory")
    if store.db.conn.in_transaction:
        raise StoreError("a backup runs outside a transaction")
    # created empty and 0600 before a byte is written (VACUUM INTO writes into an empty file)
    os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    started = time.monotonic()
    try:
        store.db.conn.execute("VACUUM INTO ?", (str(target),))
        check = sqlite3.connect(f"file:{target}?mode=ro", uri=True)
        try:
            verdict = check.execute("PRAGMA quick_check").fetchone()[0]
            deals = check.execute("SELECT count(*) FROM master_deals").fetchone()[0]
        finally:
            check.close()
    except BaseException:
        if target.exists():
            target.unlink()
        raise
    if verdict != "ok":
        raise StoreError(f"the backup {target} failed its check: {verdict}")
    return {"path": str(target), "bytes": target.stat().st_size, "deals": deals,
            "seconds": round(time.monotonic() - started, 3), "check": verdict}


def rotate(directory: Path, keep: int) -> list[Path]:
    """Delete all but the ``keep`` newest ``copybridge-*.sqlite`` backups in ``directory`` (by name: the
    names carry their UTC time); returns what was deleted."""
    backups = sorted(Path(directory).glob("copybridge-*.sqlite"))
    gone = backups[:-keep] if len(backups) > keep else []
    for path in gone:
        path.unlink()
    return gone


def info(store) -> dict:
    """The store's size and what fills it."""
    conn = store.db.conn
    counts = {table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
              for table in ("master_deals", "intents", "executions", "links", "account_orders")}
    oldest = conn.execute("SELECT min(detected_ns) FROM master_deals WHERE EXISTS "
                          "(SELECT 1 FROM intents WHERE deal_seq = seq)").fetchone()[0]
    path = Path(store.path) if store.path else None
    size = sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p and p.exists()) if path else 0
    return {"path": str(path), "bytes": size, "rows": counts, "oldest_detail_ns": oldest}
