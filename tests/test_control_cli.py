"""``bridge accounts``, ``bridge copy``, ``bridge mam``: route changes in the store, told to a running daemon.

In-process first (the commands against a configuration and its store, no
daemon: each bad input is one line, exit 2, nothing written), then a real
daemon subprocess on a simulated venue process: a follower subscribed at
runtime is copied to from the master's next deal, not while paused, again when
resumed, not after unsubscribing; a MAM member added at runtime gets its share.
The venue's records are checked, not the bridge's.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

import bridge.cli.route_edit as route_edit
from bridge.cli.main import main
from bridge.daemon import config as bridge_config
from bridge.errors import InputError
from bridge.store import Store
from tests.processes import (
    Client, Daemon, bridge_cli, free_port_endpoint, settled, sim_world, wait_for,
)

ROOT = Path(__file__).resolve().parents[1]
BRIDGE = str(Path(sys.executable).with_name("bridge"))

CONFIG = """
[store]
path = "bridge.sqlite"
[bus]
control = "{control}"
[[venue]]
name = "v"
platform = "sim"
  [[venue.account]]
  login = 1000
  balance = 50000
  [[venue.account]]
  login = 1001
  balance = 50000
  [[venue.account]]
  login = 2001
  balance = 10000
  [[venue.account]]
  login = 2002
  balance = 10000
  [[venue.account]]
  login = 3001
  balance = 10000
[[master]]
account = "v/1000"
[[copy]]
master = "v/1000"
follower = "v/2001"
[[mam]]
id = "alpha"
master = "v/1000"
method = "equity"
members = [{{ account = "v/3001" }}]
"""


@pytest.fixture
def cfg(tmp_path, monkeypatch):
    monkeypatch.setattr(route_edit, "ASK_TIMEOUT_MS", 50)  # nobody answers: don't wait long
    path = tmp_path / "bridge.toml"
    path.write_text(CONFIG.format(control=free_port_endpoint()))
    return str(path)


def run(capsys, *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def store_rows(cfg: str) -> dict:
    with Store.open(Path(cfg).parent / "bridge.sqlite") as store:
        return {t: list(store.db.query(f"SELECT * FROM {t} ORDER BY rowid"))
                for t in ("strategies", "subscriptions", "mam_groups", "mam_members")}


def one_line_usage_error(code: int, out: str, err: str, expected: str) -> None:
    assert code == 2, (out, err)
    assert err.startswith("bridge: error: ") and err.count("\n") == 1, err
    assert expected in err, err
    assert "Traceback" not in err + out


# -- copy ----------------------------------------------------------------------------

def test_subscribe_list_pause_resume_set_risk_unsubscribe(cfg, capsys):
    code, out, err = run(capsys, "copy", "subscribe", "--config", cfg, "--master", "v/1000", "--follower", "v/2002",
                         "--mode", "multiplier", "--multiplier", "0.5", "--max-lots", "2")
    assert code == 0, err
    assert out.splitlines()[0] == "copy s1: v/2002 follows v/1000"
    assert "no daemon answered" in out and "applies when the daemon starts" in out

    code, out, _ = run(capsys, "copy", "list", "--config", cfg, "--json")
    assert code == 0
    entries = json.loads(out)
    assert [(e["id"], e["source"], e["follower"], e["active"]) for e in entries] == [
        ("config-1", "config", "v/2001", True), ("s1", "cli", "v/2002", True)]
    assert entries[1]["settings"] == {"mode": "multiplier", "multiplier": "0.5"}
    assert entries[1]["risk"] == {"max_lots": "2"}
    code, out, _ = run(capsys, "copy", "list", "--config", cfg)
    assert "s1" in out and "max_lots=2" in out and "config-1" in out

    assert run(capsys, "copy", "pause", "--config", cfg, "s1")[1].startswith("copy s1: paused")
    assert store_rows(cfg)["subscriptions"][0]["active"] == 0
    assert run(capsys, "copy", "pause", "--config", cfg, "s1")[1].startswith("copy s1: already paused")
    assert run(capsys, "copy", "resume", "--config", cfg, "s1")[1].startswith("copy s1: resumed")
    assert store_rows(cfg)["subscriptions"][0]["active"] == 1

    code, out, err = run(capsys, "copy", "set-risk", "--config", cfg, "s1", "--max-lots", "5",
                         "--max-slippage-points", "20")
    assert code == 0, err
    assert json.loads(store_rows(cfg)["subscriptions"][0]["follower_settings"]) == {
        "max_lots": "5", "max_slippage_points": 20}
    assert run(capsys, "copy", "set-risk", "--config", cfg, "s1", "--max-lots", "none")[0] == 0
    assert json.loads(store_rows(cfg)["subscriptions"][0]["follower_settings"]) == {"max_slippage_points": 20}

    code, out, _ = run(capsys, "copy", "unsubscribe", "--config", cfg, "s1")
    assert code == 0 and "removed" in out
    assert store_rows(cfg)["subscriptions"] == []


def test_subscribe_from_a_settings_file(cfg, capsys, tmp_path):
    settings = tmp_path / "s.toml"
    settings.write_text('mode = "equity"\nmultiplier = 1.5\nmax_lots = 3\nexclude = ["XAU*"]\n')
    code, _, err = run(capsys, "copy", "subscribe", "--config", cfg, "--master", "v/1000", "--follower", "v/2002",
                       "--settings", str(settings), "--multiplier", "2", "--id", "gold-free")
    assert code == 0, err
    row = store_rows(cfg)["subscriptions"][0]
    assert row["id"] == "gold-free"
    assert json.loads(row["settings"]) == {"mode": "equity", "multiplier": "2", "exclude": ["XAU*"]}
    assert json.loads(row["follower_settings"]) == {"max_lots": 3}


BAD_COPY = {
    "unknown venue": (["--master", "v/1000", "--follower", "w/2002"], "no venue named 'w'"),
    "unknown account": (["--master", "v/1000", "--follower", "v/9999"], "venue 'v' has no account 9999"),
    "not VENUE/LOGIN": (["--master", "v/1000", "--follower", "2002"], "must be VENUE/LOGIN"),
    "not a master": (["--master", "v/1001", "--follower", "v/2002"], "is not a master: the daemon watches"),
    "itself": (["--master", "v/1000", "--follower", "v/1000"], "cannot follow itself"),
    "duplicate of config": (["--master", "v/1000", "--follower", "v/2001"], "already follows v/1000 (copy config-1)"),
    "a MAM member already": (["--master", "v/1000", "--follower", "v/3001"], "(MAM group alpha)"),
    "bad mode": (["--master", "v/1000", "--follower", "v/2002", "--mode", "yolo"], "--mode 'yolo'"),
    "bad number": (["--master", "v/1000", "--follower", "v/2002", "--max-lots", "lots"], "--max-lots 'lots'"),
    "bad points": (["--master", "v/1000", "--follower", "v/2002", "--max-slippage-points", "-3"],
                   "--max-slippage-points '-3'"),
    "bad id": (["--master", "v/1000", "--follower", "v/2002", "--id", "a b"], "copy id 'a b' must be"),
    "taken id": (["--master", "v/1000", "--follower", "v/2002", "--id", "config-1"], "is taken"),
    "missing settings file": (["--master", "v/1000", "--follower", "v/2002", "--settings", "/nonexistent.toml"],
                              "no such file"),
    "missing master": (["--follower", "v/2002"], "Missing option '--master'"),
}


@pytest.mark.parametrize("args,expected", BAD_COPY.values(), ids=BAD_COPY.keys())
def test_bad_subscribe_is_one_line_exit_2_nothing_written(cfg, capsys, args, expected):
    one_line_usage_error(*run(capsys, "copy", "subscribe", "--config", cfg, *args), expected)
    assert store_rows(cfg)["subscriptions"] == []


def test_bad_settings_file_key_names_it(cfg, capsys, tmp_path):
    settings = tmp_path / "s.toml"
    settings.write_text('mode = "equity"\nmultiplyer = 1.5\n')
    one_line_usage_error(*run(capsys, "copy", "subscribe", "--config", cfg, "--master", "v/1000", "--follower",
                              "v/2002", "--settings", str(settings)), "unknown setting 'multiplyer'")
    assert store_rows(cfg)["subscriptions"] == []


def test_copy_edits_of_unknown_or_config_routes_are_refused(cfg, capsys):
    run(capsys, "copy", "subscribe", "--config", cfg, "--master", "v/1000", "--follower", "v/2002")
    before = store_rows(cfg)
    for argv, expected in [
        (["pause", "s9"], "no copy subscription 's9'"),
        (["resume", "config-1"], "declared in bridge.toml"),
        (["unsubscribe", "config-1"], "declared in bridge.toml"),
        (["unsubscribe", "--close-positions", "config-1"], "declared in bridge.toml"),
        (["unsubscribe", "--close-positions", "s9"], "no copy subscription 's9'"),
        (["set-risk", "s1"], "nothing to change"),
        (["set-risk", "s1", "--max-lots", "x"], "--max-lots 'x'"),
        (["set-risk", "s9", "--max-lots", "1"], "no copy subscription 's9'"),
    ]:
        one_line_usage_error(*run(capsys, "copy", argv[0], "--config", cfg, *argv[1:]), expected)
    assert store_rows(cfg) == before


# -- mam -----------------------------------------------------------------------------

def test_mam_create_add_set_method_remove_delete(cfg, capsys):
    assert run(capsys, "mam", "create", "--config", cfg, "beta", "--master", "v/1000", "--method", "lot")[0] == 0
    code, out, err = run(capsys, "mam", "add", "--config", cfg, "beta", "v/2002", "--setting", "0.5")
    assert code == 0, err
    assert run(capsys, "mam", "add", "--config", cfg, "beta", "v/1001")[0] == 0
    assert run(capsys, "mam", "set-method", "--config", cfg, "beta", "equal", "--leftover", "largest-equity")[0] == 0
    code, out, _ = run(capsys, "mam", "list", "--config", cfg, "--json")
    groups = json.loads(out)
    assert [g["id"] for g in groups] == ["alpha", "beta"]
    beta = groups[1]
    assert (beta["source"], beta["method"], beta["leftover"]) == ("cli", "equal", "largest-equity")
    assert beta["members"] == [{"account": "v/1001", "setting": None}, {"account": "v/2002", "setting": "0.5"}]
    assert "beta" in run(capsys, "mam", "list", "--config", cfg)[1]
    assert run(capsys, "mam", "remove", "--config", cfg, "beta", "v/1001")[0] == 0
    assert [r["account_id"] for r in store_rows(cfg)["mam_members"]] == ["sim/v/2002"]
    assert run(capsys, "mam", "delete", "--config", cfg, "beta")[0] == 0
    assert store_rows(cfg)["mam_groups"] == [] and store_rows(cfg)["mam_members"] == []


def test_close_requests_are_recorded_with_the_removal_and_ended_by_following_again(cfg, capsys):
    """No daemon: each removal with --close-positions records its request (one per member for a group
    deletion, in the deletion's transaction); following the same master again ends what it covers."""
    run(capsys, "copy", "subscribe", "--config", cfg, "--master", "v/1000", "--follower", "v/2002")
    run(capsys, "mam", "create", "--config", cfg, "beta", "--master", "v/1000", "--method", "equity")
    run(capsys, "mam", "add", "--config", cfg, "beta", "v/1001")
    code, out, err = run(capsys, "copy", "unsubscribe", "--config", cfg, "--close-positions", "s1")
    assert code == 0 and "v/2002 has no copied position open: nothing to close" in out, err
    code, out, err = run(capsys, "mam", "delete", "--config", cfg, "--close-positions", "beta")
    assert code == 0, err
    assert out.splitlines()[:2] == ["MAM group beta: deleted", "  v/1001 has no copied position open: nothing to close"]
    run(capsys, "copy", "subscribe", "--config", cfg, "--master", "v/1000", "--follower", "v/2002")
    with Store.open(Path(cfg).parent / "bridge.sqlite") as store:
        requests = [(r["batch"], r["origin"], r["owner"], r["follower"], r["state"], r["until_seq"])
                    for r in store.close_requests()]
    assert requests == [(1, "unsubscribe", "s1", "sim/v/2002", "waiting", 1),
                        (2, "mam-remove", "beta", "sim/v/1001", "waiting", None)]
    assert store_rows(cfg)["mam_groups"] == [] and store_rows(cfg)["mam_members"] == []


def test_bad_mam_inputs_are_one_line_exit_2_nothing_written(cfg, capsys):
    run(capsys, "mam", "create", "--config", cfg, "beta", "--master", "v/1000", "--method", "equity")
    run(capsys, "mam", "add", "--config", cfg, "beta", "v/2002")
    before = store_rows(cfg)
    for argv, expected in [
        (["create", "beta", "--master", "v/1000", "--method", "equity"], "exists already"),
        (["create", "alpha", "--master", "v/1000", "--method", "equity"], "exists already"),
        (["create", "gamma", "--master", "v/1000", "--method", "biggest"], "method 'biggest' is not one of"),
        (["create", "gamma", "--master", "v/1000", "--method", "equity", "--leftover", "x"], "leftover 'x'"),
        (["create", "gamma", "--master", "v/2002", "--method", "equity"], "is not a master"),
        (["add", "beta", "v/2002"], "already follows v/1000 (MAM group beta)"),
        (["add", "beta", "v/2001"], "already follows v/1000 (copy config-1)"),
        (["add", "beta", "v/1000"], "cannot follow itself"),
        (["add", "beta", "v/1001", "--setting", "lots"], "setting 'lots' is not a number"),
        (["add", "nope", "v/1001"], "no MAM group 'nope'"),
        (["add", "alpha", "v/1001"], "declared in bridge.toml"),
        (["remove", "beta", "v/1001"], "is not a member of MAM group beta"),
        (["set-method", "beta", "best"], "method 'best'"),
        (["delete", "alpha"], "declared in bridge.toml"),
    ]:
        one_line_usage_error(*run(capsys, "mam", argv[0], "--config", cfg, *argv[1:]), expected)
    assert store_rows(cfg) == before


# -- accounts ------------------------------------------------------------------------

def test_accounts_list_add_remove(cfg, capsys):
    run(capsys, "copy", "subscribe", "--config", cfg, "--master", "v/1000", "--follower", "v/2002")
    code, out, _ = run(capsys, "accounts", "list", "--config", cfg, "--json")
    rows = {r["account"]: r for r in json.loads(out)}
    assert rows["v/1000"]["master"] and not rows["v/2001"]["master"]
    assert rows["v/2001"]["follows"] == ["copy config-1"] and rows["v/2002"]["follows"] == ["copy s1"]
    assert rows["v/3001"]["follows"] == ["mam alpha"] and rows["v/1000"]["platform"] == "sim"
    assert "v/1000" in run(capsys, "accounts", "list", "--config", cfg)[1]

    code, out, _ = run(capsys, "accounts", "add", "--config", cfg, "v/4001", "--master")
    assert code == 0 and "login = 4001" in out and 'account = "v/4001"' in out
    assert "configured already" in run(capsys, "accounts", "add", "--config", cfg, "v/2001")[1]
    one_line_usage_error(*run(capsys, "accounts", "add", "--config", cfg, "w/1"), "configured venue")
    one_line_usage_error(*run(capsys, "accounts", "remove", "--config", cfg, "v/2002"), "is used by copy s1")
    one_line_usage_error(*run(capsys, "accounts", "remove", "--config", cfg, "v/1000"), "is used by copy config-1")
    code, out, _ = run(capsys, "accounts", "remove", "--config", cfg, "v/1001")
    assert code == 0 and "in no route" in out


def test_accounts_test_without_a_daemon_says_so(cfg, capsys):
    code, out, err = run(capsys, "accounts", "test", "--config", cfg, "v/1000", "--timeout", "50")
    assert code == 1 and err.startswith("bridge: error: no daemon answered") and err.count("\n") == 1
    one_line_usage_error(*run(capsys, "accounts", "test", "--config", cfg, "v/77"), "has no account 77")


# -- the control socket is the service user's ----------------------------------------

def test_a_public_tcp_control_endpoint_is_refused(tmp_path):
    text = CONFIG.format(control="tcp://0.0.0.0:5609")
    with pytest.raises(InputError, match=r"\[bus\]: control 'tcp://0.0.0.0:5609' must listen on a loopback"):
        bridge_config.parse(__import__("tomllib").loads(text), "bridge.toml", tmp_path)


def test_an_ipc_control_socket_is_the_service_users_only(tmp_path):
    """A real daemon on an ipc:// control socket: the file is mode 0600 and answers the commands."""
    sock = tmp_path / "run" / "control.sock"
    sock.parent.mkdir()
    sock.parent.chmod(0o777)  # world-writable: the daemon warns
    path = tmp_path / "bridge.toml"
    path.write_text(CONFIG.format(control=f"ipc://{sock}").replace(
        "[bus]\n", f"[bus]\ndeals = \"{free_port_endpoint()}\"\ndeals_replay = \"{free_port_endpoint()}\"\n")
        + "[metrics]\nlisten = \"\"\n")
    env = {k: v for k, v in os.environ.items() if k != "BRIDGE_DEBUG"}
    daemon = subprocess.Popen([BRIDGE, "run", "--config", str(path)], stdout=subprocess.DEVNULL,
                              stderr=open(tmp_path / "bridge.log", "w"), cwd=ROOT, env=env)
    try:
        wait_for(sock.exists, "the control socket")
        assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600
        answer = subprocess.run([BRIDGE, "accounts", "test", "--config", str(path), "v/2001", "--json"],
                                capture_output=True, text=True, cwd=ROOT, env=env, timeout=60)
        assert answer.returncode == 0, answer.stderr
        figures = json.loads(answer.stdout)
        assert (figures["account"], figures["currency"], figures["hedging"]) == ("v/2001", "USD", True)
        assert Decimal(figures["balance"]) == Decimal(figures["equity"]) == 10000
        assert "which every user may write to" in (tmp_path / "bridge.log").read_text()
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)


# -- a running daemon takes route changes without a restart ---------------------------

VENUE = "live"
MASTER = f"sim/{VENUE}/1000"


@pytest.fixture
def world(tmp_path, request):
    return sim_world(tmp_path, request, VENUE,
                     [(1000, 100000), (2001, 10000), (2002, 20000), (3001, 30000), (3002, 10000)],
                     f"[[master]]\naccount = \"{VENUE}/1000\"\n[[copy]]\nmaster = \"{VENUE}/1000\"\n"
                     f"follower = \"{VENUE}/2001\"\n[copy.settings]\nmode = \"balance\"\n")


cli = bridge_cli


def trades(venue: Client, login: int) -> int:
    """How many trades the account has made at the venue (its own deal history, deposits left out)."""
    return len([d for d in venue.venue("deals_since", account=f"sim/{VENUE}/{login}", after=None)
                if d["kind"] != "balance"])


def held(venue: Client, login: int) -> int:
    """The account's open volume at the venue (canonical units)."""
    return sum(p["volume"] for p in venue.venue("positions", account=f"sim/{VENUE}/{login}"))


def test_route_changes_reach_the_running_daemon(world):
    venue, bridge, config = world
    bridge.start()
    fills = 0

    def master_trades(expected_new_fills: int) -> None:
        nonlocal fills
        venue.venue("trade", account=MASTER, symbol="EURUSD", side="buy", amount="1.00")
        fills += expected_new_fills
        bridge.wait(settled(fills), f"{fills} fills")

    master_trades(1)  # the configured follower only
    lot = held(venue, 1000)  # 1.00 lot in canonical units
    assert trades(venue, 2002) == 0

    out = cli("copy", "subscribe", "--config", str(config), "--master", f"{VENUE}/1000", "--follower",
              f"{VENUE}/2002", "--mode", "multiplier", "--multiplier", "0.5")
    assert "the running daemon copies along it now (2 copy route(s)" in out
    master_trades(2)
    assert trades(venue, 2002) == 1 and held(venue, 2002) == lot // 2

    assert "copy s1: paused" in cli("copy", "pause", "--config", str(config), "s1")
    master_trades(1)
    assert trades(venue, 2002) == 1

    cli("copy", "resume", "--config", str(config), "s1")
    cli("copy", "set-risk", "--config", str(config), "s1", "--max-lots", "0.2")
    master_trades(2)
    assert trades(venue, 2002) == 2 and held(venue, 2002) == lot // 2 + lot // 5

    cli("copy", "unsubscribe", "--config", str(config), "s1")
    master_trades(1)
    assert trades(venue, 2002) == 2

    cli("mam", "create", "--config", str(config), "beta", "--master", f"{VENUE}/1000", "--method", "equity")
    master_trades(1)  # an empty group copies nothing
    cli("mam", "add", "--config", str(config), "beta", f"{VENUE}/3001")
    master_trades(2)
    assert trades(venue, 3001) == 1 and held(venue, 3001) == lot
    out = cli("mam", "add", "--config", str(config), "beta", f"{VENUE}/3002")
    assert "1 MAM group(s)" in out
    master_trades(3)  # split by equity, about 3:1
    assert trades(venue, 3002) == 1 and held(venue, 3001) + held(venue, 3002) == 2 * lot
    assert lot // 5 <= held(venue, 3002) <= lot * 3 // 10
    assert trades(venue, 2001) == 8  # the configured route went on throughout

    # the daemon reads the same routes when it starts again
    bridge.stop()
    bridge.start()
    master_trades(3)
    assert trades(venue, 3002) == 2 and trades(venue, 2002) == 2


# -- --close-positions: the follower ends flat at the venue, the master keeps its positions ---------

def two_master_positions_copied(venue: Client, bridge: Daemon) -> list:
    """The master opens EURUSD buy 1.00 and GBPUSD sell 0.40; each copied to the configured follower and two
    more (6 fills). Returns the master's positions, (symbol, volume) sorted."""
    venue.venue("trade", account=MASTER, symbol="EURUSD", side="buy", amount="1.00")
    bridge.wait(settled(3), "3 fills")
    venue.venue("trade", account=MASTER, symbol="GBPUSD", side="sell", amount="0.40")
    bridge.wait(settled(6), "6 fills")
    return master_positions(venue)


def master_positions(venue: Client) -> list:
    return sorted((p["symbol"], p["volume"]) for p in venue.venue("positions", account=MASTER))


def test_unsubscribe_and_mam_remove_with_close_positions_leave_the_follower_flat(world):
    venue, bridge, config = world
    bridge.start()
    cli("copy", "subscribe", "--config", str(config), "--master", f"{VENUE}/1000", "--follower", f"{VENUE}/2002",
        "--mode", "multiplier", "--multiplier", "0.5")
    cli("mam", "create", "--config", str(config), "beta", "--master", f"{VENUE}/1000", "--method", "equity")
    cli("mam", "add", "--config", str(config), "beta", f"{VENUE}/3001")
    master = two_master_positions_copied(venue, bridge)
    assert held(venue, 2002) > 0 and held(venue, 3001) > 0

    out = cli("copy", "unsubscribe", "--config", str(config), "--close-positions", "s1")
    assert out.splitlines()[0].startswith(f"copy s1: removed ({VENUE}/2002 no longer follows {VENUE}/1000); "
                                          f"closing 2 copied position(s) of {VENUE}/2002 at market: ")
    assert "and sends the 2 close(s) now" in out.splitlines()[1]
    wait_for(lambda: held(venue, 2002) == 0, "the unsubscribed follower to be flat")
    assert trades(venue, 2002) == 4  # two opens, two closes
    assert master_positions(venue) == master
    assert held(venue, 2001) > 0  # the configured follower keeps copying

    # with no daemon running, the closes wait in the store and go out when it starts
    bridge.stop()
    out = cli("mam", "remove", "--config", str(config), "--close-positions", "beta", f"{VENUE}/3001")
    assert f"closing 2 copied position(s) of {VENUE}/3001 at market" in out
    assert "(and sends the 2 close(s) then)" in out
    assert held(venue, 3001) > 0
    bridge.start()
    wait_for(lambda: held(venue, 3001) == 0, "the removed MAM member to be flat", timeout_s=60)
    assert trades(venue, 3001) == 4
    status = bridge.status()
    assert status["closes"]["filled"] == 2 and status["closes"]["sent"] == 2
    assert master_positions(venue) == master

    # nothing left to close: one line says so; --json prints the plan
    cli("copy", "subscribe", "--config", str(config), "--master", f"{VENUE}/1000", "--follower", f"{VENUE}/2002",
        "--id", "again")
    answer = json.loads(cli("copy", "unsubscribe", "--config", str(config), "--close-positions", "--json", "again"))
    assert (answer["id"], answer["follower"], answer["closes"], answer["daemon"]) == \
        ("again", f"{VENUE}/2002", [], "applied")


def test_mam_delete_with_close_positions_closes_every_members_copies(world):
    venue, bridge, config = world
    bridge.start()
    cli("mam", "create", "--config", str(config), "beta", "--master", f"{VENUE}/1000", "--method", "equity")
    cli("mam", "add", "--config", str(config), "beta", f"{VENUE}/3001")
    cli("mam", "add", "--config", str(config), "beta", f"{VENUE}/3002")
    master = two_master_positions_copied(venue, bridge)
    copied = held(venue, 2001)
    assert held(venue, 3001) > 0 and held(venue, 3002) > 0

    out = cli("mam", "delete", "--config", str(config), "--close-positions", "beta").splitlines()
    assert out[0] == "MAM group beta: deleted"
    assert out[1].startswith(f"  closing 2 copied position(s) of {VENUE}/3001 at market: ")
    assert out[2].startswith(f"  closing 2 copied position(s) of {VENUE}/3002 at market: ")
    assert "and sends the 4 close(s) now" in out[3]
    wait_for(lambda: held(venue, 3001) == 0 and held(venue, 3002) == 0, "both members to be flat")
    assert trades(venue, 3001) == 4 and trades(venue, 3002) == 4  # two opens, two closes each, no more
    assert master_positions(venue) == master
    assert held(venue, 2001) == copied  # the configured follower is not touched
    assert json.loads(cli("mam", "list", "--config", str(config), "--json")) == []
    # the members' requests are settled once their closes are done (no copy was in flight: nothing more)
    wait_for(lambda: bridge.status()["closes"]["requests_waiting"] == 0, "the close requests to be settled")
    status = bridge.status()["closes"]
    assert (status["filled"], status["sent"], status["late"]) == (4, 4, 0)

    venue.venue("trade", account=MASTER, symbol="EURUSD", side="buy", amount="0.50")  # the group copies no more
    bridge.wait(settled(7), "7 fills")
    assert trades(venue, 3001) == 4 and trades(venue, 3002) == 4
