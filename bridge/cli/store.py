"""``bridge store``: the store's size, an online backup, and pruning old detail (:mod:`bridge.store.retention`).

Each command works beside a running daemon: a backup reads one consistent
snapshot, and pruning writes in short transactions the daemon waits out.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import click

from bridge.cli.route_edit import config_option, json_option, load_config, open_store

_AGE = re.compile(r"^\s*(\d+)\s*([dh]?)\s*$")


def _store(config_path: Path):
    return open_store(load_config(config_path), existing=True)


def _megabytes(size: int) -> str:
    return f"{size / 1_000_000:.1f} MB"


@click.group(name="store")
def store_group() -> None:
    """The store (SQLite): its size, an online backup, pruning old order detail.

    \b
    Example:
      bridge store info --config bridge.toml
      bridge store backup --config bridge.toml --to /var/backups/copybridge-2026-12-04.sqlite
      bridge store prune --config bridge.toml --older-than 90d --dry-run
    """


@store_group.command()
@config_option
@json_option
def info(config_path, as_json) -> None:
    """The store's size on disk and its largest tables.

    \b
    Example:
      bridge store info --config bridge.toml --json
    """
    from bridge.store.retention import info as store_info

    with _store(config_path) as store:
        figures = store_info(store)
    if as_json:
        click.echo(json.dumps(figures))
        return
    oldest = figures["oldest_detail_ns"]
    click.echo(f"{figures['path']}: {_megabytes(figures['bytes'])} (with its WAL)")
    for table, rows in figures["rows"].items():
        click.echo(f"  {table:<15} {rows:>12,} rows")
    if oldest is not None:
        click.echo(f"  order detail since {time.strftime('%Y-%m-%d %H:%M', time.gmtime(oldest / 1e9))} UTC")


@store_group.command()
@config_option
@click.option("--to", "target", required=True, type=click.Path(path_type=Path),
              help="The backup file to create (never overwritten), or a directory: the file is then named "
                   "copybridge-YYYYMMDDTHHMMSSZ.sqlite in it.")
@click.option("--keep", type=click.IntRange(min=1), default=None,
              help="With a directory: keep this many newest copybridge-*.sqlite backups there, delete older ones.")
@json_option
def backup(config_path, target, keep, as_json) -> None:
    """Copy the store to a new file while the daemon runs: one consistent snapshot, compacted, mode 0600,
    checked with SQLite's quick_check. Restore by stopping the daemon and putting the file in [store] path.

    \b
    Example:
      bridge store backup --config bridge.toml --to /var/backups/copybridge-2026-12-04.sqlite
      bridge store backup --config bridge.toml --to /var/lib/copybridge/backups --keep 7
    """
    from bridge.errors import InputError
    from bridge.store.errors import StoreError
    from bridge.store.retention import backup as store_backup, rotate

    directory = target if target.is_dir() else None
    if keep is not None and directory is None:
        raise InputError(f"--keep goes with a directory for --to ({target} is not one)")
    if directory is not None:
        target = directory / time.strftime("copybridge-%Y%m%dT%H%M%SZ.sqlite", time.gmtime())
    with _store(config_path) as store:
        try:
            done = store_backup(store, target)
        except StoreError as exc:
            raise InputError(str(exc)) from None
    if keep is not None:
        done["deleted"] = [str(p) for p in rotate(directory, keep)]
    if as_json:
        click.echo(json.dumps(done))
        return
    click.echo(f"backup {done['path']}: {_megabytes(done['bytes'])}, {done['deals']} master deals, "
               f"checked ({done['check']}), in {done['seconds']} s"
               + (f"; {len(done['deleted'])} older backup(s) deleted" if done.get("deleted") else ""))


def _age_ns(text: str) -> int:
    from bridge.errors import InputError

    match = _AGE.match(text)
    if not match or int(match.group(1)) <= 0:
        raise InputError(f"--older-than {text!r}: give days or hours, e.g. 90d, 90 or 36h")
    hours = int(match.group(1)) * (1 if match.group(2) == "h" else 24)
    return hours * 3600 * 1_000_000_000


@store_group.command()
@config_option
@click.option("--older-than", "older_than", required=True, metavar="AGE",
              help="Prune the detail of deals older than this: days (90d, or 90) or hours (36h).")
@click.option("--dry-run", is_flag=True, help="Count what would go; change nothing.")
@json_option
def prune(config_path, older_than, dry_run, as_json) -> None:
    """Delete old order detail: the intents and execution records of deals older than AGE whose orders are
    all final, and the closed links of master positions closed before then. The journal of master deals
    stays whole (it is what keeps a deal delivered again from being copied twice), as do open links,
    PAMM pools and account orders. Reports over a pruned period count deals but no longer their orders.
    The file keeps its size; SQLite reuses the freed pages (a backup is compacted).

    \b
    Example:
      bridge store prune --config bridge.toml --older-than 90d --dry-run
      bridge store prune --config bridge.toml --older-than 90d
    """
    from bridge.cli.progress import bar
    from bridge.errors import InputError
    from bridge.store.errors import StoreError
    from bridge.store.retention import prunable_deals, prune as store_prune

    cutoff_ns = time.time_ns() - _age_ns(older_than)
    with _store(config_path) as store:
        plan = prunable_deals(store.db.conn, cutoff_ns)  # read once: its length sizes the bar
        with bar(len(plan[0]), "deals") as advance:  # a bar on a terminal only
            try:
                result = store_prune(store, cutoff_ns, dry_run=dry_run, progress=advance, plan=plan)
            except StoreError as exc:
                raise InputError(f"prune stopped: {exc}") from None
    figures = {"dry_run": dry_run, **result.as_dict()}
    if as_json:
        click.echo(json.dumps(figures))
        return
    verb = "would prune" if dry_run else "pruned"
    line = (f"{verb} the detail of {result.deals} deal(s) older than {older_than.strip()}: {result.intents} "
            f"intent(s), {result.executions} execution record(s), {result.links} closed link(s)")
    if result.kept_unfinished:
        line += f"; kept {result.kept_unfinished} old deal(s) with an order not final"
    click.echo(line)
