"""A rollover as JSON and as text: the shape ``bridge pamm simulate`` prints, for every PAMM command.

Decimals are printed as strings (``format(d, "f")``: no exponent), NAV with
:func:`~allocation.pamm.show_nav`. A rollover's object is the simulate shape
(``nav``, ``units``, ``equity``, ``holders``) plus ``number``, ``at``,
``halted``, ``close_all_positions``, ``rejected``, ``settlement`` (the net cash
the master account must receive: deposits applied minus payouts; ``"0.00"``
when none) and, when known, ``orders`` (the pool orders this rollover made).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Iterable

from allocation.pamm import RolloverReport, RolloverResult, show_nav
from bridge.cli.render import table


def d(value: Any) -> str | None:
    """A Decimal as plain text (no exponent); None stays None."""
    return None if value is None else format(value, "f")


def report_dict(r: RolloverReport) -> dict:
    """One element of ``bridge pamm simulate --json``'s ``rollovers``."""
    return {"nav": show_nav(r.nav), "units": d(r.units), "equity": d(r.equity),
            "holders": [{"id": h.id, "units": d(h.units), "equity": d(h.equity),
                         "fees_paid": d(h.fees_paid), "hwm": d(h.hwm)} for h in r.holders]}


def report_text(r: RolloverReport) -> str:
    head = (f"rollover #{r.number} at {r.at.isoformat()}: NAV {show_nav(r.nav)}, "
            f"units {d(r.units)}, equity {d(r.equity)}")
    if r.halted:
        head += f"\nHALTED: {r.halted}" + (" -- close all master positions" if r.close_all_positions else "")
    lines = [head]
    lines.extend(f"rejected: {why}" for why in r.rejected)
    rows = [[h.id, d(h.units), d(h.equity), d(h.fees_paid), d(h.hwm)] for h in r.holders]
    lines.append(table(["holder", "units", "equity", "fees paid", "hwm"], rows))
    return "\n".join(lines)


def net_cash(result: RolloverResult) -> Decimal:
    """What the master account must receive for this rollover: deposits applied - payouts."""
    total = Decimal("0.00")
    for e in result.entries:
        if e.kind == "deposit":
            total += e.amount
        elif e.kind == "withdrawal":
            total -= e.amount
    return total


def order_dict(o: Any) -> dict:
    return {"key": o.key, "rollover": o.batch, "reason": o.reason, "account": o.account,
            "position_id": o.position_id, "symbol": o.symbol, "side": o.side, "volume": o.volume,
            "action": o.action, "state": o.state, "detail": o.detail}


def rollover_dict(result: RolloverResult, orders: Iterable[Any] | None = None) -> dict:
    """The rollover's JSON object; ``orders``: pool orders (only this rollover's are kept)."""
    r = result.report
    out = {**report_dict(r), "number": r.number, "at": r.at.isoformat(), "halted": r.halted,
           "close_all_positions": r.close_all_positions, "rejected": list(r.rejected),
           "settlement": d(net_cash(result))}
    if orders is not None:
        out["orders"] = [order_dict(o) for o in orders if o.batch == r.number]
    return out


def rollover_text(data: dict) -> str:
    """The text of a rollover given as :func:`rollover_dict`'s object (what the daemon answers)."""
    head = (f"rollover #{data['number']} at {data['at']}: NAV {data['nav']}, "
            f"units {data['units']}, equity {data['equity']}")
    if data.get("halted"):
        head += f"\nHALTED: {data['halted']}" + (" -- close all master positions"
                                                  if data.get("close_all_positions") else "")
    lines = [head]
    lines.extend(f"rejected: {why}" for why in data.get("rejected", []))
    rows = [[h["id"], h["units"], h["equity"], h["fees_paid"], h["hwm"]] for h in data["holders"]]
    lines.append(table(["holder", "units", "equity", "fees paid", "hwm"], rows))
    cash = Decimal(data.get("settlement") or "0")
    if cash > 0:
        lines.append(f"settlement due: {data['settlement']} to be paid into the master account "
                     f"(confirm with: bridge pamm settle POOL {data['number']})")
    elif cash < 0:
        lines.append(f"settlement due: {d(-cash)} to be paid out of the master account to investors "
                     f"(confirm with: bridge pamm settle POOL {data['number']})")
    for o in data.get("orders", []):
        lines.append(f"order {o['key']}: {o['reason']} {o['action']} {o['volume']} of position "
                     f"{o['position_id']} ({o['symbol']}): {o['state']}")
    return "\n".join(lines)
