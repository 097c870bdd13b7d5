"""``bridge pamm create|deposit|withdraw|rollover|status|statement|settle|verify``: PAMM pools in the store.

Every command takes ``--config bridge.toml``; the pools live in its store
(``[store] path``), written through :class:`bridge.pools.book.PoolBook`, so the
CLI and a running daemon serialize through SQLite. Amounts are decimal text,
printed back as strings. A request the pool refuses, an unknown pool or
investor, a bad amount or time is one line and exit 2, and nothing is written.

``--at`` (ISO-8601 with a UTC offset) backdates or fixes a mutating command's
time, for tests and for entering what happened earlier; it defaults to now
and can never be before the pool's last step.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Iterator

import click

from allocation.pamm import PoolSettings, show_nav
from allocation.pamm.schedule import parse_schedule
from bridge.cli.pamm_input import ledger_call, parse_amount, parse_time, pool_settings
from bridge.cli.render import table
from bridge.config.strict import Table, load_toml
from bridge.domain.ids import Login
from bridge.errors import InputError
from bridge.pools.book import HANDLINGS, PoolBook, PoolRow
from bridge.pools.render import d, order_dict, rollover_dict, rollover_text

CONFIG = click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                      required=True, help="The bridge configuration (bridge.toml); the pools are in its store.")
AT = click.option("--at", "at_text", metavar="ISO",
                  help="When this happens, ISO-8601 with a UTC offset (default: now; for tests and backdating).")
JSON = click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")


def _config(path: Path):
    from bridge.daemon import config as bridge_config

    return bridge_config.load(path)


@contextmanager
def _book(config) -> Iterator[PoolBook]:
    from bridge.store import Store

    with Store.open(config.store_path) as store:
        yield PoolBook(store)


def _existing(book: PoolBook, pool_id: str) -> PoolRow:
    return ledger_call(lambda: book.pool(pool_id))


def _master(config, text: str) -> Login:
    """``VENUE/LOGIN`` of an account of a configured venue, as ``[[master]] account`` is read."""
    name, _, number = text.rpartition("/")
    if not name or not number.isdigit():
        raise InputError(f"--master {text!r} must be VENUE/LOGIN, e.g. sim-demo/1000")
    venue = next((v for v in config.venues if v.name == name), None)
    if venue is None:
        names = ", ".join(v.name for v in config.venues) or "none"
        raise InputError(f"--master {text!r}: no venue named {name!r} in the config (venues: {names})")
    logins = venue.logins()
    if logins is not None and int(number) not in logins:
        raise InputError(f"--master {text!r}: venue {name!r} has no account {number}")
    return Login(venue.server, int(number))


def _applies(book: PoolBook, row: PoolRow, at: datetime) -> str:
    """When a request queued at ``at`` is applied: the freeze window and the pool's schedule."""
    freeze = book.load(row.id).settings.freeze_seconds
    earliest = at + timedelta(seconds=freeze)
    text = f"applies at the first rollover at or after {earliest.isoformat()}"
    if freeze:
        text += f" (requests wait {freeze}s: the freeze window)"
    schedule = parse_schedule(row.schedule)
    due = schedule.next_after(max(earliest - timedelta(microseconds=1), row.last_rollover_at or row.opened_at))
    if due is None:
        return text + "; the schedule is manual: run bridge pamm rollover"
    return text + f"; by the schedule '{row.schedule}' that is {due.isoformat()}"


# -- create ----------------------------------------------------------------------

@click.command()
@click.argument("pool_id", metavar="POOL")
@CONFIG
@click.option("--master", required=True, metavar="VENUE/LOGIN",
              help="The pool's master account, as in [[master]] account = \"sim-demo/1000\".")
@click.option("--settings", "settings_path", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="POOL.toml: a [pool] table as in a simulate scenario (see config/pamm-pool.toml).")
@click.option("--handling", type=click.Choice(HANDLINGS), default="reallocate", show_default=True,
              help="Deposits and withdrawals: re-split positions, or close a withdrawal's share of each.")
@click.option("--schedule", default="manual", show_default=True,
              help='Rollovers: manual, "every 15m|1h|4h", "daily HH:MM", "weekly fri HH:MM" (UTC).')
@click.option("--opened-at", "opened_text", metavar="ISO",
              help="When the pool opens (default: [pool] start, else now).")
def create(pool_id, config_path, master, settings_path, handling, schedule, opened_text) -> None:
    """Open PAMM pool POOL on a master account, with the settings of POOL.toml.

    \b
    Example:
      bridge pamm create alpha --config bridge.toml --master sim-demo/1000 \\
          --settings config/pamm-pool.toml --handling autocorrect --schedule "daily 21:00"
    """
    config = _config(config_path)
    login = _master(config, master)
    schedule_text = ledger_call(lambda: parse_schedule(schedule).text, "--schedule")
    root = Table(load_toml(settings_path), str(settings_path))
    pool_table = root.table("pool")
    if pool_table is None:
        raise InputError(f"{settings_path}: missing table [pool]")
    root.finish()
    settings, start = pool_settings(pool_table, None)
    opened_at = parse_time(opened_text, "--opened-at") if opened_text or start is None else start
    with _book(config) as book:
        row = ledger_call(lambda: book.create(pool_id, str(login), settings, handling=handling,
                                              schedule=schedule_text, opened_at=opened_at))
    click.echo(f"pool {row.id} opened at {row.opened_at.isoformat()} on {row.master} "
               f"(manager {settings.manager}, {row.handling}, schedule {row.schedule})")


# -- deposit / withdraw -------------------------------------------------------------

@click.command()
@click.argument("pool_id", metavar="POOL")
@click.argument("holder")
@click.argument("amount")
@CONFIG
@click.option("--auto-close-below", metavar="X", help="Withdraw this investor in full when their equity is at or below X.")
@AT
def deposit(pool_id, holder, amount, config_path, auto_close_below, at_text) -> None:
    """Queue a deposit of AMOUNT by HOLDER into POOL, applied at the next rollover.

    \b
    Example:
      bridge pamm deposit alpha A 10000 --config bridge.toml --auto-close-below 7000
    """
    value = parse_amount(amount, "amount")
    level = None if auto_close_below is None else parse_amount(auto_close_below, "--auto-close-below")
    at = parse_time(at_text)
    config = _config(config_path)
    with _book(config) as book:
        step = ledger_call(lambda: book.deposit(pool_id, holder, value, at, level, source="cli"))
        request = step.pool.pending[-1]
        applies = _applies(book, _existing(book, pool_id), request.at)
    click.echo(f"queued deposit #{request.id}: {holder} {d(request.amount)} into {pool_id} at {request.at.isoformat()}"
               + ("" if level is None else f", auto-close below {d(request.auto_close_below)}") + f"; {applies}")


@click.command()
@click.argument("pool_id", metavar="POOL")
@click.argument("holder")
@click.argument("amount", required=False)
@CONFIG
@click.option("--all", "everything", is_flag=True, help="Withdraw everything HOLDER has (instead of AMOUNT).")
@AT
def withdraw(pool_id, holder, amount, config_path, everything, at_text) -> None:
    """Queue a withdrawal of AMOUNT (or --all) by HOLDER from POOL, paid at the next rollover.

    \b
    Example:
      bridge pamm withdraw alpha A 2500 --config bridge.toml
      bridge pamm withdraw alpha A --all --config bridge.toml
    """
    if everything == (amount is not None):
        raise InputError("give either AMOUNT or --all")
    value = None if everything else parse_amount(amount, "amount")
    at = parse_time(at_text)
    config = _config(config_path)
    with _book(config) as book:
        step = ledger_call(lambda: book.withdraw(pool_id, holder, value, at, source="cli"))
        request = step.pool.pending[-1]
        applies = _applies(book, _existing(book, pool_id), request.at)
    what = "everything" if request.amount is None else d(request.amount)
    click.echo(f"queued withdrawal #{request.id}: {holder} {what} from {pool_id} at {request.at.isoformat()}; "
               f"{applies}")


# -- rollover -------------------------------------------------------------------------

@click.command()
@click.argument("pool_id", metavar="POOL")
@CONFIG
@click.option("--equity", metavar="X", help="The master account's equity as the venue shows it: roll over here, "
                                             "without the daemon.")
@click.option("--timeout", type=click.IntRange(min=1, max=600_000), default=30_000, show_default=True,
              help="Milliseconds to wait for the daemon's answer (without --equity).")
@AT
@JSON
def rollover(pool_id, config_path, equity, timeout, at_text, as_json) -> None:
    """Run POOL's rollover now: in the running daemon, or here with --equity.

    Without --equity the daemon's worker reads the master account and sends the
    pool's orders. With --equity the rollover is applied to the store right here
    (pool equity = X + settlements still due); no order is sent: a halted pool's
    positions must then be closed by hand.

    \b
    Example:
      bridge pamm rollover alpha --config bridge.toml
      bridge pamm rollover alpha --config bridge.toml --equity 10512.30 --json
    """
    config = _config(config_path)
    value = None if equity is None else parse_amount(equity, "--equity")
    at = parse_time(at_text)
    with _book(config) as book:
        _existing(book, pool_id)
        if value is not None:
            result = ledger_call(lambda: book.rollover(pool_id, at, value, source="cli"))
            data = rollover_dict(result, [])
        else:
            data = _ask_daemon(config, pool_id, timeout)
    if as_json:
        click.echo(json.dumps(data))
        return
    click.echo(rollover_text(data).replace("bridge pamm settle POOL", f"bridge pamm settle {pool_id}"))
    if value is not None and data["close_all_positions"]:
        click.echo("no daemon involved: close every position of the master account by hand")


def _ask_daemon(config, pool_id: str, timeout: int) -> dict:
    from bridge.daemon.control import ask

    endpoint = config.control_for("worker")
    answer = ask(endpoint, b"pamm-rollover " + pool_id.encode(), timeout)
    if answer is None:
        raise click.ClickException(f"no daemon answered on {endpoint} within {timeout} ms; to roll over without "
                                   f"it, give --equity (the master account's equity)")
    if "error" in answer or "rollover" not in answer:
        raise click.ClickException(str(answer.get("error", f"unexpected answer from the daemon: {answer}")))
    return answer["rollover"]


# -- status / statement / settle / verify ----------------------------------------------

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
    config = _config(config_path)
    with _book(config) as book:
        if pool_id is None:
            rows = [_row_dict(r) for r in book.pools()]
            data = None
        else:
            data = _pool_dict(book, _existing(book, pool_id))
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
    config = _config(config_path)
    with _book(config) as book:
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
@click.argument("number", metavar="ROLLOVER", type=click.IntRange(min=1))
@CONFIG
@AT
def settle(pool_id, number, config_path, at_text) -> None:
    """Confirm the back office moved ROLLOVER's cash on the master account (due -> settled).

    Until then the pool counts the amount in its equity at each rollover.

    \b
    Example:
      bridge pamm settle alpha 3 --config bridge.toml
    """
    at = parse_time(at_text)
    config = _config(config_path)
    with _book(config) as book:
        row = ledger_call(lambda: book.settle(pool_id, number, at))
    direction = "paid into" if row.amount >= 0 else "paid out of"
    click.echo(f"{pool_id} rollover #{row.rollover} settled at {at.isoformat()}: {d(abs(row.amount))} "
               f"{direction} the master account")


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

    config = _config(config_path)
    with _book(config) as book:
        _existing(book, pool_id)
        try:
            summary = book.verify(pool_id)
        except PammError as exc:
            raise click.ClickException(f"verify failed: {exc}") from None
    if as_json:
        click.echo(json.dumps(summary))
        return
    click.echo(f"pool {pool_id}: OK: {summary['steps']} steps replay to the snapshot and its {summary['entries']} "
               f"entries; {summary['rollovers']} rollovers, {summary['holders']} holders, equity {summary['equity']}")


POOL_COMMANDS = [create, deposit, withdraw, rollover, status, statement, settle, verify]
