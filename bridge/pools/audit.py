"""Auditing a stored PAMM pool: its step journal replayed, its entries folded, against its snapshot.

:func:`apply_step` applies one ``pamm_steps`` row to the pure ledger (the book
uses it for every new step too, so a step is stored exactly as it was applied).
:func:`verify_pool` is :meth:`bridge.pools.book.PoolBook.verify`.
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any

import allocation.pamm as pamm
from allocation.pamm import Entry, PammError, Pool, RolloverResult, Step
from bridge.pools.codec import entry_to_dict, pool_from_dict, pool_to_dict, settings_from_dict


def apply_step(pool: Pool, step: dict) -> Step | RolloverResult:
    """Apply one journal step to the pure ledger (a rollover returns a RolloverResult: same .pool/.entries)."""
    at, args, action = datetime.fromisoformat(step["at"]), step["args"], step["action"]
    if action == "deposit":
        return pamm.request_deposit(pool, args["holder"], Decimal(args["amount"]), at, _undec(args["auto_close_below"]))
    if action == "withdraw":
        return pamm.request_withdrawal(pool, args["holder"], _undec(args["amount"]), at)
    if action == "equity":
        return pamm.set_equity(pool, Decimal(args["equity"]), at)
    if action == "rollover":
        return pamm.rollover(pool, at)
    raise PammError(f"unknown step action {action!r}")


def _same(pool_id: str, what: str, other: str, stored: Any, computed: Any, path: str = "") -> None:
    """Raise naming the first field where ``stored`` and ``computed`` differ."""
    if isinstance(stored, dict) and isinstance(computed, dict):
        for key in [*stored, *(k for k in computed if k not in stored)]:
            _same(pool_id, what, other, stored.get(key), computed.get(key), f"{path}.{key}" if path else key)
        return
    if isinstance(stored, list) and isinstance(computed, list):
        if len(stored) != len(computed):
            raise PammError(f"pool {pool_id!r}: {what} {path} has {len(stored)} items, the {other} give "
                            f"{len(computed)}")
        for i, (a, b) in enumerate(zip(stored, computed)):
            _same(pool_id, what, other, a, b, f"{path}[{i}]")
        return
    if stored != computed:
        raise PammError(f"pool {pool_id!r}: {what} {path} is {stored!r} but the {other} give {computed!r}")


def verify_pool(book, pool_id: str) -> dict:
    """Check the stored pool three ways; a summary, or a :class:`PammError` naming the first difference.

    1. the steps replayed from ``open_pool`` give the snapshot exactly (every
       field, pending requests and auto-close levels included);
    2. the entries they write are the stored entries exactly;
    3. the stored entries folded by :func:`~allocation.pamm.rebuild` give the
       snapshot's holders (units, equity, HWM, fees, cover) and the pool's
       equity, NAV, rollovers and halt.
    """
    row = book._get(pool_id)
    settings = settings_from_dict(json.loads(row["settings"]))
    opened_at = datetime.fromisoformat(row["opened_at"])
    steps = book.steps(pool_id)
    if [s["seq"] for s in steps] != list(range(1, len(steps) + 1)) or len(steps) != row["steps"]:
        raise PammError(f"pool {pool_id!r}: the step journal has {len(steps)} rows, expected seq 1..{row['steps']}")
    pool = pamm.open_pool(settings, opened_at)
    replayed: list[Entry] = []
    for s in steps:
        try:
            step = apply_step(pool, s)
        except PammError as exc:
            raise PammError(f"pool {pool_id!r}: step {s['seq']} ({s['action']}) does not replay: {exc}") from None
        pool = step.pool
        replayed.extend(step.entries)
    snapshot = json.loads(row["state"])
    _same(pool_id, "the snapshot", "replayed steps", snapshot, pool_to_dict(pool))
    stored = book.entries(pool_id)
    for mine, theirs in zip([entry_to_dict(e) for e in replayed], [entry_to_dict(e) for e in stored]):
        _same(pool_id, f"entry {theirs['seq']}", "replayed steps", theirs, mine)
    if len(stored) != len(replayed):
        raise PammError(f"pool {pool_id!r}: {len(stored)} entries stored, the steps write {len(replayed)}")
    folded = pamm.rebuild(settings, opened_at, stored)
    snap = pool_from_dict(snapshot)
    for name in ("equity", "nav", "rollovers", "halted"):
        if getattr(folded, name) != getattr(snap, name):
            raise PammError(f"pool {pool_id!r}: {name} is {getattr(snap, name)} in the snapshot but "
                            f"{getattr(folded, name)} from the entries")
    mine = {h.id: h for h in folded.holders}
    for h in snap.holders:
        other = mine.get(h.id)
        for name in ("units", "equity", "hwm", "fees_paid", "fees_received", "covered"):
            if other is None or getattr(other, name) != getattr(h, name):
                found = "nothing" if other is None else getattr(other, name)
                raise PammError(f"pool {pool_id!r}: holder {h.id!r} {name} is {getattr(h, name)} in the "
                                f"snapshot but {found} from the entries")
    extra = sorted(set(mine) - {h.id for h in snap.holders})
    if extra:
        raise PammError(f"pool {pool_id!r}: holder {extra[0]!r} appears in the entries but not the snapshot")
    return {"pool": pool_id, "ok": True, "steps": len(steps), "entries": len(stored), "rollovers": snap.rollovers,
            "holders": len(snap.holders), "equity": str(snap.equity),
            "nav": None if snap.nav is None else str(snap.nav)}


def _undec(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)
