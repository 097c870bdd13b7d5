"""CURVE on the MT4 EA link (connectors/mt4/PROTOCOL.md, Security): the configuration's rule, the simulated EA
as a CURVE server (``bridge sim mt4 --curve-secret-file/--curve-clients``) and the connector as its client.

The real tests bind the simulated EA on ``tcp://0.0.0.0:PORT`` (not loopback by the rule) with CURVE and a
ZAP allow-list in a ZeroMQ context of its own (the EA's terminal is another process), and connect the
connector there on a real reactor: with the right keys it trades; with the wrong server key, or a key the EA
does not list, it gets nothing, times out cleanly and says so in one line.
"""

from __future__ import annotations

import logging
import random
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest
import zmq
from twisted.internet.selectreactor import SelectReactor

from allocation.leg import Action
from bridge.bus.curve import CurveKeys, start_authenticator
from bridge.config.secrets import Secret
from bridge.daemon import config as bridge_config
from bridge.domain.deal import DealKind, Side
from bridge.errors import InputError
from connectors.interface import OrderRequest, OrderStatus, idempotency_key
from connectors.mt4 import protocol as P
from connectors.mt4.simulator import SimulatedEA, Terminal
from connectors.mt4.simulator.serve import bind_pair
from connectors.mt4.venue import MT4Venue
from tests.processes import BRIDGE, ROOT

LOGIN = 4001


def pair() -> tuple[str, str]:
    public, secret = zmq.curve_keypair()
    return public.decode(), secret.decode()


def write_key(path: Path, key: str, mode: int = 0o600) -> Path:
    path.write_text(key + "\n")
    path.chmod(mode)
    return path


def bridge(*args: str, timeout: int = 30) -> subprocess.CompletedProcess:
    return subprocess.run([BRIDGE, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT)


# -- the configuration's rule ----------------------------------------------------------------------------

VENUE = "[[venue]]\nname = 'm'\nplatform = 'mt4'\n"


def load(tmp_path: Path, text: str):
    path = tmp_path / "bridge.toml"
    path.write_text(text)
    return bridge_config.load(path)


def test_a_non_loopback_ea_endpoint_without_curve_keys_is_one_line_naming_file_line_and_key_exit_2(tmp_path):
    path = tmp_path / "bridge.toml"
    path.write_text(f"[store]\npath = '{tmp_path / 's.sqlite'}'\n{VENUE}[[venue.account]]\nlogin = 4002\n"
                    "endpoint = 'tcp://127.0.0.1:32790'\n[[venue.account]]\nlogin = 4001\n"
                    "endpoint = 'tcp://10.0.0.5:32780'\n")
    for args in (("config", "check", str(path)), ("run", "--check", "--config", str(path))):
        done = bridge(*args)
        assert done.returncode == 2 and done.stdout == "" and done.stderr.count("\n") == 1, done.stderr
        assert "Traceback" not in done.stderr
        assert f"{path}:11: [venue][0].account[1]: endpoint 'tcp://10.0.0.5:32780' is not a loopback address, " \
               "so it needs CURVE" in done.stderr
        assert "bridge keys generate" in done.stderr and "curve_server_public" in done.stderr
    assert not (tmp_path / "s.sqlite").exists(), "nothing started"


def test_loopback_ea_endpoints_need_no_keys_and_keys_make_every_ea_of_the_venue_a_curve_client(tmp_path):
    plain = load(tmp_path, f"{VENUE}[[venue.account]]\nlogin = 4001\nendpoint = 'tcp://127.0.0.1:32780'\n"
                           "[[venue.account]]\nlogin = 4002\nendpoint = 'tcp://localhost:32782'\n")
    assert [a.curve for a in plain.venues[0].mt4.accounts] == [None, None]

    bridge_public, bridge_secret = pair()
    shared_public, _ = pair()
    own_public, _ = pair()
    write_key(tmp_path / "bridge.key", bridge_secret)
    config = load(tmp_path, f"{VENUE}curve_secret_file = 'bridge.key'\ncurve_server_public = '{shared_public}'\n"
                            "[[venue.account]]\nlogin = 4001\nendpoint = 'tcp://10.0.0.5:32780'\n"
                            f"[[venue.account]]\nlogin = 4002\nendpoint = 'tcp://127.0.0.1:32782'\n"
                            f"curve_server_public = '{own_public}'\n")
    first, second = config.venues[0].mt4.accounts
    assert first.curve == CurveKeys(Secret(bridge_secret, "x"), bridge_public, shared_public, ())
    assert (second.curve.public, second.curve.server_public) == (bridge_public, own_public)
    assert bridge_secret not in repr(config)


BAD = {
    "a server key without the bridge's key": (
        "[[venue.account]]\nlogin = 1\nendpoint = 'tcp://127.0.0.1:1'\ncurve_server_public = '{pub}'\n",
        "curve_server_public needs the bridge's own key"),
    "a venue server key without the bridge's key": (
        "curve_server_public = '{pub}'\n[[venue.account]]\nlogin = 1\nendpoint = 'tcp://127.0.0.1:1'\n",
        "curve_server_public needs this process's own key"),
    "the bridge's key and an EA without a server key": (
        "curve_secret_file = 'k.key'\n[[venue.account]]\nlogin = 1\nendpoint = 'tcp://127.0.0.1:1'\n",
        "so this account's EA is reached over CURVE: set curve_server_public"),
    "a secret key as the server's": (
        "curve_secret_file = 'k.key'\n[[venue.account]]\nlogin = 1\nendpoint = 'tcp://127.0.0.1:1'\n"
        "curve_server_public = '{secret}'\n", "a secret key is listed as a public one"),
    "a short server key": (
        "curve_secret_file = 'k.key'\ncurve_server_public = 'abc'\n[[venue.account]]\nlogin = 1\n"
        "endpoint = 'tcp://127.0.0.1:1'\n", "curve_server_public must be a 40-character"),
    "an open key file": (
        "curve_secret_file = 'open.key'\ncurve_server_public = '{pub}'\n[[venue.account]]\nlogin = 1\n"
        "endpoint = 'tcp://127.0.0.1:1'\n", "chmod 600"),
    "the key written in the file": (
        "curve_secret = '{secret}'\n[[venue.account]]\nlogin = 1\nendpoint = 'tcp://127.0.0.1:1'\n",
        "curve_secret must not be written in the configuration"),
    "a non-loopback DWX endpoint": (
        "[[venue.account]]\nlogin = 1\nprovider = 'dwx'\nendpoint = 'tcp://10.0.0.5:32768'\n",
        "endpoint 'tcp://10.0.0.5:32768' is not a loopback address, and the DWX EA speaks no CURVE"),
    "a non-loopback DWX replies endpoint": (
        "[[venue.account]]\nlogin = 1\nprovider = 'dwx'\nendpoint = 'tcp://127.0.0.1:32768'\n"
        "replies_endpoint = 'tcp://0.0.0.0:32769'\n", "replies_endpoint 'tcp://0.0.0.0:32769' is not a loopback"),
    "CURVE keys on a DWX venue": (
        "curve_secret_file = 'k.key'\n[[venue.account]]\nlogin = 1\nprovider = 'dwx'\n"
        "endpoint = 'tcp://127.0.0.1:32768'\n", "the DWX EA speaks no CURVE: a DWX venue takes no curve_* keys"),
}


@pytest.mark.parametrize("text,words", BAD.values(), ids=BAD.keys())
def test_bad_ea_curve_settings_are_one_line_with_file_and_line(tmp_path, text, words):
    public, secret = pair()
    write_key(tmp_path / "k.key", secret)
    write_key(tmp_path / "open.key", secret, 0o644)
    with pytest.raises(InputError) as caught:
        load(tmp_path, VENUE + text.format(pub=public, secret=secret))
    message = str(caught.value)
    assert words in message and "\n" not in message and f"{tmp_path / 'bridge.toml'}:" in message, message
    assert secret not in message


# -- the simulated EA as a CURVE server, the connector as its client -------------------------------------

class Ends:
    """A simulated EA bound on tcp://0.0.0.0 with CURVE (its own context and ZAP handler), and a connector."""

    def __init__(self, server: CurveKeys, client: CurveKeys | None) -> None:
        self.reactor = SelectReactor()
        self.ea_ctx, self.ctx = zmq.Context(), zmq.Context()
        self.auth = start_authenticator(self.ea_ctx, server, "--curve-clients") if server.clients else None
        terminal = Terminal(login=LOGIN, clock=lambda: Decimal(repr(self.reactor.seconds())), rng=random.Random(3))
        self.server = bind_pair(SimulatedEA(terminal), self.ea_ctx, "0.0.0.0", 0, reactor=self.reactor, curve=server)
        self.server.start()
        port = int(self.server.command_endpoint.rsplit(":", 1)[1])
        self.venue = MT4Venue("mt4", {LOGIN: (f"tcp://0.0.0.0:{port}", f"tcp://0.0.0.0:{port + 1}")}, ctx=self.ctx,
                              reactor=self.reactor, clock=self.reactor, timeout_s=0.3, ping_s=0.1,
                              curve={LOGIN: client} if client is not None else None)

    def run(self, d, seconds: float = 5.0):
        box = []
        d.addBoth(box.append)
        deadline = self.reactor.seconds() + seconds
        while not box and self.reactor.seconds() < deadline:
            self.reactor.iterate(0.001)
        return box[0] if box else None

    def close(self) -> None:
        self.venue.stop()
        self.server.stop()
        if self.auth is not None:
            self.auth.stop()
        self.ctx.destroy(0)
        self.ea_ctx.destroy(0)


@pytest.fixture
def ends(request):
    made = []

    def build(server: CurveKeys, client: CurveKeys | None) -> Ends:
        made.append(Ends(server, client))
        return made[-1]

    yield build
    for e in made:
        e.close()


def keys(public: str, secret: str, server: str, clients: tuple[str, ...] = ()) -> CurveKeys:
    return CurveKeys(Secret(secret, "test"), public, server, clients)


def test_the_connector_with_the_right_keys_trades_through_a_curve_ea_on_0_0_0_0(ends):
    ea_public, ea_secret = pair()
    bridge_public, bridge_secret = pair()
    e = ends(keys(ea_public, ea_secret, ea_public, (bridge_public,)), keys(bridge_public, bridge_secret, ea_public))
    assert e.server.command_endpoint.startswith("tcp://0.0.0.0:")
    assert e.run(e.venue.start()) is e.venue
    login = e.venue.login(LOGIN)
    seen = []
    e.run(e.venue.watch_deals(login, seen.append))
    filled = e.run(e.venue.execute(OrderRequest(idempotency_key("curve", "f", 0), login, Action.OPEN, "EURUSD",
                                                Side.BUY, 1_000_000)))
    assert filled.status is OrderStatus.FILLED
    deadline = e.reactor.seconds() + 5
    while not seen and e.reactor.seconds() < deadline:
        e.reactor.iterate(0.001)
    assert [(d.kind, d.position_id) for d in seen] == [(DealKind.OPEN, filled.position_id)]
    assert e.auth.allow_list.refused == 0


@pytest.mark.parametrize("who", ["wrong server key", "unlisted client key", "no CURVE"])
def test_a_wrong_server_key_or_an_unlisted_client_gets_nothing_and_one_clear_line(ends, caplog, who):
    ea_public, ea_secret = pair()
    bridge_public, bridge_secret = pair()
    rogue_public, rogue_secret = pair()
    client = {"wrong server key": keys(bridge_public, bridge_secret, rogue_public),
              "unlisted client key": keys(rogue_public, rogue_secret, ea_public),
              "no CURVE": None}[who]
    e = ends(keys(ea_public, ea_secret, ea_public, (bridge_public,)), client)
    with caplog.at_level(logging.WARNING):
        started = e.run(e.venue.start(), seconds=1.5)
    assert started is None, "no answer, so the venue never starts"
    link = e.venue.links[LOGIN]
    assert not link.answered_once and link.events_in == 0 and e.server.answered == 0
    lines = [r.getMessage() for r in caplog.records if r.name == "connectors.mt4.link"]
    assert len(lines) == 1 and lines[0].startswith(f"mt4 {LOGIN}: no answer from the EA at tcp://0.0.0.0:"), lines
    assert all(r.exc_info is None for r in caplog.records)
    if client is not None:
        assert f"check that curve_server_public is this EA's public key ({client.server_public})" in lines[0]
        assert f"lets this bridge's key {client.public} in" in lines[0] and client.secret.reveal() not in lines[0]
    if who == "unlisted client key":
        assert e.auth.allow_list.refused >= 1
        assert any(f"CURVE client key {rogue_public} refused (not in --curve-clients)" in r.getMessage()
                   for r in caplog.records)


# -- bridge sim mt4 ----------------------------------------------------------------------------------------

def test_bridge_sim_mt4_off_loopback_needs_a_curve_key_and_says_so_in_one_line(tmp_path):
    public, secret = pair()
    write_key(tmp_path / "open.key", secret, 0o644)
    (tmp_path / "clients").write_text("# nobody\n")
    cases = [
        (("--endpoint", "tcp://0.0.0.0:0"), "0.0.0.0 is not loopback: the EA's sockets need CURVE there"),
        (("--endpoint", "tcp://0.0.0.0:0", "--curve-secret-file", str(tmp_path / "open.key")), "chmod 600"),
        (("--endpoint", "tcp://127.0.0.1:0", "--curve-clients", str(tmp_path / "clients")),
         "--curve-clients needs --curve-secret-file"),
        (("--endpoint", "tcp://127.0.0.1:0", "--dwx", "--curve-secret-file", str(tmp_path / "open.key")),
         "the DWX EA speaks no CURVE"),
    ]
    for argv, words in cases:
        done = bridge("sim", "mt4", "--login", "4001", *argv)
        assert done.returncode == 2 and done.stderr.count("\n") == 1 and words in done.stderr, done.stderr
        assert "Traceback" not in done.stderr and secret not in done.stderr
    write_key(tmp_path / "ea.key", secret)
    done = bridge("sim", "mt4", "--login", "4001", "--endpoint", "tcp://0.0.0.0:0", "--curve-secret-file",
                  str(tmp_path / "ea.key"), "--curve-clients", str(tmp_path / "clients"))
    assert done.returncode == 2 and "no public key in it" in done.stderr and done.stderr.count("\n") == 1


def test_bridge_sim_mt4_serves_curve_clients_it_lists_only(tmp_path, request):
    import select

    from tests.processes import terminate

    ea_public, ea_secret = pair()
    bridge_public, bridge_secret = pair()
    rogue_public, rogue_secret = pair()
    write_key(tmp_path / "ea.key", ea_secret)
    (tmp_path / "bridge.pub").write_text(bridge_public + "\n")
    err = open(tmp_path / "sim.log", "w")
    sim = subprocess.Popen([BRIDGE, "sim", "mt4", "--login", "4001", "--endpoint", "tcp://0.0.0.0:0",
                            "--curve-secret-file", str(tmp_path / "ea.key"), "--curve-clients",
                            str(tmp_path / "bridge.pub"), "--tick-interval-ms", "0"],
                           stdout=subprocess.PIPE, stderr=err, text=True, cwd=ROOT)
    request.addfinalizer(lambda: (terminate(sim), sim.stdout.close(), err.close()))
    ready, _, _ = select.select([sim.stdout], [], [], 30)
    line = sim.stdout.readline() if ready else ""
    assert line.startswith("listening on tcp://0.0.0.0:"), (line, (tmp_path / "sim.log").read_text())
    assert f"CURVE server key {ea_public}, 1 client key(s) allowed" in line and ea_secret not in line
    port = int(line.split("tcp://0.0.0.0:", 1)[1].split()[0])
    ctx = zmq.Context()
    request.addfinalizer(lambda: ctx.destroy(0))

    def ping(public: str, secret: str, server: str) -> dict | None:
        dealer = ctx.socket(zmq.DEALER)
        dealer.setsockopt(zmq.LINGER, 0)
        dealer.curve_serverkey, dealer.curve_publickey, dealer.curve_secretkey = (
            server.encode(), public.encode(), secret.encode())
        dealer.connect(f"tcp://127.0.0.1:{port}")
        dealer.send(P.encode({"id": 1, "cmd": P.PING}))
        answer = P.decode(dealer.recv()) if dealer.poll(1500) else None
        dealer.close()
        return answer

    assert ping(bridge_public, bridge_secret, ea_public)["ok"] is True
    assert ping(rogue_public, rogue_secret, ea_public) is None
    assert ping(bridge_public, bridge_secret, rogue_public) is None
