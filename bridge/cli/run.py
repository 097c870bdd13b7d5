"""``bridge run``: the daemon, in the foreground (systemd runs it so)."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from bridge.daemon.services import ROLES


@click.command()
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              required=True, help="The bridge configuration (TOML).")
@click.option("--role", type=click.Choice(ROLES), default="all", show_default=True,
              help="Which roles this process runs.")
@click.option("--check", is_flag=True, help="Load and check the configuration, then exit.")
@click.option("--drain-timeout", type=click.FloatRange(min=0), default=20.0, show_default=True, metavar="SECONDS",
              help="On SIGTERM, wait at most this long for the orders in flight (keep it below the unit's "
                   "TimeoutStopSec).")
def run(config_path, role, check, drain_timeout) -> None:
    """Run the bridge daemon in the foreground until SIGTERM or SIGINT.

    Under systemd (Type=notify) it sends READY=1 once every role is up and
    recovered, WATCHDOG=1 pings, and STOPPING=1 when a stop begins; a stop lets
    the orders in flight finish first (see systemd/README.md).

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
    from bridge.daemon.logs import log_config, setup

    setup(config.log_format, config.log_file)  # [log]: text or JSON lines, stderr or a file
    log_config(config, config_path, config.log_format)
    from twisted.internet import reactor

    from bridge.daemon.drain import drain
    from bridge.daemon.notify import Notifier, notify_when_ready
    from bridge.daemon.services import build

    top = build(config, reactor, role, with_control=True)
    notifier = Notifier()
    failed: list[str] = []

    def start() -> None:
        try:
            top.startService()
        except Exception as exc:  # e.g. an endpoint in use: exit, rather than run with part of the roles
            failed.append(str(exc))
            notifier.status(f"cannot start role {role}: {exc}")
            reactor.stop()
            return
        notifier.status(f"starting: role {role}, {len(config.venues)} venue(s) to connect, then recovery")
        waiting = notify_when_ready(notifier, top, reactor)
        notifier.start_watchdog(reactor)  # pings through recovery and the drain too: they run on the reactor

        def stop():
            if waiting.running:
                waiting.stop()
            notifier.stopping("stopping: finishing the orders in flight")
            d = drain(top, reactor, drain_timeout)
            d.addErrback(lambda f: logging.getLogger("bridge.drain").error("drain: %s", f.getErrorMessage()))
            d.addCallback(lambda left: notifier.status(f"stopping: {len(left)} order(s) left for recovery"
                                                       if left else "stopping: no order in flight"))
            d.addBoth(lambda _: top.stopService())
            return d

        reactor.addSystemEventTrigger("before", "shutdown", stop)

    reactor.callWhenRunning(start)
    reactor.run()
    if failed:
        raise click.ClickException(f"cannot start role {role}: {failed[0]}")
