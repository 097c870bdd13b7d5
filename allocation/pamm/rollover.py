"""The rollover: crystallise P/L, charge fees, apply due requests, check the books.

Order inside one rollover (all at one dealing NAV = pool equity / units, 10 places):

1. the period's P/L is crystallised (:mod:`allocation.pamm.sharing`);
2. the pool stop: NAV at or below ``peak NAV x (1 - stop_drawdown%)``, or the
   manager's tranche used up (first-loss) -> the pool is halted and the report
   says every master position must be closed. A halted pool takes no deposits
   (queued ones are rejected); withdrawals, P/L marks (the closing fills) and
   rollovers go on;
3. management fee, per investor: ``equity x fee% x elapsed / 365 days`` since
   the last rollover (or the pool's opening), rounded down to the cent;
4. performance fee, per investor, every ``performance_every``-th rollover:
   ``(equity - HWM) x fee%`` when positive, rounded down to the cent; the HWM
   becomes the equity after the fee. Below the HWM nothing is charged and the HWM
   stays, so a loss must be made good before any fee is due again; a fee that
   rounds down to nothing is not charged either, and the HWM stays too (the
   profit counts towards the next fee; every HWM move is in the ledger);
5. per-investor auto-close: an investor whose equity is at or below their
   auto-close level is withdrawn in full (lock-up and minimum ignored);
6. withdrawals due (placed at least ``freeze_seconds`` before this rollover), in
   request order: on a rollover that charges no performance fee, the fee on the
   withdrawn share of profit above the HWM is charged now; then the exit fee
   (``amount x exit%``, down to the cent); the rest is paid out by redeeming units.
   The HWM (and first-loss ``covered``) scale by the share of equity kept. A
   request that no longer fits (more than the equity, below the minimum
   remaining balance, the manager under his minimum) is rejected with an entry;
7. deposits due, in request order: units bought = amount / NAV rounded *down*
   to 1e-8; the HWM rises by the amount net of the entry fee (``amount x entry%``,
   down to the cent). A new investor is refused while the manager's stake is
   below ``manager_minimum``; every deposit is refused on a halted pool;
8. the books: holders' equity (the pool's cents split by units) must add up to
   the pool's equity, each holder must be within one cent of the ledger's running
   figure, pool equity must equal the old one plus deposits minus payouts, and
   fees paid must equal fees the manager received. Otherwise
   :class:`ConservationError` is raised and the old pool stays as it was.

Every fee is paid by moving the investor's units to the manager at the dealing
NAV (rounded half-even to 1e-8), so NAV is the same for everyone and no cash
leaves the pool for a fee.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal

from allocation.pamm.errors import ConservationError, PammError
from allocation.pamm.ledger import (Entry, Holder, Pool, Request, cents_down, nav_of, split_equity,
                                    to_units, value_of)
from allocation.pamm.requests import _advance, check_remaining
from allocation.pamm.settings import CENT
from allocation.pamm.sharing import Work, crystallise

YEAR = timedelta(days=365)


@dataclass(frozen=True, slots=True)
class HolderState:
    id: str
    units: Decimal
    equity: Decimal
    fees_paid: Decimal
    hwm: Decimal
    covered: Decimal


@dataclass(frozen=True, slots=True)
class RolloverReport:
    number: int
    at: datetime
    nav: Decimal
    dealing_nav: Decimal
    units: Decimal
    equity: Decimal
    holders: tuple[HolderState, ...]
    halted: str | None
    close_all_positions: bool  # the pool halted at this rollover: the master must be flattened
    rejected: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RolloverResult:
    pool: Pool
    entries: tuple[Entry, ...]
    report: RolloverReport


def rollover(pool: Pool, at: datetime) -> RolloverResult:
    pool = _advance(pool, at)
    if pool.last_rollover_at is not None and at <= pool.last_rollover_at:
        raise PammError(f"rollover at {at.isoformat()} is not after the last one "
                        f"({pool.last_rollover_at.isoformat()})")
    s = pool.settings
    work = Work(pool, at)
    outstanding = work.units()
    nav = nav_of(work.equity, outstanding) if outstanding else (pool.nav or s.initial_nav)
    was_halted = pool.halted
    crystallise(work, nav)
    peak = max(pool.peak_nav or nav, nav)
    if s.stop_drawdown is not None and outstanding and nav <= peak * (1 - s.stop_drawdown / 100):
        work.halted = work.halted or f"drawdown of {s.stop_drawdown}% from the highest NAV {peak}"
    if work.halted and not was_halted:
        work.entry("halt", detail=f"{work.halted}: close all positions")
    investors = sorted(k for k, h in work.holders.items() if k != work.manager and h["units"] > 0)
    _management_fee(work, nav, investors, at - (pool.last_rollover_at or pool.opened_at))
    performance_now = (pool.rollovers + 1) % s.performance_every == 0
    if performance_now:
        for k in investors:
            _performance_fee(work, nav, k, work.money[k])
    due = [r for r in pool.pending if r.at <= at - timedelta(seconds=s.freeze_seconds)]
    later = tuple(r for r in pool.pending if r not in due)
    rejected: list[str] = []
    cash_in = cash_out = Decimal("0.00")
    leaving = {r.holder for r in due if r.kind == "withdrawal" and r.amount is None}
    for k in investors:
        level = work.holders[k]["auto_close_below"]
        if level is not None and k not in leaving and work.money[k] <= level:
            work.entry("auto-close", k, work.money[k], detail=f"equity at or below {level}")
            cash_out += _withdraw(work, nav, Request(0, "withdrawal", k, None, at), performance_now, True)
            leaving.add(k)
    for r in (r for r in due if r.kind == "withdrawal"):
        if r.amount is not None and r.holder in leaving and work.holders[r.holder]["units"] == 0:
            _reject(work, r, "the holder already left the pool", rejected)
            continue
        try:
            cash_out += _withdraw(work, nav, r, performance_now, False)
        except PammError as exc:
            _reject(work, r, str(exc), rejected)
    for r in (r for r in due if r.kind == "deposit"):
        try:
            cash_in += _deposit(work, nav, r)
        except PammError as exc:
            _reject(work, r, str(exc), rejected)
    return _close(pool, work, at, nav, peak, later, cash_in, cash_out, tuple(rejected), was_halted)


def _management_fee(work: Work, nav: Decimal, investors: list[str], elapsed: timedelta) -> None:
    rate = work.pool.settings.management_fee
    if not rate:
        return
    micros = elapsed // timedelta(microseconds=1)
    year = YEAR // timedelta(microseconds=1)
    for k in investors:
        fee = cents_down(work.money[k] * rate / 100 * micros / year)
        if fee > 0:
            _charge(work, nav, k, fee, f"management {rate}%/year for {elapsed}")


def _performance_fee(work: Work, nav: Decimal, k: str, base: Decimal, share: Decimal = Decimal(1)) -> None:
    rate = work.pool.settings.performance_fee
    h = work.holders[k]
    profit = work.money[k] - h["hwm"]
    if not rate or profit <= 0:
        return
    fee = cents_down(profit * share * rate / 100)
    if fee <= 0:
        # a fee under a cent is not charged, and the profit is not crystallised either: the HWM stays, so the
        # profit counts towards the next fee (raising it here would forgo the fee on it, and leave the HWM
        # moved with no ledger entry to say so: a rebuild from the entries would disagree)
        return
    if share == 1:
        h["hwm"] = work.money[k] - fee
    _charge(work, nav, k, fee, f"performance {rate}% of {profit} above HWM"
            + ("" if share == 1 else f" x withdrawn share {share:.6f}"))


def _charge(work: Work, nav: Decimal, k: str, fee: Decimal, detail: str) -> None:
    work.transfer(k, work.manager, fee, nav, "fee", detail)
    work.holders[k]["fees_paid"] += fee
    work.holders[work.manager]["fees_received"] += fee


def _withdraw(work: Work, nav: Decimal, r: Request, performance_now: bool, forced: bool) -> Decimal:
    h = work.holders.get(r.holder)
    if h is None or h["units"] == 0:
        raise PammError(f"unknown investor {r.holder!r}: holds no units in the pool")
    equity = work.money[r.holder]
    amount = equity if r.amount is None else r.amount
    if amount > equity:
        raise PammError(f"{r.holder!r} asked for {amount} but holds {equity} at this rollover")
    if not forced and r.amount is not None:
        check_remaining(_view(work), r.holder, equity - amount)
    if r.holder != work.manager:
        if not performance_now and equity > 0:
            _performance_fee(work, nav, r.holder, equity, amount / equity)
        exit_fee = cents_down(amount * work.pool.settings.exit_fee / 100)
        if exit_fee > 0:
            _charge(work, nav, r.holder, exit_fee, f"exit {work.pool.settings.exit_fee}% of {amount}")
    fees = equity - work.money[r.holder]
    payout = amount - fees
    if payout < 0:
        raise PammError(f"{r.holder!r}: fees {fees} exceed the withdrawal {amount}")
    full = amount == equity
    units = h["units"] if full else min(to_units(payout, nav), h["units"])
    h["units"] -= units
    work.money[r.holder] -= payout
    work.equity -= payout
    kept = Decimal(0) if full else (equity - amount) / equity
    h["hwm"] = (h["hwm"] * kept).quantize(CENT, ROUND_HALF_EVEN)
    h["covered"] = (h["covered"] * kept).quantize(CENT, ROUND_HALF_EVEN)
    work.entry("withdrawal", r.holder, payout, -units, hwm=h["hwm"],
               detail=f"request #{r.id}: {amount} gross, {fees} fees" + (", everything" if full else ""),
               covered=h["covered"])
    return payout


def _deposit(work: Work, nav: Decimal, r: Request) -> Decimal:
    s = work.pool.settings
    if work.halted:
        raise PammError(f"pool is halted ({work.halted}): no deposits")
    h = work.holders.get(r.holder)
    new = h is None or h["units"] == 0
    if new and r.holder != work.manager and work.money.get(work.manager, 0) < s.manager_minimum:
        raise PammError(f"manager stake {work.money.get(work.manager, 0)} is below the minimum "
                        f"{s.manager_minimum}: the pool takes no new investors")
    units = to_units(r.amount, nav, ROUND_DOWN)
    if units <= 0:
        raise PammError(f"deposit {r.amount} buys no unit at NAV {nav}")
    if h is None:
        h = work.holders[r.holder] = {name: getattr(Holder(r.holder), name) for name in Holder.__slots__}
        work.money[r.holder] = Decimal("0.00")
    if new:
        h["joined_at"], h["hwm"], h["covered"] = work.at, Decimal("0.00"), Decimal("0.00")
    if r.auto_close_below is not None:
        h["auto_close_below"] = r.auto_close_below
    fee = Decimal("0.00") if r.holder == work.manager else cents_down(r.amount * s.entry_fee / 100)
    h["units"] += units
    h["hwm"] += r.amount - fee
    work.money[r.holder] += r.amount
    work.equity += r.amount
    work.entry("deposit", r.holder, r.amount, units, hwm=h["hwm"], detail=f"request #{r.id} at NAV {nav}")
    if fee > 0:
        _charge(work, nav, r.holder, fee, f"entry {s.entry_fee}% of {r.amount}")
    return r.amount


def _reject(work: Work, r: Request, why: str, rejected: list[str]) -> None:
    work.entry("rejected", r.holder, r.amount or Decimal("0.00"), detail=f"{r.kind} #{r.id}: {why}")
    rejected.append(f"{r.kind} #{r.id} ({r.holder}): {why}")


def _view(work: Work) -> Pool:
    """The pool as it stands mid-rollover (for the withdrawal rules)."""
    holders = tuple(Holder(k, v["units"]) for k, v in work.holders.items())
    return replace(work.pool, holders=holders)


def _close(pool, work, at, nav, peak, later, cash_in, cash_out, rejected, was_halted) -> RolloverResult:
    s = pool.settings
    if any(h["units"] < 0 for h in work.holders.values()):
        raise ConservationError("rollover would leave a holder with negative units")
    expected = pool.equity + cash_in - cash_out
    if work.equity != expected:
        raise ConservationError(f"pool equity {work.equity} != {pool.equity} + deposits {cash_in} "
                                f"- payouts {cash_out}; rollover not applied")
    holders = [Holder(k, v["units"]) for k, v in sorted(work.holders.items())]
    split = split_equity(work.equity, holders)
    if sum(split.values(), Decimal(0)) != work.equity:
        raise ConservationError(f"holders' equity {sum(split.values())} != pool equity {work.equity}")
    for k, value in split.items():
        if abs(value - work.money[k]) > CENT:
            raise ConservationError(f"holder {k!r}: equity {value} by units but {work.money[k]} in the "
                                    "ledger (more than a cent apart); rollover not applied")
    paid = sum(h["fees_paid"] for h in work.holders.values()) - sum(h.fees_paid for h in pool.holders)
    got = (work.holders[work.manager]["fees_received"]
           - (pool.holder(s.manager).fees_received if pool.holder(s.manager) else 0))
    if paid != got:
        raise ConservationError(f"fees paid {paid} != fees the manager received {got}")
    units = work.units()
    new_nav = nav_of(work.equity, units) if units else nav
    frozen = tuple(Holder(**{**work.holders[k], "equity": split[k]}) for k in sorted(work.holders))
    number = pool.rollovers + 1
    work.entry("rollover", amount=work.equity, units=units, nav=new_nav,
               detail=f"#{number} nav {new_nav} dealing nav {nav}")
    new_pool = replace(pool, holders=frozen, equity=work.equity, booked_equity=work.equity, nav=new_nav,
                       peak_nav=max(pool.peak_nav or new_nav, new_nav), last_rollover_at=at, rollovers=number, pending=later,
                       halted=work.halted, seq=work.seq)
    report = RolloverReport(
        number, at, new_nav, nav, units, work.equity,
        tuple(HolderState(h.id, h.units, h.equity, h.fees_paid, h.hwm, h.covered) for h in frozen),
        work.halted, bool(work.halted and not was_halted), rejected)
    return RolloverResult(new_pool, tuple(work.entries), report)


__all__ = ["rollover", "RolloverResult", "RolloverReport", "HolderState", "value_of"]
