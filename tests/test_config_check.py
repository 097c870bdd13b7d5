"""Configuration errors name FILE:LINE, `bridge config check`, secrets never shown, private file modes."""

from __future__ import annotations

import doctest
import json
import logging
import os
import subprocess
import tomllib
from decimal import Decimal
from pathlib import Path

import pytest

import bridge.config.lines
import bridge.config.strict
from bridge.cli.main import main
from bridge.config.lines import key_lines
from bridge.config.secrets import Secret
from bridge.daemon import config as bridge_config
from bridge.errors import InputError
from tests.processes import BRIDGE, ROOT
from tests.test_logs import ACCESS_TOKEN, CLIENT_SECRET, REFRESH_TOKEN, run_until, write_config


def cli(capsys, *args: str) -> tuple[int, str, str]:
    """``bridge ARGS`` in this process: exit code, stdout, stderr."""
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    out, err = capsys.readouterr()
    return exc.value.code, out, err


def test_doctests():
    assert doctest.testmod(bridge.config.lines).failed == 0
    assert doctest.testmod(bridge.config.strict).failed == 0


# -- where each key is ----------------------------------------------------------------------------

TRICKY = '''\
# a comment: key = value, [table]
title = "x"
"quoted key" = 1
'dotted.literal' = 2
a.b . "c" = 3
text = """
fake = 1
[not_a_table]
\\""" still in the string
"""
raw = \'\'\'
[[nor_this]]\'\'\'
nums = [
  1, # a comment with ] and =
  [2, 3],
  "four, ]",
]
[server]
host = "h"
inline = { port = 1, tls = { on = true } }
[[venue]]
name = "one"
  [[venue.account]]
  login = 1
  [[venue.account]]
  login = 2
[[venue]]
name = "two"
  [[venue.account]]
  login = 3
  [venue.extra]
  k = "v"
[ server . "sub table" ]
x = 1999-01-01 07:00:00Z
members = [{ account = "m/1" },
           { account = "m/2" }]
'''


def test_each_key_has_its_line():
    lines = key_lines(TRICKY)
    expected = {
        ("title",): 2, ("quoted key",): 3, ("dotted.literal",): 4, ("a",): 5, ("a", "b", "c"): 5,
        ("text",): 6, ("raw",): 11, ("nums",): 13, ("nums", 1): 15, ("nums", 1, 1): 15, ("nums", 2): 16,
        ("server",): 18, ("server", "host"): 19, ("server", "inline", "tls", "on"): 20,
        ("venue", 0): 21, ("venue", 0, "account", 0): 23, ("venue", 0, "account", 1, "login"): 26,
        ("venue", 1): 27, ("venue", 1, "name"): 28, ("venue", 1, "account", 0): 29,
        ("venue", 1, "account", 0, "login"): 30, ("venue", 1, "extra", "k"): 32,
        ("server", "sub table"): 33, ("server", "sub table", "x"): 34,
        ("server", "sub table", "members", 0, "account"): 35, ("server", "sub table", "members", 1, "account"): 36,
    }
    assert {path: lines.get(path) for path in expected} == expected
    for fake in [("fake",), ("not_a_table",), ("nor_this",), ("still in the string",)]:
        assert fake not in lines  # the content of a multi-line string is no key


def _leaves(value, path=()):
    if isinstance(value, dict):
        for key, item in value.items():
            yield (*path, key)
            yield from _leaves(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _leaves(item, (*path, i))


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "config").glob("*.toml")))
def test_every_key_of_the_shipped_files_is_found_on_its_own_line(name):
    text = (ROOT / "config" / name).read_text()
    lines, source = key_lines(text), text.splitlines()
    for path in _leaves(tomllib.loads(text)):
        assert path in lines, path
        if isinstance(path[-1], str):
            assert path[-1] in source[lines[path] - 1], (path, source[lines[path] - 1])


def test_a_scanner_that_loses_its_way_gives_no_lines_rather_than_an_error():
    assert key_lines('a = "never closed') == {}


# -- errors name the file, the line and the key --------------------------------------------------------

BASE = 'name = "v"\nplatform = "sim"\n'
ERRORS = {
    "unknown key in the second account":
        ("[[venue]]\n" + BASE + "  [[venue.account]]\n  login = 1\n  balance = 1\n"
         "  [[venue.account]]\n  login = 2\n  balance = 1\n  colour = 'red'\n",
         "10: [venue][0].account[1]: unknown key 'colour' (known here: balance, currency, hedging, login)"),
    "wrong type": ("[[venue]]\n" + BASE + "[[venue.account]]\nlogin = 1\nbalance = 1\nhedging = 'no'\n",
                   "7: [venue][0].account[0]: hedging must be true or false"),
    "after a multi-line string": ('[store]\npath = """x\npaht = 1\n"""\n[bus]\nheartbeat_ms = 0\n[[venue]]\n' + BASE,
                                  "6: [bus]: heartbeat_ms must be a positive integer"),
    "inline table in an array": ("[[venue]]\n" + BASE + "[[venue.account]]\nlogin = 1\nbalance = 1\n"
                                 "[[master]]\naccount = 'v/1'\n[[mam]]\nid = 'g'\nmaster = 'v/1'\nmethod = 'equity'\n"
                                 "members = [\n  { account = 'v/1' },\n  { acount = 'v/1' },\n]\n",
                                 "15: [mam][0].members[1]: missing key 'account'"),
    "a venue's port": ("[[venue]]\nname = 'c'\nplatform = 'ctrader'\nhost = 'h'\n\nport = 0\n",
                       "6: [venue][0]: port must be an integer in 1..65535"),
    "a route's account": ("[[venue]]\n" + BASE + "[[master]]\n\n\naccount = 'v/9'\n",
                          "7: [master][0]: account 'v/9': venue 'v' has no account 9"),
    "not TOML": ("[store]\npath = \n", "2: not valid TOML: Invalid value (column 8)"),
    "two venues of one name": ("[[venue]]\n" + BASE + "[[venue]]\n" + BASE,
                               "5: [venue][1]: two venues are named 'v'"),
    "a route of no master": ("[[venue]]\n" + BASE + "[[venue.account]]\nlogin = 1\nbalance = 1\n"
                             "[[venue.account]]\nlogin = 2\nbalance = 1\n[[copy]]\nfollower = 'v/2'\nmaster = 'v/1'\n",
                             "12: [copy][0]: v/1 has followers but no [[master]] entry"),
}


@pytest.mark.parametrize("text,expected", ERRORS.values(), ids=ERRORS.keys())
def test_errors_name_the_file_and_the_line(tmp_path, text, expected):
    path = tmp_path / "bridge.toml"
    path.write_text(text)
    with pytest.raises(InputError) as exc:
        bridge_config.load(path)
    assert str(exc.value) == f"{path}:{expected}"


def test_a_table_not_from_a_file_still_reads_as_before():
    with pytest.raises(InputError, match=r"^bridge.toml \[notify\]: unknown key 'x'"):
        bridge.config.strict.Table({"x": 1}, "bridge.toml [notify]").finish()


# -- secrets -------------------------------------------------------------------------------------------

def secret_config(tmp_path, mode: int = 0o600, env: str = "T_CHECK_REFRESH") -> Path:
    secret = tmp_path / "client-secret"
    secret.write_text(CLIENT_SECRET + "\n")
    secret.chmod(mode)
    path = tmp_path / "bridge.toml"
    path.write_text(f"""[store]
path = "store.sqlite"
[[venue]]
name = "ct"
platform = "ctrader"
host = "127.0.0.1"
client_id = "app"
client_secret_file = "{secret}"
  [[venue.account]]
  login = 7001
  access_token_env = "T_CHECK_ACCESS"
  refresh_token_env = "{env}"
[[master]]
account = "ct/7001"
""")
    return path


@pytest.fixture
def tokens(monkeypatch):
    monkeypatch.setenv("T_CHECK_ACCESS", ACCESS_TOKEN)
    monkeypatch.setenv("T_CHECK_REFRESH", REFRESH_TOKEN)


def test_config_check_summarizes_with_secrets_masked(tmp_path, capsys, tokens):
    path = secret_config(tmp_path)
    code, out, err = cli(capsys, "config", "check", str(path))
    assert (code, err) == (0, "")
    assert out.splitlines()[0] == f"{path}: ok"
    assert f"  store      {tmp_path / 'store.sqlite'}" in out
    assert "  venues     1: ct (ctrader, 1 account(s))" in out and "  masters    1: ct/7001" in out
    assert f"    venues[0].ctrader.client_secret: *** (file:{tmp_path / 'client-secret'})" in out
    assert "    venues[0].ctrader.accounts[0].refresh_token: *** (env:T_CHECK_REFRESH)" in out
    code, out_json, _ = cli(capsys, "config", "check", str(path), "--json")
    summary = json.loads(out_json)
    assert code == 0 and summary["ok"] and summary["accounts"] == {"ctrader": 1}
    assert summary["masters"] == ["ct/7001"] and summary["copies"] == [] and summary["mams"] == []
    assert summary["endpoints"]["control"] == "tcp://127.0.0.1:5609"
    assert summary["secrets"]["venues[0].ctrader.accounts[0].access_token"] == "*** (env:T_CHECK_ACCESS)"
    for value in (CLIENT_SECRET, ACCESS_TOKEN, REFRESH_TOKEN):
        assert value not in out + out_json
    assert not (tmp_path / "store.sqlite").exists(), "the check opens no store"


@pytest.mark.parametrize("mode,env,expected", [
    (0o640, "T_CHECK_REFRESH", "8: [venue][0] client_secret_file: secret file {secret} is open to group (mode 0640); "
                               "make it the service user's only: chmod 600 {secret}"),
    (0o600, "T_CHECK_UNSET", "12: [venue][0].account[0] refresh_token_env: environment variable T_CHECK_UNSET is not "
                             "set or empty"),
], ids=["group-readable file", "unset variable"])
def test_config_check_refuses_an_unusable_secret_in_one_line(tmp_path, capsys, tokens, mode, env, expected):
    path = secret_config(tmp_path, mode, env)
    code, out, err = cli(capsys, "config", "check", str(path))
    expected = expected.format(secret=tmp_path / "client-secret")
    assert (code, out, err) == (2, "", f"bridge: error: {path}:{expected}\n")


def test_config_check_refuses_a_missing_secret_file(tmp_path, capsys, tokens):
    path = secret_config(tmp_path)
    (tmp_path / "client-secret").unlink()
    code, out, err = cli(capsys, "config", "check", str(path))
    assert code == 2 and err == (f"bridge: error: {path}:8: [venue][0] client_secret_file: secret file "
                                 f"{tmp_path / 'client-secret'} does not exist\n")


def test_config_check_bad_inputs_are_one_line(tmp_path, capsys):
    assert cli(capsys, "config", "check", str(tmp_path / "none.toml"))[1:] == (
        "", f"bridge: error: {tmp_path / 'none.toml'}: no such file\n")
    code, out, err = cli(capsys, "config", "check")
    assert code == 2 and len(err.splitlines()) == 1 and "FILE" in err


def test_every_shipped_bridge_configuration_passes_the_check(tmp_path, capsys, monkeypatch):
    checked = []
    for path in sorted((ROOT / "config").glob("*.toml")):
        if "venue" not in tomllib.loads(path.read_text()):
            continue  # a PAMM scenario, a what-if input... not a bridge.toml
        text = path.read_text()
        if "/tmp/sim-secret" in text:  # the staging example names files the operator makes: make them here
            (tmp_path / "sim-ca.pem").write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
            (tmp_path / "sim-secret").write_text("sim-secret\n")
            (tmp_path / "sim-secret").chmod(0o600)
            for name in ("CT_MASTER_ACCESS", "CT_MASTER_REFRESH", "CT_FOLLOWERS_ACCESS", "CT_FOLLOWERS_REFRESH"):
                monkeypatch.setenv(name, name.lower())
            staged = tmp_path / path.name
            staged.write_text(text.replace("/tmp/", f"{tmp_path}/"))
            path = staged
        code, out, err = cli(capsys, "config", "check", str(path), "--json")
        assert (code, err) == (0, ""), path
        assert json.loads(out)["venues"]
        checked.append(path.name)
    assert {"bridge.toml", "demo.toml", "ctrader-staging.toml"} <= set(checked)


def test_a_secret_reprs_masked():
    secret = Secret("hunter2", "env:PW")
    assert "hunter2" not in repr(secret) + str(secret) + repr([secret]) and "***" in repr(secret)
    config = bridge_config.CTraderAccount(1, secret, secret)
    assert "hunter2" not in repr(config)


def test_no_secret_in_run_check_nor_in_the_daemon_log(tmp_path):
    log_path = tmp_path / "bridge.log"
    config = write_config(tmp_path, "text", str(log_path))  # a cTrader venue: secrets from files and a variable
    env = {**os.environ, "TEST_LOGS_REFRESH": REFRESH_TOKEN}
    env.pop("BRIDGE_DEBUG", None)
    outputs = []
    for args in (["run", "--config", str(config), "--check"], ["config", "check", str(config)],
                 ["config", "check", str(config), "--json"]):
        result = subprocess.run([BRIDGE, *args], capture_output=True, text=True, timeout=60, cwd=ROOT, env=env)
        assert result.returncode == 0, result.stderr
        outputs.append(result.stdout + result.stderr)
    log = run_until(config, tmp_path, log_path, lambda t: "answering `bridge status`" in t)
    assert "resolved configuration" in log and "***" in log
    for text in [*outputs, log, (tmp_path / "stderr.log").read_text()]:
        for value in (CLIENT_SECRET, ACCESS_TOKEN, REFRESH_TOKEN):
            assert value not in text


def test_run_refuses_to_start_with_a_secret_file_others_may_read(tmp_path):
    path = secret_config(tmp_path, 0o644)
    env = {**os.environ, "T_CHECK_ACCESS": ACCESS_TOKEN, "T_CHECK_REFRESH": REFRESH_TOKEN}
    env.pop("BRIDGE_DEBUG", None)
    result = subprocess.run([BRIDGE, "run", "--config", str(path)], capture_output=True, text=True, timeout=60,
                            cwd=ROOT, env=env)
    secret = tmp_path / "client-secret"
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.splitlines() == [
        f"bridge: error: {path}:8: [venue][0] client_secret_file: secret file {secret} is open to group and others "
        f"(mode 0644); make it the service user's only: chmod 600 {secret}"]
    assert not (tmp_path / "store.sqlite").exists()


# -- modes of the files the bridge makes -------------------------------------------------------------

@pytest.fixture
def open_umask():
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_a_new_store_and_its_wal_and_shm_are_the_service_users_only(tmp_path, open_umask):
    from bridge.store import Store

    store = Store.open(tmp_path / "bridge.sqlite")
    store.db.execute("CREATE TABLE probe (x)")  # a write: the -wal and -shm exist now
    files = sorted(tmp_path.iterdir())
    assert [f.name for f in files] == ["bridge.sqlite", "bridge.sqlite-shm", "bridge.sqlite-wal"]
    assert [mode(f) for f in files] == [0o600, 0o600, 0o600]


def test_an_existing_store_keeps_its_mode_with_a_warning(tmp_path, open_umask, caplog):
    from bridge.store.base import connect

    path = tmp_path / "bridge.sqlite"
    connect(path).conn.close()
    path.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="bridge.store"):
        connect(path).conn.close()
    assert mode(path) == 0o644
    assert f"store {path} is mode 0644: group or others may read it; chmod 600 {path}" in caplog.text


def test_a_new_log_file_and_the_ctrader_token_file_are_the_service_users_only(tmp_path, open_umask):
    from bridge.daemon.logs import open_stream
    from connectors.ctrader.token_file import TokenFile

    open_stream(tmp_path / "logs" / "bridge.log").close()
    assert mode(tmp_path / "logs" / "bridge.log") == 0o600
    TokenFile(tmp_path / "tokens.json").save({7001: ("configured", "access", "refresh", None)})
    assert mode(tmp_path / "tokens.json") == 0o600


def test_load_toml_reads_floats_as_decimals_still(tmp_path):
    path = tmp_path / "x.toml"
    path.write_text("step = 0.01\n")
    assert bridge.config.strict.load_toml(path) == {"step": Decimal("0.01")}
