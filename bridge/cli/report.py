"""``bridge report``: orders, fills, rejections, latency and slippage of a time window, from the store."""

from __future__ import annotations

from pathlib import Path

import click

from bridge.cli.progress import progress
from bridge.errors import InputError

FORMATS = ("table", "csv", "json", "html")


@click.command()
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="The bridge configuration: its [store] path is read.")
@click.option("--store", "store_path", type=click.Path(dir_okay=False, path_type=Path),
              help="The store's SQLite file (instead of --config).")
@click.option("--from", "start", required=True, metavar="DATE",
              help="Start of the window, inclusive: 2026-12-01 or 2026-12-01T14:30:00 (UTC unless an offset is given).")
@click.option("--to", "end", required=True, metavar="DATE", help="End of the window, exclusive; as --from.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True,
              help="table: aligned text; csv: one row per group; json: one object (decimals as strings); "
                   "html: one self-contained page with charts.")
@click.option("--json", "as_json", is_flag=True, help="The same as --format json.")
@click.option("--output", type=click.Path(dir_okay=False, writable=True, path_type=Path),
              help="Write the report to this file instead of standard output.")
def report(config_path, store_path, start, end, fmt, as_json, output) -> None:
    """Report per master, follower and venue: orders, fills, rejections and skips by reason, latency p50/p99
    (whole path and per stage) and slippage (mean, p50/p99, distribution, money per currency).

    The window is on the time the bridge detected each master deal: --from inclusive, --to exclusive, UTC.

    \b
    Example:
      bridge report --config /etc/copybridge/bridge.toml --from 2026-12-01 --to 2026-12-02
      bridge report --store copybridge.sqlite --from 2026-12-01T08:00 --to 2026-12-01T12:00 --format csv
      bridge report --store copybridge.sqlite --from 2026-12-01 --to 2026-12-08 --format html --output week.html
    """
    from bridge.report.query import count_orders, nav_points, orders, store_db
    from bridge.report.summary import summarise
    from bridge.report.window import window as make_window

    if (config_path is None) == (store_path is None):
        raise InputError("give the store with exactly one of --config FILE or --store PATH")
    if as_json:
        if fmt not in ("table", "json"):
            raise InputError(f"--json and --format {fmt} disagree: give one of them")
        fmt = "json"
    span = make_window(start, end)
    if config_path is not None:
        from bridge.daemon import config as bridge_config

        store_path = bridge_config.load(config_path).store_path
    with store_db(store_path) as db, progress("reading orders") as (on_length, update):
        if on_length is not None:
            on_length(count_orders(db, span))
        nav = nav_points(db, span)
        result = summarise(span, orders(db, span, update), nav, nav is not None)
    text = _render(fmt, result)
    if output is None:
        click.echo(text, nl=False)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as e:
        raise InputError(f"--output: cannot write {output}: {e.strerror}") from None
    click.echo(f"report written to {output}", err=True)


def _render(fmt: str, result) -> str:
    if fmt == "csv":
        from bridge.report.render_csv import render_csv
        return render_csv(result)
    if fmt == "json":
        from bridge.report.render_json import render_json
        return render_json(result)
    if fmt == "html":
        from bridge.report.render_html import render_html
        return render_html(result)
    from bridge.report.render_table import render_table
    return render_table(result)
