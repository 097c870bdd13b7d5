"""``bridge pamm simulate``: run a scripted PAMM scenario through the pure ledger, no venue.

Scenario file (TOML, read strictly: an unknown key or a wrong type is an error
naming the key and the file; see config/pamm-scenario.toml and
config/pamm-first-loss.toml)::

    [pool]                      # allocation.pamm.PoolSettings
    manager = "M"               # required: the manager's holder id
    start = 2024-01-01T00:00:00Z  # required: when the pool opens (with a UTC offset)
    loss_sharing = "pro-rata"   # or "manager-first-loss"
    initial_nav = 1.00
    performance_fee = 20        # percent above each investor's high-water mark
    performance_every = 1       # rollovers between performance fees
    management_fee = 2          # percent per year, accrued per rollover
    entry_fee = 0               # percent of a deposit
    exit_fee = 0                # percent of a withdrawal
    manager_minimum = 1000      # the manager's minimum stake
    freeze_seconds = 0
    lockup_seconds = 0
    minimum_remaining = 0
    stop_drawdown = 30          # percent below the highest NAV; omit for none

    [[step]]                    # in order; `at` defaults to the previous step + 1 hour
    action = "deposit"          # deposit | withdraw | equity | pnl | rollover
    holder = "A"                # deposit, withdraw
    amount = 10000              # deposit, withdraw (omit with all = true), pnl
    all = true                  # withdraw: everything the holder has
    auto_close_below = 8000     # deposit: this investor's auto-close level
    equity = 10500              # equity: the master account's equity now
    at = 2024-01-01T01:00:00Z

After each rollover the state is printed: NAV, units and equity of the pool,
and per holder units, equity, fees paid and high-water mark.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import click

import allocation.pamm as pamm
from allocation.pamm import RolloverReport
from bridge.cli.pamm_input import ledger_call as _call
from bridge.cli.pamm_input import pool_settings
from bridge.cli.pamm_input import toml_time as _time
from bridge.cli.pamm_pools import POOL_COMMANDS
from bridge.cli.pamm_views import VIEW_COMMANDS
from bridge.config.strict import Table, load_toml
from bridge.errors import InputError
from bridge.pools.render import report_dict, report_text

FILE = click.Path(dir_okay=False, path_type=Path)
ACTIONS = ("deposit", "withdraw", "equity", "pnl", "rollover")
_STEP_KEYS = {"deposit": {"holder", "amount", "auto_close_below"}, "withdraw": {"holder", "amount", "all"},
              "equity": {"equity"}, "pnl": {"amount"}, "rollover": set()}


@click.group(name="pamm")
def pamm_group() -> None:
    """PAMM pools: run pools kept in the store, or simulate a scripted scenario on the unit ledger.

    Pool commands take --config bridge.toml (the store is its [store] path); the
    daemon's worker runs scheduled rollovers and the pool's orders.

    \b
    Example:
      bridge pamm create alpha --config bridge.toml --master sim-demo/1000 --settings config/pamm-pool.toml
      bridge pamm deposit alpha A 10000 --config bridge.toml
      bridge pamm status --config bridge.toml
      bridge pamm simulate config/pamm-scenario.toml --json
    """


@pamm_group.command()
@click.argument("scenario", type=FILE)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of tables.")
def simulate(scenario: Path, as_json: bool) -> None:
    """Run SCENARIO.toml (pool settings, then steps) and print the state after each rollover.

    Nothing is sent anywhere: deposits, withdrawals, P/L and rollovers go through
    the same pure ledger a pool in the daemon uses. A step the pool refuses stops
    the run with one line naming the step.

    \b
    Example:
      bridge pamm simulate config/pamm-scenario.toml --json
    """
    reports = run_scenario(scenario)
    if as_json:
        click.echo(json.dumps({"rollovers": [report_dict(r) for r in reports]}))
    else:
        click.echo("\n\n".join(report_text(r) for r in reports) if reports else "no rollover in the scenario")


def run_scenario(path: Path) -> list[RolloverReport]:
    root = Table(load_toml(path), str(path))
    settings, start = pool_settings(root.table("pool") or _missing(path, "pool"))
    steps = root.tables("step")
    root.finish()
    pool = _call(lambda: pamm.open_pool(settings, start), f"{path} [pool]")
    now = start
    reports: list[RolloverReport] = []
    for step in steps:
        action = step.str("action")
        if action not in ACTIONS:
            raise InputError(f"{step.where}: action {action!r} is not one of {', '.join(ACTIONS)}")
        now = _time(step, "at", now + timedelta(hours=1))
        unknown = sorted(set(step.data) - {"action", "at"} - _STEP_KEYS[action])
        if unknown:
            raise InputError(f"{step.where}: key {unknown[0]!r} does not apply to action {action!r}")
        result = _call(lambda: _apply(pool, action, step, now), step.where)
        step.finish()
        pool = result.pool
        if action == "rollover":
            reports.append(result.report)
    return reports


def _apply(pool, action: str, step: Table, now: datetime):
    if action == "deposit":
        return pamm.request_deposit(pool, step.str("holder"), step.decimal("amount"), now,
                                    step.decimal("auto_close_below", None))
    if action == "withdraw":
        everything = step.bool("all", False)
        amount = step.decimal("amount", None)
        if everything == (amount is not None):
            raise InputError(f"{step.where}: a withdraw step needs either amount or all = true")
        return pamm.request_withdrawal(pool, step.str("holder"), amount, now)
    if action == "equity":
        return pamm.set_equity(pool, step.decimal("equity"), now)
    if action == "pnl":
        return pamm.apply_pnl(pool, step.decimal("amount"), now)
    return pamm.rollover(pool, now)


def _missing(path: Path, key: str):
    raise InputError(f"{path}: missing table [{key}]")


for _command in (*POOL_COMMANDS, *VIEW_COMMANDS):
    pamm_group.add_command(_command)
