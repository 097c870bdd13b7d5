"""SIGKILL the bridge at random points of a scripted session; nothing is lost, nothing doubled.

Three processes: a simulated venue (``python -m connectors.sim.serve``) that
outlives everything, the bridge (``bridge run``) that the test kills with
SIGKILL and restarts, and this test, which trades the master through the
venue's own socket and, at the end, checks the venue's records:

* every follower is flat when the master is flat (nothing left open, nothing
  doubled that a close did not undo);
* every follower's trade count at the venue equals the orders the bridge's
  journal says were filled (no order the bridge does not know of, none it
  thinks it sent that the venue never saw);
* no intent is left unfinished, and every filled key is found at the venue.

Kill points are chosen by a seeded random source among milestones observed
through the daemon's control socket (right after the master trades, once the
deal is journalled, once some of its orders are filled), so they land at
different places of the pipeline. COPYBRIDGE_SOAK=1 runs a longer session.
"""

from __future__ import annotations

import os
import random

import pytest
import zmq

from bridge.store import Store
from tests.processes import Client, Daemon, free_port_endpoint, start_venue, write_accounts

VENUE = "crash"
MASTER = f"sim/{VENUE}/1000"
COPY_FOLLOWERS = (2001, 2002, 2003)
MAM_MEMBERS = (3001, 3002, 3003)
SOAK = bool(os.environ.get("COPYBRIDGE_SOAK"))


@pytest.fixture
def world(tmp_path, request):
    ctx = zmq.Context()
    request.addfinalizer(lambda: ctx.destroy(0))
    balances = (100000, 8000, 20000, 5000, 45000, 35000, 20000)
    accounts = write_accounts(tmp_path / "accounts.toml", VENUE,
                              list(zip((1000, *COPY_FOLLOWERS, *MAM_MEMBERS), balances)),
                              fill_latency_us=3000, slippage_points=1)
    endpoint, deals, replay = start_venue(accounts, tmp_path / "venue.log", request)
    control = free_port_endpoint()
    config = tmp_path / "bridge.toml"
    copies = "".join(f"[[copy]]\nmaster = \"{VENUE}/1000\"\nfollower = \"{VENUE}/{f}\"\n[copy.settings]\n"
                     f"mode = \"{mode}\"\n" for f, mode in zip(COPY_FOLLOWERS, ("balance", "multiplier", "equity")))
    members = ", ".join(f"{{ account = \"{VENUE}/{m}\" }}" for m in MAM_MEMBERS)
    config.write_text(
        f"[store]\npath = \"{tmp_path / 'bridge.sqlite'}\"\n"
        f"[bus]\ndeals = \"{free_port_endpoint()}\"\ndeals_replay = \"{free_port_endpoint()}\"\n"
        f"heartbeat_ms = 50\ncontrol = \"{control}\"\n"
        f"[[venue]]\nname = \"{VENUE}\"\nplatform = \"sim\"\nendpoint = \"{endpoint}\"\n"
        f"deals_endpoint = \"{deals}\"\nreplay_endpoint = \"{replay}\"\n"
        f"[[master]]\naccount = \"{VENUE}/1000\"\n{copies}"
        f"[[mam]]\nid = \"alpha\"\nmaster = \"{VENUE}/1000\"\nmethod = \"equity\"\nmembers = [{members}]\n")
    bridge = Daemon(config, tmp_path / "bridge.log", ctx, control)
    request.addfinalizer(bridge.stop)
    return Client(ctx, endpoint), bridge, tmp_path


def script(rng: random.Random, deals: int):
    """Master actions on one netting position; ends flat."""
    open_lots = 0
    for i in range(deals):
        if open_lots == 0:
            lots = rng.randrange(20, 200)
            yield ("trade", rng.choice(("buy", "sell")), lots)
            open_lots = lots
        elif i == deals - 1:
            yield ("close", None, None)
            open_lots = 0
        else:
            kind = rng.choice(("add", "partial", "modify", "reverse", "close"))
            if kind == "add":
                lots = rng.randrange(10, 80)
                yield ("add", None, lots)
                open_lots += lots
            elif kind == "partial" and open_lots >= 20:
                lots = rng.randrange(5, open_lots - 5)
                yield ("partial", None, lots)
                open_lots -= lots
            elif kind == "reverse":
                lots = open_lots + rng.randrange(10, 100)
                yield ("reverse", None, lots)
                open_lots = lots - open_lots
            elif kind == "close":
                yield ("close", None, None)
                open_lots = 0
            else:
                yield ("modify", None, None)
    if open_lots:
        yield ("close", None, None)


def lots(hundredths: int) -> str:
    return f"{hundredths // 100}.{hundredths % 100:02d}"


def test_sigkill_at_random_points_loses_nothing_and_doubles_nothing(world):
    venue, bridge, tmp_path = world
    rng = random.Random(int(os.environ.get("COPYBRIDGE_SEED", "11")))
    bridge.start()
    side = position = None
    done = 0
    for action, new_side, amount in script(rng, 40 if SOAK else 14):
        if action == "trade":
            side = new_side
            position = venue.venue("trade", account=MASTER, symbol="EURUSD", side=side, amount=lots(amount))[
                "position_id"]
        elif action == "add":
            venue.venue("trade", account=MASTER, symbol="EURUSD", side=side, amount=lots(amount))
        elif action == "reverse":
            side = "sell" if side == "buy" else "buy"
            venue.venue("trade", account=MASTER, symbol="EURUSD", side=side, amount=lots(amount))
        elif action == "partial":
            venue.venue("close", account=MASTER, position_id=position, amount=lots(amount))
        elif action == "close":
            venue.venue("close", account=MASTER, position_id=position)
            position = None
        else:
            sl, tp = ("1.00000", "1.50000") if side == "buy" else ("1.50000", "1.00000")  # on the right sides
            venue.venue("modify", account=MASTER, position_id=position, sl=sl, tp=tp)
        done += 1
        if rng.random() < 0.45:
            point = rng.choice(("at once", "journalled", "some filled"))
            if point == "journalled":
                bridge.wait(lambda s: s and s["worker"]["journal"]["deals"] >= done, "the deal to be journalled")
            elif point == "some filled":
                before = rng.randrange(1, 6)
                bridge.wait(lambda s: s and s["worker"]["intents"].get("filled", 0) >= before,
                            "some orders to fill")
            bridge.kill()
            bridge.start()

    master_deals = len(venue.venue("deals_since", account=MASTER, after=None))
    bridge.wait(lambda s: s and s["worker"]["idle"] and s["worker"]["journal"]["deals"] == master_deals
                and not any(s["worker"]["intents"].get(k) for k in ("planned", "sent", "unknown")),
                "every deal to be copied", timeout_s=120)
    bridge.stop()
    assert bridge.kills >= (8 if SOAK else 2), "the seed should kill the bridge several times"

    store = Store.open(tmp_path / "bridge.sqlite")
    try:
        filled = store.intents_in_state("filled")
        assert store.intents_in_state("planned", "sent", "unknown") == []
        for login in (*COPY_FOLLOWERS, *MAM_MEMBERS):
            account = f"sim/{VENUE}/{login}"
            assert venue.venue("positions", account=account) == [], f"{account} is not flat"
            trades = [d for d in venue.venue("deals_since", account=account, after=None) if d["kind"] != "balance"]
            mine = [r for r in filled if r.follower_id == account]
            assert len(trades) == len(mine) > 0, f"{account}: {len(trades)} venue trades, {len(mine)} filled"
            for row in mine:
                assert venue.venue("lookup", account=account, key=row.key) is not None
    finally:
        store.close()
