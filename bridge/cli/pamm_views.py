"""``bridge pamm status|statement|verify``: what a PAMM pool in the store holds, read only.

``status`` lists every pool or shows one (settings, NAV, holders, pending
requests, due settlements, the next scheduled rollover, orders not filled);
``statement`` is an investor's own view (nothing of the master's trades or of
other holders); ``verify`` replays the pool's journal and exits 1 naming the
first difference. Decimals are printed as strings; ``--json`` prints one object.
"""

from __future__ import annotations

import json
from decimal import Decimal

import click

from allocation.pamm import PoolSettings, show_nav
from allocation.pamm.schedule import parse_schedule
from bridge.cli.pamm_input import ledger_call
from bridge.cli.pamm_pools import CONFIG, JSON, existing_pool, load_config, open_book
from bridge.cli.render import table
from bridge.pools.book import PoolBook, PoolRow
from bridge.pools.render import d, order_dict


def _next_rollover(row: PoolRow) -> str | None:
    due = parse_schedule(row.schedule).next_after(row.last_rollover_at or row.opened_at)
    return None if due is None else due.isoformat()


def _row_dict(row: PoolRow) -> dict:
    return {"id": row.id, "master": row.master, "handling": row.handling, "schedule": row.schedule,
            "opened_at": row.opened_at.isoformat(), "halted": row.halted, "rollovers": row.rollovers,
            "last_rollover_at": None if row.last_rollover_at is None else row.last_rollover_at.isoformat(),
            "next_rollover": _next_rollover(row), "nav": None if row.nav is None else show_nav(row.nav),
            "units": d(row.units), "equity": d(row.equity), "pending": row.pending, "due": d(row.due)}


def _settings_dict(s: PoolSettings) -> dict:
    from bridge.pools.codec import settings_to_dict

    return {k: (d(Decimal(v)) if isinstance(v, str) and k not in ("manager", "loss_sharing") else v)
            for k, v in settings_to_dict(s).items()}


def _pool_dict(book: PoolBook, row: PoolRow) -> dict:
    pool = book.load(row.id)
    return {**_row_dict(row), "settings": _settings_dict(pool.settings),
            "holders": [{"id": h.id, "units": d(h.units), "equity": d(h.equity), "fees_paid": d(h.fees_paid),
                         "hwm": d(h.hwm), "auto_close_below": d(h.auto_close_below)} for h in pool.holders],
            "pending_requests": [{"id": r.id, "kind": r.kind, "holder": r.holder,
                                  "amount": "everything" if r.amount is None else d(r.amount), "at": r.at.isoformat()}
                                 for r in pool.pending],
            "settlements_due": [{"rollover": s.rollover, "amount": d(s.amount), "created_at": s.created_at.isoformat()}
                                for s in book.settlements(row.id) if s.state == "due"],
            "orders": [order_dict(o) for o in book.orders(row.id) if o.state != "filled"]}


@click.command()
@click.argument("pool_id", metavar="POOL", required=False)
@CONFIG
@JSON
def status(pool_id, config_path, as_json) -> None:
    """Show every pool (a table), or one POOL: settings, NAV, holders, requests, settlements, orders.

    \b
    Example:
      bridge pamm status --config bridge.toml
      bridge pamm status alpha --config bridge.toml --json
    """
    config = load_config(config_path)
    with open_book(config) as book:
        if pool_id is None:
            rows = [_row_dict(r) for r in book.pools()]
            data = None
        else:
            data = _pool_dict(book, existing_pool(book, pool_id))
    if pool_id is None:
        if as_json:
            click.echo(json.dumps({"pools": rows}))
        elif not rows:
            click.echo("no PAMM pools (create one with bridge pamm create)")
        else:
            click.echo(table(["pool", "master", "handling", "schedule", "rollovers", "NAV", "units", "equity",
                              "pending", "due", "next rollover", "halted"],
                             [[r["id"], r["master"], r["handling"], r["schedule"], str(r["rollovers"]),
                               r["nav"] or "-", r["units"], r["equity"], str(r["pending"]), r["due"],
                               r["next_rollover"] or "manual", r["halted"] or ""] for r in rows]))
        return
    if as_json:
        click.echo(json.dumps(data))
        return
    click.echo(_pool_text(data))


def _pool_text(p: dict) -> str:
    lines = [f"pool {p['id']} on {p['master']} ({p['handling']}, schedule {p['schedule']}, opened {p['opened_at']})",
             f"NAV {p['nav'] or '-'}, units {p['units']}, equity {p['equity']}, rollovers {p['rollovers']}"
             + (f", last {p['last_rollover_at']}" if p["last_rollover_at"] else ""),
             f"next rollover: {p['next_rollover'] or 'manual (bridge pamm rollover)'}"]
    if p["halted"]:
        lines.append(f"HALTED: {p['halted']}")
    lines.append("settings: " + ", ".join(f"{k} {v}" for k, v in p["settings"].items() if v is not None))
    if p["holders"]:
        lines.append(table(["holder", "units", "equity", "fees paid", "hwm", "auto-close below"],
                           [[h["id"], h["units"], h["equity"], h["fees_paid"], h["hwm"], h["auto_close_below"] or ""]
                            for h in p["holders"]]))
    for r in p["pending_requests"]:
        lines.append(f"pending {r['kind']} #{r['id']}: {r['holder']} {r['amount']} (at {r['at']})")
    for s in p["settlements_due"]:
        lines.append(f"settlement due for rollover #{s['rollover']}: {s['amount']} "
                     f"(confirm with: bridge pamm settle {p['id']} {s['rollover']})")
    for o in p["orders"]:
        lines.append(f"order {o['key']}: {o['reason']} {o['action']} {o['volume']} of position {o['position_id']} "
                     f"({o['symbol']}): {o['state']}" + (f" ({o['detail']})" if o["detail"] else ""))
    return "\n".join(lines)


@click.command()
@click.argument("pool_id", metavar="POOL")
@click.argument("investor")
@CONFIG
@JSON
def statement(pool_id, investor, config_path, as_json) -> None:
    """Show INVESTOR's statement in POOL: units, NAV, deposits, withdrawals, fees, return. Nothing else.

    \b
    Example:
      bridge pamm statement alpha A --config bridge.toml --json
    """
    config = load_config(config_path)
    with open_book(config) as book:
        data = ledger_call(lambda: book.statement(pool_id, investor))
    if as_json:
        click.echo(json.dumps(data))
        return
    click.echo(f"{investor} in {pool_id}: units {data['units']}, NAV {data['nav'] or '-'}, equity {data['equity']}, "
               f"deposited {data['deposited']}, withdrawn {data['withdrawn']}, fees {data['fees_paid']}, "
               f"high-water mark {data['high_water_mark']}, return {data['return']}")
    if data["lines"]:
        click.echo(table(["at", "type", "amount", "units", "detail"],
                         [[x["at"], x["type"], x["amount"], x["units"], x["detail"]] for x in data["lines"]]))


@click.command()
@click.argument("pool_id", metavar="POOL")
@CONFIG
@JSON
def verify(pool_id, config_path, as_json) -> None:
    """Check POOL's books: replay its steps, compare with the snapshot and the entries; exit 1 on a difference.

    \b
    Example:
      bridge pamm verify alpha --config bridge.toml --json
    """
    from allocation.pamm import PammError

    config = load_config(config_path)
    with open_book(config) as book:
        existing_pool(book, pool_id)
        try:
            summary = book.verify(pool_id)
        except PammError as exc:
            raise click.ClickException(f"verify failed: {exc}") from None
    if as_json:
        click.echo(json.dumps(summary))
        return
    click.echo(f"pool {pool_id}: OK: {summary['steps']} steps replay to the snapshot and its {summary['entries']} "
               f"entries; {summary['rollovers']} rollovers, {summary['holders']} holders, equity {summary['equity']}")


VIEW_COMMANDS = [status, statement, verify]
