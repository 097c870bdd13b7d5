"""``bridge bench``: measured speed, the figures the README quotes."""

from __future__ import annotations

import json

import click

from bridge.bench import allocation as allocation_bench
from bridge.cli.progress import bar
from bridge.cli.render import table


TARGETS = "targets: 1 follower p50 < 0.3 ms, p99 < 1 ms, p50 within 5x a raw hop; 100 followers p99 < 5 ms; " \
          "1,000 followers p99 < 40 ms"


@click.group(invoke_without_command=True)
@click.option("--followers", type=click.IntRange(min=1, max=10_000), default=1, show_default=True,
              help="Copy followers of the benchmark master.")
@click.option("--deals", type=click.IntRange(min=1, max=100_000), default=200, show_default=True,
              help="Master deals (alternating open and close).")
@click.option("--platform", type=click.Choice(["sim", "ctrader", "mt5", "mt4"]), default="sim", show_default=True,
              help="sim: the in-process simulated venue; ctrader: the local cTrader server in its own process, "
                   "timed on the wire (master ExecutionEvent -> last follower order request); mt5: simulated "
                   "MT5 terminals, one thread each (master deal in the terminal's history -> last follower "
                   "order_send); mt4: simulated MT4 terminals running the EA's protocol (master trade -> last "
                   "follower order command at its EA).")
@click.option("--pool-size", type=click.IntRange(min=1, max=64),
              help="cTrader connections of the bridge (default: one per 20 accounts, at most 16).")
@click.option("--poll-interval-ms", type=click.IntRange(min=1, max=10_000),
              help="MT5: how often the master's terminal is polled (default: the venue setting's default, 5).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
@click.pass_context
def bench(ctx, followers, deals, platform, pool_size, poll_interval_ms, as_json) -> None:
    """Benchmark the pipeline: a master deal entering the connector -> the last follower order leaving.

    Runs the production connector, bus, journal, worker and executor against a
    zero-latency simulated venue, and one raw pyzmq hop in the same run for
    comparison. `bridge bench allocation` benchmarks the allocation engine alone.

    \b
    With --platform ctrader the master and followers are accounts on the local
    cTrader server, run in its own process; the bridge talks to it with the
    production connector over TLS, and the server times each deal on the wire.

    \b
    Example:
      bridge bench --followers 100 --deals 200 --json
      bridge bench --platform ctrader --followers 100 --deals 50
      bridge bench --platform mt5 --followers 100 --deals 100
      bridge bench --platform mt4 --followers 100 --deals 100
      bridge bench allocation --accounts 10000
    """
    if ctx.invoked_subcommand is not None:
        return
    from bridge.bench import pipeline

    if pool_size is not None and platform != "ctrader":
        raise click.UsageError("--pool-size goes with --platform ctrader")
    if poll_interval_ms is not None and platform != "mt5":
        raise click.UsageError("--poll-interval-ms goes with --platform mt5")
    extra = {}
    with bar(deals, "master deals") as advance:  # a bar on a terminal only
        if platform == "ctrader":
            figures = pipeline.run_ctrader(followers, deals, progress=advance, pool_size=pool_size).as_dict()
        elif platform == "mt5":
            from bridge.bench import mt5

            poll_interval_ms = poll_interval_ms or mt5.DEFAULT_POLL_MS
            figures = mt5.run(followers, deals, progress=advance, poll_interval_ms=poll_interval_ms).as_dict()
            extra = {"poll_interval_ms": poll_interval_ms}
        elif platform == "mt4":
            from bridge.bench import mt4

            figures = mt4.run(followers, deals, progress=advance).as_dict()
        else:
            figures = pipeline.run(followers, deals, progress=advance).as_dict()
    figures = {"platform": platform, **extra, **figures}
    if as_json:
        click.echo(json.dumps(figures))
        return
    d, h, c = figures["deal_to_last_order_ms"], figures["raw_zmq_hop_ms"], figures["cpu_reference_ms"]
    what = {"ctrader": "master event -> last order on the wire",
            "mt5": "deal in history -> last order_send",
            "mt4": "master trade -> last order at its EA"}.get(platform, "deal -> last order out")
    rows = [[what, f"{d['p50']:.3f}", f"{d['p99']:.3f}", f"{d['max']:.3f}"],
            ["raw pyzmq hop (inproc)", f"{h['p50']:.3f}", f"{h['p99']:.3f}", ""],
            ["cpu reference (fixed loop)", f"{c['p50']:.3f}", f"{c['p99']:.3f}", ""]]
    for key, label in (("zmq_hop_to_waiting_receiver_ms", "pyzmq hop to a waiting receiver"),
                       ("commit_floor_ms", "one SQLite row committed (WAL)")):
        if key in figures:
            rows.insert(-1, [label, f"{figures[key]['p50']:.3f}", f"{figures[key]['p99']:.3f}", ""])
    click.echo(f"{followers} follower(s), {deals} master deals; p50 ratio {figures['ratio_p50']}x")
    click.echo(table(["ms", "p50", "p99", "max"], rows))
    if platform == "sim":
        click.echo(TARGETS)
    elif platform == "mt5":
        click.echo(f"master terminal polled every {poll_interval_ms} ms: the figure includes the wait for the next poll")
    elif platform == "mt4":
        click.echo("the EA scans every 1 ms: the figure includes the wait for its next scan")
    else:
        click.echo("timed by the server on the wire: its master ORDER_FILLED event out -> the last follower order in")


@bench.command("allocation")
@click.option("--accounts", type=click.IntRange(min=1, max=1_000_000), default=10_000, show_default=True,
              help="Accounts in the MAM group and followers in the copy fan-out.")
@click.option("--repeat", type=click.IntRange(min=1, max=10_000), default=50, show_default=True,
              help="Timed calls per case.")
@click.option("--seed", type=int, default=7, show_default=True, help="Seed for the generated accounts.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of a table.")
def allocation(accounts, repeat, seed, as_json) -> None:
    """Allocate one block across N accounts (every MAM method) and size one open for N followers.

    The target is one block across 10,000 accounts in under 20 ms (p50) on a
    2-core machine. Exit status 0 whether or not the target is met: this reports,
    it does not judge.

    \b
    Example:
      bridge bench allocation --accounts 10000 --repeat 50 --json
    """
    from allocation.mam import Method

    cases = []
    with bar(len(Method) + 1, "benchmarking") as advance:
        for method in Method:
            cases.append(allocation_bench.mam_block(accounts, repeat, seed=seed, method=method))
            advance(1)
        cases.append(allocation_bench.copy_fanout(accounts, repeat, seed=seed))
        advance(1)
    target = allocation_bench.TARGET_MS
    results = [c.as_dict() for c in cases]
    if as_json:
        click.echo(json.dumps({"target_ms": target, "cases": results}))
        return
    rows = [[r["name"], str(r["accounts"]), str(r["calls"]), f"{r['min_ms']:.2f}", f"{r['p50_ms']:.2f}",
             f"{r['p99_ms']:.2f}", f"{r['max_ms']:.2f}"] for r in results]
    click.echo(table(["case", "accounts", "calls", "min ms", "p50 ms", "p99 ms", "max ms"], rows))
    click.echo(f"target: one MAM block across 10,000 accounts, p50 under {target} ms")
