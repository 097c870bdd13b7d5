"""Running under systemd: the sd_notify messages, the graceful stop, and the units in ``systemd/``.

* :mod:`bridge.daemon.notify` against a real ``AF_UNIX`` datagram socket
  (a path and an abstract ``@name``), the watchdog's pings on a clock, and
  every value systemd would never set;
* ``bridge run`` as a subprocess with ``NOTIFY_SOCKET`` pointing at the test:
  READY=1 once it is up (``bridge status`` answers by then), WATCHDOG=1 pings
  at half ``WATCHDOG_USEC``, STOPPING=1 on SIGTERM, exit 0; and the same
  daemon under the kernel's own MemoryDenyWriteExecute (``PR_SET_MDWE``),
  which the units ask for;
* the graceful stop against a venue in its own process whose fills take
  a second: SIGTERM while the followers' orders are in flight, and the orders
  still complete (the venue's records, the journal's intents all final), the
  exit code is 0, and a master deal made during the drain is not taken then
  but copied once by the next start; with a drain timeout shorter than a
  fill, the daemon exits 0 at once, says what is still in flight, and the
  next start's recovery completes each order exactly once before READY=1;
* ``systemd-analyze verify`` (and ``security --offline``) on both units. The
  units start ``/opt/copybridge/venv/bin/bridge``, which verify requires to
  exist: the test verifies copies of the shipped files in which only that
  path is rewritten to this venv's ``bridge``; everything else is checked
  as shipped. Skipped where systemd-analyze is not installed.
"""

from __future__ import annotations

import ctypes
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import zmq
from twisted.internet import task

from bridge.daemon.control import ask_status
from bridge.daemon.drain import DRAIN_TIMEOUT_S
from bridge.daemon.notify import Notifier
from bridge.store import Store
from tests.processes import BRIDGE, ROOT, Client, free_port_endpoint, start_venue, terminate, write_accounts

UNITS = ROOT / "systemd"
SHIPPED_BRIDGE = "/opt/copybridge/venv/bin/bridge"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
UNFINISHED = ("planned", "sent", "unknown")


# -- the protocol, on a real datagram socket ---------------------------------------------------

class Listener:
    """The systemd side: an AF_UNIX datagram socket that collects what the daemon sends."""

    def __init__(self, address: str | bytes) -> None:
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.socket.bind(address)
        self.messages: list[dict[str, str]] = []

    def receive(self, timeout_s: float = 1.0) -> dict[str, str] | None:
        self.socket.settimeout(timeout_s)
        try:
            data = self.socket.recv(4096)
        except socket.timeout:
            return None
        message = dict(line.split("=", 1) for line in data.decode().splitlines())
        self.messages.append(message)
        return message

    def until(self, key: str, timeout_s: float = 20.0, process: subprocess.Popen | None = None) -> dict[str, str]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            message = self.receive(0.05)
            if message is not None and key in message:
                return message
            assert process is None or process.poll() is None, f"the daemon exited before {key}: {self.messages}"
        raise AssertionError(f"no {key} in {timeout_s} s: {self.messages}")

    def close(self) -> None:
        self.socket.close()


@pytest.fixture
def listener(tmp_path):
    path = tmp_path / "notify"
    if len(str(path)) > 100:  # sun_path holds 108 bytes
        pytest.skip(f"temporary path too long for an AF_UNIX socket: {path}")
    sock = Listener(str(path))
    yield sock
    sock.close()


def abstract_name() -> str:
    return f"@copybridge-test-{os.getpid()}-{time.monotonic_ns()}"


def test_without_notify_socket_everything_is_a_no_op():
    notifier = Notifier({})
    assert not notifier.enabled
    assert notifier.ready("ready") is False and notifier.status("x") is False and notifier.stopping("x") is False
    assert notifier.ping() is False and notifier.start_watchdog(task.Clock()) is None
    assert notifier.sent == 0


def test_messages_reach_a_socket_at_a_path(listener, tmp_path):
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "notify")})
    assert notifier.ready("ready: role(s) worker")
    assert notifier.status("copying")
    assert notifier.stopping("stopping: finishing the orders in flight")
    assert [listener.receive() for _ in range(3)] == [
        {"READY": "1", "STATUS": "ready: role(s) worker"},
        {"STATUS": "copying"},
        {"STOPPING": "1", "STATUS": "stopping: finishing the orders in flight"},
    ]


def test_messages_reach_an_abstract_socket():
    name = abstract_name()
    sock = Listener(b"\0" + name[1:].encode())
    try:
        assert Notifier({"NOTIFY_SOCKET": name}).ready("up")
        assert sock.receive() == {"READY": "1", "STATUS": "up"}
    finally:
        sock.close()


def test_watchdog_pings_at_half_the_timeout_on_the_clock(listener, tmp_path):
    clock = task.Clock()
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "notify"), "WATCHDOG_USEC": "2000000"})
    assert notifier.watchdog_s == 2.0
    pinger = notifier.start_watchdog(clock)
    assert pinger.interval == 1.0
    assert listener.receive() == {"WATCHDOG": "1"}  # at once
    clock.advance(0.99)
    assert listener.receive(0.05) is None  # the reactor did not get there: no ping
    clock.advance(0.01)
    assert listener.receive() == {"WATCHDOG": "1"}
    clock.advance(1.0)
    assert listener.receive() == {"WATCHDOG": "1"}
    notifier.stop_watchdog()
    clock.advance(5.0)
    assert listener.receive(0.05) is None


@pytest.mark.parametrize("watchdog_pid,pings", [("", True), ("OWN", True), ("1", False)])
def test_watchdog_pings_only_for_its_own_pid(tmp_path, watchdog_pid, pings):
    environ = {"NOTIFY_SOCKET": str(tmp_path / "notify"), "WATCHDOG_USEC": "500000"}
    if watchdog_pid:
        environ["WATCHDOG_PID"] = str(os.getpid()) if watchdog_pid == "OWN" else watchdog_pid
    notifier = Notifier(environ, pid=os.getpid())
    assert (notifier.watchdog_s == 0.5) if pings else (notifier.watchdog_s is None)


BAD_ENVIRONMENT = {
    "relative socket": ({"NOTIFY_SOCKET": "run/notify"}, "NOTIFY_SOCKET 'run/notify' is neither"),
    "usec not a number": ({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "30s"}, "WATCHDOG_USEC '30s' is not a positive"),
    "usec zero": ({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "0"}, "WATCHDOG_USEC '0' is not a positive"),
    "pid not a number": ({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "1", "WATCHDOG_PID": "me"},
                         "WATCHDOG_PID 'me' is not a process id"),
}


@pytest.mark.parametrize("environ,expected", BAD_ENVIRONMENT.values(), ids=BAD_ENVIRONMENT.keys())
def test_a_value_systemd_would_never_set_is_one_line_and_ignored(caplog, environ, expected):
    with caplog.at_level(logging.WARNING, logger="bridge.notify"):
        notifier = Notifier(environ)
    assert notifier.watchdog_s is None
    [record] = caplog.records
    assert expected in record.getMessage() and "\n" not in record.getMessage()


def test_a_socket_nobody_listens_on_is_logged_once(caplog, tmp_path):
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone")})
    with caplog.at_level(logging.WARNING, logger="bridge.notify"):
        assert notifier.ready("up") is False
        assert notifier.ping() is False
    [record] = caplog.records
    assert "cannot tell systemd" in record.getMessage() and "gone" in record.getMessage()


# -- bridge run, told to notify the test -----------------------------------------------------------

def sim_config(tmp_path: Path) -> tuple[Path, str]:
    """config/demo.toml with its journal in tmp_path and its control socket on a free port."""
    control = free_port_endpoint()
    text = (ROOT / "config" / "demo.toml").read_text()
    text = text.replace('path = "demo.sqlite"', f'path = "{tmp_path / "bridge.sqlite"}"')
    text = text.replace("heartbeat_ms = 50", f'heartbeat_ms = 50\ncontrol = "{control}"')
    path = tmp_path / "bridge.toml"
    path.write_text(text)
    return path, control


def start_bridge(config: Path, log: Path, request, *args: str, env: dict | None = None,
                 preexec_fn=None) -> subprocess.Popen:
    environ = {k: v for k, v in os.environ.items()
               if k not in ("BRIDGE_DEBUG", "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")}
    with open(log, "a") as out:
        process = subprocess.Popen([BRIDGE, "run", "--config", str(config), *args], stdout=out, stderr=out,
                                   cwd=ROOT, env={**environ, **(env or {})}, preexec_fn=preexec_fn)
    request.addfinalizer(lambda: terminate(process))
    return process


def test_bridge_run_sends_ready_watchdog_pings_and_stopping(tmp_path, request):
    config, control = sim_config(tmp_path)
    name = abstract_name()
    notify = Listener(b"\0" + name[1:].encode())
    request.addfinalizer(notify.close)
    log = tmp_path / "bridge.log"
    daemon = start_bridge(config, log, request, env={"NOTIFY_SOCKET": name, "WATCHDOG_USEC": "200000"})
    ready = notify.until("READY", process=daemon)
    status = ask_status(control, 2000)  # by READY=1 the control socket answers, every role recovered
    assert status is not None and status["roles"] == ["worker", "connector"] and status["venues_ready"]
    assert status["worker"]["idle"] and "connector" in status
    assert ready["STATUS"].startswith("ready: role(s) worker, connector; 1 venue(s)")
    before = sum("WATCHDOG" in m for m in notify.messages)
    for _ in range(3):  # every 0.1 s: half of WATCHDOG_USEC
        notify.until("WATCHDOG", timeout_s=1.0, process=daemon)
    assert sum("WATCHDOG" in m for m in notify.messages) >= before + 3
    daemon.send_signal(signal.SIGTERM)
    stopping = notify.until("STOPPING", timeout_s=5.0)
    assert stopping["STATUS"].startswith("stopping")
    assert daemon.wait(timeout=15) == 0, log.read_text()
    assert "Traceback" not in log.read_text()
    first = notify.messages[0]
    assert first.get("STATUS", "").startswith("starting: role all, 1 venue(s)")


def mdwe_refused() -> str | None:
    """Why the kernel's MemoryDenyWriteExecute (prctl PR_SET_MDWE, Linux 6.3+) cannot be tried here, or None."""
    probe = subprocess.run([sys.executable, "-c", "import ctypes, sys; sys.exit(ctypes.CDLL(None).prctl(65, 1, 0, 0, 0))"],
                           capture_output=True)
    return None if probe.returncode == 0 else "prctl(PR_SET_MDWE) is not available on this kernel"


def deny_write_execute() -> None:
    """In the child, before exec: refuse writable+executable memory, as MemoryDenyWriteExecute=yes does
    (systemd 254+ sets the same prctl; older ones a seccomp filter of the same effect). Inherited by exec."""
    if ctypes.CDLL(None, use_errno=True).prctl(65, 1, 0, 0, 0) != 0:  # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_MDWE)")


def test_the_daemon_runs_without_writable_executable_memory(tmp_path, request):
    """The units set MemoryDenyWriteExecute=yes: CPython, pyzmq, Twisted and SQLite must work under it."""
    why = mdwe_refused()
    if why:
        pytest.skip(why)
    config, control = sim_config(tmp_path)
    name = abstract_name()
    notify = Listener(b"\0" + name[1:].encode())
    request.addfinalizer(notify.close)
    log = tmp_path / "bridge.log"
    daemon = start_bridge(config, log, request, env={"NOTIFY_SOCKET": name}, preexec_fn=deny_write_execute)
    notify.until("READY", process=daemon)
    status = ask_status(control, 2000)
    assert status is not None and status["venues_ready"] and status["worker"]["idle"]
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(timeout=15) == 0, log.read_text()
    assert "Traceback" not in log.read_text()


# -- the graceful stop: orders in flight at a slow venue ---------------------------------------------

VENUE = "slow"
MASTER = f"sim/{VENUE}/1000"
FOLLOWERS = (2001, 2002, 2003)


def slow_world(tmp_path, request, fill_latency_us: int):
    """A sim venue in its own process whose fills take ``fill_latency_us``; a config for ``bridge run`` on it."""
    ctx = zmq.Context()
    request.addfinalizer(lambda: ctx.destroy(0))
    accounts = write_accounts(tmp_path / "accounts.toml", VENUE,
                              [(1000, 100000), *((f, 20000) for f in FOLLOWERS)], fill_latency_us=fill_latency_us)
    endpoint, deals, replay = start_venue(accounts, tmp_path / "venue.log", request)
    control = free_port_endpoint()
    copies = "".join(f"[[copy]]\nmaster = \"{VENUE}/1000\"\nfollower = \"{VENUE}/{f}\"\n" for f in FOLLOWERS)
    config = tmp_path / "bridge.toml"
    config.write_text(
        f"[store]\npath = \"{tmp_path / 'bridge.sqlite'}\"\n"
        f"[bus]\nheartbeat_ms = 50\ncontrol = \"{control}\"\n"
        f"[[venue]]\nname = \"{VENUE}\"\nplatform = \"sim\"\nendpoint = \"{endpoint}\"\n"
        f"deals_endpoint = \"{deals}\"\nreplay_endpoint = \"{replay}\"\n"
        f"[[master]]\naccount = \"{VENUE}/1000\"\n{copies}")
    return Client(ctx, endpoint), config, control


def wait_status(control: str, condition, what: str, process: subprocess.Popen, timeout_s: float = 20.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        assert process.poll() is None, f"the daemon exited while waiting for {what}"
        status = ask_status(control, 500)
        if status is not None and condition(status):
            return status
        assert time.monotonic() < deadline, f"timed out waiting for {what}: {status}"
        time.sleep(0.01)


def in_flight(status: dict) -> bool:
    return "worker" in status and status["worker"]["intents"].get("sent", 0) == len(FOLLOWERS)


def follower_trades(venue: Client, login: int) -> list:
    return [d for d in venue.venue("deals_since", account=f"sim/{VENUE}/{login}", after=None) if d["kind"] != "balance"]


def test_sigterm_lets_the_orders_in_flight_finish_then_exits_0(tmp_path, request):
    venue, config, control = slow_world(tmp_path, request, fill_latency_us=1_000_000)
    log = tmp_path / "bridge.log"
    name = abstract_name()
    notify = Listener(b"\0" + name[1:].encode())
    request.addfinalizer(notify.close)
    daemon = start_bridge(config, log, request, env={"NOTIFY_SOCKET": name})
    notify.until("READY", process=daemon)
    position = venue.venue("trade", account=MASTER, symbol="EURUSD", side="buy", amount="1.00")["position_id"]
    wait_status(control, in_flight, "the followers' orders to be in flight at the venue", daemon)
    signalled = time.monotonic()
    daemon.send_signal(signal.SIGTERM)
    assert notify.until("STOPPING", timeout_s=5.0)
    venue.venue("close", account=MASTER, position_id=position)  # while draining: not taken
    assert daemon.wait(timeout=15) == 0, log.read_text()
    took = time.monotonic() - signalled
    text = log.read_text()
    assert "drain: every order in flight finished" in text and "Traceback" not in text, text
    assert took > 0.5, f"exited {took:.2f} s after SIGTERM: it did not wait for the fills"
    store = Store.open(tmp_path / "bridge.sqlite")
    try:
        assert store.db["master_deals"].count == 1  # the close came during the drain: left to the next start
        assert store.intents_in_state(*UNFINISHED) == []
        filled = store.intents_in_state("filled")
        assert sorted(r.follower_id for r in filled) == [f"sim/{VENUE}/{f}" for f in FOLLOWERS]
    finally:
        store.close()
    for login, row in zip(FOLLOWERS, sorted(filled, key=lambda r: r.follower_id)):
        assert len(follower_trades(venue, login)) == 1  # the venue's own record: one fill each
        assert venue.venue("lookup", account=row.follower_id, key=row.key) is not None
        assert venue.venue("positions", account=row.follower_id)  # still open: the close was not copied yet
    again = start_bridge(config, log, request)  # the startup backfill takes the close the drain left
    wait_status(control, lambda s: "worker" in s and s["worker"]["journal"]["deals"] == 2 and s["worker"]["idle"]
                and s["worker"]["intents"].get("filled") == 2 * len(FOLLOWERS)
                and not any(s["worker"]["intents"].get(k) for k in UNFINISHED), "the close to be copied", again)
    again.send_signal(signal.SIGTERM)
    assert again.wait(timeout=15) == 0, log.read_text()
    for login in FOLLOWERS:
        assert len(follower_trades(venue, login)) == 2  # the open and the close, each once
        assert venue.venue("positions", account=f"sim/{VENUE}/{login}") == []


def test_a_drain_timeout_shorter_than_a_fill_exits_0_and_the_next_start_finishes_the_orders(tmp_path, request):
    venue, config, control = slow_world(tmp_path, request, fill_latency_us=2_000_000)
    log = tmp_path / "bridge.log"
    daemon = start_bridge(config, log, request, "--drain-timeout", "0.2")
    wait_status(control, lambda s: s.get("venues_ready") and "worker" in s, "the daemon to start", daemon)
    venue.venue("trade", account=MASTER, symbol="EURUSD", side="buy", amount="1.00")
    wait_status(control, in_flight, "the followers' orders to be in flight at the venue", daemon)
    signalled = time.monotonic()
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(timeout=15) == 0, log.read_text()
    assert time.monotonic() - signalled < 1.8, "it waited for the fills despite --drain-timeout 0.2"
    said = [line for line in log.read_text().splitlines() if "still in flight" in line]
    assert len(said) == 1 and f"{len(FOLLOWERS)} order(s) still in flight after" in said[0], log.read_text()
    name = abstract_name()
    notify = Listener(b"\0" + name[1:].encode())
    request.addfinalizer(notify.close)
    # recovery looks each one up at the venue (which fills it, once): READY=1 only after that
    again = start_bridge(config, log, request, env={"NOTIFY_SOCKET": name})
    notify.until("READY", process=again)
    status = ask_status(control, 2000)
    assert status["worker"]["intents"].get("filled") == len(FOLLOWERS), status
    assert not any(status["worker"]["intents"].get(k) for k in UNFINISHED), status
    again.send_signal(signal.SIGTERM)
    assert again.wait(timeout=15) == 0, log.read_text()
    for login in FOLLOWERS:
        assert len(follower_trades(venue, login)) == 1
    assert "Traceback" not in log.read_text()


def test_drain_in_process_waits_for_the_fills_stops_the_pool_ticker_and_takes_no_new_deal(tmp_path):
    """drain() on the service tree itself (the sim venue in process, fills 300 ms late, the test's reactor)."""
    from dataclasses import replace

    from twisted.internet.selectreactor import SelectReactor

    from bridge.daemon import config as bridge_config
    from bridge.daemon.drain import drain
    from bridge.daemon.services import build
    from bridge.domain.deal import Side

    reactor = SelectReactor()
    ctx = zmq.Context()
    config = bridge_config.load(ROOT / "config" / "demo.toml")
    config = replace(config, store_path=tmp_path / "bridge.sqlite", control_endpoint=free_port_endpoint(),
                     venues=tuple(replace(v, fill_latency_us=300_000) for v in config.venues))
    top = build(config, reactor, "all", ctx)
    top.startService()
    try:
        worker, pools = top.getServiceNamed("worker"), top.getServiceNamed("pools")
        venue = next(iter(top.venues.values()))
        master = venue.login(1000)

        def until(condition, timeout_s: float = 10.0) -> None:
            deadline = time.monotonic() + timeout_s
            while not condition():
                assert time.monotonic() < deadline, "condition not reached in time"
                reactor.iterate(0.005)

        until(lambda: worker.ready.called and pools.ticker.running)
        venue.trade(master, "EURUSD", Side.BUY, "1.00")
        until(lambda: worker.store.intents_in_state("sent"))
        started = time.monotonic()
        drained = drain(top, reactor, timeout_s=5.0)
        assert not pools.ticker.running and worker.worker.stopping
        left: list = []
        drained.addCallback(left.append)
        until(lambda: left)
        assert left == [[]] and time.monotonic() - started >= 0.2  # it waited for the fills
        assert worker.store.intents_in_state(*UNFINISHED) == [] and worker.store.intents_in_state("filled")
        deals = worker.store.db["master_deals"].count
        [position] = venue.positions(master).result
        venue.close(master, position.position_id)  # after the drain: not taken (the next start backfills it)
        for _ in range(40):
            reactor.iterate(0.005)
        assert worker.store.db["master_deals"].count == deals and worker.worker.idle
    finally:
        top.stopService()
        ctx.destroy(0)


def test_bad_drain_timeout_is_one_line():
    result = subprocess.run([BRIDGE, "run", "--config", "config/demo.toml", "--drain-timeout", "-1"],
                            capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("bridge: error: ") and "--drain-timeout" in line


# -- the units --------------------------------------------------------------------------------------

def unit_lines(name: str) -> list[str]:
    return [line for line in (UNITS / name).read_text().splitlines() if line and not line.startswith("#")]


def seconds(value: str) -> float:
    match = re.fullmatch(r"(\d+)(s|min)", value)
    assert match, value
    return int(match[1]) * (60 if match[2] == "min" else 1)


@pytest.mark.parametrize("name,role", [("copybridge.service", ""), ("copybridge@.service", " --role %i")])
def test_units_say_what_the_daemon_needs(name, role):
    lines = unit_lines(name)
    assert f"ExecStart={SHIPPED_BRIDGE} run --config /etc/copybridge/bridge.toml{role}" in lines
    for wanted in ("Type=notify", "NotifyAccess=main", "Restart=on-failure", "User=copybridge", "Group=copybridge",
                   "StateDirectory=copybridge", "ConfigurationDirectory=copybridge", "ProtectSystem=strict",
                   "NoNewPrivileges=yes", "MemoryDenyWriteExecute=yes", "CapabilityBoundingSet=", "UMask=0077",
                   "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6", "SystemCallFilter=@system-service",
                   "RestartPreventExitStatus=2"):
        assert wanted in lines, wanted
    values = dict(line.split("=", 1) for line in lines if "=" in line)
    # the drain (bridge run --drain-timeout's default) ends before systemd would SIGKILL the daemon
    assert seconds(values["TimeoutStopSec"]) > DRAIN_TIMEOUT_S + 5
    assert seconds(values["WatchdogSec"]) >= 10  # a ping every WatchdogSec/2: a busy reactor is not a stuck one


@pytest.fixture
def verifiable(tmp_path):
    """Copies of the shipped units whose ExecStart runs this venv's bridge (verify checks the binary exists)."""
    if SYSTEMD_ANALYZE is None:
        pytest.skip("systemd-analyze is not installed here (Debian/Ubuntu: apt-get install systemd)")
    for unit in ("copybridge.service", "copybridge@.service", "copybridge-backup.service"):
        text = (UNITS / unit).read_text()
        assert SHIPPED_BRIDGE in text
        (tmp_path / unit).write_text(text.replace(SHIPPED_BRIDGE, BRIDGE))
    (tmp_path / "copybridge-backup.timer").write_text((UNITS / "copybridge-backup.timer").read_text())
    return tmp_path


@pytest.mark.parametrize("unit", ["copybridge.service", "copybridge@connector.service", "copybridge@worker.service",
                                  "copybridge-backup.service", "copybridge-backup.timer"])
def test_systemd_analyze_verify_finds_nothing(verifiable, unit):
    result = subprocess.run([SYSTEMD_ANALYZE, "verify", "--man=no", f"./{unit}"], capture_output=True, text=True,
                            timeout=60, cwd=verifiable)
    # an unknown key or a bad value is only a warning to verify (exit 0): any output at all fails
    assert (result.returncode, result.stdout + result.stderr) == (0, ""), result.stdout + result.stderr


@pytest.mark.parametrize("unit", ["copybridge.service", "copybridge@worker.service", "copybridge-backup.service"])
def test_the_units_exposure_stays_low(verifiable, unit):
    """Below 2.0 of systemd's 0-10 exposure scale (its --threshold counts tenths)."""
    result = subprocess.run([SYSTEMD_ANALYZE, "security", "--offline=true", "--no-pager", "--threshold=20",
                             f"./{unit}"], capture_output=True, text=True, timeout=60, cwd=verifiable)
    if "Unknown option" in result.stderr or "unrecognized option" in result.stderr:
        pytest.skip(f"this systemd-analyze has no offline security check: {result.stderr.strip()}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"Overall exposure level for .*: [01]\.\d", result.stdout), result.stdout


def test_the_backup_unit_runs_the_store_commands_it_names():
    """Its two ExecStart lines are commands the CLI takes (each checked by parsing it as bridge would)."""
    from click.testing import CliRunner

    from bridge.cli.main import cli

    lines = [line.split("=", 1)[1] for line in unit_lines("copybridge-backup.service") if line.startswith("ExecStart=")]
    assert [line.split()[1:3] for line in lines] == [["store", "backup"], ["store", "prune"]]
    for line in lines:
        argv = line.split()[1:]
        # --help after the arguments: click parses them all (an unknown option fails) and prints the help
        result = CliRunner().invoke(cli, [*argv[:2], *[a for a in argv[2:]], "--help"])
        assert result.exit_code == 0, result.output
