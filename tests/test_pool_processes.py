"""A PAMM pool run by `bridge run`, operated with `bridge pamm`, SIGKILLed with its orders in flight.

Three processes, as in test_crash: a simulated venue (``python -m
connectors.sim.serve``, fills 300 ms late) that outlives everything, the
bridge (``bridge run``) and the `bridge pamm` commands. An investor leaves an
``autocorrect`` pool; the rollover (asked of the daemon over its control
socket) plans a partial close of each master position and sends them; the
bridge is killed while they are at the venue, unanswered, and restarted: each
is looked up, and only one that never left the killed process is sent again.
At the venue each position was partly closed exactly once, and the pool's
books verify.
"""

from __future__ import annotations

import json
import subprocess

import pytest
import zmq

from tests.processes import BRIDGE, ROOT, Client, Daemon, count_reaching, free_port_endpoint, read_only_store, \
    start_venue, wait_for, write_accounts

VENUE = "pammv"
MASTER = f"sim/{VENUE}/1000"


def pamm(config, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([BRIDGE, "pamm", *args, "--config", str(config)], capture_output=True, text=True,
                          timeout=60, cwd=ROOT)


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture
def world(tmp_path, request):
    ctx = zmq.Context()
    request.addfinalizer(lambda: ctx.destroy(0))
    accounts = write_accounts(tmp_path / "accounts.toml", VENUE, [(1000, 0)], fill_latency_us=300_000)
    endpoint, deals, replay = start_venue(accounts, tmp_path / "venue.log", request)
    control = free_port_endpoint()
    config = tmp_path / "bridge.toml"
    config.write_text(
        f"[store]\npath = \"{tmp_path / 'bridge.sqlite'}\"\n"
        f"[bus]\ndeals = \"{free_port_endpoint()}\"\ndeals_replay = \"{free_port_endpoint()}\"\n"
        f"heartbeat_ms = 50\ncontrol = \"{control}\"\n"
        f"[[venue]]\nname = \"{VENUE}\"\nplatform = \"sim\"\nendpoint = \"{endpoint}\"\n"
        f"deals_endpoint = \"{deals}\"\nreplay_endpoint = \"{replay}\"\n")
    settings = tmp_path / "pool.toml"
    settings.write_text("[pool]\nmanager = \"M\"\nperformance_fee = 20\nexit_fee = 1\nmanager_minimum = 1000\n")
    bridge = Daemon(config, tmp_path / "bridge.log", ctx, control)
    request.addfinalizer(bridge.stop)
    return Client(ctx, endpoint), bridge, config, settings, tmp_path / "bridge.sqlite"


def pool_orders(store_path) -> list[dict]:
    with read_only_store(store_path) as store:
        return list(store.db.query("SELECT * FROM account_orders ORDER BY key"))


def test_an_autocorrect_pool_survives_sigkill_with_its_orders_in_flight(world):
    venue, bridge, config, settings, store_path = world
    bridge.start()
    ok(pamm(config, "create", "alpha", "--master", f"{VENUE}/1000", "--settings", str(settings),
            "--handling", "autocorrect", "--schedule", "manual"))
    ok(pamm(config, "deposit", "alpha", "M", "5000"))
    ok(pamm(config, "deposit", "alpha", "A", "5000"))
    first = json.loads(ok(pamm(config, "rollover", "alpha", "--json")))  # run by the daemon
    assert first["number"] == 1 and first["equity"] == "10000.00" and first["settlement"] == "10000.00"
    venue.venue("deposit", account=MASTER, amount="10000.00")  # the back office funds the master account
    ok(pamm(config, "settle", "alpha", "1"))

    eur = venue.venue("trade", account=MASTER, symbol="EURUSD", side="buy", amount="1.00")["position_id"]
    gbp = venue.venue("trade", account=MASTER, symbol="GBPUSD", side="sell", amount="0.40")["position_id"]
    ok(pamm(config, "withdraw", "alpha", "A", "--all"))
    asking = subprocess.Popen([BRIDGE, "pamm", "rollover", "alpha", "--config", str(config), "--timeout", "20000"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        wait_for(lambda: len(pool_orders(store_path)) == 2 and all(o["state"] == "sent" for o in pool_orders(store_path)),
                 "both autocorrect orders to be sent", timeout_s=30)
        bridge.kill()  # the orders are at the venue, executing; their replies will find nobody
        _, err = asking.communicate(timeout=30)
    finally:
        asking.kill()
    assert asking.returncode == 1 and err.count("\n") == 1 and "no daemon answered" in err
    # an order marked sent may still have been in the killed process's socket queue, never on the wire: the
    # venue fills (300 ms late) only those it received; recovery looks each up and resends only the others
    reached = count_reaching(lambda: sum(d["kind"] == "partial-close"
                                         for d in venue.venue("deals_since", account=MASTER, after=None)), 2)

    bridge.start()  # startup is recovery: each order is looked up at the venue; found ones are not sent again
    wait_for(lambda: all(o["state"] == "filled" for o in pool_orders(store_path)), "the orders to be resolved",
             timeout_s=30)
    orders = {o["position_id"]: o for o in pool_orders(store_path)}
    positions = {p["position_id"]: p["volume"] for p in venue.venue("positions", account=MASTER)}
    trades = [d for d in venue.venue("deals_since", account=MASTER, after=None) if d["kind"] != "balance"]
    assert [d["kind"] for d in trades] == ["open", "open", "partial-close", "partial-close"]
    for pid, volume in ((eur, 10_000_000), (gbp, 4_000_000)):  # the venue's ids are "sim:N"; the pool's N
        order = orders[pid.split(":")[1]]
        assert order["reason"] == "autocorrect" and order["action"] == "partial-close"
        assert volume * 40 // 100 < order["volume"] < volume * 60 // 100  # about half: A held half the pool
        assert positions[pid] == volume - order["volume"]

    status = json.loads(ok(pamm(config, "status", "alpha", "--json")))
    assert [h["id"] for h in status["holders"] if h["units"] not in ("0", "0E-8", "0.00000000")] == ["M"]
    ok(pamm(config, "verify", "alpha"))
    daemon = bridge.status()
    # each of the two closes exactly once (the trades above): found by lookup if it had reached the venue,
    # sent once more if it had not
    assert daemon["pools"]["orders"]["resolved_by_lookup"] == reached
    assert daemon["pools"]["orders"]["sent"] == 2 - reached
