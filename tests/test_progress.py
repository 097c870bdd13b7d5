"""Progress bars: `bridge bench` and `bridge demo` draw one on a terminal, and write nothing to a pipe."""

from __future__ import annotations

import os
import pty
import subprocess
import sys

import pytest

from tests.processes import ROOT

COMMANDS = {
    "bench": ("bench", "--followers", "1", "--deals", "20"),
    "bench allocation": ("bench", "allocation", "--accounts", "50", "--repeat", "2"),
    "demo": ("demo", "--followers", "1", "--deals", "6", "--fill-latency-us", "0"),
}
BAR = ("#", "[", "%")  # what click draws


def bridge(argv: tuple[str, ...], **kwargs) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "BRIDGE_DEBUG"}
    return subprocess.run([sys.executable, "-c", "from bridge.cli.main import main; main()", *argv],
                          cwd=ROOT, timeout=120, env=env, **kwargs)


def on_a_terminal(argv: tuple[str, ...]) -> tuple[subprocess.CompletedProcess, bytes]:
    """Run with stderr on a pseudo-terminal; the process and what the terminal received."""
    leader, follower = pty.openpty()
    try:
        done = bridge(argv, stdout=subprocess.PIPE, stderr=follower)
        os.close(follower)
        seen = b""
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the other end is closed and drained
                break
            if not chunk:
                break
            seen += chunk
    finally:
        os.close(leader)
    return done, seen


@pytest.mark.parametrize("argv", COMMANDS.values(), ids=COMMANDS.keys())
def test_a_bar_on_a_terminal_and_nothing_when_piped(argv):
    piped = bridge(argv, capture_output=True, text=True)
    assert piped.returncode == 0 and piped.stdout
    assert piped.stderr == "", f"piped, stderr should stay empty: {piped.stderr!r}"

    done, seen = on_a_terminal(argv)
    assert done.returncode == 0 and done.stdout
    label = b"benchmarking" if "allocation" in argv else b"master deals"
    assert label in seen and all(mark.encode() in seen for mark in BAR), seen[-300:]
    assert b"100%" in seen, "the bar reaches its end"
