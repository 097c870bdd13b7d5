"""``bridge bench``: measured speed, the figures the README quotes."""

from __future__ import annotations

import json
import sys

import click

from bridge.bench import allocation as allocation_bench
from bridge.cli.render import table


@click.group()
def bench() -> None:
    """Run a benchmark and print its figures.

    \b
    Example:
      bridge bench allocation --accounts 10000 --repeat 50
    """


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
    with click.progressbar(length=len(Method) + 1, label="benchmarking", file=sys.stderr,
                           show_eta=False) as bar:
        for method in Method:
            cases.append(allocation_bench.mam_block(accounts, repeat, seed=seed, method=method))
            bar.update(1)
        cases.append(allocation_bench.copy_fanout(accounts, repeat, seed=seed))
        bar.update(1)
    target = allocation_bench.TARGET_MS
    results = [c.as_dict() for c in cases]
    if as_json:
        click.echo(json.dumps({"target_ms": target, "cases": results}))
        return
    rows = [[r["name"], str(r["accounts"]), str(r["calls"]), f"{r['min_ms']:.2f}", f"{r['p50_ms']:.2f}",
             f"{r['p99_ms']:.2f}", f"{r['max_ms']:.2f}"] for r in results]
    click.echo(table(["case", "accounts", "calls", "min ms", "p50 ms", "p99 ms", "max ms"], rows))
    click.echo(f"target: one MAM block across 10,000 accounts, p50 under {target} ms")
