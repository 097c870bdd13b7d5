"""``bridge status``: ask the running daemon for its roles, bus positions and counts."""

from __future__ import annotations

import json
from pathlib import Path

import click

from bridge.daemon.services import ROLES


@click.command()
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              required=True, help="The bridge configuration (its [bus] control endpoint is asked).")
@click.option("--role", type=click.Choice(ROLES), default="all", show_default=True,
              help="The process to ask: connector asks [bus] control_connector when it is set, else [bus] control.")
@click.option("--timeout", type=click.IntRange(min=1, max=60_000), default=2000, show_default=True,
              help="Milliseconds to wait for the daemon's answer.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def status(config_path, role, timeout, as_json) -> None:
    """Show the running daemon's roles, connections, sequence positions and counts.

    \b
    Example:
      bridge status --config /etc/copybridge/bridge.toml
      bridge status --config config/bridge.toml --json
      bridge status --config config/bridge.toml --role connector
    """
    from bridge.daemon import config as bridge_config
    from bridge.daemon.control import ask_status

    config = bridge_config.load(config_path)
    endpoint = config.control_for(role)
    answer = ask_status(endpoint, timeout, config.curve)
    if answer is None:
        hint = "" if config.curve is None else " (CURVE is on: a daemon that does not allow this key never answers)"
        raise click.ClickException(f"no daemon answered on {endpoint} within {timeout} ms{hint}")
    if as_json:
        click.echo(json.dumps(answer))
        return
    from bridge.cli.status_view import render

    click.echo(render(answer))
