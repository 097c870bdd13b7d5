"""``bridge config check``: validate a bridge.toml as ``bridge run`` would, without starting anything.

The file is read by the same loader as ``bridge run`` (every table, the
venues' accounts, every secret file or variable read and checked), so an
error here is the error the daemon would stop on. Nothing is started and the
store is not opened. The summary masks every secret (``***``, with where it
comes from: a file's path or a variable's name).
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

import click

from bridge.config.secrets import Secret

MASK = "***"


@click.group(name="config")
def config_group() -> None:
    """Bridge configuration files: check one before a (re)start.

    \b
    Example:
      bridge config check /etc/copybridge/bridge.toml
    """


@config_group.command(name="check")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
def check(file: Path, as_json: bool) -> None:
    """Check FILE as `bridge run` would load it, and print what it configures, secrets masked.

    Unknown keys, wrong types and inconsistent values are one line naming the
    file, the line and the key (exit 2); so are a secret file that is missing
    or readable by group or others, and a secret variable that is not set.
    Nothing is started and the store is not opened.

    \b
    Example:
      bridge config check /etc/copybridge/bridge.toml
      bridge config check config/demo.toml --json
    """
    from bridge.daemon import config as bridge_config

    summary = summarize(bridge_config.load(file), file)
    if as_json:
        click.echo(json.dumps(summary, sort_keys=True))
        return
    click.echo(render(summary))


def summarize(config, file: Path) -> dict[str, Any]:
    """What ``config`` sets up, as plain JSON data; secrets as ``*** (where from)``."""
    from bridge.daemon.route_book import name_of

    accounts: Counter[str] = Counter()
    venues = []
    for venue in config.venues:
        logins = venue.logins()
        venues.append({"name": venue.name, "platform": venue.platform.value,
                       "accounts": None if logins is None else len(logins),
                       "remote": logins is None})
        accounts[venue.platform.value] += len(logins or ())
    endpoints = {"deals": config.deals_endpoint, "deals_replay": config.deals_replay_endpoint,
                 "control": config.control_endpoint, "control_connector": config.control_connector,
                 "metrics": config.metrics_listen or None}
    return {
        "file": str(file),
        "ok": True,
        "store": str(config.store_path),
        "endpoints": endpoints,
        "log": {"format": config.log_format, "file": str(config.log_file) if config.log_file else None},
        "venues": venues,
        "accounts": dict(sorted(accounts.items())),
        "masters": [name_of(m) for m in config.masters],
        "copies": [{"master": name_of(c.master), "follower": name_of(c.follower)} for c in config.copies],
        "mams": [{"id": g.id, "master": name_of(g.master), "members": len(g.members)} for g in config.mams],
        "notify": config.notify is not None,
        "secrets": {name: f"{MASK} ({secret.source})" for name, secret in secrets_of(config)},
    }


def secrets_of(value: Any, name: str = "") -> Iterator[tuple[str, Secret]]:
    """Every :class:`Secret` in a configuration, with its place (``venues[0].ctrader.client_secret``)."""
    if isinstance(value, Secret):
        yield name, value
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for field in dataclasses.fields(value):
            yield from secrets_of(getattr(value, field.name), f"{name}.{field.name}" if name else field.name)
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from secrets_of(item, f"{name}[{i}]")


def render(s: dict[str, Any]) -> str:
    def names(items: list[str]) -> str:
        return ", ".join(items) if items else "none"

    venues = [f"{v['name']} ({v['platform']}, " + ("remote" if v["remote"] else f"{v['accounts']} account(s)") + ")"
              for v in s["venues"]]
    endpoints = ", ".join(f"{k} {v}" for k, v in s["endpoints"].items() if v)
    log = s["log"]
    lines = [
        f"{s['file']}: ok",
        f"  store      {s['store']}",
        f"  endpoints  {endpoints}",
        f"  log        {log['format']} to {log['file'] or 'stderr'}",
        f"  venues     {len(venues)}: {names(venues)}",
        "  accounts   " + names([f"{platform} {n}" for platform, n in s["accounts"].items()]),
        f"  masters    {len(s['masters'])}: {names(s['masters'])}",
        f"  copies     {len(s['copies'])}: " + names([f"{c['master']} -> {c['follower']}" for c in s["copies"]]),
        f"  mam        {len(s['mams'])}: "
        + names([f"{g['id']} ({g['master']}, {g['members']} member(s))" for g in s["mams"]]),
        f"  notify     {'on' if s['notify'] else 'off'}",
        f"  secrets    {len(s['secrets'])}" + "".join(f"\n    {k}: {v}" for k, v in s["secrets"].items()),
    ]
    return "\n".join(lines)
