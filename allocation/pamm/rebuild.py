"""Rebuild a pool's ledger from its entries alone, without re-running any rule.

Folding the entries (units moved, cash in and out, fees, high-water marks,
first-loss cover, halts, rollovers) must give the same holders and pool as the
rollovers computed; the tests compare the two. Pending requests are inputs, not
movements: they are rebuilt by replaying the steps, not the entries.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from decimal import Decimal

from allocation.pamm.errors import PammError
from allocation.pamm.ledger import Entry, Holder, Pool, split_equity
from allocation.pamm.settings import PoolSettings


def rebuild(settings: PoolSettings, opened_at: datetime, entries) -> Pool:
    h: dict[str, dict] = {}
    equity = booked = Decimal("0.00")
    nav = peak = last = None
    rollovers, halted, seq = 0, None, 0

    def holder(k: str) -> dict:
        if k not in h:
            h[k] = {name: getattr(Holder(k), name) for name in Holder.__slots__}
        return h[k]

    for e in entries:
        e: Entry
        if e.seq != seq + 1:
            raise PammError(f"entry {e.seq} follows {seq}: the journal has a gap")
        seq = e.seq
        if e.kind == "pnl" and e.detail == "marked":
            equity += e.amount
        elif e.kind == "deposit":
            d = holder(e.holder)
            if d["units"] == 0:
                d["joined_at"], d["covered"] = e.at, Decimal("0.00")
            d["units"] += e.units
            equity += e.amount
        elif e.kind == "withdrawal":
            d = holder(e.holder)
            d["units"] += e.units
            d["covered"] = e.covered
            equity -= e.amount
        elif e.kind in ("fee", "cover", "recovery"):
            payer, payee = holder(e.holder), holder(e.counterparty)
            payer["units"] += e.units
            payee["units"] -= e.units
            if e.kind == "fee":
                payer["fees_paid"] += e.amount
                payee["fees_received"] += e.amount
            elif e.kind == "cover":
                payee["covered"] += e.amount
            else:
                payer["covered"] -= e.amount
        elif e.kind == "halt":
            halted = e.detail.rsplit(": close all positions", 1)[0]
        elif e.kind == "rollover":
            booked, last, rollovers = equity, e.at, rollovers + 1
            nav = e.nav
            peak = nav if peak is None else max(peak, nav)
        if e.hwm is not None and e.holder is not None:
            holder(e.holder)["hwm"] = e.hwm
    if rollovers:
        holder(settings.manager)
    frozen = [Holder(**d) for _, d in sorted(h.items())]
    split = split_equity(booked, frozen) if rollovers else {d.id: d.equity for d in frozen}
    frozen = tuple(replace(d, equity=split[d.id]) for d in frozen)
    return Pool(settings=settings, opened_at=opened_at, holders=frozen, equity=equity, booked_equity=booked,
                nav=nav, peak_nav=peak, last_rollover_at=last, rollovers=rollovers, halted=halted, seq=seq)
