"""An investor's statement: units, NAV, deposits, withdrawals, fees and return. Nothing else.

Privacy (money.md section 4): the statement is built from an allow-list of
ledger entry kinds that concern this investor only. The pool's P/L marks,
other holders, the manager's cover and any master position or trade never
appear; the core has no positions, and a caller that passes extra data gets it
ignored.
"""

from __future__ import annotations

from decimal import Decimal

from allocation.pamm.errors import PammError
from allocation.pamm.ledger import Pool, show_nav

_SHOWN = {"deposit": "deposit", "withdrawal": "withdrawal", "fee": "fee", "rejected": "rejected"}


def investor_statement(pool: Pool, entries, investor: str) -> dict:
    holder = pool.holder(investor)
    if holder is None:
        raise PammError(f"unknown investor {investor!r}")
    lines = []
    deposited = withdrawn = Decimal("0.00")
    for e in entries:
        if e.holder != investor or e.kind not in _SHOWN:
            continue
        if e.kind == "fee" and e.counterparty is None:
            continue
        lines.append({"at": e.at.isoformat(), "type": _SHOWN[e.kind], "amount": str(e.amount),
                      "units": str(e.units), "detail": e.detail if e.kind == "fee" else ""})
        if e.kind == "deposit":
            deposited += e.amount
        elif e.kind == "withdrawal":
            withdrawn += e.amount
    gain = holder.equity + withdrawn - deposited
    return {
        "investor": investor,
        "units": str(holder.units),
        "nav": show_nav(pool.nav) if pool.nav is not None else None,
        "equity": str(holder.equity),
        "deposited": str(deposited),
        "withdrawn": str(withdrawn),
        "fees_paid": str(holder.fees_paid),
        "high_water_mark": str(holder.hwm),
        "return": str(gain),
        "lines": lines,
    }
