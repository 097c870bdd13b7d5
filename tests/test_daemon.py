"""The daemon: configuration, the service tree over the real bus, and the demo command."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import zmq
from twisted.internet.selectreactor import SelectReactor

from bridge.daemon import config as bridge_config
from bridge.daemon.demo import Script
from bridge.daemon.services import ConnectorService, build
from bridge.domain.deal import Side
from bridge.errors import InputError

ROOT = Path(__file__).resolve().parents[1]
BRIDGE = str(Path(sys.executable).with_name("bridge"))


def run_bridge(*args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "BRIDGE_DEBUG"}
    return subprocess.run([BRIDGE, *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)


# -- configuration -----------------------------------------------------------------

@pytest.mark.parametrize("name", ["bridge.toml", "demo.toml"])
def test_shipped_configurations_load(name):
    config = bridge_config.load(ROOT / "config" / name)
    assert config.venues and config.masters and config.copies


BAD = {
    "unknown key": ("[store]\npath='x'\npaht='y'\n", "unknown key 'paht'"),
    "no venue": ("[store]\npath='x'\n", "no [[venue]]"),
    "bad drift policy": ("[reconcile]\ndrift='heal-everything'\n[[venue]]\nname='v'\nplatform='sim'\n",
                         "[reconcile]: drift 'heal-everything' is not one of report, adopt"),
    "bad endpoint": ("[bus]\ndeals='http://x'\n[[venue]]\nname='v'\nplatform='sim'\n", "must be an inproc://"),
    "mt4 without terminals": ("[[venue]]\nname='v'\nplatform='mt4'\n", "an MT4 venue needs at least one"),
    "unknown platform": ("[[venue]]\nname='v'\nplatform='mt6'\n", "platform"),
    "mt5 without terminals": ("[[venue]]\nname='v'\nplatform='mt5'\n", "an MT5 venue needs at least one"),
    "unknown account": ("[[venue]]\nname='v'\nplatform='sim'\n[[master]]\naccount='v/1'\n",
                        "venue 'v' has no account 1"),
    "follower of no master": ("[[venue]]\nname='v'\nplatform='sim'\n[[venue.account]]\nlogin=1\nbalance=1\n"
                              "[[venue.account]]\nlogin=2\nbalance=1\n[[copy]]\nmaster='v/1'\nfollower='v/2'\n",
                              "has followers but no [[master]]"),
    "bad copy setting": ("[[venue]]\nname='v'\nplatform='sim'\n[[venue.account]]\nlogin=1\nbalance=1\n"
                         "[[venue.account]]\nlogin=2\nbalance=1\n[[master]]\naccount='v/1'\n"
                         "[[copy]]\nmaster='v/1'\nfollower='v/2'\n[copy.settings]\nmode='yolo'\n", "mode"),
}


@pytest.mark.parametrize("text,expected", BAD.values(), ids=BAD.keys())
def test_bad_configuration_names_the_problem(tmp_path, text, expected):
    path = tmp_path / "bridge.toml"
    path.write_text(text)
    with pytest.raises(InputError, match=expected.replace("[", r"\[").replace("]", r"\]")):
        bridge_config.load(path)


def test_run_check_and_a_bad_config_on_the_command_line(tmp_path):
    ok = run_bridge("run", "--config", "config/bridge.toml", "--check")
    assert ok.returncode == 0 and "1 master(s), 2 copy route(s)" in ok.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text("[store]\npaht = 1\n")
    result = run_bridge("run", "--config", str(bad))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"bridge: error: {bad}:2: [store]: unknown key 'paht' (known here: path)"]


# -- the service tree over the real bus ----------------------------------------------------

def free_tcp_endpoint() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


class Daemon:
    """The all-roles service tree on a private reactor that the test iterates.

    The bus runs over TCP on 127.0.0.1, as between hosts: a restarted connector
    rebinds the same port and the worker's sockets reconnect to it (an inproc://
    peer does not reconnect; in one process, roles restart together)."""

    def __init__(self, tmp_path) -> None:
        self.reactor = SelectReactor()
        self.ctx = zmq.Context()
        config = bridge_config.load(ROOT / "config" / "demo.toml")
        self.config = config.__class__(**{**config.__dict__, "store_path": tmp_path / "bridge.sqlite",
                                          "deals_endpoint": free_tcp_endpoint(),
                                          "deals_replay_endpoint": free_tcp_endpoint(),
                                          "control_endpoint": free_tcp_endpoint()})
        self.top = build(self.config, self.reactor, "all", self.ctx, with_control=True)
        self.venue = next(iter(self.top.venues.values()))
        self.master = self.venue.login(1000)
        self.followers = [self.venue.login(n) for n in (2001, 2002, 3001, 3002, 3003)]
        self.top.startService()

    def until(self, condition, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline, f"condition not reached in time: {self.state()}"
            self.reactor.iterate(0.005)

    def state(self) -> str:
        worker = self.top.getServiceNamed("worker")
        sub = worker.subscriber
        return (f"held={ {k: (v[0], len(v[1])) for k, v in worker._held.items()} } epoch={sub.epoch} "
                f"expected={sub.expected} replaying={sub.replaying} pending={len(sub.pending)} "
                f"journal={worker.store.db['master_deals'].count} idle={worker.worker.idle}")

    def flat(self) -> bool:
        return all(not self.venue.positions(f).result for f in self.followers)

    def holding(self) -> bool:
        return all(self.venue.positions(f).result for f in self.followers)

    def stop(self) -> None:
        self.top.stopService()
        self.ctx.destroy(0)


@pytest.fixture
def daemon(tmp_path):
    d = Daemon(tmp_path)
    yield d
    d.stop()


def test_master_deals_reach_followers_over_the_bus(daemon):
    position = daemon.venue.trade(daemon.master, "EURUSD", Side.BUY, "1.00")
    daemon.until(daemon.holding)
    daemon.venue.close(daemon.master, position)
    daemon.until(daemon.flat)
    worker = daemon.top.getServiceNamed("worker")
    assert worker.subscriber.delivered >= 2 and worker.subscriber.bad_frames == 0
    assert worker.store.intents_in_state("planned", "sent", "unknown") == []


def test_a_connector_restart_loses_nothing_made_while_it_was_down(daemon):
    old = daemon.top.getServiceNamed("connector")
    old.disownServiceParent()  # stops it: the connector is down, nobody publishes the master's deals
    assert not old.running
    position = daemon.venue.trade(daemon.master, "EURUSD", Side.BUY, "1.00")
    for _ in range(20):
        daemon.reactor.iterate(0.005)
    assert not daemon.venue.positions(daemon.followers[0]).result
    fresh = ConnectorService(daemon.ctx, daemon.reactor, daemon.top.venues, daemon.config)
    fresh.setServiceParent(daemon.top)  # a new epoch: the worker sees it and asks for a backfill
    daemon.until(daemon.holding)
    daemon.venue.close(daemon.master, position)
    daemon.until(daemon.flat)
    for follower in daemon.followers:
        assert sum(1 for d in daemon.venue.deals_since(follower, None).result) == 2  # one open, one close


# -- the demo command ----------------------------------------------------------------------

def test_demo_copies_everything_once_by_the_venues_own_records():
    result = run_bridge("demo", "--followers", "4", "--deals", "25", "--seed", "3", "--fill-latency-us", "0",
                        "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["master_deals"] == 25
    assert summary["followers"] == 7
    assert summary["duplicates"] == 0 and summary["missing"] == 0 and summary["followers_not_flat"] == 0
    assert summary["filled"] == summary["orders"] > 25
    assert set(summary["latency_ms"]) == {"p50", "p99", "max"}
    assert set(summary["slippage_points"]) == {"mean", "p99"}


def test_demo_on_the_ctrader_server_copies_everything_once_by_the_servers_records():
    result = run_bridge("demo", "--platform", "ctrader", "--followers", "3", "--deals", "15", "--seed", "5",
                        "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    steps = len(list(Script(15, 5).steps()))  # the seeded session (it may end flat a step early)
    assert (summary["platform"], summary["master_deals"], summary["followers"]) == ("ctrader", steps, 6)
    assert summary["duplicates"] == 0 and summary["missing"] == 0 and summary["followers_not_flat"] == 0
    assert summary["filled"] == summary["orders"] > 15
    assert "Traceback" not in result.stderr and "connection lost" not in result.stderr


def test_a_ctrader_demo_whose_sltp_steps_repeat_the_stops_settles():
    """Seed 1's session sets the same stops again (prices do not move between its steps): cTrader sends no
    SL/TP deal for an amend that changes nothing, and the demo still settles once every trade is copied."""
    steps = list(Script(15, 1).steps())
    result = run_bridge("demo", "--platform", "ctrader", "--followers", "3", "--deals", "15", "--seed", "1",
                        "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    trading = sum(1 for step in steps if step[0] != "sltp")
    assert trading < summary["master_deals"] < len(steps)  # some SL/TP steps changed nothing
    assert summary["duplicates"] == 0 and summary["missing"] == 0 and summary["followers_not_flat"] == 0


def test_demo_on_simulated_mt5_terminals_copies_everything_once_by_the_terminals_records():
    result = run_bridge("demo", "--platform", "mt5", "--followers", "3", "--deals", "30", "--seed", "5", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    steps = list(Script(30, 5).steps())
    assert (summary["platform"], summary["followers"]) == ("mt5", 6)
    # every step is a master deal; a reversal on netting clears SL/TP (a change the poller may also see),
    # and the account's first deposit is a deal too
    assert summary["master_deals"] >= len(steps) + 1
    assert summary["duplicates"] == 0 and summary["missing"] == 0 and summary["followers_not_flat"] == 0
    assert summary["filled"] == summary["orders"] > 30
    assert "Traceback" not in result.stderr


def test_demo_on_simulated_mt4_terminals_copies_everything_once_by_the_terminals_records():
    result = run_bridge("demo", "--platform", "mt4", "--followers", "3", "--deals", "30", "--seed", "5", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["platform"], summary["followers"]) == ("mt4", 6)
    # MT4 hedges: the netted session's reversals and closes are one trade per ticket, so there are more
    # master deals than steps
    assert summary["master_deals"] > len(list(Script(30, 5).steps()))
    assert summary["duplicates"] == 0 and summary["missing"] == 0 and summary["followers_not_flat"] == 0
    assert summary["filled"] == summary["orders"] > 30
    assert "Traceback" not in result.stderr


def test_a_signal_stops_an_mt5_demo_mid_session_and_the_process_exits():
    """The terminals' worker threads stop with the reactor, so nothing keeps the process alive."""
    import pty

    env = {k: v for k, v in os.environ.items() if k != "BRIDGE_DEBUG"}
    leader, follower = pty.openpty()  # stderr on a terminal: the demo draws its progress bar there (piped: none)
    demo = subprocess.Popen([BRIDGE, "demo", "--platform", "mt5", "--followers", "20", "--deals", "5000"],
                            stdout=subprocess.DEVNULL, stderr=follower, env=env, cwd=ROOT)
    os.close(follower)
    try:
        seen = b""
        deadline = time.monotonic() + 60
        while b"master deals" not in seen:  # the progress bar: the session is running, threads and all
            assert time.monotonic() < deadline and demo.poll() is None, seen
            seen += os.read(leader, 4096)
        time.sleep(0.5)
        demo.terminate()
        assert demo.wait(timeout=15) != 0
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
        os.close(leader)


def test_status_answers_with_roles_positions_and_counts(daemon):
    position = daemon.venue.trade(daemon.master, "EURUSD", Side.BUY, "1.00")
    daemon.until(daemon.holding)
    daemon.venue.close(daemon.master, position)
    daemon.until(daemon.flat)
    client = daemon.ctx.socket(zmq.DEALER)
    client.connect(daemon.config.control_endpoint)
    client.send(b"status")
    daemon.until(lambda: client.poll(0))
    answer = json.loads(client.recv())
    client.close(0)
    assert answer["roles"] == ["worker", "connector"]
    connector = answer["connector"]
    # the startup backfill may republish the open if it arrives after it (the journal takes it once),
    # and ends with a marker frame: frames published >= deals published >= 2
    assert connector["seq"] > connector["published"] >= 2
    bus = answer["worker"]["bus"]
    assert bus["epoch"] == connector["epoch"] and bus["next_seq"] == connector["seq"] + 1
    assert bus["bad_frames"] == 0
    journal = answer["worker"]["journal"]
    assert journal["deals"] == 2 and journal["duplicate_deliveries"] <= connector["published"] - 2
    assert answer["worker"]["intents"]["filled"] == 10  # five followers, an open and a close each
    assert answer["venues"] == ["sim/sim-demo"]

    # what `bridge status` prints without --json: the same answer as labelled lines
    from bridge.cli.status_view import render, status_lines

    lines = dict(status_lines(answer))
    assert lines["roles"] == "worker, connector"
    assert lines["venues"] == "sim/sim-demo (connected and reconciled)"
    assert lines["journal"].startswith("2 master deal(s), last seq 2, ")
    assert lines["orders"] == "10 filled"
    assert lines["masters"] == f"{daemon.master} live" and lines["worker"] == "idle"
    assert lines["watching"] == str(daemon.master)
    assert lines["reconcile"] == "not yet between deals"
    assert lines["bus"].startswith(f"epoch {connector['epoch']}, next seq {connector['seq'] + 1}, ")
    text = render(answer)
    assert "{" not in text and all(len(line.split("  ", 1)) == 2 for line in text.splitlines())


def test_status_without_a_daemon_is_one_line_and_exit_1(tmp_path):
    config = tmp_path / "bridge.toml"
    text = (ROOT / "config" / "demo.toml").read_text()
    config.write_text(text.replace('heartbeat_ms = 50', f'heartbeat_ms = 50\ncontrol = "{free_tcp_endpoint()}"'))
    result = run_bridge("status", "--config", str(config), "--timeout", "200")
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("bridge: error: no daemon answered on tcp://127.0.0.1:")
