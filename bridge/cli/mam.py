"""``bridge mam``: MAM groups made and changed at runtime (a master's block split across sub-accounts).

Each change is written to the store in one transaction, then the running daemon
is told and splits the master's next deal along it; with no daemon running,
the change applies when it starts. bridge.toml's ``[[mam]]`` groups are listed
too and are changed in the file. A group with no members copies nothing.
"""

from __future__ import annotations

import json

import click

from allocation.mam import Leftover, Method
from bridge.cli.route_edit import close_option, closes_text, config_option, json_option, route_book, tell_daemon

METHODS = ", ".join(m.value for m in Method)
LEFTOVERS = ", ".join(m.value for m in Leftover)


@click.group(name="mam")
def mam_group() -> None:
    """MAM groups: a master's trades split across sub-accounts by a method, changed at runtime.

    \b
    Example:
      bridge mam create --config bridge.toml beta --master sim-demo/1000 --method equity
      bridge mam add --config bridge.toml beta sim-demo/3003
      bridge mam list --config bridge.toml
    """


@mam_group.command()
@config_option
@click.argument("group_id", metavar="ID")
@click.option("--master", required=True, metavar="VENUE/LOGIN", help="The manager's account (a [[master]]).")
@click.option("--method", required=True, help=f"How a block is split: {METHODS}.")
@click.option("--leftover", default=Leftover.LARGEST_REMAINDER.value, show_default=True,
              help=f"Who gets the volume rounding leaves over: {LEFTOVERS}.")
@click.option("--force-minimum", is_flag=True, help="Give a member below the minimum volume the minimum.")
def create(config_path, group_id, master, method, leftover, force_minimum) -> None:
    """Make an empty MAM group ID on MASTER; add its members with `bridge mam add`.

    \b
    Example:
      bridge mam create --config bridge.toml beta --master sim-demo/1000 --method equity
      bridge mam create --config bridge.toml gamma --master mt5-live/5001 --method lot --leftover largest-equity
    """
    with route_book(config_path) as (_, book):
        book.mam_create(group_id, master, method, leftover, force_minimum)
    click.echo(f"MAM group {group_id}: created on {master} ({method}); it copies once it has members")


@mam_group.command()
@config_option
@click.argument("group_id", metavar="ID")
@click.argument("account", metavar="VENUE/LOGIN")
@click.option("--setting", default=None,
              help="The member's figure for methods lot, percent and fixed (lots, percent or multiplier).")
def add(config_path, group_id, account, setting) -> None:
    """Add a sub-account to a group: it takes its share from the master's next deal.

    \b
    Example:
      bridge mam add --config bridge.toml beta sim-demo/3003
      bridge mam add --config bridge.toml gamma mt5-live/5007 --setting 0.5
    """
    with route_book(config_path) as (config, book):
        book.mam_add(group_id, account, setting)
    click.echo(f"MAM group {group_id}: {account} added")
    tell_daemon(config)


@mam_group.command()
@config_option
@close_option
@click.argument("group_id", metavar="ID")
@click.argument("account", metavar="VENUE/LOGIN")
def remove(config_path, close_positions, group_id, account) -> None:
    """Take a sub-account out of a group. Without --close-positions its open positions stay as they are,
    unmanaged.

    With --close-positions, every position of the sub-account linked to one of
    the group master's positions is closed at market, each exactly once, as
    bridge copy unsubscribe --close-positions does (written with the removal,
    sent by the running daemon or when it starts; a copy still on its way to
    it is closed once it fills). The master's positions and the other
    members' are not touched; the group's later blocks are split over the
    members left. bridge mam delete --close-positions does this for every
    member of a group.

    \b
    Example:
      bridge mam remove --config bridge.toml beta sim-demo/3003
      bridge mam remove --config bridge.toml --close-positions beta sim-demo/3003
    """
    with route_book(config_path) as (config, book):
        closes = book.mam_remove(group_id, account, close_positions)
    tail = closes_text(closes, account) if close_positions else "its open positions stay as they are"
    click.echo(f"MAM group {group_id}: {account} removed; {tail}")
    tell_daemon(config, len(closes))


@mam_group.command(name="set-method")
@config_option
@click.argument("group_id", metavar="ID")
@click.argument("method", metavar="METHOD")
@click.option("--leftover", default=None, help=f"Also change the leftover rule: {LEFTOVERS}.")
def set_method(config_path, group_id, method, leftover) -> None:
    """Change how a group splits the master's blocks (METHOD: lot, percent, balance, equity, equal, fixed).

    \b
    Example:
      bridge mam set-method --config bridge.toml beta balance
      bridge mam set-method --config bridge.toml beta equal --leftover largest-equity
    """
    with route_book(config_path) as (config, book):
        book.mam_set_method(group_id, method, leftover)
    click.echo(f"MAM group {group_id}: method {method}")
    tell_daemon(config)


@mam_group.command()
@config_option
@close_option
@click.argument("group_id", metavar="ID")
def delete(config_path, close_positions, group_id) -> None:
    """Delete a group made with `bridge mam create`. Without --close-positions its members' positions stay as
    they are, unmanaged.

    With --close-positions, every member's positions linked to one of the
    group master's positions are closed at market, as bridge mam remove
    --close-positions closes one member's, for all of them in the deletion's
    own transaction: each close exactly once, sent by the running daemon (or
    when it starts); a copy still on its way to a member is closed once it
    fills. The master's positions are not touched.

    \b
    Example:
      bridge mam delete --config bridge.toml beta
      bridge mam delete --config bridge.toml --close-positions beta
    """
    from bridge.daemon.route_book import name_of

    with route_book(config_path) as (config, book):
        members = book.mam_delete(group_id, close_positions)
    if not close_positions:
        click.echo(f"MAM group {group_id}: deleted; its members' open positions stay as they are")
    elif not members:
        click.echo(f"MAM group {group_id}: deleted; it had no members: nothing to close")
    else:
        click.echo(f"MAM group {group_id}: deleted")
        for account, closes in members:
            click.echo(f"  {closes_text(closes, name_of(account))}")
    tell_daemon(config, sum(len(closes) for _, closes in members))


@mam_group.command(name="list")
@config_option
@json_option
def list_groups(config_path, as_json) -> None:
    """List the MAM groups: bridge.toml's and the CLI's, with their members.

    \b
    Example:
      bridge mam list --config bridge.toml
      bridge mam list --config bridge.toml --json
    """
    from bridge.cli.render import table

    with route_book(config_path) as (_, book):
        groups = [g.as_dict() for g in book.mams()]
    if as_json:
        click.echo(json.dumps(groups))
        return
    rows = [[g["id"], g["source"], g["master"], g["method"], g["leftover"],
             " ".join(m["account"] + (f"={m['setting']}" if m["setting"] not in (None, "0") else "")
                      for m in g["members"]) or "-"] for g in groups]
    click.echo(table(["id", "source", "master", "method", "leftover", "members"], rows))
