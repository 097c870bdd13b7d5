"""`bridge copy unsubscribe --close-positions`, with `bridge run` SIGKILLed while the closes are at the venue.

Three processes, as in test_pool_processes: a simulated venue (``python -m
connectors.sim.serve``, fills 300 ms late) that outlives everything, the
bridge (``bridge run``) and the `bridge copy` commands. A follower copies two
master positions; it is unsubscribed with ``--close-positions``; the daemon
sends both closes and is killed while they are at the venue, unanswered;
restarted, it looks each up: one the venue filled is not sent again, one that
never left the killed process is sent once. The venue's own deal history shows
each position closed exactly once.
"""

from __future__ import annotations

import pytest

from tests.processes import (
    Client, bridge_cli, count_reaching, read_only_store, settled, sim_world, wait_for,
)

VENUE = "closev"
MASTER = f"sim/{VENUE}/1000"
FOLLOWER = f"sim/{VENUE}/2001"


def cli(config, *args: str) -> str:
    return bridge_cli(*args, "--config", str(config))


@pytest.fixture
def world(tmp_path, request):
    return (*sim_world(tmp_path, request, VENUE, [(1000, 100000), (2001, 20000)],
                       f"[[master]]\naccount = \"{VENUE}/1000\"\n", fill_latency_us=300_000),
            tmp_path / "bridge.sqlite")


def close_orders(store_path) -> list[dict]:
    with read_only_store(store_path) as store:
        return list(store.db.query("SELECT * FROM account_orders WHERE origin = 'unsubscribe' ORDER BY key"))


def venue_closes(venue: Client, account: str) -> list[dict]:
    return [d for d in venue.venue("deals_since", account=account, after=None) if d["kind"] in ("close", "partial-close")]


def test_closes_on_unsubscribe_survive_sigkill_with_the_closes_in_flight(world):
    venue, bridge, config, store_path = world
    bridge.start()
    cli(config, "copy", "subscribe", "--master", f"{VENUE}/1000", "--follower", f"{VENUE}/2001")
    venue.venue("trade", account=MASTER, symbol="EURUSD", side="buy", amount="1.00")
    bridge.wait(settled(1), "the first copy")
    venue.venue("trade", account=MASTER, symbol="GBPUSD", side="sell", amount="0.40")
    bridge.wait(settled(2), "the second copy")
    master = sorted((p["symbol"], p["volume"]) for p in venue.venue("positions", account=MASTER))

    out = cli(config, "copy", "unsubscribe", "--close-positions", "s1")
    assert f"closing 2 copied position(s) of {VENUE}/2001" in out
    wait_for(lambda: [o["state"] for o in close_orders(store_path)] == ["sent", "sent"],
             "both closes to be sent", timeout_s=30)
    bridge.kill()  # the closes are at the venue, executing; their replies will find nobody
    # a close marked sent may still have been in the killed process's socket queue, never on the wire: the
    # venue fills (300 ms late) those it received; recovery looks each up and resends only the others
    reached = count_reaching(lambda: len(venue_closes(venue, FOLLOWER)), 2)
    assert all(o["state"] == "sent" for o in close_orders(store_path))

    status = bridge.start()  # startup is recovery: each close is looked up at the venue; found ones are not resent
    wait_for(lambda: all(o["state"] == "filled" for o in close_orders(store_path)), "the closes to be resolved",
             timeout_s=30)
    status = bridge.wait(lambda s: s and s.get("closes", {}).get("resolved_by_lookup") == reached, "the lookups")
    assert status["closes"]["sent"] == 2 - reached
    assert len(venue_closes(venue, FOLLOWER)) == 2  # each position closed exactly once
    assert venue.venue("positions", account=FOLLOWER) == []
    assert sorted((p["symbol"], p["volume"]) for p in venue.venue("positions", account=MASTER)) == master
    with read_only_store(store_path) as store:
        assert {r["state"] for r in store.db.query("SELECT state FROM links")} == {"closed"}


@pytest.fixture
def slow_world(tmp_path, request):
    return (*sim_world(tmp_path, request, VENUE, [(1000, 100000), (2001, 20000)],
                       f"[[master]]\naccount = \"{VENUE}/1000\"\n", fill_latency_us=2_000_000),
            tmp_path / "bridge.sqlite")


def test_a_copy_in_flight_at_the_removal_is_closed_once_it_fills(slow_world):
    """The follower's copy is at the venue (fills come 2 s late) when it is unsubscribed with
    --close-positions: nothing is linked yet, so the close is planned once the copy fills, and sent once."""
    venue, bridge, config, store_path = slow_world
    bridge.start()
    cli(config, "copy", "subscribe", "--master", f"{VENUE}/1000", "--follower", f"{VENUE}/2001")
    venue.venue("trade", account=MASTER, symbol="EURUSD", side="buy", amount="1.00")
    bridge.wait(lambda s: s and s["worker"]["intents"].get("sent") == 1, "the copy to be at the venue")

    out = cli(config, "copy", "unsubscribe", "--close-positions", "s1")
    assert f"{VENUE}/2001 has no copied position open" in out  # its copy is still in flight
    wait_for(lambda: len(venue_closes(venue, FOLLOWER)) == 1 and venue.venue("positions", account=FOLLOWER) == [],
             "the late close to flatten the follower", timeout_s=30)
    assert len(close_orders(store_path)) == 1
    wait_for(lambda: close_orders(store_path)[0]["state"] == "filled", "the close's result", timeout_s=30)
    with read_only_store(store_path) as store:
        [request] = store.db.query("SELECT state, detail FROM close_requests")
    assert request == {"state": "done", "detail": "1 copy(ies) in flight at the removal; 1 late close(s)"}
    venue.venue("trade", account=MASTER, symbol="EURUSD", side="buy", amount="0.50")  # no longer copied
    bridge.wait(lambda s: s and s["worker"]["journal"]["deals"] == 2 and s["worker"]["idle"], "the next deal")
    trades = [d for d in venue.venue("deals_since", account=FOLLOWER, after=None) if d["kind"] != "balance"]
    assert [d["kind"] for d in trades] == ["open", "close"]  # one copy, one close: nothing doubled
    assert len(venue.venue("positions", account=MASTER)) >= 1  # the master keeps its position
