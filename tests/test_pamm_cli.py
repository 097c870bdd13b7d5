"""``bridge pamm simulate``: the examples run, JSON shape, strict scenario reading, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bridge.cli.main import main

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted(p for p in (ROOT / "config").glob("pamm-*.toml") if p.name != "pamm-pool.toml")  # a scenario each


def run(capsys, *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def test_examples_exist_and_run(capsys):
    assert len(EXAMPLES) >= 2
    for path in EXAMPLES:
        code, out, err = run(capsys, "pamm", "simulate", str(path))
        assert code == 0, err
        assert "rollover #1" in out and "NAV" in out


def test_json_shape_and_values(capsys):
    code, out, _ = run(capsys, "pamm", "simulate", str(ROOT / "config/pamm-first-loss.toml"), "--json")
    assert code == 0
    data = json.loads(out)
    assert list(data) == ["rollovers"]
    for r in data["rollovers"]:
        assert list(r) == ["nav", "units", "equity", "holders"]
        for h in r["holders"]:
            assert list(h) == ["id", "units", "equity", "fees_paid", "hwm"]
            assert all(isinstance(v, str) for v in h.values())
        assert sum(__import__("decimal").Decimal(h["equity"]) for h in r["holders"]) == \
            __import__("decimal").Decimal(r["equity"])
    first, second = data["rollovers"][0], data["rollovers"][1]
    assert first["nav"] == "1.00" and first["units"] == "10000.00000000"
    assert second["nav"] == "0.94"
    assert {h["id"]: h["equity"] for h in second["holders"]} == {"A": "4000.00", "B": "5000.00", "M": "400.00"}


def test_scenario_example_units_at_nav_105(capsys):
    code, out, _ = run(capsys, "pamm", "simulate", str(ROOT / "config/pamm-scenario.toml"), "--json")
    assert code == 0
    second = json.loads(out)["rollovers"][1]
    assert second["nav"] == "1.05"
    assert {h["id"]: h["units"] for h in second["holders"]}["B"] == "9523.80952380"


@pytest.mark.parametrize("text, message", [
    ('[pool]\nmanager = "M"\nstart = 2024-01-01T00:00:00Z\nbogus = 1\n', "unknown key 'bogus'"),
    ('[pool]\nmanager = "M"\nstart = 2024-01-01T00:00:00Z\nperformance_fee = "x"\n', "performance_fee"),
    ('[pool]\nmanager = "M"\nstart = 2024-01-01T00:00:00\n', "UTC offset"),
    ('[pool]\nmanager = "M"\n', "missing key 'start'"),
    ('[pool]\nmanager = "M"\nstart = 2024-01-01T00:00:00Z\n[[step]]\naction = "fly"\n', "not one of"),
    ('[pool]\nmanager = "M"\nstart = 2024-01-01T00:00:00Z\n[[step]]\naction = "pnl"\namount = 1\n'
     'holder = "A"\n', "does not apply"),
    ('[pool]\nmanager = "M"\nstart = 2024-01-01T00:00:00Z\n[[step]]\naction = "withdraw"\nholder = "Z"\n'
     'amount = 5\n', "unknown investor 'Z'"),
    ('[pool]\nmanager = "M"\nstart = 2024-01-01T00:00:00Z\n[[step]]\naction = "deposit"\nholder = "A"\n'
     'amount = -5\n', "must be positive"),
    ('[pool]\nmanager = "M"\nstart = 2024-01-01T00:00:00Z\nloss_sharing = "nope"\n', "loss_sharing"),
])
def test_bad_scenarios_are_one_line_exit_2(capsys, tmp_path, text, message):
    path = tmp_path / "s.toml"
    path.write_text(text)
    code, out, err = run(capsys, "pamm", "simulate", str(path))
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("bridge: error: ") and message in err
    assert "Traceback" not in err


def test_missing_file_and_usage(capsys, tmp_path):
    code, _, err = run(capsys, "pamm", "simulate", str(tmp_path / "none.toml"))
    assert code == 2 and "no such file" in err
    code, _, err = run(capsys, "pamm", "simulate")
    assert code == 2 and "SCENARIO" in err
