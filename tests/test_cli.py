"""The ``bridge`` command line: help everywhere, JSON output, and one-line errors with exit 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest

from bridge.cli.main import cli, main

ROOT = Path(__file__).resolve().parents[1]
MAM = ["allocate", "mam", "--method", "equity", "--volume", "0.10", "--symbol", "EURUSD", "--step", "0.01",
       "--min", "0.01", "--max", "100", "--account", "A=4500", "--account", "B=3500", "--account", "C=2000"]
COPY = ["allocate", "copy", "--mode", "balance", "--volume", "2.00", "--master-balance", "50000",
        "--follower", "F1=8000", "--multiplier", "1.5"]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def all_commands(group: click.Group, prefix: tuple[str, ...] = ()):
    yield prefix, group
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from all_commands(command, prefix + (name,))
        else:
            yield prefix + (name,), command


# -- help ----------------------------------------------------------------------

COMMANDS = list(all_commands(cli))


@pytest.mark.parametrize("path,command", COMMANDS, ids=[" ".join(p) or "bridge" for p, _ in COMMANDS])
def test_every_command_has_help_with_an_example(capsys, path, command):
    assert command.help and command.help.strip(), f"bridge {' '.join(path)} has no help text"
    assert "Example" in command.help, f"bridge {' '.join(path)}: help has no example"
    code, out, _ = run(capsys, *path, "--help")
    assert code == 0
    assert "Example" in out
    for param in command.params:
        if isinstance(param, click.Option) and not param.hidden:
            assert param.help, f"bridge {' '.join(path)} {param.opts[0]} has no help"


def test_the_command_tree_is_what_the_readme_documents():
    paths = {" ".join(p) for p, _ in COMMANDS}
    assert {"allocate mam", "allocate copy", "demo", "run", "bench allocation"} <= paths


# -- allocate mam ---------------------------------------------------------------

def test_mam_json_is_the_worked_example(capsys):
    code, out, err = run(capsys, *MAM, "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["block_lots"] == "0.10"
    assert data["allocated_lots"] == "0.10"
    legs = {leg["account"]: leg for leg in data["legs"]}
    assert [leg["account"] for leg in data["legs"]] == ["A", "B", "C"]
    assert legs["A"] == {**legs["A"], "lots": "0.05", "units": 500000, "ideal_lots": "0.045", "side": "buy",
                         "symbol": "EURUSD", "reason": "leftover-step"}
    assert (legs["B"]["lots"], legs["B"]["ideal_lots"], legs["B"]["reason"]) == ("0.03", "0.035", "floored-to-step")
    assert (legs["C"]["lots"], legs["C"]["reason"]) == ("0.02", None)


def test_mam_table_output(capsys):
    code, out, _ = run(capsys, *MAM)
    assert code == 0
    lines = out.splitlines()
    assert "block 0.10 lots" in lines[0] and "allocated 0.10 lots" in lines[0]
    assert lines[1].split() == ["account", "action", "side", "symbol", "lots", "units", "ideal", "lots", "reason"]
    assert lines[3].split() == ["A", "open", "buy", "EURUSD", "0.05", "500000", "0.045", "leftover-step"]


def test_mam_largest_equity_leftover_option(capsys):
    code, out, _ = run(capsys, "allocate", "mam", "--method", "equity", "--volume", "10", "--leftover",
                       "largest-equity", "--account", "A=10000", "--account", "B=7000", "--account", "C=2000",
                       "--json")
    assert code == 0
    assert [leg["lots"] for leg in json.loads(out)["legs"]] == ["5.27", "3.68", "1.05"]


def test_mam_percent_and_equal_and_group_file(capsys, tmp_path):
    code, out, _ = run(capsys, "allocate", "mam", "--method", "percent", "--volume", "1", "--account", "A=60",
                       "--account", "B=40", "--json")
    assert code == 0
    assert [leg["lots"] for leg in json.loads(out)["legs"]] == ["0.60", "0.40"]
    code, out, _ = run(capsys, "allocate", "mam", "--method", "equal", "--volume", "0.10", "--account", "A",
                       "--account", "B", "--account", "C", "--json")
    assert code == 0
    assert sorted(leg["lots"] for leg in json.loads(out)["legs"]) == ["0.03", "0.03", "0.04"]
    code, out, _ = run(capsys, "allocate", "mam", "--group", str(ROOT / "config" / "mam-group.toml"), "--json")
    assert code == 0
    assert [leg["lots"] for leg in json.loads(out)["legs"]] == ["0.05", "0.03", "0.02"]
    # an option overrides the file: the same group split by equal shares
    code, out, _ = run(capsys, "allocate", "mam", "--group", str(ROOT / "config" / "mam-group.toml"),
                       "--method", "equal", "--volume", "0.30", "--json")
    assert [leg["lots"] for leg in json.loads(out)["legs"]] == ["0.10", "0.10", "0.10"]


# -- allocate copy -----------------------------------------------------------------

def test_copy_json(capsys):
    code, out, err = run(capsys, *COPY, "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["block_lots"] == "2.00"
    [leg] = data["legs"]
    assert (leg["account"], leg["lots"], leg["units"], leg["side"], leg["symbol"]) == (
        "F1", "0.48", 4800000, "buy", "EURUSD")


def test_copy_reverse_and_map(capsys):
    code, out, _ = run(capsys, *COPY, "--reverse", "--map", "EURUSD=EURUSD.m", "--sl", "1.095", "--tp", "1.11",
                       "--price", "1.1", "--json")
    assert code == 0
    [leg] = json.loads(out)["legs"]
    assert (leg["side"], leg["symbol"], leg["sl"], leg["tp"]) == ("sell", "EURUSD.m", "1.11", "1.095")


def test_copy_settings_file_and_options_stack(capsys):
    path = str(ROOT / "config" / "copy-settings.toml")
    code, out, _ = run(capsys, "allocate", "copy", "--settings", path, "--json")
    assert code == 0
    legs = {leg["account"]: leg for leg in json.loads(out)["legs"]}
    assert legs["F1-alice"]["lots"] == "0.48" and legs["F1-alice"]["symbol"] == "EURUSD.m"
    assert legs["F5-erin"]["reason"] == "side-not-allowed"
    # command-line settings are the most specific level: multiplier 2 on top of the subscription's 1.5
    code, out, _ = run(capsys, "allocate", "copy", "--settings", path, "--multiplier", "2", "--json")
    legs = {leg["account"]: leg for leg in json.loads(out)["legs"]}
    assert legs["F1-alice"]["lots"] == "0.96"


def test_copy_every_setting_is_an_option(capsys):
    code, out, err = run(
        capsys, *COPY, "--include", "EUR*", "--exclude", "XAU*", "--sides", "both", "--min-lots", "0.01",
        "--max-lots", "0.40", "--tiny", "force", "--max-risk-coefficient", "3", "--no-copy-sl", "--copy-tp",
        "--skip-pending", "--lifetime", "60", "--signal-age", "5", "--json")
    assert code == 0, err
    [leg] = json.loads(out)["legs"]
    assert (leg["lots"], leg["reason"]) == ("0.40", "clipped-to-max-trade-volume")
    code, out, _ = run(capsys, *COPY, "--close-only", "by-position", "--json")
    assert json.loads(out)["legs"][0]["reason"] == "close-only"
    code, out, _ = run(capsys, *COPY, "--lifetime", "10", "--signal-age", "11", "--json")
    assert json.loads(out)["legs"][0]["reason"] == "signal-expired"
    code, out, _ = run(capsys, *COPY, "--mode", "fixed", "--fixed-lots", "0.2", "--json")
    assert json.loads(out)["legs"][0]["lots"] == "0.30"  # 0.2 x the multiplier 1.5
    code, out, _ = run(capsys, "allocate", "copy", "--mode", "risk", "--risk-fraction", "0.01", "--volume", "1",
                       "--master-balance", "1", "--follower", "F=12000", "--price", "1.1", "--sl", "1.095", "--json")
    assert json.loads(out)["legs"][0]["lots"] == "0.24"


# -- bad input: one line, exit 2, never a traceback ----------------------------------

BAD = {
    "zero volume": ["allocate", "mam", "--method", "equal", "--volume", "0", "--account", "A"],
    "negative volume": ["allocate", "mam", "--method", "equal", "--volume", "-1", "--account", "A"],
    "step zero": [*MAM[:8], "--step", "0"],
    "min above max": ["allocate", "mam", "--method", "equal", "--volume", "1", "--min", "5", "--max", "1",
                      "--account", "A"],
    "unknown method": ["allocate", "mam", "--method", "golden", "--volume", "1", "--account", "A=1"],
    "duplicate account": ["allocate", "mam", "--method", "equity", "--volume", "1", "--account", "A=1",
                          "--account", "A=2"],
    "malformed account": ["allocate", "mam", "--method", "equity", "--volume", "1", "--account", "A4500"],
    "account value not a number": ["allocate", "mam", "--method", "equity", "--volume", "1", "--account", "A=lots"],
    "percentages off": ["allocate", "mam", "--method", "percent", "--volume", "1", "--account", "A=60",
                        "--account", "B=30"],
    "volume off the unit grid": ["allocate", "mam", "--method", "equal", "--volume", "0.0000000001",
                                 "--account", "A"],
    "min off the step grid": ["allocate", "mam", "--method", "equal", "--volume", "1", "--min", "0.015",
                              "--account", "A"],
    "no method": ["allocate", "mam", "--volume", "1", "--account", "A=1"],
    "no accounts": ["allocate", "mam", "--method", "equal", "--volume", "1"],
    "missing group file": ["allocate", "mam", "--group", "/nonexistent/group.toml"],
    "unknown option": ["allocate", "mam", "--methd", "equal"],
    "copy without balance": ["allocate", "copy", "--volume", "1", "--follower", "F=1"],
    "copy malformed follower": [*COPY[:-4], "--follower", "F1"],
    "copy bad map": [*COPY, "--map", "EURUSD"],
    "copy bad mode": [*COPY, "--mode", "martingale"],
    "copy no followers": ["allocate", "copy", "--volume", "1", "--master-balance", "1"],
}


@pytest.mark.parametrize("argv", BAD.values(), ids=BAD.keys())
def test_bad_input_is_one_line_and_exit_2(capsys, argv):
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("bridge: error: ")
    assert "Traceback" not in err


BAD_FILES = {
    "not toml": ("[group\nmethod=", "not valid TOML"),
    "unknown key": ("[group]\nmethod = 'equity'\nmetod = 'x'\n", "unknown key 'metod'"),
    "unknown table": ("[grupo]\n", "unknown key 'grupo'"),
    "bad enum": ("[group]\nmethod = 'best'\n", "method 'best' is not one of"),
    "bad type": ("[group]\nmethod = 'equity'\nforce_minimum = 'yes'\n", "force_minimum must be true or false"),
    "account without id": ("[group]\nmethod='equal'\n[trade]\nvolume=1\n[[account]]\nequity=1\n", "missing key 'id'"),
}


@pytest.mark.parametrize("text,expected", BAD_FILES.values(), ids=BAD_FILES.keys())
def test_bad_group_file_names_the_problem(capsys, tmp_path, text, expected):
    path = tmp_path / "group.toml"
    path.write_text(text)
    code, _, err = run(capsys, "allocate", "mam", "--group", str(path), "--volume", "1", "--account", "Z=1")
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert expected in err
    assert str(path) in err


def test_bad_copy_settings_key_names_level_and_key(capsys, tmp_path):
    path = tmp_path / "copy.toml"
    path.write_text("[master]\nbalance = 1000\n[subscription]\nmultiplyer = 2\n[[follower]]\nid='F'\nbalance=10\n")
    code, _, err = run(capsys, "allocate", "copy", "--settings", str(path), "--volume", "1")
    assert code == 2
    assert "[subscription]" in err and "multiplyer" in err


# -- demo, bench, and the installed console script ----------------------------------

def test_bench_allocation_reports_figures(capsys):
    code, out, _ = run(capsys, "bench", "allocation", "--accounts", "50", "--repeat", "2", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["target_ms"] == 20
    names = {case["name"] for case in data["cases"]}
    assert {"mam-equity", "mam-percent", "mam-lot", "copy-balance"} <= names
    for case in data["cases"]:
        assert case["accounts"] == 50 and case["calls"] == 2
        assert 0 < case["min_ms"] <= case["p50_ms"] <= case["max_ms"]


def test_console_script_end_to_end():
    bridge = Path(sys.executable).with_name("bridge")
    env = {k: v for k, v in os.environ.items() if k != "BRIDGE_DEBUG"}
    ok = subprocess.run([str(bridge), *MAM, "--json"], capture_output=True, text=True, env=env, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["allocated_lots"] == "0.10"
    bad = subprocess.run([str(bridge), *BAD["percentages off"]], capture_output=True, text=True, env=env,
                         timeout=60)
    assert bad.returncode == 2
    assert bad.stderr.strip() == "bridge: error: percentages must sum to 100, they sum to 90"


def test_bench_on_the_ctrader_server_times_each_deal_on_the_wire(capsys):
    code, out, err = run(capsys, "bench", "--platform", "ctrader", "--followers", "3", "--deals", "4", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert (data["platform"], data["followers"], data["deals"]) == ("ctrader", 3, 4)
    assert 0 < data["deal_to_last_order_ms"]["p50"] <= data["deal_to_last_order_ms"]["max"]


def test_bench_pool_size_goes_with_ctrader_only(capsys):
    code, out, err = run(capsys, "bench", "--pool-size", "2", "--deals", "2")
    assert code == 2 and "--pool-size goes with --platform ctrader" in err


def test_bench_on_simulated_mt5_terminals_times_history_to_the_last_order_send(capsys):
    code, out, err = run(capsys, "bench", "--platform", "mt5", "--followers", "3", "--deals", "6",
                         "--poll-interval-ms", "2", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert (data["platform"], data["followers"], data["deals"], data["poll_interval_ms"]) == ("mt5", 3, 6, 2)
    assert 0 < data["deal_to_last_order_ms"]["p50"] <= data["deal_to_last_order_ms"]["max"]


def test_bench_on_simulated_mt4_terminals_times_the_trade_to_the_last_order_at_its_ea(capsys):
    code, out, err = run(capsys, "bench", "--platform", "mt4", "--followers", "3", "--deals", "6", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert (data["platform"], data["followers"], data["deals"]) == ("mt4", 3, 6)
    assert 0 < data["deal_to_last_order_ms"]["p50"] <= data["deal_to_last_order_ms"]["max"]


def test_bench_poll_interval_goes_with_mt5_only(capsys):
    code, out, err = run(capsys, "bench", "--poll-interval-ms", "2", "--deals", "2")
    assert code == 2 and "--poll-interval-ms goes with --platform mt5" in err


def test_bench_pipeline_reports_the_documented_keys(capsys):
    code, out, err = run(capsys, "bench", "--followers", "2", "--deals", "6", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert set(data) == {"platform", "followers", "deals", "deal_to_last_order_ms", "raw_zmq_hop_ms", "ratio_p50",
                         "cpu_reference_ms", "zmq_hop_to_waiting_receiver_ms", "commit_floor_ms"}
    assert (data["platform"], data["followers"], data["deals"]) == ("sim", 2, 6)
    for reference in ("raw_zmq_hop_ms", "zmq_hop_to_waiting_receiver_ms", "commit_floor_ms"):
        assert 0 < data[reference]["p50"] <= data[reference]["p99"], reference
    assert set(data["deal_to_last_order_ms"]) == {"p50", "p99", "max"}
    assert set(data["raw_zmq_hop_ms"]) == {"p50", "p99"}
    assert 0 < data["deal_to_last_order_ms"]["p50"] <= data["deal_to_last_order_ms"]["max"]
