"""Masters added at runtime (``bridge accounts add --master``) and removed (``remove --master``).

In-process first: the commands against a configuration and its store, no
daemon (each bad input one line, exit 2, nothing written). Then a real daemon
subprocess on a simulated venue process: an account that already traded is
made a master while the daemon runs; its history and the position it holds
then are not copied, its next deals are, across a SIGKILL with a deal made
while the daemon is down; once removed, its deals are not even journalled.
The venue's own records are checked, not the bridge's.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bridge.store import Store
from tests.processes import Client, bridge_cli, settled, sim_world
import tests.test_control_cli as control
from tests.test_control_cli import one_line_usage_error, run


cfg = control.cfg  # the same fixture: test_control_cli's configuration (master v/1000, v/2001 and alpha follow)


def masters_rows(config: str) -> list[dict]:
    with Store.open(Path(config).parent / "bridge.sqlite") as store:
        return list(store.db.query("SELECT * FROM masters ORDER BY id"))


def test_add_list_subscribe_remove_a_master(cfg, capsys):
    code, out, err = run(capsys, "accounts", "add", "--config", cfg, "v/1001", "--master")
    assert code == 0, err
    assert out.startswith("v/1001: now a master; its deals are copied from the daemon's first look at it on")
    assert "no daemon answered" in out
    assert [(r["id"], r["start_after"]) for r in masters_rows(cfg)] == [("sim/v/1001", None)]
    rows = {r["account"]: r for r in json.loads(run(capsys, "accounts", "list", "--config", cfg, "--json")[1])}
    assert (rows["v/1001"]["master"], rows["v/1001"]["master_source"]) == (True, "cli")
    assert (rows["v/1000"]["master"], rows["v/1000"]["master_source"]) == (True, "config")
    assert not rows["v/2002"]["master"]
    assert "yes (added)" in run(capsys, "accounts", "list", "--config", cfg)[1]

    code, out, err = run(capsys, "copy", "subscribe", "--config", cfg, "--master", "v/1001", "--follower", "v/2002")
    assert code == 0, err
    one_line_usage_error(*run(capsys, "accounts", "remove", "--config", cfg, "v/1001", "--master"),
                         "v/1001 is copied by copy s1: remove those first")
    one_line_usage_error(*run(capsys, "accounts", "remove", "--config", cfg, "v/1001"),
                         "is used by copy s1")
    run(capsys, "copy", "unsubscribe", "--config", cfg, "s1")
    one_line_usage_error(*run(capsys, "accounts", "remove", "--config", cfg, "v/1001"),
                         "is a master added at runtime: first bridge accounts remove --master v/1001")
    code, out, err = run(capsys, "accounts", "remove", "--config", cfg, "v/1001", "--master")
    assert code == 0, err
    assert out.startswith("v/1001: no longer a master")
    assert masters_rows(cfg) == []


def test_bad_master_changes_are_one_line_and_write_nothing(cfg, capsys):
    run(capsys, "accounts", "add", "--config", cfg, "v/1001", "--master")
    before = masters_rows(cfg)
    for argv, expected in [
        (["add", "v/1000", "--master"], "v/1000 is a [[master]] in bridge.toml already"),
        (["add", "v/1001", "--master"], "v/1001 is a master already (added at runtime)"),
        (["add", "v/2001", "--master"], "v/2001 follows a master (copy config-1)"),
        (["add", "v/3001", "--master"], "v/3001 follows a master (MAM group alpha)"),
        (["add", "w/1", "--master"], "configured venue"),
        (["remove", "v/1000", "--master"], "v/1000 is a [[master]] in bridge.toml: delete it there"),
        (["remove", "v/2002", "--master"], "v/2002 is not a master"),
        (["remove", "v/77", "--master"], "has no account 77"),
    ]:
        one_line_usage_error(*run(capsys, "accounts", argv[0], "--config", cfg, *argv[1:]), expected)
    assert masters_rows(cfg) == before
    one_line_usage_error(*run(capsys, "copy", "subscribe", "--config", cfg, "--master", "v/2002", "--follower",
                              "v/1001"), "'v/2002' is not a master")


# -- a running daemon ---------------------------------------------------------------------

VENUE = "live"


def account(login: int) -> str:
    return f"sim/{VENUE}/{login}"


@pytest.fixture
def world(tmp_path, request):
    return sim_world(tmp_path, request, VENUE, [(1000, 100000), (1001, 100000), (2001, 10000), (2002, 20000)],
                     f"[[master]]\naccount = \"{VENUE}/1000\"\n[[copy]]\nmaster = \"{VENUE}/1000\"\n"
                     f"follower = \"{VENUE}/2001\"\n")


def trades(venue: Client, login: int) -> list[dict]:
    """The account's trades at the venue (its own deal history, deposits left out)."""
    return [d for d in venue.venue("deals_since", account=account(login), after=None) if d["kind"] != "balance"]


def journalled(config: Path, login: int) -> int:
    with Store.open(config.parent / "bridge.sqlite") as store:
        return store.db.execute("SELECT count(*) FROM master_deals WHERE account_id = ?",
                                (account(login),)).fetchone()[0]


def live(login: int):
    return lambda status: status is not None and status["worker"]["masters"].get(account(login)) == "live" \
        and status["worker"]["idle"]


def test_a_master_added_at_runtime_is_copied_from_then_on(world):
    venue, bridge, config = world
    bridge.start()
    # before it is a master: a position opened and closed, and one left open
    for side in ("buy", "sell"):
        venue.venue("trade", account=account(1001), symbol="EURUSD", side=side, amount="1.00")
    held_before = venue.venue("trade", account=account(1001), symbol="GBPUSD", side="buy",
                              amount="0.50")["position_id"]
    history = len(trades(venue, 1001))

    out = bridge_cli("accounts", "add", "--config", str(config), f"{VENUE}/1001", "--master")
    assert out.startswith(f"{VENUE}/1001: now a master") and "the running daemon" in out
    bridge.wait(live(1001), "the new master to be watched")
    out = bridge_cli("copy", "subscribe", "--config", str(config), "--master", f"{VENUE}/1001", "--follower",
                     f"{VENUE}/2002", "--mode", "multiplier")
    status = bridge.status()
    assert account(1001) in status["connector"]["watching"]
    assert journalled(config, 1001) == 0  # its history is not journalled, let alone copied
    with Store.open(config.parent / "bridge.sqlite") as store:
        starts = list(store.runtime_masters().values())
    last = venue.venue("deals_since", account=account(1001), after=None)[-1]["deal_id"]
    assert starts == [last]  # its copying starts after the last deal it had when first watched

    venue.venue("trade", account=account(1001), symbol="EURUSD", side="buy", amount="0.30")
    bridge.wait(settled(1), "the new master's open copied")
    assert [(t["symbol"], t["side"]) for t in trades(venue, 2002)] == [("EURUSD", "buy")]
    # closing the position it held before it was added copies nothing (no follower holds a copy of it)
    venue.venue("close", account=account(1001), position_id=held_before)
    bridge.wait(lambda s: s is not None and s["worker"]["journal"]["deals"] == 2 and s["worker"]["idle"],
                "the close journalled")
    assert len(trades(venue, 2002)) == 1

    # killed; the new master trades while the daemon is down; the restart backfills it (and only it)
    bridge.kill()
    venue.venue("trade", account=account(1001), symbol="USDJPY", side="sell", amount="0.20")
    bridge.start()
    bridge.wait(live(1001), "the master to be watched again")
    bridge.wait(settled(2), "the deal made while down copied")
    assert [(t["symbol"], t["side"]) for t in trades(venue, 2002)] == [("EURUSD", "buy"), ("USDJPY", "sell")]
    venue.venue("trade", account=account(1001), symbol="USDJPY", side="buy", amount="0.20")  # live again
    bridge.wait(settled(3), "a live deal after the restart copied")
    assert len(trades(venue, 2002)) == 3
    assert journalled(config, 1001) == len(trades(venue, 1001)) - history
    assert len(trades(venue, 2001)) == 0  # the configured master never traded

    # removed: its deals are no longer taken
    bridge_cli("copy", "unsubscribe", "--config", str(config), "s1")
    out = bridge_cli("accounts", "remove", "--config", str(config), f"{VENUE}/1001", "--master")
    assert out.startswith(f"{VENUE}/1001: no longer a master")
    bridge.wait(lambda s: s is not None and account(1001) not in s["worker"]["masters"]
                and account(1001) not in s["connector"]["watching"], "the master to be dropped")
    count = journalled(config, 1001)
    venue.venue("trade", account=account(1000), symbol="EURUSD", side="buy", amount="0.10")
    venue.venue("trade", account=account(1001), symbol="EURUSD", side="buy", amount="0.10")
    bridge.wait(settled(4), "the configured master's deal copied")
    assert journalled(config, 1001) == count and len(trades(venue, 2002)) == 3
