"""CURVE on the bus: ``bridge keys generate``, the non-loopback rule, and two roles as processes over CURVE.

The two-role test binds the deal publisher on ``tcp://0.0.0.0:PORT`` (not
loopback by the rule, so CURVE is required) and connects to it there; the
control sockets stay on 127.0.0.1, CURVE too since the configuration has keys.
Clients with an unlisted key, with the wrong server key or with no CURVE at all
get no frame and no answer.
"""

from __future__ import annotations

import os
import stat
import subprocess
import time
from pathlib import Path

import pytest
import zmq

from bridge.bus.channel import Subscriber
from bridge.bus.curve import CurveKeys, needs_curve
from bridge.config.secrets import Secret
from bridge.daemon import config as bridge_config
from bridge.daemon.control import ask_status
from bridge.errors import InputError
from tests.processes import BRIDGE, ROOT, Client, Daemon, free_port_endpoint, start_venue, write_accounts

VENUE = "curve"
MASTER = f"sim/{VENUE}/1000"


def bridge(*args: str, timeout: int = 60) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "BRIDGE_DEBUG"}
    return subprocess.run([BRIDGE, *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)


def generate(out: Path, name: str) -> tuple[str, str]:
    done = bridge("keys", "generate", "--out", str(out), "--name", name)
    assert done.returncode == 0, done.stderr
    return (out / f"{name}.pub").read_text().strip(), (out / f"{name}.key").read_text().strip()


# -- bridge keys generate ---------------------------------------------------------------------------------

def test_keys_generate_writes_a_pair_with_safe_modes_and_never_overwrites(tmp_path):
    out = tmp_path / "keys"
    done = bridge("keys", "generate", "--out", str(out), "--name", "connector")
    assert done.returncode == 0 and done.stderr == "", done.stderr
    public, secret = (out / "connector.pub").read_text().strip(), (out / "connector.key").read_text().strip()
    assert zmq.curve_public(secret.encode()).decode() == public  # the pair belongs together
    assert stat.S_IMODE((out / "connector.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((out / "connector.pub").stat().st_mode) == 0o644
    assert stat.S_IMODE(out.stat().st_mode) == 0o700  # made by the command
    assert f"public key: {public}" in done.stdout and secret not in done.stdout
    assert f'curve_secret_file = "{out / "connector.key"}"' in done.stdout
    assert f'curve_clients = ["{public}"]' in done.stdout and f'curve_server_public = "{public}"' in done.stdout

    again = bridge("keys", "generate", "--out", str(out), "--name", "connector")
    assert again.returncode == 2 and again.stdout == "" and again.stderr.count("\n") == 1
    assert "connector.key exists" in again.stderr and "--force" in again.stderr
    assert (out / "connector.key").read_text().strip() == secret, "an existing key is never overwritten"

    (out / "connector.key").chmod(0o644)  # --force replaces the file: the new one is 0600 whatever the old was
    forced = bridge("keys", "generate", "--out", str(out), "--name", "connector", "--force")
    assert forced.returncode == 0, forced.stderr
    new_secret = (out / "connector.key").read_text().strip()
    assert new_secret != secret and stat.S_IMODE((out / "connector.key").stat().st_mode) == 0o600
    assert zmq.curve_public(new_secret.encode()).decode() == (out / "connector.pub").read_text().strip()


@pytest.mark.parametrize("args,words", [
    (("--name", "../escape"), "--name '../escape'"),
    (("--name", ".hidden"), "--name '.hidden'"),
    (("--out-missing",), "No such option"),
])
def test_keys_generate_bad_input_is_one_line_exit_2(tmp_path, args, words):
    out = tmp_path / "keys"
    argv = ("keys", "generate", *args) if args == ("--out-missing",) else ("keys", "generate", "--out", str(out),
                                                                            *args)
    done = bridge(*argv)
    assert done.returncode == 2 and done.stdout == "" and "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1 and words in done.stderr
    assert not (tmp_path / "escape.key").exists()


def test_keys_generate_into_a_file_is_one_line(tmp_path):
    (tmp_path / "file").write_text("x")
    done = bridge("keys", "generate", "--out", str(tmp_path / "file"))
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "is a file" in done.stderr


# -- the rule --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("endpoint,needs", [
    ("tcp://127.0.0.1:5601", False), ("tcp://127.0.0.2:5601", False), ("tcp://localhost:5601", False),
    ("tcp://[::1]:5601", False), ("inproc://deals", False), ("ipc:///run/copybridge/deals", False),
    ("tcp://0.0.0.0:5601", True), ("tcp://*:5601", True), ("tcp://10.0.0.5:5601", True),
    ("tcp://eth0:5601", True), ("tcp://[::]:5601", True), ("tcp://bridge.example.com:5601", True),
    ("tcp://127.0.0.1:0;10.0.0.5:5601", True),
])
def test_which_endpoints_need_curve(endpoint, needs):
    assert needs_curve(endpoint) is needs


VENUE_TOML = "[[venue]]\nname='v'\nplatform='sim'\n[[venue.account]]\nlogin=1\nbalance=1\n"


def test_a_non_loopback_endpoint_without_curve_is_refused_with_one_line(tmp_path):
    config = tmp_path / "bridge.toml"
    config.write_text(f"[store]\npath='{tmp_path / 's.sqlite'}'\n[bus]\ndeals='tcp://0.0.0.0:5601'\n"
                      f"deals_replay='tcp://127.0.0.1:5602'\n" + VENUE_TOML)
    for extra in ((), ("--check",), ("--role", "worker")):
        done = bridge("run", "--config", str(config), *extra)
        assert done.returncode == 2 and done.stdout == "" and "Traceback" not in done.stderr, done.stderr
        assert done.stderr.count("\n") == 1
        assert "deals 'tcp://0.0.0.0:5601' is not a loopback address, so it needs CURVE" in done.stderr
        assert "bridge keys generate" in done.stderr
    assert not (tmp_path / "s.sqlite").exists(), "nothing started"


BAD_CURVE = {
    "secret written in the file": ("curve_secret='x'\n", "curve_secret must not be written in the configuration"),
    "clients without own key": ("curve_clients=[]\n", "curve_clients needs this process's own key"),
    "a short key": ("curve_secret_file='{key}'\ncurve_clients=['abc']\n", "curve_clients[0] must be a 40-character"),
    "a public key as a secret": ("curve_secret_file='{pub}'\n", "curve_secret"),
    "a secret listed as public": ("curve_secret_file='{key}'\ncurve_clients=['{secret}']\n",
                                  "a secret key is listed as a public one"),
    "an open key file": ("curve_secret_file='{open}'\n", "chmod 600"),
}


@pytest.mark.parametrize("bus,words", BAD_CURVE.values(), ids=BAD_CURVE.keys())
def test_bad_curve_settings_are_one_line(tmp_path, bus, words):
    public, secret = generate(tmp_path, "k")
    (tmp_path / "open.key").write_text(secret)
    (tmp_path / "open.key").chmod(0o644)
    (tmp_path / "pub.key").write_text(public)  # a public key where the secret should be: 40 valid characters,
    (tmp_path / "pub.key").chmod(0o600)        # accepted as a secret (any 32 bytes are one), so check the rule
    text = bus.format(key=tmp_path / "k.key", pub=tmp_path / "pub.key", secret=secret, open=tmp_path / "open.key")
    path = tmp_path / "bridge.toml"
    path.write_text("[bus]\n" + text + VENUE_TOML)
    if "pub.key" in text:
        config = bridge_config.load(path)  # a public key's 32 bytes are a usable (if pointless) secret key
        assert config.curve.public != public
        return
    with pytest.raises(InputError, match=words.replace("[", r"\[").replace("]", r"\]")):
        bridge_config.load(path)


def test_curve_keys_are_never_shown_by_check_or_repr(tmp_path):
    public, secret = generate(tmp_path, "k")
    path = tmp_path / "bridge.toml"
    path.write_text(f"[bus]\ndeals='tcp://0.0.0.0:5601'\ncurve_secret_file='{tmp_path / 'k.key'}'\n" + VENUE_TOML)
    config = bridge_config.load(path)
    assert config.curve.public == public and config.curve.server_public == public  # default: the shared pair
    assert config.curve.clients == (public,)
    assert secret not in repr(config)
    checked = bridge("run", "--config", str(path), "--check")
    assert checked.returncode == 0 and secret not in checked.stdout + checked.stderr


# -- two roles as processes, CURVE on the bus -------------------------------------------------------------

class CurveDaemon(Daemon):
    """A role whose control socket is a CURVE server: asked as a CURVE client with the configuration's keys."""

    def __init__(self, *args, curve: CurveKeys, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.curve = curve

    def status(self):
        return ask_status(self.control, 200, self.curve)


def _keys(public: str, secret: str, server: str) -> CurveKeys:
    return CurveKeys(Secret.literal(secret), public, server, ())


def _listen(subscriber: Subscriber, seconds: float) -> None:
    poller = zmq.Poller()
    for s in subscriber.sockets:
        poller.register(s, zmq.POLLIN)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if poller.poll(50):
            subscriber.on_readable()


def test_two_roles_over_curve_copy_and_strangers_get_nothing(tmp_path, request):
    ctx = zmq.Context()
    request.addfinalizer(lambda: ctx.destroy(0))
    keys = tmp_path / "keys"
    public, secret = generate(keys, "bridge")  # both roles run on this one configuration: one key pair
    friend_public, friend_secret = generate(keys, "friend")  # listed in curve_clients
    rogue_public, rogue_secret = generate(keys, "rogue")  # not listed
    accounts = write_accounts(tmp_path / "accounts.toml", VENUE, [(1000, 100000), (2001, 10000)])
    endpoint, venue_deals, venue_replay = start_venue(accounts, tmp_path / "venue.log", request)
    port, replay_port = (free_port_endpoint().rpartition(":")[2] for _ in range(2))
    control, control_connector = free_port_endpoint(), free_port_endpoint()
    bus = (f"[bus]\ndeals = \"tcp://0.0.0.0:{port}\"\ndeals_replay = \"tcp://0.0.0.0:{replay_port}\"\n"
           f"heartbeat_ms = 50\ncontrol = \"{control}\"\ncontrol_connector = \"{control_connector}\"\n")
    rest = (f"[[venue]]\nname = \"{VENUE}\"\nplatform = \"sim\"\nendpoint = \"{endpoint}\"\n"
            f"deals_endpoint = \"{venue_deals}\"\nreplay_endpoint = \"{venue_replay}\"\n"
            f"[[master]]\naccount = \"{VENUE}/1000\"\n"
            f"[[copy]]\nmaster = \"{VENUE}/1000\"\nfollower = \"{VENUE}/2001\"\n")
    config = tmp_path / "bridge.toml"
    config.write_text(f"[store]\npath = \"{tmp_path / 'bridge.sqlite'}\"\n{bus}"
                      f"curve_secret_file = \"{keys / 'bridge.key'}\"\ncurve_clients = [\"{friend_public}\"]\n{rest}")
    curve = bridge_config.load(config).curve
    worker = CurveDaemon(config, tmp_path / "worker.log", ctx, control, role="worker", curve=curve)
    connector = CurveDaemon(config, tmp_path / "connector.log", ctx, control_connector, role="connector",
                            curve=curve)
    request.addfinalizer(worker.stop)
    request.addfinalizer(connector.stop)
    worker.start()
    epoch = connector.start()["connector"]["epoch"]
    worker.wait(lambda s: s and s["worker"]["bus"]["epoch"] == epoch, "the worker to follow the connector")

    # strangers on the deal stream, from the start: an unlisted key, the wrong server key, no CURVE at all;
    # and a listed client, which shows the others would have had something to hear
    deals, replay = f"tcp://127.0.0.1:{port}", f"tcp://127.0.0.1:{replay_port}"
    got: dict[str, list] = {"friend": [], "rogue": [], "wrong server": [], "plain": []}
    listeners = {
        "friend": _keys(friend_public, friend_secret, public),
        "rogue": _keys(rogue_public, rogue_secret, public),
        "wrong server": _keys(friend_public, friend_secret, rogue_public),
        "plain": None,
    }
    subscribers = {name: Subscriber(ctx, deals, replay, ["deal."], got[name].append, curve=keys_)
                   for name, keys_ in listeners.items()}
    for s in subscribers.values():
        s.start()
    venue = Client(ctx, endpoint)
    position = venue.venue("trade", account=MASTER, symbol="EURUSD", side="buy", amount="1.00")["position_id"]
    worker.wait(lambda s: s["worker"]["intents"].get("filled") == 1, "the follower's order to be filled", 30)
    assert [p["volume"] > 0 for p in venue.venue("positions", account=f"sim/{VENUE}/2001")] == [True]
    venue.venue("close", account=MASTER, position_id=position)
    worker.wait(lambda s: s["worker"]["intents"].get("filled") == 2 and s["worker"]["idle"], "the close", 30)
    assert venue.venue("positions", account=f"sim/{VENUE}/2001") == []
    for s in subscribers.values():
        _listen(s, 0.5)
    # a listed client gets the two deals (the replay brings it what came first; a backfill may repeat one)
    assert len({f.body["deal_id"] for f in got["friend"] if f.topic.startswith("deal.")}) == 2, got["friend"]
    assert got["rogue"] == got["wrong server"] == got["plain"] == [], {k: len(v) for k, v in got.items()}
    for s in subscribers.values():
        s.close()

    # the control socket: the configuration's own key gets in, a wrong one or none gets no answer
    asked = bridge("status", "--config", str(config), "--role", "connector", "--json")
    assert asked.returncode == 0 and '"connector"' in asked.stdout, asked.stderr
    rogue_config = tmp_path / "rogue.toml"
    rogue_config.write_text(f"{bus}curve_secret_file = \"{keys / 'rogue.key'}\"\ncurve_server_public = "
                            f"\"{public}\"\n{rest}")
    refused = bridge("status", "--config", str(rogue_config), "--role", "connector", "--timeout", "500")
    assert refused.returncode == 1 and refused.stdout == "" and refused.stderr.count("\n") == 1, refused.stderr
    assert f"no daemon answered on {control_connector} within 500 ms (CURVE is on" in refused.stderr
    assert ask_status(control_connector, 300) is None, "a client without CURVE gets no answer"
    assert worker.status()["worker"]["bus"]["bad_frames"] == 0

    worker.stop()
    connector.stop()
    assert (worker.process.returncode, connector.process.returncode) == (0, 0)
    logs = (tmp_path / "worker.log").read_text() + (tmp_path / "connector.log").read_text()
    assert "CURVE on every tcp:// bus socket" in logs
    assert f"CURVE client key {rogue_public} refused" in logs  # the ZAP handler said no, and said so
    for key in (secret, friend_secret, rogue_secret):
        assert key not in logs, "a secret key in the log"


@pytest.mark.parametrize("key", ["endpoint", "deals_endpoint", "replay_endpoint"])
def test_a_remote_sim_venue_off_loopback_is_refused_it_speaks_no_curve(tmp_path, key):
    endpoints = {"endpoint": "tcp://127.0.0.1:5701", "deals_endpoint": "tcp://127.0.0.1:5702",
                 "replay_endpoint": "tcp://127.0.0.1:5703"}
    endpoints[key] = "tcp://10.0.0.5:5799"
    path = tmp_path / "bridge.toml"
    path.write_text("[[venue]]\nname='v'\nplatform='sim'\n" + "".join(f"{k}='{v}'\n" for k, v in endpoints.items()))
    with pytest.raises(InputError, match=f"{key} 'tcp://10.0.0.5:5799' is not a loopback address, and the "
                                         "simulated venue speaks no CURVE"):
        bridge_config.load(path)


def test_without_curve_in_libzmq_keys_and_config_say_so_in_one_line(tmp_path, monkeypatch, capsys):
    from bridge.cli.main import main

    public, secret = generate(tmp_path, "k")
    monkeypatch.setattr(zmq, "has", lambda feature: feature != "curve")
    with pytest.raises(SystemExit) as exited:
        main(["keys", "generate", "--out", str(tmp_path / "other")])
    err = capsys.readouterr().err
    assert exited.value.code == 1 and err.count("\n") == 1 and "no CURVE support" in err
    assert not (tmp_path / "other").exists()
    path = tmp_path / "bridge.toml"
    path.write_text(f"[bus]\ncurve_secret_file='{tmp_path / 'k.key'}'\n" + VENUE_TOML)
    with pytest.raises(InputError, match="this libzmq has no CURVE support"):
        bridge_config.load(path)


def test_a_refused_key_is_logged_at_once_then_once_a_minute(caplog, monkeypatch):
    from bridge.bus import curve

    clock = [1000.0]
    monkeypatch.setattr(curve.time, "monotonic", lambda: clock[0])
    allow = curve._AllowList(("A" * 40,))
    with caplog.at_level("WARNING", logger="bridge.bus"):
        assert allow.callback("copybridge", b"A" * 40)
        for _ in range(50):  # a client reconnecting every 100 ms for 5 s
            assert not allow.callback("copybridge", b"B" * 40)
            clock[0] += 0.1
        clock[0] += 60
        assert not allow.callback("copybridge", b"B" * 40)
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [f"bus: CURVE client key {'B' * 40} refused (not in [bus] curve_clients)",
                     f"bus: CURVE client key {'B' * 40} refused (not in [bus] curve_clients); 50 attempt(s) since "
                     "the last line"]
    assert allow.refused == 51


def test_a_client_key_file_takes_keys_that_hold_a_hash(tmp_path):
    """'#' is a Z85 character: a key may hold one (never first: a group's first digit is at most 82). Comments
    are lines whose first word starts with '#', or a '#' word after the key; a '#' inside a key is the key's."""
    from bridge.bus.curve import read_public_keys
    from bridge.errors import InputError

    keys = []
    while len(keys) < 2:  # about a third of real keys hold a '#'
        public = zmq.curve_keypair()[0].decode()
        if "#" in public:
            keys.append(public)
    path = tmp_path / "clients"
    path.write_text(f"# the bridge's clients\n{keys[0]}\n\n   {keys[1]}   # the second one\n#another comment\n")
    assert read_public_keys(path, "--curve-clients") == tuple(keys)
    path.write_text(f"{keys[0]} {keys[1]}\n")
    with pytest.raises(InputError, match=r"clients:1: one key a line"):
        read_public_keys(path, "--curve-clients")
