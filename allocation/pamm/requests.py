"""Steps between rollovers: deposit and withdrawal requests, and the pool's P/L.

Each function checks its input, and either raises :class:`PammError` (one line,
nothing changed: the caller still holds the old pool) or returns a new pool with
the entries it wrote. Requests are only queued here; they are applied by the
next rollover outside the freeze window (see :mod:`allocation.pamm.rollover`).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from allocation.pamm.errors import PammError
from allocation.pamm.ledger import Entry, Pool, Request, Step, money
from allocation.pamm.sharing import marked_equity
from allocation.pamm.settings import PoolSettings


def open_pool(settings: PoolSettings, at: datetime) -> Pool:
    _check_time(at)
    return Pool(settings=settings, opened_at=at, clock=at)


def request_deposit(pool: Pool, holder: str, amount, at: datetime, auto_close_below=None) -> Step:
    pool = _advance(pool, at)
    amount = money(amount, "deposit amount", positive=True)
    _check_id(holder)
    if pool.halted:
        raise PammError(f"pool is halted ({pool.halted}): no deposits")
    if auto_close_below is not None:
        auto_close_below = money(auto_close_below, "auto-close level")
    manager = pool.settings.manager
    current = pool.holder(holder)
    if holder != manager and (current is None or current.units == 0):
        stake = _equity_now(pool).get(manager, 0) + sum(
            (r.amount for r in pool.pending if r.kind == "deposit" and r.holder == manager), 0)
        if stake < pool.settings.manager_minimum:
            raise PammError(f"manager stake {stake:.2f} is below the minimum "
                            f"{pool.settings.manager_minimum}: the pool takes no new investors")
    return _queue(pool, Request(pool.next_request, "deposit", holder, amount, at, auto_close_below))


def request_withdrawal(pool: Pool, holder: str, amount, at: datetime) -> Step:
    """Queue a withdrawal of ``amount`` (``None``: everything the holder has)."""
    pool = _advance(pool, at)
    _check_id(holder)
    if amount is not None:
        amount = money(amount, "withdrawal amount", positive=True)
    current = pool.holder(holder)
    if current is None or current.units == 0:
        raise PammError(f"unknown investor {holder!r}: holds no units in the pool")
    settings = pool.settings
    if holder != settings.manager and current.joined_at is not None and settings.lockup_seconds:
        free = current.joined_at + timedelta(seconds=settings.lockup_seconds)
        if at < free:
            raise PammError(f"{holder!r} is in lock-up until {free.isoformat()}: no withdrawals before then")
    queued = sum((r.amount or 0 for r in pool.pending if r.kind == "withdrawal" and r.holder == holder), 0)
    if any(r.kind == "withdrawal" and r.holder == holder and r.amount is None for r in pool.pending):
        raise PammError(f"{holder!r} already asked to withdraw everything")
    if amount is not None:
        equity = _equity_now(pool)[holder]
        available = equity - queued
        if amount > available:
            raise PammError(f"{holder!r} asks to withdraw {amount} but holds {available:.2f}"
                            + (f" after {queued:.2f} already requested" if queued else ""))
        check_remaining(pool, holder, available - amount)
    return _queue(pool, Request(pool.next_request, "withdrawal", holder, amount, at))


def check_remaining(pool: Pool, holder: str, remaining) -> None:
    """What a partial withdrawal must leave: the minimum balance; the manager keeps his minimum stake."""
    settings = pool.settings
    if holder == settings.manager:
        investors = any(h.units > 0 for h in pool.holders if h.id != holder)
        if investors and remaining < settings.manager_minimum:
            raise PammError(f"the manager must keep at least {settings.manager_minimum} while investors "
                            f"are in the pool; this would leave {remaining:.2f}")
    elif 0 < remaining < settings.minimum_remaining:
        raise PammError(f"{holder!r} would keep {remaining:.2f}, below the minimum remaining balance "
                        f"{settings.minimum_remaining}; withdraw everything or less")


def apply_pnl(pool: Pool, amount, at: datetime) -> Step:
    """The master account's result since the last step (realised and floating)."""
    amount = money(amount, "P/L", allow_negative=True)
    return set_equity(pool, pool.equity + amount, at)


def set_equity(pool: Pool, equity, at: datetime) -> Step:
    """Mark the pool at the master account's equity; the change is one P/L entry."""
    pool = _advance(pool, at)
    equity = money(equity, "pool equity", allow_negative=True)
    if equity < 0:
        raise PammError(f"pool equity cannot go below zero (got {equity}): the broker's "
                        "negative-balance protection is outside the pool")
    if pool.units == 0 and equity != pool.equity:
        raise PammError("the pool has no holders yet: no P/L before the first deposit is applied")
    change = equity - pool.equity
    seq = pool.seq + 1
    entry = Entry(seq, at, "pnl", amount=change, detail="marked")
    return Step(replace(pool, equity=equity, seq=seq), (entry,))


def _queue(pool: Pool, request: Request) -> Step:
    seq = pool.seq + 1
    text = "everything" if request.amount is None else str(request.amount)
    entry = Entry(seq, request.at, "request", request.holder, request.amount or 0,
                  detail=f"{request.kind} #{request.id}: {text}")
    new = replace(pool, pending=pool.pending + (request,), next_request=request.id + 1, seq=seq)
    return Step(new, (entry,))


def _equity_now(pool: Pool) -> dict:
    """Holders' equity at the current mark, loss sharing applied (checks requests only)."""
    return marked_equity(pool)


def _check_id(holder: object) -> None:
    if not isinstance(holder, str) or not holder.strip():
        raise PammError(f"holder id must be a non-empty string, got {holder!r}")


def _check_time(at: object) -> None:
    if not isinstance(at, datetime) or at.tzinfo is None:
        raise PammError(f"times must be timezone-aware datetimes, got {at!r}")


def _advance(pool: Pool, at: datetime) -> Pool:
    _check_time(at)
    if pool.clock is not None and at < pool.clock:
        raise PammError(f"time goes backwards: {at.isoformat()} is before {pool.clock.isoformat()}")
    return replace(pool, clock=at)


