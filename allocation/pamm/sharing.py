"""Crystallising the period's P/L between holders: ``pro-rata`` or ``manager-first-loss``.

Between rollovers the pool's P/L belongs to the holders by units (pro-rata).
At each rollover the period's net P/L (marked equity minus the equity booked at
the last rollover) is crystallised. With ``pro-rata`` nothing more happens.

``manager-first-loss`` (the manager is the junior tranche, investors senior):

1. Loss. Each investor's *shortfall* is their equity at the last rollover minus
   the value of their units at the new NAV (rounded half-even to the cent).
   The manager covers every shortfall in full by transferring units to the
   investor at the new NAV (entry ``cover``), and the amount is added to that
   investor's ``covered`` balance. Investors lose nothing while the manager's
   equity lasts.
2. Tranche used up. If the manager's equity cannot cover all shortfalls, all of
   the manager's units go to the investors in proportion to their shortfalls
   (largest remainder on 1e-8 units), the rest of the loss stays with the
   investors pro-rata, and the pool halts (``tranche used up``). It also halts
   when a cover leaves the manager with nothing. A pool whose manager holds no
   units halts at its first loss.
3. Gains after a loss. An investor's gain in a period (value at the new NAV
   minus equity at the last rollover) first repays what the manager covered for
   that investor: units worth ``min(gain, covered)`` go back to the manager
   (entry ``recovery``) and ``covered`` goes down by as much. Only gain above that
   is the investor's (and can earn a performance fee). Investors are whole again
   once their gains have repaid the cover; the manager's own share of a loss is
   won back only by his own (now fewer) units, like anyone's, so a loss followed
   by an equal gain leaves the manager slightly below where he started.
4. ``covered`` is per investor; a full withdrawal forgets it (the manager's loss
   is final), a partial one scales it by the share kept; deposits leave it alone.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

from allocation.pamm.errors import PammError
from allocation.pamm.ledger import UNIT, Entry, Holder, Pool, nav_of, split_equity, to_units, value_of
from allocation.pamm.settings import CENT, LossSharing


class Work:
    """A rollover's scratch copy of the pool: mutated freely, frozen at the end or thrown away."""

    def __init__(self, pool: Pool, at) -> None:
        self.pool = pool
        self.at = at
        self.manager = pool.settings.manager
        self.holders: dict[str, dict] = {h.id: _fields(h) for h in pool.holders}
        self.equity = pool.equity
        self.entries: list[Entry] = []
        self.seq = pool.seq
        self.halted = pool.halted
        if self.manager not in self.holders:
            self.holders[self.manager] = _fields(Holder(self.manager))
        self.money: dict[str, Decimal] = {}

    def entry(self, kind: str, holder=None, amount=Decimal("0.00"), units=Decimal("0E-8"), counterparty=None,
              hwm=None, detail="", covered=None, nav=None) -> None:
        self.seq += 1
        self.entries.append(Entry(self.seq, self.at, kind, holder, amount, units, counterparty, hwm, detail,
                                  covered, nav))

    def units(self) -> Decimal:
        return sum((h["units"] for h in self.holders.values()), Decimal("0E-8"))

    def transfer(self, payer: str, payee: str, amount: Decimal, nav: Decimal, kind: str, detail: str = "",
                 units: Decimal | None = None) -> Decimal:
        """Move units worth ``amount`` (cents) from payer to payee at ``nav``; the amount moves in the books."""
        if units is None:
            units = min(to_units(amount, nav), self.holders[payer]["units"])
        self.holders[payer]["units"] -= units
        self.holders[payee]["units"] += units
        self.money[payer] -= amount
        self.money[payee] += amount
        hwm = self.holders[payer]["hwm"] if kind == "fee" else None
        self.entry(kind, payer, amount, -units, payee, hwm, detail)
        return units


def _fields(h: Holder) -> dict:
    return {name: getattr(h, name) for name in Holder.__slots__}


def crystallise(work: Work, nav: Decimal) -> None:
    """Book the period's P/L; with first-loss, move units between manager and investors."""
    pool = work.pool
    pnl = work.equity - pool.booked_equity
    work.money = split_equity(work.equity, [Holder(k, v["units"]) for k, v in work.holders.items()])
    if pnl:
        work.entry("pnl", amount=pnl, detail="crystallised")
    if pool.settings.loss_sharing is not LossSharing.MANAGER_FIRST_LOSS or pnl == 0 or work.units() == 0:
        return
    investors = {k: v for k, v in work.holders.items() if k != work.manager and v["units"] > 0}
    change = {k: (value_of(v["units"], nav) - v["equity"]).quantize(CENT, ROUND_HALF_EVEN)
              for k, v in investors.items()}
    if pnl < 0:
        _cover(work, nav, {k: -c for k, c in change.items() if c < 0})
    else:
        for k in sorted(investors):
            back = min(change[k], investors[k]["covered"])
            if back > 0:
                work.transfer(k, work.manager, back, nav, "recovery", "gain repays the manager's cover")
                investors[k]["covered"] -= back


def _cover(work: Work, nav: Decimal, shortfalls: dict[str, Decimal]) -> None:
    total = sum(shortfalls.values(), Decimal(0))
    if total == 0:
        return
    manager = work.holders[work.manager]
    available = work.money[work.manager]
    if total < available:
        for k in sorted(shortfalls):
            work.transfer(work.manager, k, shortfalls[k], nav, "cover", "manager's tranche absorbs the loss")
            work.holders[k]["covered"] += shortfalls[k]
        return
    # the tranche is used up: all of the manager's units, by shortfall, largest remainder on 1e-8 units
    atoms = int(manager["units"].scaleb(8))
    weights = {k: int(v.scaleb(2)) for k, v in shortfalls.items()}
    wsum = sum(weights.values())
    share = {k: atoms * w // wsum for k, w in weights.items()}
    order = sorted(weights, key=lambda k: (-(atoms * weights[k] % wsum), -weights[k], k))
    for k in order[: atoms - sum(share.values())]:
        share[k] += 1
    money_left = available
    ordered = sorted(k for k in shortfalls if share[k] or shortfalls[k])
    for i, k in enumerate(ordered):
        units = Decimal(share[k]).scaleb(-8).quantize(UNIT)
        amount = money_left if i == len(ordered) - 1 else min(money_left, value_of(units, nav).quantize(CENT))
        money_left -= amount
        work.transfer(work.manager, k, amount, nav, "cover", "manager's tranche used up", units=units)
        work.holders[k]["covered"] += amount
    work.halted = work.halted or "manager's tranche used up"


def marked_equity(pool: Pool) -> dict[str, Decimal]:
    """Each holder's equity if the pool were crystallised now (no fees): checks requests."""
    if pool.units == 0:
        return {h.id: Decimal("0.00") for h in pool.holders}
    work = Work(pool, pool.clock)
    crystallise(work, nav_of(work.equity, work.units()))
    return dict(work.money)


__all__ = ["Work", "crystallise", "marked_equity", "PammError"]
