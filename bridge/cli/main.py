"""The ``bridge`` entry point: every error is one line, usage errors exit 2, no tracebacks.

Set ``BRIDGE_DEBUG=1`` to see the traceback of an unexpected error.
"""

from __future__ import annotations

import os
import sys

import click

from bridge import __version__
from bridge.cli.accounts import accounts_group
from bridge.cli.allocate import allocate
from bridge.cli.bench import bench
from bridge.cli.config import config_group
from bridge.cli.copy import copy_group
from bridge.cli.demo import demo
from bridge.cli.keys import keys_group
from bridge.cli.mam import mam_group
from bridge.cli.pamm import pamm_group
from bridge.cli.report import report
from bridge.cli.run import run
from bridge.cli.sim import sim
from bridge.cli.status import status
from bridge.cli.store import store_group
from bridge.errors import InputError

EXIT_USAGE = 2


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="copybridge")
def cli() -> None:
    """copybridge: copy trading, MAM and PAMM across MetaTrader 4, MetaTrader 5 and cTrader.

    \b
    Example:
      bridge demo                                  # the whole bridge on a simulated venue
      bridge run --config /etc/copybridge/bridge.toml
      bridge status --config /etc/copybridge/bridge.toml
      bridge copy subscribe --config /etc/copybridge/bridge.toml --master mt5-live/5001 --follower mt5-live/5002
      bridge report --config /etc/copybridge/bridge.toml --from 2026-12-01 --to 2026-12-02
      bridge allocate mam --method equity --volume 0.10 --account A=4500 --account B=3500
    """


cli.add_command(allocate)
cli.add_command(demo)
cli.add_command(bench)
cli.add_command(run)
cli.add_command(config_group)
cli.add_command(status)
cli.add_command(sim)
cli.add_command(pamm_group)
cli.add_command(report)
cli.add_command(accounts_group)
cli.add_command(copy_group)
cli.add_command(store_group)
cli.add_command(mam_group)
cli.add_command(keys_group)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; turn every error into one line and an exit code."""
    try:
        cli.main(args=argv, prog_name="bridge", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("bridge: aborted", err=True)
        sys.exit(1)
    except click.UsageError as exc:
        _fail(exc.format_message(), EXIT_USAGE)
    except click.ClickException as exc:
        _fail(exc.format_message(), exc.exit_code)
    except InputError as exc:
        _fail(str(exc), EXIT_USAGE)
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except BrokenPipeError:
        sys.exit(0)  # `bridge ... | head` closed the pipe: not an error
    except Exception as exc:  # a bug: say so in one line, traceback only on request
        if os.environ.get("BRIDGE_DEBUG"):
            raise
        _fail(f"internal error: {type(exc).__name__}: {exc} (set BRIDGE_DEBUG=1 for the traceback)", 1)
    sys.exit(0)


def _fail(message: str, code: int) -> None:
    click.echo("bridge: error: " + " ".join(str(message).split()), err=True)
    sys.exit(code)
