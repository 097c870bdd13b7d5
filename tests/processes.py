"""Subprocesses for the multi-process tests: the sim venue and ``bridge run``, on real sockets on 127.0.0.1.

Every process started here is stopped by a finalizer of the fixture that
started it (SIGTERM, then SIGKILL if it does not exit), so a failing test
leaves nothing running.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import zmq
from sqlite_utils import Database

from bridge.store import Store

ROOT = Path(__file__).resolve().parents[1]
BRIDGE = str(Path(sys.executable).with_name("bridge"))
POLL_PAUSE_S = 0.002  # between two status polls: the daemons share the CPU with the test


def free_port_endpoint() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


@contextmanager
def read_only_store(path: Path) -> Iterator[Store]:
    """The journal of a running worker, opened read-only (no migrations, no pragmas, no writes)."""
    store = Store(Database(sqlite3.connect(f"file:{path}?mode=ro", uri=True)), path)
    try:
        yield store
    finally:
        store.close()


def terminate(process: subprocess.Popen | None, timeout_s: float = 10.0) -> None:
    """Stop ``process`` (SIGTERM, then SIGKILL after ``timeout_s``); nothing if it already exited."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout_s)


class Client:
    """Blocking requests on a DEALER socket (the venue's request protocol, the daemon's control socket)."""

    def __init__(self, ctx: zmq.Context, endpoint: str) -> None:
        self.socket = ctx.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.connect(endpoint)
        self.n = 0

    def venue(self, method: str, **args):
        self.n += 1
        rid = str(self.n).encode()
        self.socket.send_multipart([rid, method.encode(), json.dumps(args).encode()])
        assert self.socket.poll(10_000), f"the venue did not answer {method}"
        parts = self.socket.recv_multipart()
        assert parts[0] == rid
        body = json.loads(parts[2])
        if parts[1] != b"ok":
            raise RuntimeError(f"{method}: {body}")
        return body

    def status(self, timeout_ms: int = 200):
        self.socket.send(b"status")
        if not self.socket.poll(timeout_ms):
            return None
        return json.loads(self.socket.recv())


def write_accounts(path: Path, venue: str, accounts: list[tuple[int, int]], **options) -> Path:
    """A ``connectors.sim.serve`` accounts file: netting accounts ``(login, balance)``, ``[venue]`` options."""
    rows = [f"[venue]\nname = \"{venue}\"\n" + "".join(f"{k} = {v}\n" for k, v in options.items())]
    for login, balance in accounts:
        rows.append(f"[[accounts]]\nlogin = {login}\nbalance = \"{balance}\"\nhedging = false\n")
    path.write_text("\n".join(rows))
    return path


def sim_bridge_config(path: Path, venue: str, endpoints: tuple[str, str, str], control: str, extra: str = "") -> Path:
    """A bridge.toml at ``path`` for one sim venue served at ``endpoints`` (:func:`start_venue`'s), its store
    beside it, the bus on free ports, no metrics, then ``extra`` (masters, routes)."""
    endpoint, deals, replay = endpoints
    path.write_text(
        f"[store]\npath = \"{path.parent / 'bridge.sqlite'}\"\n"
        f"[bus]\ndeals = \"{free_port_endpoint()}\"\ndeals_replay = \"{free_port_endpoint()}\"\n"
        f"heartbeat_ms = 50\ncontrol = \"{control}\"\n[metrics]\nlisten = \"\"\n"
        f"[[venue]]\nname = \"{venue}\"\nplatform = \"sim\"\nendpoint = \"{endpoint}\"\n"
        f"deals_endpoint = \"{deals}\"\nreplay_endpoint = \"{replay}\"\n{extra}")
    return path


def sim_world(tmp_path: Path, request, venue: str, accounts: list[tuple[int, int]], extra: str = "",
              **venue_options) -> tuple[Client, "Daemon", Path]:
    """A sim venue process with ``accounts`` (netting, ``(login, balance)``; ``venue_options`` its [venue]
    settings) and a ``bridge run`` for it configured with ``extra`` (masters, routes), not yet started:
    (a client of the venue, the daemon, its bridge.toml). Both stop when ``request``'s test ends."""
    ctx = zmq.Context()
    request.addfinalizer(lambda: ctx.destroy(0))
    endpoints = start_venue(write_accounts(tmp_path / "accounts.toml", venue, accounts, **venue_options),
                            tmp_path / "venue.log", request)
    control = free_port_endpoint()
    config = sim_bridge_config(tmp_path / "bridge.toml", venue, endpoints, control, extra)
    bridge = Daemon(config, tmp_path / "bridge.log", ctx, control)
    request.addfinalizer(bridge.stop)
    return Client(ctx, endpoints[0]), bridge, config


def bridge_cli(*argv: str) -> str:
    """``bridge ARGV`` in a subprocess (no BRIDGE_DEBUG); its output, asserting exit 0."""
    env = {k: v for k, v in os.environ.items() if k != "BRIDGE_DEBUG"}
    done = subprocess.run([BRIDGE, *argv], capture_output=True, text=True, cwd=ROOT, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def start_venue(accounts: Path, log: Path, request, seed: int = 5, timeout_s: float = 30.0) -> tuple[str, str, str]:
    """``python -m connectors.sim.serve`` on ephemeral ports, stopped when ``request``'s fixture ends.

    Returns its request, deals and replay endpoints (from its ``ready`` line).
    """
    with open(log, "w") as err:
        venue = subprocess.Popen([sys.executable, "-m", "connectors.sim.serve", "--endpoint", "tcp://127.0.0.1:*",
                                  "--deals-endpoint", "tcp://127.0.0.1:*", "--replay-endpoint", "tcp://127.0.0.1:*",
                                  "--accounts", str(accounts), "--seed", str(seed)],
                                 stdout=subprocess.PIPE, stderr=err, text=True, cwd=ROOT)
    request.addfinalizer(lambda: terminate(venue))
    ready, _, _ = select.select([venue.stdout], [], [], timeout_s)
    words = venue.stdout.readline().split() if ready else []
    assert words and words[0] == "ready", f"the venue did not start: {words}; see {log}"
    return words[1], words[2], words[3]


class Daemon:
    """``bridge run --role ROLE`` as a subprocess, killed and restarted by the test."""

    def __init__(self, config: Path, log: Path, ctx: zmq.Context, control: str, role: str = "all") -> None:
        self.config, self.log, self.ctx, self.control, self.role = config, log, ctx, control, role
        self.process: subprocess.Popen | None = None
        self.kills = 0

    def start(self) -> dict:
        """Start the process; returns its first status that shows the role running."""
        assert self.process is None or self.process.poll() is not None, f"{self.role} is already running"
        with open(self.log, "a") as log:
            self.process = subprocess.Popen([BRIDGE, "run", "--config", str(self.config), "--role", self.role],
                                            stdout=log, stderr=log, cwd=ROOT)
        key = "connector" if self.role == "connector" else "worker"
        return self.wait(lambda s: s is not None and key in s, f"the {self.role} role to start")

    @classmethod
    def for_test(cls, config: Path, control: str, tmp_path: Path, request) -> "Daemon":
        """A daemon logging to ``tmp_path / "bridge.log"`` on a zmq context of its own, both ended with the test
        (``daemon.ctx`` for the test's own sockets)."""
        ctx = zmq.Context()
        request.addfinalizer(lambda: ctx.destroy(0))
        daemon = cls(config, tmp_path / "bridge.log", ctx, control)
        request.addfinalizer(daemon.stop)
        return daemon

    def status(self):
        client = Client(self.ctx, self.control)  # a fresh socket: a dead daemon must not leave a reply queued
        try:
            return client.status()
        finally:
            client.socket.close(0)

    def wait(self, condition, what: str, timeout_s: float = 60.0):
        deadline = time.monotonic() + timeout_s
        while True:
            assert self.process.poll() is None, f"the {self.role} process exited while waiting for {what}: see {self.log}"
            status = self.status()
            if condition(status):
                return status
            assert time.monotonic() < deadline, f"timed out waiting for {what}: {status}"
            time.sleep(POLL_PAUSE_S)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        self.kills += 1

    def stop(self) -> None:
        terminate(self.process, timeout_s=20)


def start_mt5_sim(login: int, log: Path, request, *options: str, timeout_s: float = 30.0) -> int:
    """``bridge sim mt5 --port 0 --login LOGIN OPTIONS`` (one simulated MT5 terminal served over rpyc classic on
    127.0.0.1), stopped when ``request``'s fixture ends. Returns the port it bound (named on its first line)."""
    err = open(log, "w")
    sim = subprocess.Popen([BRIDGE, "sim", "mt5", "--port", "0", "--login", str(login), *options],
                           stdout=subprocess.PIPE, stderr=err, text=True, cwd=ROOT)
    request.addfinalizer(lambda: (terminate(sim), sim.stdout.close(), err.close()))
    ready, _, _ = select.select([sim.stdout], [], [], timeout_s)
    line = sim.stdout.readline() if ready else ""
    assert line.startswith("listening on rpyc://127.0.0.1:"), f"bridge sim mt5 did not start: {line!r}; see {log}"
    return int(line.split("rpyc://127.0.0.1:", 1)[1].split()[0])


def start_mt4_sim(login: int, log: Path, request, *options: str, timeout_s: float = 30.0) -> int:
    """``bridge sim mt4 --endpoint tcp://127.0.0.1:0 --login LOGIN OPTIONS`` (one simulated MT4 terminal and
    its EA: commands on PORT, events on PORT + 1), stopped when ``request``'s fixture ends. Returns PORT
    (named on its first line)."""
    err = open(log, "w")
    sim = subprocess.Popen([BRIDGE, "sim", "mt4", "--endpoint", "tcp://127.0.0.1:0", "--login", str(login),
                            *options], stdout=subprocess.PIPE, stderr=err, text=True, cwd=ROOT)
    request.addfinalizer(lambda: (terminate(sim), sim.stdout.close(), err.close()))
    ready, _, _ = select.select([sim.stdout], [], [], timeout_s)
    line = sim.stdout.readline() if ready else ""
    assert line.startswith("listening on tcp://127.0.0.1:"), f"bridge sim mt4 did not start: {line!r}; see {log}"
    return int(line.split("tcp://127.0.0.1:", 1)[1].split()[0])


# -- a master's trader by hand, for the process tests of each platform -----------------------------------
UNFINISHED = ("planned", "sent", "unknown")  # intent states a settled bridge has none of


def wait_for(condition, what: str, timeout_s: float = 20.0) -> None:
    """Poll ``condition`` (another process's state) until it holds."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


def count_reaching(count, target: int, patience_s: float = 3.0) -> int:
    """``count()`` polled until it reaches ``target`` or ``patience_s`` passes; its last value. For what another
    process may or may not still do (a venue filling only the orders that reached it before a SIGKILL)."""
    deadline = time.monotonic() + patience_s
    while True:
        value = count()
        if value >= target or time.monotonic() > deadline:
            return value
        time.sleep(0.05)  # each count is a request to the other process


def settled(expected_fills: int):
    """A status condition: venues ready, the worker idle, ``expected_fills`` intents filled, none unfinished."""
    return lambda s: (s and s.get("venues_ready") and s["worker"]["idle"]
                      and s["worker"]["intents"].get("filled", 0) == expected_fills
                      and not any(s["worker"]["intents"].get(k) for k in UNFINISHED))


def a_restart_sends_nothing(daemon: Daemon, fills: int, deals: int) -> None:
    """SIGKILL ``daemon`` and start it again with nothing changed at the venues: it settles with ``fills`` intents
    filled and ``deals`` master deals journalled, and a second later still does (a late deal would show)."""
    daemon.kill()
    daemon.start()
    daemon.wait(settled(fills), "the restart", timeout_s=30)
    time.sleep(1.0)
    status = daemon.wait(settled(fills), "the restart to stay quiet")
    assert status["worker"]["journal"]["deals"] == deals


def master_script(rng, actions: int):
    """A master's actions on one EURUSD position at a time, in hundredths of a lot (even, so a 0.5 copy is
    exact): ("open", side, lots) with side 0 buy or 1 sell (MT4's OP_* and MT5's ORDER_TYPE_* alike),
    ("partial", lots), ("close",); it ends flat. (No adds: on a hedging follower an add is a position of its
    own, and the master's close then closes two, two trades for one deal.)"""
    open_lots = 0
    for i in range(actions):
        if open_lots == 0:
            open_lots = rng.randrange(10, 40) * 2
            yield ("open", rng.choice((0, 1)), open_lots)
        elif i == actions - 1:
            break
        elif rng.random() < 0.6 and open_lots >= 8:
            lots = rng.randrange(1, open_lots // 2 - 1) * 2
            open_lots -= lots
            yield ("partial", lots)
        else:
            open_lots = 0
            yield ("close",)
    if open_lots:
        yield ("close",)
