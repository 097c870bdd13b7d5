"""``bridge run`` against ``bridge sim ctrader``: two processes, real TLS, a trader by hand.

The local cTrader server runs as ``bridge sim ctrader`` (its own process, its
own CA written with ``--ca-out``); the bridge runs as ``bridge run`` with a
``platform = "ctrader"`` venue whose secrets come from a 0600 file and from
environment variables. The test is the master's trader: the stock
``ctrader-open-api`` client authorises the master and trades on it by hand;
the copies are checked at the server, through the same stock client
(``ReconcileReq`` on the followers), not through the bridge.
"""

from __future__ import annotations

import json
import os
import random
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
import zmq

from twisted.internet import reactor

from tests.ctrader_rig import Conn, pump
from tests.processes import BRIDGE, ROOT, Daemon, free_port_endpoint, terminate

MASTER, HEDGED, NETTED = 1001, 2001, 2002
LOT = 10_000_000  # EURUSD, in hundredths of a unit

CREDENTIALS = """
[application]
client_id = "app-1"
client_secret = "secret-1"

[[tokens]]
access_token = "tok-a"
refresh_token = "ref-a"

[[tokens]]
access_token = "tok-f"
refresh_token = "ref-f"

[[accounts]]
ctid_trader_account_id = 1001
trader_login = 5001
token = "tok-a"
balance = "100000"
type = "netted"

[[accounts]]
ctid_trader_account_id = 2001
trader_login = 6001
token = "tok-f"
balance = "50000"

[[accounts]]
ctid_trader_account_id = 2002
trader_login = 6002
token = "tok-f"
balance = "50000"
type = "netted"
"""


FOLLOWERS = ((HEDGED, "1"), (NETTED, "0.5"))  # (account, multiplier)


def bridge_config(tmp: Path, port: int, ca: Path, secret: Path, followers=FOLLOWERS) -> tuple[Path, str]:
    deals, replay, control = free_port_endpoint(), free_port_endpoint(), free_port_endpoint()
    accounts = "".join(
        f"""
  [[venue.account]]
  login = {login}
  access_token_env = "CT_ACCESS_{tag}"
  refresh_token_env = "CT_REFRESH_{tag}"
""" for login, tag in ((MASTER, "M"), *((f, "F") for f, _ in followers)))
    copies = "".join(f"""
[[copy]]
master = "ct/{MASTER}"
follower = "ct/{follower}"
[copy.settings]
mode = "multiplier"
multiplier = {multiplier}
""" for follower, multiplier in followers)
    text = f"""
[store]
path = "{tmp / 'bridge.sqlite'}"

[bus]
deals = "{deals}"
deals_replay = "{replay}"
control = "{control}"
heartbeat_ms = 50

[[venue]]
name = "ct"
platform = "ctrader"
host = "localhost"
port = {port}
ca_file = "{ca}"
client_id = "app-1"
client_secret_file = "{secret}"
pool_size = 2
{accounts}
[[master]]
account = "ct/{MASTER}"
{copies}"""
    path = tmp / "bridge.toml"
    path.write_text(text)
    return path, control


@pytest.fixture
def sim(tmp_path, request) -> tuple[int, Path]:
    return start_sim(tmp_path, request, CREDENTIALS)


def start_sim(tmp_path, request, credentials: str, *options: str) -> tuple[int, Path]:
    accounts = tmp_path / "accounts.toml"
    accounts.write_text(credentials)
    ca = tmp_path / "sim-ca.pem"
    log = open(tmp_path / "sim.log", "w")
    process = subprocess.Popen([BRIDGE, "sim", "ctrader", "--port", "0", "--accounts", str(accounts),
                                "--ca-out", str(ca), "--spot-interval-ms", "0", *options],
                               stdout=subprocess.PIPE, stderr=log, text=True, cwd=ROOT)
    request.addfinalizer(lambda: (terminate(process), log.close()))
    ready, _, _ = select.select([process.stdout], [], [], 30)
    line = process.stdout.readline() if ready else ""
    assert line.startswith("listening on ssl://"), f"bridge sim ctrader did not start: {line!r}"
    return int(line.split()[2].rsplit(":", 1)[1]), ca


def net_volume(trader: Conn, ctid: int) -> int | None:
    """The account's net position in EURUSD at the server, signed, in hundredths of a unit."""
    time.sleep(0.02)  # a poll: stay well under the server's 50 requests per second
    res = trader.call("ReconcileReq", ctidTraderAccountId=ctid)
    if res.DESCRIPTOR.name != "ProtoOAReconcileRes":
        raise AssertionError(f"ReconcileReq refused: {res}")
    return sum(p.tradeData.volume * (1 if p.tradeData.tradeSide == 1 else -1) for p in res.position)


def configure(tmp_path, monkeypatch, port: int, ca: Path, followers=FOLLOWERS) -> tuple[Path, str]:
    """The bridge's config, its client secret in a 0600 file and the tokens in the environment."""
    secret = tmp_path / "client-secret"
    secret.write_text("secret-1\n")
    secret.chmod(0o600)
    for tag, access, refresh in (("M", "tok-a", "ref-a"), ("F", "tok-f", "ref-f")):
        monkeypatch.setenv(f"CT_ACCESS_{tag}", access)
        monkeypatch.setenv(f"CT_REFRESH_{tag}", refresh)
    return bridge_config(tmp_path, port, ca, secret, followers)


def shut(trader: Conn | None, daemon: Daemon, ctx: zmq.Context) -> None:
    """The end of a test: the trader's connection, the daemon, the ZeroMQ context."""
    if trader is not None:
        trader.stop()
    daemon.stop()
    ctx.destroy(0)


def master_trader(port: int) -> Conn:
    """The stock client, authorised on the master and (to look at their positions) on the followers."""
    trader = Conn(port)
    trader.auth(MASTER, token="tok-a")
    for ctid in (HEDGED, NETTED):
        assert trader.call("AccountAuthReq", ctidTraderAccountId=ctid,
                           accessToken="tok-f").DESCRIPTOR.name == "ProtoOAAccountAuthRes"
    return trader


def open_by_hand(trader: Conn, volume: int = LOT):
    """A market buy on the master; its ORDER_FILLED event."""
    mid = trader.send("NewOrderReq", ctidTraderAccountId=MASTER, symbolId=1, orderType=1, tradeSide=1,
                      volume=volume)
    return trader.wait(lambda m, i: i == mid and m.DESCRIPTOR.name == "ProtoOAExecutionEvent"
                       and m.executionType == 3)


def test_bridge_run_copies_trades_placed_by_hand_on_the_simulated_ctrader_master(sim, tmp_path, monkeypatch):
    port, ca = sim
    config, control = configure(tmp_path, monkeypatch, port, ca)
    ctx = zmq.Context()
    daemon = Daemon(config, tmp_path / "bridge.log", ctx, control)
    try:
        daemon.start()
        status = daemon.wait(lambda s: s and s.get("venues_ready") and s["worker"]["idle"],
                             "the cTrader venue to connect")
        connections = status["connections"]["ctrader/ct"]
        assert [(c["connected"], c["accounts"], c["authorised"]) for c in connections] == [(True, 2, 2), (True, 1, 1)]

        trader = master_trader(port)  # the master's trader: the stock client, as any Open API application
        position = open_by_hand(trader).position.positionId

        def copies_are(hedged: int, netted: int) -> bool:
            return net_volume(trader, HEDGED) == hedged and net_volume(trader, NETTED) == netted

        pump(lambda: copies_are(LOT, LOT // 2), timeout=20)

        # a partial close by hand, then the rest
        mid = trader.send("ClosePositionReq", ctidTraderAccountId=MASTER, positionId=position, volume=LOT * 4 // 10)
        trader.wait(lambda m, i: i == mid and m.DESCRIPTOR.name == "ProtoOAExecutionEvent" and m.executionType == 3)
        pump(lambda: copies_are(LOT * 6 // 10, LOT * 3 // 10), timeout=20)
        mid = trader.send("ClosePositionReq", ctidTraderAccountId=MASTER, positionId=position, volume=LOT * 6 // 10)
        trader.wait(lambda m, i: i == mid and m.DESCRIPTOR.name == "ProtoOAExecutionEvent" and m.executionType == 3)
        pump(lambda: copies_are(0, 0), timeout=20)

        status = daemon.wait(lambda s: s["worker"]["idle"] and s["worker"]["intents"].get("filled") == 6,
                             "every copy to be filled")
        assert status["worker"]["journal"]["deals"] == 3
        assert set(status["worker"]["intents"]) == {"filled"}
        # exactly once, at the venue: two copies of each of the three master deals
        now_ms = int(time.time() * 1000)
        history = trader.call("DealListReq", ctidTraderAccountId=HEDGED, fromTimestamp=now_ms - 3_600_000,
                              toTimestamp=now_ms + 60_000)
        assert len(history.deal) == 3
        trader.stop()
    finally:
        daemon.stop()
        ctx.destroy(0)
    log = (tmp_path / "bridge.log").read_text()
    assert "secret-1" not in log and "tok-a" not in log and "tok-f" not in log, "a secret reached the log"
    assert "Traceback" not in log


def test_bridge_run_check_names_a_secret_file_readable_by_others(tmp_path):
    secret = tmp_path / "client-secret"
    secret.write_text("secret-1\n")
    secret.chmod(0o644)
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    config, _ = bridge_config(tmp_path, 5035, ca, secret)
    run = subprocess.run([BRIDGE, "run", "--config", str(config), "--check"], capture_output=True, text=True,
                         env={"PATH": str(Path(sys.executable).parent)})
    assert run.returncode == 2, run
    assert "open to group and others (mode 0644)" in run.stderr and f"chmod 600 {secret}" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
    assert "Traceback" not in run.stderr


def test_refreshed_tokens_are_kept_so_a_restart_after_sigkill_still_authorises(tmp_path, request, monkeypatch):
    # the followers' token lives 2 s: the bridge's first copy after that is refused as expired, the bridge
    # refreshes (which revokes the configured pair) and must keep the new pair for its next start
    port, ca = start_sim(tmp_path, request, CREDENTIALS.replace('refresh_token = "ref-f"',
                                                                'refresh_token = "ref-f"\nexpires_in = 2'))
    config, control = configure(tmp_path, monkeypatch, port, ca)
    kept = tmp_path / "ctrader-ct-tokens.json"
    ctx = zmq.Context()
    daemon = Daemon(config, tmp_path / "bridge.log", ctx, control)
    trader = None
    try:
        daemon.start()
        daemon.wait(lambda s: s and s.get("venues_ready") and s["worker"]["idle"], "the cTrader venue to connect")
        trader = Conn(port)
        trader.auth(MASTER, token="tok-a")
        time.sleep(2.2)  # the followers' configured token expires

        def trade(side: int, volume: int) -> None:
            mid = trader.send("NewOrderReq", ctidTraderAccountId=MASTER, symbolId=1, orderType=1, tradeSide=side,
                              volume=volume)
            trader.wait(lambda m, i: i == mid and m.DESCRIPTOR.name == "ProtoOAExecutionEvent"
                        and m.executionType == 3)
        trade(1, LOT)  # the netting master: 1 lot long
        daemon.wait(lambda s: s["worker"]["idle"] and s["worker"]["intents"].get("filled") == 2,
                    "the copies, after a token refresh", timeout_s=30)
        assert kept.exists() and kept.stat().st_mode & 0o777 == 0o600
        entries = json.loads(kept.read_text())
        assert set(entries) == {str(HEDGED), str(NETTED)} and entries[str(HEDGED)]["access"] != "tok-f"
        daemon.kill()
        daemon.start()  # the configured tokens are revoked now: only the kept ones authorise
        daemon.wait(lambda s: s and s.get("venues_ready") and s["worker"]["idle"], "the restart to connect",
                    timeout_s=30)
        trade(2, LOT)  # flat again
        status = daemon.wait(lambda s: s["worker"]["idle"] and s["worker"]["intents"].get("filled") == 4,
                             "the closing copies after the restart", timeout_s=30)
        assert set(status["worker"]["intents"]) == {"filled"}
    finally:
        shut(trader, daemon, ctx)
    log = (tmp_path / "bridge.log").read_text()
    assert "kept in" in log
    for secret_text in ("tok-f", entries[str(HEDGED)]["access"], entries[str(HEDGED)]["refresh"]):
        assert secret_text not in log, "a token reached the log"


MORE = tuple(range(2003, 2011))  # eight more hedged followers for the kill test


def test_sigkill_at_random_points_of_a_ctrader_session_loses_nothing_and_doubles_nothing(tmp_path, request,
                                                                                           monkeypatch):
    """The bridge is SIGKILLed at seeded random moments right after the master trades (orders in flight or
    not yet sent), restarted, and the session goes on. At the server, per follower: one trade per master
    deal, and flat at the end."""
    seed = int(os.environ.get("COPYBRIDGE_SEED", "11"))
    rng = random.Random(seed)
    more = "".join(f"""
[[accounts]]
ctid_trader_account_id = {ctid}
trader_login = {ctid + 4000}
token = "tok-f"
balance = "20000"
""" for ctid in MORE)
    # every reply (fills included) is held 30 ms: a kill in the next 0-40 ms lands with orders in flight
    port, ca = start_sim(tmp_path, request, CREDENTIALS + more, "--reply-delay-ms", "30")
    followers = ((HEDGED, "1"), *((f, "1") for f in MORE))
    config, control = configure(tmp_path, monkeypatch, port, ca, followers)
    ctx = zmq.Context()
    daemon = Daemon(config, tmp_path / "bridge.log", ctx, control)
    trader = None
    rounds = 4 if not os.environ.get("COPYBRIDGE_SOAK") else 12
    try:
        daemon.start()
        daemon.wait(lambda s: s and s.get("venues_ready") and s["worker"]["idle"], "the cTrader venue to connect")
        trader = Conn(port)
        trader.auth(MASTER, token="tok-a")
        for ctid, _ in followers:
            assert trader.call("AccountAuthReq", ctidTraderAccountId=ctid,
                               accessToken="tok-f").DESCRIPTOR.name == "ProtoOAAccountAuthRes"
        master_deals = 0
        for n in range(rounds):
            trader.send("NewOrderReq", ctidTraderAccountId=MASTER, symbolId=1, orderType=1,
                        tradeSide=1 if n % 2 == 0 else 2, volume=LOT)
            master_deals += 1
            deadline = time.monotonic() + rng.uniform(0, 0.045)  # before, during or after the fan-out
            while time.monotonic() < deadline:
                reactor.iterate(0.001)  # the trader's connection goes on meanwhile
            daemon.kill()
            daemon.start()
            daemon.wait(lambda s: s and s.get("venues_ready") and s["worker"]["idle"]
                        and s["worker"]["journal"]["deals"] == master_deals
                        and not set(s["worker"]["intents"]) - {"filled"}, "the restart to finish the deal",
                        timeout_s=30)
            time.sleep(0.5)  # the restarted bridge fetches its accounts' figures (replies held 30 ms each)
        now_ms = int(time.time() * 1000)
        for ctid, _ in followers:
            time.sleep(0.25)  # DealListReq is historical: at most 5 a second
            history = trader.call("DealListReq", ctidTraderAccountId=ctid, fromTimestamp=now_ms - 3_600_000,
                                  toTimestamp=now_ms + 60_000)
            orders = {d.orderId for d in history.deal}
            assert len(orders) == master_deals, f"follower {ctid}: {len(orders)} trades for {master_deals} deals"
            assert net_volume(trader, ctid) == 0, f"follower {ctid} is not flat"
        assert daemon.kills == rounds
        log = (tmp_path / "bridge.log").read_text()
        assert log.count("were in flight") >= 1, "no kill landed mid fan-out: the test proved less than it says"
    finally:
        shut(trader, daemon, ctx)


def test_an_sltp_amend_made_while_the_bridge_is_down_reaches_each_follower_once_at_its_restart(sim, tmp_path,
                                                                                               monkeypatch):
    """cTrader's deal history holds no SL/TP amends: the restarted bridge compares the master's positions with
    the stops its journal last told (connectors/ctrader/deals.py). One modify per follower, then none."""
    port, ca = sim
    config, control = configure(tmp_path, monkeypatch, port, ca)
    ctx = zmq.Context()
    daemon = Daemon(config, tmp_path / "bridge.log", ctx, control)
    trader = None

    def follower_stops(ctid: int) -> list:
        time.sleep(0.02)
        res = trader.call("ReconcileReq", ctidTraderAccountId=ctid)
        return [(p.stopLoss if p.HasField("stopLoss") else None, p.takeProfit if p.HasField("takeProfit") else None)
                for p in res.position]

    def settled(filled: int):
        return lambda s: (s and s.get("venues_ready") and s["worker"]["idle"]
                          and set(s["worker"]["masters"].values()) == {"live"}
                          and s["worker"]["intents"] == {"filled": filled})

    try:
        daemon.start()
        daemon.wait(lambda s: s and s.get("venues_ready") and s["worker"]["idle"], "the cTrader venue to connect")
        trader = master_trader(port)
        filled = open_by_hand(trader)
        daemon.wait(settled(2), "the two copies")
        assert follower_stops(HEDGED) == follower_stops(NETTED) == [(None, None)]
        daemon.kill()

        sl, tp = round(filled.position.price - 0.01, 5), round(filled.position.price + 0.01, 5)
        answer = trader.call("AmendPositionSLTPReq", ctidTraderAccountId=MASTER,
                             positionId=filled.position.positionId, stopLoss=sl, takeProfit=tp)
        assert answer.DESCRIPTOR.name == "ProtoOAExecutionEvent", answer

        daemon.start()
        status = daemon.wait(settled(4), "one modify per follower after the restart", timeout_s=30)
        assert status["worker"]["journal"]["deals"] == 2
        assert follower_stops(HEDGED) == follower_stops(NETTED) == [(sl, tp)]
        daemon.kill()  # nothing changed: a second restart sends nothing
        daemon.start()
        status = daemon.wait(settled(4), "the second restart", timeout_s=30)
        time.sleep(1.0)  # a late SLTP deal would show now
        status = daemon.wait(settled(4), "the second restart to stay quiet")
        assert status["worker"]["journal"]["deals"] == 2
    finally:
        shut(trader, daemon, ctx)
    log = (tmp_path / "bridge.log").read_text()
    assert "Traceback" not in log
