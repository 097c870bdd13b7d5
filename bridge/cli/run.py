"""``bridge run``: the daemon, in the foreground (systemd runs it so)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from bridge.daemon.services import ROLES


@click.command()
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              required=True, help="The bridge configuration (TOML).")
@click.option("--role", type=click.Choice(ROLES), default="all", show_default=True,
              help="Which roles this process runs.")
@click.option("--check", is_flag=True, help="Load and check the configuration, then exit.")
def run(config_path, role, check) -> None:
    """Run the bridge daemon in the foreground until SIGTERM or SIGINT.

    \b
    Example:
      bridge run --config config/bridge.toml
      bridge run --config config/bridge.toml --role worker
      bridge run --config config/bridge.toml --role connector   # [bus] control_connector, if on one host
      bridge run --config config/bridge.toml --check
    """
    from bridge.daemon import config as bridge_config

    config = bridge_config.load(config_path)
    if check:
        click.echo(f"{config_path}: ok ({len(config.venues)} venue(s), {len(config.masters)} master(s), "
                   f"{len(config.copies)} copy route(s), {len(config.mams)} MAM group(s))")
        return
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from twisted.internet import reactor

    from bridge.daemon.services import build

    top = build(config, reactor, role, with_control=True)
    failed: list[str] = []

    def start() -> None:
        try:
            top.startService()
        except Exception as exc:  # e.g. an endpoint in use: exit, rather than run with part of the roles
            failed.append(str(exc))
            reactor.stop()
            return
        reactor.addSystemEventTrigger("before", "shutdown", top.stopService)

    reactor.callWhenRunning(start)
    reactor.run()
    if failed:
        raise click.ClickException(f"cannot start role {role}: {failed[0]}")
