"""``bridge demo``: the main job on the embedded default configuration."""

from __future__ import annotations

from pathlib import Path

import click

from bridge.cli.render import allocation_table
from bridge.config.strict import Table, load_toml
from bridge.errors import InputError
from bridge.whatif import copy as copy_whatif
from bridge.whatif import mam as mam_whatif

#: The repository's shipped example, found from an editable or source install.
DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "config" / "demo.toml"


@click.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              default=DEFAULT_CONFIG, show_default="config/demo.toml",
              help="Demo file listing the what-if scenarios to run.")
def demo(config_path: Path) -> None:
    """Run the demo scenarios: a MAM split and a copy fan-out of one master trade.

    Until the pipeline lands this previews allocations only: no venue is
    contacted and no order is sent. Scenario files are relative to the demo file.

    \b
    Example:
      bridge demo --config config/demo.toml
    """
    doc = Table(load_toml(config_path), str(config_path))
    base = config_path.parent
    ran = 0
    for t in doc.tables("mam"):
        group = base / t.str("group")
        title = t.str("title", f"MAM what-if from {group.name}")
        t.finish()
        result = mam_whatif.run(mam_whatif.MamRequest(group_file=group))
        click.echo(allocation_table(result, title) + "\n")
        ran += 1
    for t in doc.tables("copy"):
        settings = base / t.str("settings")
        title = t.str("title", f"copy what-if from {settings.name}")
        t.finish()
        result = copy_whatif.run(copy_whatif.CopyRequest(settings_file=settings))
        click.echo(allocation_table(result, title) + "\n")
        ran += 1
    doc.finish()
    if not ran:
        raise InputError(f"{config_path}: no [[mam]] or [[copy]] scenarios to run")
