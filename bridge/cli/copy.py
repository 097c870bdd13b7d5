"""``bridge copy``: copy subscriptions added, paused, resumed, limited and removed at runtime.

Each change is written to the store in one transaction, then the running daemon
is told (``reload-routes`` on its control socket) and copies along it from its
next master deal; with no daemon running, the change applies when it starts.
bridge.toml's ``[[copy]]`` routes are listed too (ids ``config-N``) and are
changed in the file.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from bridge.cli.route_edit import (
    close_dicts, close_option, closes_text, config_option, json_option, route_book, tell_daemon,
)

#: risk options of ``subscribe`` and ``set-risk`` -> copy setting
RISK = {"max_lots": "max-lots", "min_lots": "min-lots", "max_trade_risk": "max-trade-risk",
        "max_risk_coefficient": "max-risk-coefficient", "max_slippage_points": "max-slippage-points"}
RISK_HELP = {
    "max_lots": "Largest order, in lots.",
    "min_lots": "Smallest order, in lots (smaller ones are skipped).",
    "max_trade_risk": "Largest share of the balance one trade may lose at the master's stop loss (e.g. 0.02).",
    "max_risk_coefficient": "With tiny = force: how many times its size a tiny order may be raised to the "
                            "symbol minimum (default 5).",
    "max_slippage_points": "Fills worse than the master's price by more points are requoted.",
}


def risk_options(none_ok: bool):
    def decorate(function):
        for key in reversed(list(RISK)):
            extra = " 'none' removes the limit." if none_ok else ""
            function = click.option(f"--{RISK[key]}", key, default=None, metavar="VALUE",
                                    help=RISK_HELP[key] + extra)(function)
        return function
    return decorate


def _value(key: str, text: str):
    """An option's text as the settings mapping holds it (whole points as an int), checked alone so that
    its error names the option."""
    from allocation.copy import settings_from_mapping
    from allocation.errors import AllocationError
    from bridge.errors import InputError

    value = int(text) if key == "max_slippage_points" and text.strip().isdigit() else text
    try:
        settings_from_mapping({key: value}, "")
    except AllocationError as exc:
        reason = str(exc).split(": ", 1)[-1]
        raise InputError(f"--{key.replace('_', '-')} {text!r}: {reason}") from None
    return value


@click.group(name="copy")
def copy_group() -> None:
    """Copy subscriptions: a follower account copying a master's trades, changed at runtime.

    \b
    Example:
      bridge copy subscribe --config bridge.toml --master mt5-live/5001 --follower mt5-live/5002 --mode equity
      bridge copy list --config bridge.toml
      bridge copy pause --config bridge.toml s1
    """


@copy_group.command()
@config_option
@click.option("--master", required=True, metavar="VENUE/LOGIN", help="The master account (a [[master]]).")
@click.option("--follower", required=True, metavar="VENUE/LOGIN", help="The account that copies it.")
@click.option("--id", "sub_id", default=None, help="The subscription's id (default: s1, s2, ...).")
@click.option("--settings", "settings_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="A TOML file of copy settings, the keys of bridge.toml's [copy.settings].")
@click.option("--mode", default=None, help="Sizing: balance, equity, multiplier, fixed, contract or risk.")
@click.option("--multiplier", default=None, help="Volume multiplier (e.g. 1.5).")
@click.option("--fixed-lots", "fixed_lots", default=None, help="Lots of every order (mode fixed).")
@click.option("--risk-fraction", "risk_fraction", default=None, help="Equity fraction risked (mode risk).")
@risk_options(none_ok=False)
def subscribe(config_path, master, follower, sub_id, settings_file, **options) -> None:
    """Start copying MASTER's trades to FOLLOWER from its next deal.

    The options override the settings file's keys. Positions the master holds
    already are not copied (only deals from now on).

    \b
    Example:
      bridge copy subscribe --config bridge.toml --master mt5-live/5001 --follower mt5-live/5002
      bridge copy subscribe --config bridge.toml --master sim-demo/1000 --follower sim-demo/2004 \\
          --mode multiplier --multiplier 0.5 --max-lots 2
      bridge copy subscribe --config bridge.toml --master sim-demo/1000 --follower sim-demo/2004 \\
          --settings conservative.toml
    """
    from bridge.config.strict import load_toml

    settings = dict(load_toml(settings_file)) if settings_file is not None else {}
    for key, text in options.items():
        if text is not None:
            settings[key] = _value(key, text)
    with route_book(config_path) as (config, book):
        new_id = book.subscribe(master, follower, settings, sub_id)
    click.echo(f"copy {new_id}: {follower} follows {master}")
    tell_daemon(config)


@copy_group.command(name="list")
@config_option
@json_option
def list_copies(config_path, as_json) -> None:
    """List the copy subscriptions: bridge.toml's (config-N) and the CLI's, with their settings.

    \b
    Example:
      bridge copy list --config bridge.toml
      bridge copy list --config bridge.toml --json
    """
    from bridge.cli.render import table

    with route_book(config_path) as (_, book):
        entries = [c.as_dict() for c in book.copies()]
    if as_json:
        click.echo(json.dumps(entries))
        return
    rows = [[e["id"], e["source"], e["master"], e["follower"], "active" if e["active"] else "paused",
             _settings_text({**e["settings"], **e["risk"]})] for e in entries]
    click.echo(table(["id", "source", "master", "follower", "state", "settings"], rows))


def _settings_text(settings: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in sorted(settings.items())) or "-"


@copy_group.command()
@config_option
@click.argument("sub_id", metavar="ID")
def pause(config_path, sub_id) -> None:
    """Stop copying to the follower; its positions stay open and linked.

    A master close while paused is not copied either: resume to copy again.

    \b
    Example:
      bridge copy pause --config bridge.toml s1
    """
    _set_active(config_path, sub_id, False)


@copy_group.command()
@config_option
@click.argument("sub_id", metavar="ID")
def resume(config_path, sub_id) -> None:
    """Copy again to a paused follower, from the master's next deal.

    \b
    Example:
      bridge copy resume --config bridge.toml s1
    """
    _set_active(config_path, sub_id, True)


def _set_active(config_path, sub_id: str, active: bool) -> None:
    with route_book(config_path) as (config, book):
        changed = book.set_active(sub_id, active)
    word = "resumed" if active else "paused"
    if not changed:
        click.echo(f"copy {sub_id}: already {word}")
        return
    click.echo(f"copy {sub_id}: {word}")
    tell_daemon(config)


@copy_group.command()
@config_option
@close_option
@json_option
@click.argument("sub_id", metavar="ID")
def unsubscribe(config_path, close_positions, as_json, sub_id) -> None:
    """Remove a subscription. Without --close-positions the follower's positions copied from the master stay
    open, unmanaged (the master's later closes are not copied).

    With --close-positions, every follower position linked to one of the
    master's positions is closed at market: the closes are written in the same
    transaction as the removal and sent by the running daemon's worker, each
    exactly once (a lost reply is looked up at the venue, a restart resumes
    them; a position already closed by hand is left closed). A copy still on
    its way to the follower (the master opened a moment before) is closed
    once it fills, once. The master's own positions are not touched. On a netting follower whose position also holds
    copies of another master, only this master's share is closed. A paused
    subscription's positions are closed the same way. A close the venue
    refuses for another reason (market closed, say) leaves the position open,
    unmanaged: see the daemon's log. bridge.toml's config-N routes are removed
    in the file (no closes). bridge mam remove --close-positions does the same
    for a MAM member.

    \b
    Example:
      bridge copy unsubscribe --config bridge.toml s1
      bridge copy unsubscribe --config bridge.toml --close-positions s1
      bridge copy unsubscribe --config bridge.toml --close-positions --json s1
    """
    with route_book(config_path) as (config, book):
        entry, closes = book.unsubscribe(sub_id, close_positions)
    from bridge.daemon.route_book import name_of

    follower, master = name_of(entry.follower), name_of(entry.master)
    if as_json:
        daemon = tell_daemon(config, len(closes), quiet=True)
        click.echo(json.dumps({"id": sub_id, "removed": True, "master": master, "follower": follower,
                               "close_positions": close_positions, "closes": close_dicts(closes), "daemon": daemon}))
        return
    tail = closes_text(closes, follower) if close_positions else "its open positions stay as they are"
    click.echo(f"copy {sub_id}: removed ({follower} no longer follows {master}); {tail}")
    tell_daemon(config, len(closes))


@copy_group.command(name="set-risk")
@config_option
@click.argument("sub_id", metavar="ID")
@risk_options(none_ok=True)
def set_risk(config_path, sub_id, **options) -> None:
    """Change a subscription's risk limits, from the master's next deal.

    \b
    Example:
      bridge copy set-risk --config bridge.toml s1 --max-lots 2 --max-trade-risk 0.02
      bridge copy set-risk --config bridge.toml s1 --max-lots none
    """
    from bridge.errors import InputError

    changes = {key: None if text.strip().lower() == "none" else _value(key, text)
               for key, text in options.items() if text is not None}
    if not changes:
        raise InputError(f"nothing to change: give one of {', '.join('--' + o for o in RISK.values())}")
    with route_book(config_path) as (config, book):
        risk = book.set_risk(sub_id, changes)
    click.echo(f"copy {sub_id}: risk limits {_settings_text({k: str(v) for k, v in risk.items()})}")
    tell_daemon(config)
