"""``bridge demo``: the whole bridge on the embedded default (simulated venue, temporary SQLite)."""

from __future__ import annotations

import json

import click

from bridge.cli.allocate import NON_NEGATIVE
from bridge.cli.progress import bar
from bridge.cli.render import table


@click.command()
@click.option("--followers", type=click.IntRange(min=0, max=5000), default=10, show_default=True,
              help="Copy-trading followers (a three-account MAM group always follows too).")
@click.option("--deals", type=click.IntRange(min=1, max=100_000), default=40, show_default=True,
              help="Master deals in the scripted session (it ends flat).")
@click.option("--seed", type=int, default=7, show_default=True, help="Seed for accounts, script and venue.")
@click.option("--fill-latency-us", type=click.IntRange(min=0), default=2000, show_default=True,
              help="The simulated venue's fill latency.")
@click.option("--reject-rate", type=NON_NEGATIVE, default="0", show_default=True,
              help="Fraction of orders the simulated venue refuses (0 to 1).")
@click.option("--platform", type=click.Choice(["sim", "ctrader", "mt5", "mt4"]), default="sim", show_default=True,
              help="sim: the in-process simulated venue; ctrader: every account on the local cTrader server, "
                   "reached over TLS by the production connector; mt5: every account on a simulated MT5 terminal; "
                   "mt4: every account on a simulated MT4 terminal running the EA's protocol over ZeroMQ "
                   "(--fill-latency-us and --reject-rate are sim's).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def demo(followers, deals, seed, fill_latency_us, reject_rate, platform, as_json) -> None:
    """Run the bridge end to end on a simulated venue and print what happened.

    A netting master trades a seeded session (opens, adds, partial closes, SL/TP
    changes, reversals, closes); copy followers and a MAM group copy it through the
    real bus, journal, worker and executor. Duplicates and missing orders are
    counted against the venue's own records.

    \b
    Example:
      bridge demo --followers 20 --deals 100 --seed 3
      bridge demo --platform ctrader --followers 20
      bridge demo --platform mt5 --followers 20
      bridge demo --platform mt4 --followers 20
      bridge demo --json
    """
    if reject_rate > 1:
        raise click.BadParameter(f"must be a fraction from 0 to 1, got {reject_rate}", param_hint="--reject-rate")
    from twisted.internet import reactor

    from bridge.daemon.runner import run_demo

    result: dict = {}
    failure: list = []
    with bar(deals, "master deals") as advance:  # a bar on a terminal only
        d = run_demo(reactor, followers, deals, seed, progress=advance, platform=platform,
                     fill_latency_us=fill_latency_us, reject_rate=reject_rate)
        d.addCallbacks(result.update, failure.append)
        d.addBoth(lambda _: reactor.stop())
        reactor.run()
    if failure:
        raise click.ClickException(failure[0].getErrorMessage())
    if not result:  # the reactor stopped first: a signal
        raise click.ClickException("the demo was stopped before its session ended")
    if as_json:
        click.echo(json.dumps(result))
        return
    rows = [[k, json.dumps(v) if isinstance(v, dict) else str(v)] for k, v in result.items()]
    click.echo(table(["figure", "value"], rows))
