"""Progress bars for long commands: on stderr when it is a terminal, nothing when it is not.

Piped, redirected, under a test or under systemd, a command writes no bar and
no label: stderr stays for errors. The daemon's own long work (a backfill, a
reconcile) has no terminal: it logs progress lines instead.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Callable, Iterator


@contextmanager
def progress(label: str) -> Iterator[tuple]:
    """(on_length, update) callbacks driving a progress bar on stderr when it is a terminal; (None, None)
    when it is not. ``on_length(n)`` opens the bar once the total is known; ``update(n)`` advances it."""
    if not sys.stderr.isatty():
        yield (None, None)
        return
    import click

    bars: list = []

    def on_length(n: int) -> None:
        bar = click.progressbar(length=max(n, 1), label=label, file=sys.stderr, show_eta=False)
        bars.append(bar.__enter__())

    def update(n: int) -> None:
        if bars:
            bars[0].update(n)

    try:
        yield (on_length, update)
    finally:
        if bars:
            bars[0].__exit__(None, None, None)


@contextmanager
def bar(length: int, label: str) -> Iterator[Callable[[int], None]]:
    """An ``update(n)`` callback for ``length`` steps known up front: a bar on a terminal, a no-op otherwise."""
    with progress(label) as (on_length, update):
        if on_length is None:
            yield _nothing
            return
        on_length(length)
        yield update


def _nothing(n: int) -> None:
    return None
