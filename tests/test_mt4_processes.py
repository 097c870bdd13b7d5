"""``bridge run`` against ``bridge sim mt4``: four processes on 127.0.0.1, a trader by hand.

Each MetaTrader 4 account is its own ``bridge sim mt4`` process (one simulated terminal and the copybridge
EA, speaking connectors/mt4/PROTOCOL.md: commands on PORT, events on PORT + 1); the bridge runs as
``bridge run`` with a ``platform = "mt4"`` venue whose accounts name those endpoints. The test is the
master's trader: a raw pyzmq DEALER sending the simulator's MANUAL_OPEN / MANUAL_CLOSE / MANUAL_MODIFY, as
a user trading by hand in the terminal. The copies are checked at the followers' simulators through their
own protocol (TRADES and HISTORY over a DEALER; the EA's journal file for the keys), never through the bridge.

MT4 accounts always hedge, and a partial close reopens the remainder under a NEW ticket (comment
``from #old``; the closed part's history comment becomes ``to #new``): an order that is no other's
remainder opened a position, every market order in the history closed some of one.

The kill test SIGKILLs the bridge at seeded moments around the master's trades (with the followers' EAs
answering trades 30 ms late: orders done at the terminal, unanswered) and restarts it; COPYBRIDGE_SOAK=1
runs a longer session (COPYBRIDGE_SEED picks the seed).
"""

from __future__ import annotations

import json
import os
import random
import time
from decimal import Decimal
from pathlib import Path

import zmq

from tests.processes import Daemon, UNFINISHED, master_script, read_only_store, settled, start_mt4_sim, wait_for
from tests.processes import a_restart_sends_nothing

MASTER, FOLLOWER, HALF = 4001, 4002, 4003
FOLLOWERS = ((FOLLOWER, "1"), (HALF, "0.5"))  # (login, multiplier)
OFFSET_S = 7200  # bridge sim mt4's trade server keeps UTC+2
BUY, SELL = 0, 1  # OP_BUY, OP_SELL
SOAK = bool(os.environ.get("COPYBRIDGE_SOAK"))


def start_sims(tmp_path: Path, request, *follower_options: str) -> dict[int, int]:
    """The three terminals (login -> command port); prices step every 20 ms; each EA journals to a file."""
    return {login: start_mt4_sim(login, tmp_path / f"sim-{login}.log", request, "--balance", "50000",
                                 "--tick-interval-ms", "20", "--seed", str(login),
                                 "--journal", str(tmp_path / f"copybridge-{login}.journal"),
                                 *(follower_options if login != MASTER else ()))
            for login in (MASTER, FOLLOWER, HALF)}


def bridge_config(tmp_path: Path, ports: dict[int, int]) -> tuple[Path, str]:
    """bridge.toml: the bus in the process (inproc), the control socket on a unix socket of this test, one EA
    endpoint per terminal (events on the port after it)."""
    control = f"ipc://{tmp_path / 'control'}"
    accounts = "".join(f"""
  [[venue.account]]
  login = {login}
  endpoint = "tcp://127.0.0.1:{port}"
""" for login, port in ports.items())
    copies = "".join(f"""
[[copy]]
master = "m4/{MASTER}"
follower = "m4/{login}"
[copy.settings]
mode = "multiplier"
multiplier = {multiplier}
""" for login, multiplier in FOLLOWERS)
    path = tmp_path / "bridge.toml"
    path.write_text(f"""
[store]
path = "{tmp_path / 'bridge.sqlite'}"

[bus]
deals = "inproc://mt4-deals"
deals_replay = "inproc://mt4-replay"
control = "{control}"
heartbeat_ms = 50

[[venue]]
name = "m4"
platform = "mt4"
server_offset_s = {OFFSET_S}
timeout_ms = 5000
{accounts}
[[master]]
account = "m4/{MASTER}"
{copies}""")
    return path, control


class Terminal:
    """A raw DEALER to one simulated EA's command socket: the master's trader by hand, or a reader of a
    follower's orders. One JSON object per frame; numbers read back as Decimal."""

    def __init__(self, ctx: zmq.Context, port: int) -> None:
        self.socket = ctx.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.connect(f"tcp://127.0.0.1:{port}")
        self.n = 0

    def call(self, cmd: str, **fields) -> dict:
        self.n += 1
        self.socket.send(json.dumps({"id": self.n, "cmd": cmd, **fields}).encode())
        while True:
            assert self.socket.poll(10_000), f"no answer to {cmd}"
            reply = json.loads(self.socket.recv(), parse_float=Decimal)
            if reply["id"] == self.n:
                break
        assert reply["ok"], reply
        return reply["result"]

    def trades(self) -> list[dict]:
        return self.call("TRADES")["trades"]

    def history(self) -> list[dict]:
        """Closed market orders, in the order they entered the history (balance operations left out)."""
        return [o for o in self.call("HISTORY", after_ticket=0)["orders"] if o["type"] in (BUY, SELL)]

    def held(self) -> Decimal:
        """The net lots open in EURUSD (buys positive)."""
        return sum((t["lots"] * (1 if t["type"] == BUY else -1) for t in self.trades()), Decimal(0))

    def close(self) -> None:
        self.socket.close(0)


def deals(terminal: Terminal) -> list[tuple]:
    """The account's trades, in the order they were made: ("open", type, lots) for each position (an order
    that is nobody's remainder: its lots are the whole chain's), ("partial", lots) for a closed part whose
    remainder reopened (history comment ``to #new``), ("close", lots) for the last part. A remainder is
    known by its ``from #old`` comment, or, once it was closed in part itself (its comment then ``to #...``),
    by the ``to #`` of the part before it. Opens are placed by ticket among the closes
    (a ticket is taken when the order is opened)."""
    history, trades = terminal.history(), terminal.trades()
    parent = {o["ticket"]: int(o["comment"][len("from #"):]) for o in history + trades
              if o["comment"].startswith("from #")}  # an open remainder, or one closed whole
    parent.update({int(o["comment"][len("to #"):]): o["ticket"] for o in history
                   if o["comment"].startswith("to #")})  # a remainder closed in part since: "to #" names it

    def root(ticket: int) -> int:
        while ticket in parent:
            ticket = parent[ticket]
        return ticket

    chain_lots: dict[int, Decimal] = {}
    for o in history + trades:
        chain_lots[root(o["ticket"])] = chain_lots.get(root(o["ticket"]), Decimal(0)) + o["lots"]
    types = {o["ticket"]: o["type"] for o in history + trades}
    # a close happens after every ticket below it was opened; the remainder it creates is above them
    out, opens = [], sorted(chain_lots)
    for o in history:
        remainder = int(o["comment"][len("to #"):]) if o["comment"].startswith("to #") else None
        while opens and opens[0] <= o["ticket"]:
            t = opens.pop(0)
            out.append(("open", types[t], chain_lots[t]))
        out.append(("partial", o["lots"]) if remainder is not None else ("close", o["lots"]))
    out += [("open", types[t], chain_lots[t]) for t in opens]
    return out


def scaled(master: list[tuple], multiplier: str) -> list[tuple]:
    m = Decimal(multiplier)
    return [(*d[:-1], d[-1] * m) for d in master]


def journal_keys(tmp_path: Path, login: int) -> list[tuple[str, str]]:
    """(key, cmd) of every trade the follower's EA executed, from its journal file (one line each)."""
    path = tmp_path / f"copybridge-{login}.journal"
    lines = path.read_text().splitlines() if path.exists() else []
    return [(e["key"], e["cmd"]) for e in map(json.loads, lines)]


def test_bridge_run_copies_trades_made_by_hand_on_a_bridge_sim_mt4_master(tmp_path, request):
    ports = start_sims(tmp_path, request)
    config, control = bridge_config(tmp_path, ports)
    daemon = Daemon.for_test(config, control, tmp_path, request)
    daemon.start()
    status = daemon.wait(lambda s: s and s.get("venues_ready") and s["worker"]["idle"],
                         "the three terminals to be linked")
    assert [(c["login"], c["up"]) for c in status["connections"]["mt4/m4"]] == [
        (MASTER, True), (FOLLOWER, True), (HALF, True)], status["connections"]

    trader = Terminal(daemon.ctx, ports[MASTER])
    followers = {login: Terminal(daemon.ctx, ports[login]) for login, _ in FOLLOWERS}

    def copies_are(full: str, half: str) -> bool:
        return (followers[FOLLOWER].held(), followers[HALF].held()) == (Decimal(full), Decimal(half))

    opened = trader.call("MANUAL_OPEN", symbol="EURUSD", type=BUY, lots=0.4, sl=0, tp=0)
    assert opened["comment"] == "" and opened["magic"] == 0
    wait_for(lambda: copies_are("0.4", "0.2"), "the opening copies")
    partial = trader.call("MANUAL_CLOSE", ticket=opened["ticket"], lots=0.1)  # a partial close by hand
    remainder = partial["remainder"]
    assert partial["remainder_lots"] == Decimal("0.3") and remainder > opened["ticket"]
    wait_for(lambda: copies_are("0.3", "0.15"), "the partial copies")
    sl, tp = opened["price"] - Decimal("0.02"), opened["price"] + Decimal("0.02")  # far from a 20 ms walk
    trader.call("MANUAL_MODIFY", ticket=remainder, sl=float(sl), tp=float(tp))
    wait_for(lambda: all([(t["sl"], t["tp"]) for t in f.trades()] == [(sl, tp)] for f in followers.values()),
             "the SL/TP copies")
    trader.call("MANUAL_CLOSE", ticket=remainder, lots=0)  # and the rest
    wait_for(lambda: copies_are("0", "0"), "the closing copies")
    status = daemon.wait(settled(8), "every copy to be filled (open, partial, modify, close per follower)")
    assert set(status["worker"]["intents"]) == {"filled"}

    master = deals(trader)
    assert master == [("open", BUY, Decimal("0.4")), ("partial", Decimal("0.1")), ("close", Decimal("0.3"))]
    # exactly once, at each follower's terminal: one open, one partial, one close, SL/TP on the remainder
    for login, multiplier in FOLLOWERS:
        f = followers[login]
        assert deals(f) == scaled(master, multiplier), (login, f.history())
        [part, rest] = f.history()
        assert part["comment"] == f"to #{rest['ticket']}" and rest["comment"] == f"from #{part['ticket']}"
        assert (part["sl"], part["tp"], rest["sl"], rest["tp"]) == (0, 0, sl, tp), (login, part, rest)
        keys = journal_keys(tmp_path, login)
        assert [cmd for _, cmd in keys] == ["OPEN", "CLOSE", "MODIFY", "CLOSE"], keys
        assert len({k for k, _ in keys}) == 4, keys
        assert f.trades() == []
    daemon.stop()
    log = (tmp_path / "bridge.log").read_text()
    assert "Traceback" not in log


def lots(hundredths: int) -> float:
    return float(Decimal(hundredths) / 100)


def test_sigkill_around_the_master_trades_loses_nothing_and_doubles_nothing(tmp_path, request):
    """The bridge is SIGKILLed at seeded moments around the master's trades (before one, or 0-50 ms after it:
    the trade unseen, journalled, its orders planned, done at the follower's EA but unanswered, or filled)
    and restarted; the master trades on meanwhile. At each follower's terminal: one trade per master trade,
    of the volume its copy settings say, no key executed twice, and flat at the end."""
    rng = random.Random(int(os.environ.get("COPYBRIDGE_SEED", "11")))
    ports = start_sims(tmp_path, request, "--reply-delay-ms", "30")
    config, control = bridge_config(tmp_path, ports)
    daemon = Daemon.for_test(config, control, tmp_path, request)
    trader = Terminal(daemon.ctx, ports[MASTER])
    followers = {login: Terminal(daemon.ctx, ports[login]) for login, _ in FOLLOWERS}

    daemon.start()
    daemon.wait(settled(0), "the three terminals to be linked")
    store_path = tmp_path / "bridge.sqlite"
    ticket, done, in_flight, done_there, unplanned = None, 0, 0, 0, 0
    for action in master_script(rng, 60 if SOAK else 16):
        moment = rng.choice(("before", "after", "after", "after", "none"))  # kill before the trade, after it, or not
        if moment == "before":  # the master trades while the bridge is down: found again on restart
            daemon.kill()
        if action[0] == "open":
            ticket = trader.call("MANUAL_OPEN", symbol="EURUSD", type=action[1], lots=lots(action[2]),
                                 sl=0, tp=0)["ticket"]
        elif action[0] == "partial":
            ticket = trader.call("MANUAL_CLOSE", ticket=ticket, lots=lots(action[1]))["remainder"]
        else:
            trader.call("MANUAL_CLOSE", ticket=ticket, lots=0)
        done += 1
        if moment == "after":
            time.sleep(rng.uniform(0, 0.05))  # the bridge is copying meanwhile (each fill is answered 30 ms late)
            daemon.kill()
            with read_only_store(store_path) as store:  # what the killed process left behind
                unfinished = store.intents_in_state(*UNFINISHED)
                unplanned += len(store.intents_in_state(*UNFINISHED, "filled", "rejected")) < 2 * done
            in_flight += bool(unfinished)
            executed = {login: {k for k, _ in journal_keys(tmp_path, login)} for login, _ in FOLLOWERS}
            done_there += any(i.key in executed[int(i.follower_id.rsplit("/", 1)[1])]
                              for i in unfinished)  # done at the EA, the answer lost with the bridge
        if moment in ("before", "after"):
            daemon.start()
        daemon.wait(settled(2 * done), f"the copies of master trade {done}", timeout_s=30)

    master = deals(trader)
    assert len(master) == done and trader.trades() == []
    assert daemon.kills >= 4, f"the seed should kill the bridge several times ({daemon.kills})"
    assert in_flight >= 1, "no kill landed with orders in flight: the test proved less than it says"
    assert done_there >= 1, "no kill left an order done at an EA but unanswered: the lookup went untested"
    for login, multiplier in FOLLOWERS:
        f = followers[login]
        got = deals(f)
        assert len(got) == done, f"follower {login}: {len(got)} trades for {done} master trades: {got}"
        assert got == scaled(master, multiplier), f"follower {login}: volumes or kinds"
        keys = journal_keys(tmp_path, login)
        assert len(keys) == done and len({k for k, _ in keys}) == done, f"follower {login}: a key twice: {keys}"
        assert f.trades() == [], f"follower {login} is not flat"
    daemon.stop()
    with read_only_store(store_path) as store:
        assert store.intents_in_state(*UNFINISHED) == [] and len(store.intents_in_state("filled")) == 2 * done
    log = (tmp_path / "bridge.log").read_text()
    assert "Traceback" not in log
    print(f"\n{daemon.kills} kills: {in_flight} with orders in flight ({done_there} with one done at the EA), "
          f"{unplanned} before the last trade's orders were all planned")


def test_an_sltp_amend_made_while_the_bridge_is_down_reaches_each_follower_once_at_its_restart(tmp_path, request):
    """MT4 keeps no history of OrderModify and the EA's event of it reaches no bridge while none runs: the
    restarted bridge compares the master's open trades with the stops its journal last told
    (``MT4Venue.deals_since(..., stops=)``). SIGKILLed, the master's SL/TP amended by hand, restarted: one MODIFY
    per follower (their EAs' journals), then none after a second restart."""
    ports = start_sims(tmp_path, request)
    config, control = bridge_config(tmp_path, ports)
    daemon = Daemon.for_test(config, control, tmp_path, request)
    daemon.start()
    daemon.wait(settled(0), "the three terminals to be linked")
    trader = Terminal(daemon.ctx, ports[MASTER])
    followers = {login: Terminal(daemon.ctx, ports[login]) for login, _ in FOLLOWERS}

    def follower_stops() -> dict[int, list]:
        return {login: [(t["sl"], t["tp"]) for t in f.trades()] for login, f in followers.items()}

    def modifies() -> dict[int, int]:
        return {login: [cmd for _, cmd in journal_keys(tmp_path, login)].count("MODIFY") for login in followers}

    opened = trader.call("MANUAL_OPEN", symbol="EURUSD", type=BUY, lots=0.4, sl=0, tp=0)
    journalled = daemon.wait(settled(2), "the two copies")["worker"]["journal"]["deals"]
    assert follower_stops() == {FOLLOWER: [(0, 0)], HALF: [(0, 0)]}
    daemon.kill()
    sl, tp = opened["price"] - Decimal("0.02"), opened["price"] + Decimal("0.02")  # far from a 20 ms walk
    trader.call("MANUAL_MODIFY", ticket=opened["ticket"], sl=float(sl), tp=float(tp))

    daemon.start()
    status = daemon.wait(settled(4), "one modify per follower after the restart", timeout_s=30)
    assert follower_stops() == {FOLLOWER: [(sl, tp)], HALF: [(sl, tp)]}
    assert status["worker"]["journal"]["deals"] == journalled + 1
    assert modifies() == {FOLLOWER: 1, HALF: 1}
    a_restart_sends_nothing(daemon, 4, journalled + 1)
    assert modifies() == {FOLLOWER: 1, HALF: 1}
    daemon.stop()
    for f in (trader, *followers.values()):
        f.close()
    log = (tmp_path / "bridge.log").read_text()
    assert "Traceback" not in log
