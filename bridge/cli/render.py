"""Human output: aligned text tables."""

from __future__ import annotations

from allocation.leg import Allocation


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    numeric = [all(_is_number(r[i]) for r in rows) and bool(rows) for i in range(len(headers))]

    def line(cells: list[str]) -> str:
        out = [c.rjust(w) if num else c.ljust(w) for c, w, num in zip(cells, widths, numeric)]
        return "  ".join(out).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def allocation_table(result: Allocation, title: str) -> str:
    data = result.as_dict()
    rows = [
        [leg["account"], leg["action"], leg["side"], leg["symbol"], leg["lots"], str(leg["units"]),
         leg["ideal_lots"], leg["reason"] or ""]
        for leg in data["legs"]
    ]
    head = (f"{title}: block {data['block_lots']} lots ({data['block_units']} units), "
            f"allocated {data['allocated_lots']} lots ({data['allocated_units']} units)")
    body = table(["account", "action", "side", "symbol", "lots", "units", "ideal lots", "reason"], rows)
    return f"{head}\n{body}"


def _is_number(text: str) -> bool:
    return text.replace(".", "", 1).replace("-", "", 1).isdigit()
