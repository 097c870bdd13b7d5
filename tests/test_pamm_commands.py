"""``bridge pamm`` pool commands end to end on a temp bridge.toml and store: create, deposit, withdraw,
rollover (here with --equity, or asked of a daemon), status, statement, settle, verify; bad inputs are one
line, exit 2, and write nothing."""

from __future__ import annotations

import json
import threading
from decimal import Decimal
from pathlib import Path

import pytest
import zmq

from bridge.cli.main import main
from bridge.pools.book import PoolBook
from bridge.store import Store

ROOT = Path(__file__).resolve().parents[1]
POOL_TOML = ROOT / "config" / "pamm-pool.toml"
TABLES = ("pamm_pools", "pamm_steps", "pamm_entries", "pamm_settlements", "account_orders")

CONFIG = """
[store]
path = "{store}"

[bus]
control = "{control}"

[[venue]]
name = "sim-demo"
platform = "sim"
seed = 7
fill_latency_us = 2000

  [[venue.account]]
  login = 1000
  balance = 100000

  [[venue.account]]
  login = 2001
  balance = 8000

[[master]]
account = "sim-demo/1000"
"""


@pytest.fixture
def env(tmp_path):
    class Env:
        def __init__(self, control: str = "tcp://127.0.0.1:5") -> None:
            self.store = tmp_path / "bridge.sqlite"
            self.config = tmp_path / "bridge.toml"
            self.write(control)

        def write(self, control: str) -> None:
            self.config.write_text(CONFIG.format(store=self.store, control=control))

        def counts(self) -> dict:
            if not self.store.exists():
                return {}
            with Store.open(self.store) as s:
                return {t: s.db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES} | \
                    {"state": [r["state"] for r in s.db.query("SELECT state FROM pamm_pools ORDER BY id")]}

    return Env()


def run(capsys, *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def ok(capsys, env, *argv: str) -> str:
    code, out, err = run(capsys, "pamm", *argv, "--config", str(env.config))
    assert code == 0, err
    return out


def create(capsys, env, *extra: str) -> str:
    return ok(capsys, env, "create", "alpha", "--master", "sim-demo/1000", "--settings", str(POOL_TOML),
              "--opened-at", "2026-01-01T00:00:00Z", *extra)


def funded(capsys, env) -> None:
    create(capsys, env, "--schedule", "daily 21:00", "--handling", "autocorrect")
    ok(capsys, env, "deposit", "alpha", "M", "1000", "--at", "2026-01-01T08:00:00Z")
    ok(capsys, env, "deposit", "alpha", "A", "9000", "--at", "2026-01-01T09:00:00Z", "--auto-close-below", "5000")
    ok(capsys, env, "rollover", "alpha", "--equity", "0", "--at", "2026-01-01T21:00:00Z")


def test_create_stores_the_pool_with_the_resolved_master(capsys, env):
    out = create(capsys, env, "--schedule", "Every 4H")
    assert "pool alpha opened at 2026-01-01T00:00:00+00:00 on sim/sim-demo/1000" in out
    with Store.open(env.store) as s:
        (row,) = PoolBook(s).pools()
        assert (row.master, row.handling, row.schedule) == ("sim/sim-demo/1000", "reallocate", "every 4h")
        assert PoolBook(s).load("alpha").settings.exit_fee == Decimal("0.5")


def test_create_without_opened_at_uses_start_or_now(capsys, env, tmp_path):
    settings = tmp_path / "pool.toml"
    settings.write_text('[pool]\nmanager = "M"\nstart = 2025-06-01T12:00:00Z\n')
    ok(capsys, env, "create", "p1", "--master", "sim-demo/1000", "--settings", str(settings))
    settings.write_text('[pool]\nmanager = "M"\n')
    ok(capsys, env, "create", "p2", "--master", "sim-demo/2001", "--settings", str(settings))
    data = {p["id"]: p for p in json.loads(ok(capsys, env, "status", "--json"))["pools"]}
    assert data["p1"]["opened_at"] == "2025-06-01T12:00:00+00:00"
    assert data["p2"]["opened_at"] > "2026-"


def test_deposit_and_withdraw_say_what_was_queued_and_when_it_applies(capsys, env):
    create(capsys, env, "--schedule", "daily 21:00")
    out = ok(capsys, env, "deposit", "alpha", "M", "1000", "--at", "2026-01-01T20:30:00Z")
    assert out.startswith("queued deposit #1: M 1000.00 into alpha at 2026-01-01T20:30:00+00:00")
    # the freeze window (1 hour) pushes it past today's 21:00 to tomorrow's
    assert "at or after 2026-01-01T21:30:00+00:00" in out and "freeze window" in out
    assert "that is 2026-01-02T21:00:00+00:00" in out
    ok(capsys, env, "rollover", "alpha", "--equity", "0", "--at", "2026-01-02T21:00:00Z")
    out = ok(capsys, env, "withdraw", "alpha", "M", "--all", "--at", "2026-01-03T00:00:00Z")
    assert out.startswith("queued withdrawal #2: M everything from alpha")


def test_rollover_here_prints_like_simulate_and_json_has_the_extra_fields(capsys, env):
    create(capsys, env)
    ok(capsys, env, "deposit", "alpha", "M", "1000", "--at", "2026-01-01T08:00:00Z")
    ok(capsys, env, "deposit", "alpha", "A", "9000", "--at", "2026-01-01T09:00:00Z")
    out = ok(capsys, env, "rollover", "alpha", "--equity", "0", "--at", "2026-01-01T21:00:00Z")
    assert "rollover #1 at 2026-01-01T21:00:00+00:00: NAV 1.00, units 10000.00000000, equity 10000.00" in out
    assert "settlement due: 10000.00" in out and "bridge pamm settle alpha 1" in out
    code, out, _ = run(capsys, "pamm", "rollover", "alpha", "--config", str(env.config), "--equity", "10500.00",
                       "--at", "2026-01-02T21:00:00Z", "--json")
    assert code == 0
    data = json.loads(out)
    assert list(data)[:4] == ["nav", "units", "equity", "holders"]
    assert {"number", "at", "halted", "close_all_positions", "rejected", "settlement"} <= set(data)
    # the 10,000 not yet settled counts: pool equity = 10,500 + 10,000
    assert data["number"] == 2 and data["equity"] == "20500.00" and data["settlement"] == "0.00"
    assert data["halted"] is None and data["close_all_positions"] is False and data["rejected"] == []


def test_status_one_pool_shows_holders_requests_settlements_and_next_rollover(capsys, env):
    funded(capsys, env)
    ok(capsys, env, "deposit", "alpha", "B", "500", "--at", "2026-01-01T22:00:00Z")
    data = json.loads(ok(capsys, env, "status", "alpha", "--json"))
    assert data["nav"] == "1.00" and data["equity"] == "10000.00" and data["due"] == "10000.00"
    assert data["next_rollover"] == "2026-01-02T21:00:00+00:00" and data["halted"] is None
    assert {h["id"]: h["auto_close_below"] for h in data["holders"]} == {"A": "5000.00", "M": None}
    assert data["pending_requests"] == [{"id": 3, "kind": "deposit", "holder": "B", "amount": "500.00",
                                         "at": "2026-01-01T22:00:00+00:00"}]
    assert data["settlements_due"] == [{"rollover": 1, "amount": "10000.00", "created_at": "2026-01-01T21:00:00+00:00"}]
    assert data["settings"]["performance_fee"] == "20" and data["orders"] == []
    text = ok(capsys, env, "status", "alpha")
    assert "pending deposit #3: B 500.00" in text and "bridge pamm settle alpha 1" in text
    table = ok(capsys, env, "status")
    assert "alpha" in table and "daily 21:00" in table and "10000.00" in table


def test_settle_statement_and_verify(capsys, env):
    funded(capsys, env)
    out = ok(capsys, env, "settle", "alpha", "1", "--at", "2026-01-01T23:00:00Z")
    assert "alpha rollover #1 settled" in out and "10000.00 paid into the master account" in out
    code, _, err = run(capsys, "pamm", "settle", "alpha", "1", "--config", str(env.config))
    assert code == 2 and "already settled" in err
    statement = json.loads(ok(capsys, env, "statement", "alpha", "A", "--json"))
    assert statement["investor"] == "A" and statement["deposited"] == "9000.00" and statement["units"] == "9000.00000000"
    assert "M" not in json.dumps(statement["lines"])
    summary = json.loads(ok(capsys, env, "verify", "alpha", "--json"))
    assert summary["ok"] and summary["steps"] == 4 and summary["rollovers"] == 1
    assert "OK" in ok(capsys, env, "verify", "alpha")


def test_verify_failure_is_one_line_exit_1(capsys, env):
    funded(capsys, env)
    with Store.open(env.store) as s:
        s.db.execute("UPDATE pamm_entries SET units = '9000.00000001' WHERE kind = 'deposit' AND holder = 'A'")
    code, out, err = run(capsys, "pamm", "verify", "alpha", "--config", str(env.config))
    assert code == 1 and out == "" and err.count("\n") == 1 and "verify failed" in err and "units" in err


# -- the daemon ------------------------------------------------------------------

class FakeDaemon:
    """A control socket that answers one pamm-rollover request."""

    def __init__(self, answer: dict) -> None:
        self.ctx = zmq.Context()
        self.router = self.ctx.socket(zmq.ROUTER)
        self.port = self.router.bind_to_random_port("tcp://127.0.0.1")
        self.answer, self.asked = answer, []
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        if self.router.poll(5000):
            identity, request = self.router.recv_multipart()
            self.asked.append(request)
            self.router.send_multipart([identity, json.dumps(self.answer).encode()])

    def close(self) -> None:
        self.thread.join(6)
        self.router.close(0)
        self.ctx.term()


def test_rollover_without_equity_asks_the_daemon(capsys, env):
    create(capsys, env)
    answer = {"rollover": {"nav": "1.00", "units": "0E-8", "equity": "0.00", "holders": [], "number": 1,
                           "at": "2026-01-01T21:00:00+00:00", "halted": None, "close_all_positions": False,
                           "rejected": [], "settlement": "0.00", "orders": []}}
    daemon = FakeDaemon(answer)
    try:
        env.write(f"tcp://127.0.0.1:{daemon.port}")
        code, out, err = run(capsys, "pamm", "rollover", "alpha", "--config", str(env.config), "--json")
    finally:
        daemon.close()
    assert code == 0, err
    assert daemon.asked == [b"pamm-rollover alpha"] and json.loads(out) == answer["rollover"]


def test_the_daemon_refusing_is_one_line_exit_1(capsys, env):
    create(capsys, env)
    daemon = FakeDaemon({"error": "pool 'alpha': a rollover is already running"})
    try:
        env.write(f"tcp://127.0.0.1:{daemon.port}")
        code, out, err = run(capsys, "pamm", "rollover", "alpha", "--config", str(env.config))
    finally:
        daemon.close()
    assert (code, out) == (1, "") and err == "bridge: error: pool 'alpha': a rollover is already running\n"


def test_no_daemon_is_one_line_suggesting_equity(capsys, env):
    create(capsys, env)
    with zmq.Context() as ctx, ctx.socket(zmq.ROUTER) as unused:
        port = unused.bind_to_random_port("tcp://127.0.0.1")
    env.write(f"tcp://127.0.0.1:{port}")
    code, out, err = run(capsys, "pamm", "rollover", "alpha", "--config", str(env.config), "--timeout", "200")
    assert code == 1 and out == "" and err.count("\n") == 1
    assert f"no daemon answered on tcp://127.0.0.1:{port}" in err and "--equity" in err


# -- bad input: one line, exit 2, nothing written ------------------------------------------

@pytest.mark.parametrize("argv, message", [
    (["deposit", "nope", "A", "5"], "unknown pool 'nope'"),
    (["deposit", "alpha", "A", "--", "-5"], "must be positive"),
    (["deposit", "alpha", "A", "five"], "amount 'five' is not a number"),
    (["deposit", "alpha", "A", "5.001"], "more than 2 decimal places"),
    (["deposit", "alpha", "A", "5", "--at", "2026-01-01T00:00:00"], "needs a UTC offset"),
    (["deposit", "alpha", "A", "5", "--at", "2026-01-01T20:00:00Z"], "time goes backwards"),
    (["withdraw", "alpha", "A", "9000.01"], "holds 9000.00"),
    (["withdraw", "alpha", "Z", "--all"], "unknown investor 'Z'"),
    (["withdraw", "alpha", "A", "10", "--all"], "either AMOUNT or --all"),
    (["withdraw", "alpha", "A"], "either AMOUNT or --all"),
    (["statement", "alpha", "Q"], "unknown investor 'Q'"),
    (["settle", "alpha", "7"], "no settlement for rollover 7"),
    (["settle", "alpha", "0"], "ROLLOVER"),
    (["rollover", "alpha", "--equity", "-10000.01", "--at", "2026-01-02T21:00:00Z"], "below zero"),
    (["rollover", "alpha", "--equity", "1", "--at", "2026-01-01T21:00:00Z"], "not after the last one"),
    (["rollover", "nope", "--equity", "1"], "unknown pool 'nope'"),
    (["status", "nope"], "unknown pool 'nope'"),
    (["verify", "nope"], "unknown pool 'nope'"),
    (["create", "beta", "--master", "sim-demo/1000", "--settings", str(POOL_TOML), "--schedule", "hourly"],
     "schedule 'hourly' is not one of"),
    (["create", "beta", "--master", "sim-demo/9", "--settings", str(POOL_TOML)], "venue 'sim-demo' has no account 9"),
    (["create", "beta", "--master", "other/1000", "--settings", str(POOL_TOML)], "no venue named 'other'"),
    (["create", "beta", "--master", "1000", "--settings", str(POOL_TOML)], "must be VENUE/LOGIN"),
    (["create", "alpha", "--master", "sim-demo/1000", "--settings", str(POOL_TOML)], "already exists"),
    (["create", "b c", "--master", "sim-demo/1000", "--settings", str(POOL_TOML)], "pool id 'b c'"),
    (["create", "beta", "--master", "sim-demo/1000", "--settings", "/nonexistent.toml"], "no such file"),
    (["create", "beta", "--master", "sim-demo/1000", "--settings", str(POOL_TOML), "--handling", "x"], "'x'"),
])
def test_bad_inputs_are_one_line_exit_2_and_write_nothing(capsys, env, argv, message):
    funded(capsys, env)
    before = env.counts()
    code, out, err = run(capsys, "pamm", argv[0], "--config", str(env.config), *argv[1:])
    assert code == 2, out + err
    assert out == "" and err.count("\n") == 1 and err.startswith("bridge: error: ") and message in err, err
    assert "Traceback" not in err
    assert env.counts() == before


def test_lockup_refuses_a_withdrawal(capsys, env):
    funded(capsys, env)
    before = env.counts()
    code, _, err = run(capsys, "pamm", "withdraw", "alpha", "A", "100", "--config", str(env.config),
                       "--at", "2026-01-02T00:00:00Z")
    assert code == 2 and "lock-up until 2026-01-08T21:00:00+00:00" in err and err.count("\n") == 1
    assert env.counts() == before


def test_bad_pool_settings_file_is_one_line(capsys, env, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[pool]\nmanager = "M"\nperformance_fee = 150\n')
    code, _, err = run(capsys, "pamm", "create", "x", "--config", str(env.config), "--master", "sim-demo/1000",
                       "--settings", str(bad))
    assert code == 2 and "performance_fee must be a percentage" in err and str(bad) in err
    assert env.counts().get("pamm_pools", 0) == 0
