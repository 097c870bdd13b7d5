"""``bridge pamm create|deposit|withdraw|rollover|settle``: PAMM pools in the store (the read commands: pamm_views).

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
from pathlib import Path
from typing import Iterator

import click

from allocation.pamm.schedule import parse_schedule
from bridge.cli.pamm_input import ledger_call, parse_amount, parse_time, pool_settings
from bridge.config.strict import Table, load_toml
from bridge.domain.ids import Login
from bridge.errors import InputError
from bridge.pools.book import HANDLINGS, PoolBook, PoolRow
from bridge.pools.render import d, rollover_dict, rollover_text

CONFIG = click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                      required=True, help="The bridge configuration (bridge.toml); the pools are in its store.")
AT = click.option("--at", "at_text", metavar="ISO",
                  help="When this happens, ISO-8601 with a UTC offset (default: now; for tests and backdating).")
JSON = click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")


def load_config(path: Path):
    from bridge.daemon import config as bridge_config

    return bridge_config.load(path)


@contextmanager
def open_book(config) -> Iterator[PoolBook]:
    from bridge.store import Store

    with Store.open(config.store_path) as store:
        yield PoolBook(store)


def existing_pool(book: PoolBook, pool_id: str) -> PoolRow:
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
    config = load_config(config_path)
    login = _master(config, master)
    schedule_text = ledger_call(lambda: parse_schedule(schedule).text, "--schedule")
    root = Table(load_toml(settings_path), str(settings_path))
    pool_table = root.table("pool")
    if pool_table is None:
        raise InputError(f"{settings_path}: missing table [pool]")
    root.finish()
    settings, start = pool_settings(pool_table, None)
    opened_at = parse_time(opened_text, "--opened-at") if opened_text or start is None else start
    with open_book(config) as book:
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
    config = load_config(config_path)
    with open_book(config) as book:
        step = ledger_call(lambda: book.deposit(pool_id, holder, value, at, level, source="cli"))
        request = step.pool.pending[-1]
        applies = _applies(book, existing_pool(book, pool_id), request.at)
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
    config = load_config(config_path)
    with open_book(config) as book:
        step = ledger_call(lambda: book.withdraw(pool_id, holder, value, at, source="cli"))
        request = step.pool.pending[-1]
        applies = _applies(book, existing_pool(book, pool_id), request.at)
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
    config = load_config(config_path)
    value = None if equity is None else parse_amount(equity, "--equity")
    at = parse_time(at_text)
    with open_book(config) as book:
        existing_pool(book, pool_id)
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
    answer = ask(endpoint, b"pamm-rollover " + pool_id.encode(), timeout, config.curve)
    if answer is None:
        raise click.ClickException(f"no daemon answered on {endpoint} within {timeout} ms; to roll over without "
                                   f"it, give --equity (the master account's equity)")
    if "error" in answer or "rollover" not in answer:
        raise click.ClickException(str(answer.get("error", f"unexpected answer from the daemon: {answer}")))
    return answer["rollover"]


# -- settle ------------------------------------------------------------------------------

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
    config = load_config(config_path)
    with open_book(config) as book:
        row = ledger_call(lambda: book.settle(pool_id, number, at))
    direction = "paid into" if row.amount >= 0 else "paid out of"
    click.echo(f"{pool_id} rollover #{row.rollover} settled at {at.isoformat()}: {d(abs(row.amount))} "
               f"{direction} the master account")


POOL_COMMANDS = [create, deposit, withdraw, rollover, settle]
