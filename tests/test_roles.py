"""The daemon's roles as separate OS processes, talking ZeroMQ over TCP.

Four processes: the simulated venue (``python -m connectors.sim.serve``),
``bridge run --role worker``, ``bridge run --role connector`` (both on the
same ``bridge.toml``, every bus and control endpoint ``tcp://127.0.0.1``), and
this test, which trades the master through the venue's own socket, watches
the two roles through their control sockets, and checks the venue's records:

* after every settled step, each copy follower and each MAM member holds one
  position on the master's symbol and side while the master is open, none
  when it is flat, and it is the position (and volume) the bridge's journal
  links to the master's; after opens and adds the MAM group holds exactly the
  master's volume (after a partial close, within a volume step per member:
  each member's close is rounded on its own grid);
* at the end, everything is flat, every master deal is journalled once, no
  intent is unfinished, every follower's trade count at the venue equals the
  orders the journal says were filled, and every filled key is at the venue.

The connector and the worker are each killed with SIGKILL mid-session and
restarted; master trades happen while either is down.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
import zmq

from bridge.daemon import config as bridge_config
from bridge.errors import InputError
from bridge.store import Store
from connectors.sim.wire import id_to_json
from tests.processes import (
    BRIDGE,
    ROOT,
    Client,
    Daemon,
    free_port_endpoint,
    read_only_store,
    start_venue,
    write_accounts,
)

VENUE = "roles"
MASTER = f"sim/{VENUE}/1000"
COPY_FOLLOWERS = (2001, 2002, 2003)
MAM_MEMBERS = (3001, 3002, 3003)
FOLLOWERS = tuple(f"sim/{VENUE}/{login}" for login in (*COPY_FOLLOWERS, *MAM_MEMBERS))
UNFINISHED = ("planned", "sent", "unknown")
SETTLE_TIMEOUT_S = 30.0
FILL_LATENCY_US = 50_000  # the venue fills an order 50 ms after it arrives: a window to kill the worker in


@dataclass
class World:
    venue: Client
    worker: Daemon
    connector: Daemon
    store_path: Path

    # -- the master, traded at the venue --------------------------------------------------

    def trade(self, side: str, lots: str) -> str:
        return self.venue.venue("trade", account=MASTER, symbol="EURUSD", side=side, amount=lots)["position_id"]

    def close(self, position: str, lots: str | None = None) -> None:
        if lots is None:
            self.venue.venue("close", account=MASTER, position_id=position)
        else:
            self.venue.venue("close", account=MASTER, position_id=position, amount=lots)

    def master_deals(self) -> int:
        return len(self.venue.venue("deals_since", account=MASTER, after=None))

    # -- the roles ----------------------------------------------------------------------

    def start(self, first: Daemon, second: Daemon) -> str:
        """Start both roles; returns the connector's epoch once the worker follows its stream."""
        first.start()
        second.start()
        return self.follow()

    def follow(self) -> str:
        epoch = self.connector.status()["connector"]["epoch"]
        self.worker.wait(lambda s: s and s["worker"]["bus"]["epoch"] == epoch,
                         f"the worker to follow the connector's epoch {epoch}")
        return epoch

    def journalled(self) -> int:
        return self.worker.status()["worker"]["journal"]["deals"]

    def settle(self) -> dict:
        """Wait until every master deal at the venue is journalled and fully worked; the worker's status."""
        deals = self.master_deals()
        return self.worker.wait(
            lambda s: s and s["worker"]["idle"] and s["worker"]["journal"]["deals"] == deals
            and not any(s["worker"]["intents"].get(k) for k in UNFINISHED),
            f"all {deals} master deals to be copied", timeout_s=SETTLE_TIMEOUT_S)

    # -- the checks ---------------------------------------------------------------------

    def assert_mirrors_master(self, mam_exact: bool = True) -> None:
        """Each follower holds what the master holds, as the journal links it, and nothing else.

        ``mam_exact``: the MAM group's total equals the master's volume. True
        after opens and adds (a block split across the members); a partial
        close follows each member's own position, rounded on its own volume
        grid, so the total may then differ from the master's by a step per member.
        """
        [master] = self.venue.venue("positions", account=MASTER) or [None]
        mam_volume = 0
        with read_only_store(self.store_path) as store:
            for account in FOLLOWERS:
                positions = self.venue.venue("positions", account=account)
                links = store.open_links(account)
                if master is None:
                    assert positions == [] and links == [], f"{account} is open while the master is flat: {positions}"
                    continue
                assert len(positions) == 1, f"{account} holds {positions} while the master holds {master}"
                [p] = positions
                assert (p["symbol"], p["side"]) == (master["symbol"], master["side"]), (account, p, master)
                assert p["volume"] > 0 and p["key"], (account, p)
                [link] = links  # the journal's view of the follower is the venue's
                assert (id_to_json(link.master_position), id_to_json(link.follower_position), link.side.value,
                        link.volume) == (master["position_id"], p["position_id"], p["side"], p["volume"]), account
                if account.endswith(tuple(f"/{m}" for m in MAM_MEMBERS)):
                    mam_volume += p["volume"]
        if master is not None:
            step = self.venue.venue("symbol_spec", account=MASTER, symbol=master["symbol"])["step_volume"]
            assert abs(mam_volume - master["volume"]) <= (0 if mam_exact else step * len(MAM_MEMBERS)), \
                f"MAM group holds {mam_volume}, the master {master}"

    def finish(self, settled: dict) -> None:
        """Stop both roles cleanly, then check the journal against the venue's records."""
        deals = self.master_deals()
        assert settled["worker"]["journal"]["deals"] == deals
        self.connector.stop()
        self.worker.stop()
        assert (self.connector.process.returncode, self.worker.process.returncode) == (0, 0), \
            f"SIGTERM should stop each role cleanly: see {self.connector.log}, {self.worker.log}"
        store = Store.open(self.store_path)
        try:
            assert store.db["master_deals"].count == deals, "every master deal is journalled exactly once"
            assert store.intents_in_state(*UNFINISHED) == []
            filled = store.intents_in_state("filled")
            for account in FOLLOWERS:
                assert self.venue.venue("positions", account=account) == [], f"{account} is not flat"
                trades = [d for d in self.venue.venue("deals_since", account=account, after=None)
                          if d["kind"] != "balance"]
                mine = [r for r in filled if r.follower_id == account]
                assert len(trades) == len(mine) > 0, f"{account}: {len(trades)} venue trades, {len(mine)} filled"
                for row in mine:
                    assert self.venue.venue("lookup", account=account, key=row.key) is not None, row.key
        finally:
            store.close()


@pytest.fixture
def world(tmp_path, request):
    ctx = zmq.Context()
    request.addfinalizer(lambda: ctx.destroy(0))
    balances = (100000, 8000, 20000, 5000, 45000, 35000, 20000)
    accounts = write_accounts(tmp_path / "accounts.toml", VENUE,
                              list(zip((1000, *COPY_FOLLOWERS, *MAM_MEMBERS), balances)),
                              fill_latency_us=FILL_LATENCY_US, slippage_points=1)
    endpoint, deals, replay = start_venue(accounts, tmp_path / "venue.log", request)
    control, control_connector = free_port_endpoint(), free_port_endpoint()
    copies = "".join(f"[[copy]]\nmaster = \"{VENUE}/1000\"\nfollower = \"{VENUE}/{f}\"\n[copy.settings]\n"
                     f"mode = \"{mode}\"\n" for f, mode in zip(COPY_FOLLOWERS, ("balance", "multiplier", "equity")))
    members = ", ".join(f"{{ account = \"{VENUE}/{m}\" }}" for m in MAM_MEMBERS)
    config = tmp_path / "bridge.toml"  # one file for both roles
    config.write_text(
        f"[store]\npath = \"{tmp_path / 'bridge.sqlite'}\"\n"
        f"[bus]\ndeals = \"{free_port_endpoint()}\"\ndeals_replay = \"{free_port_endpoint()}\"\n"
        f"heartbeat_ms = 50\ncontrol = \"{control}\"\ncontrol_connector = \"{control_connector}\"\n"
        f"[[venue]]\nname = \"{VENUE}\"\nplatform = \"sim\"\nendpoint = \"{endpoint}\"\n"
        f"deals_endpoint = \"{deals}\"\nreplay_endpoint = \"{replay}\"\n"
        f"[[master]]\naccount = \"{VENUE}/1000\"\n{copies}"
        f"[[mam]]\nid = \"alpha\"\nmaster = \"{VENUE}/1000\"\nmethod = \"equity\"\nmembers = [{members}]\n")
    worker = Daemon(config, tmp_path / "worker.log", ctx, control, role="worker")
    connector = Daemon(config, tmp_path / "connector.log", ctx, control_connector, role="connector")
    request.addfinalizer(worker.stop)
    request.addfinalizer(connector.stop)  # finalizers run last-in first-out: the connector stops first
    return World(Client(ctx, endpoint), worker, connector, tmp_path / "bridge.sqlite")


def test_worker_and_connector_processes_copy_the_master_over_tcp(world):
    epoch = world.start(world.worker, world.connector)
    for role, shows, lacks in (("connector", "connector", "worker"), ("worker", "worker", "connector")):
        asked = subprocess.run([BRIDGE, "status", "--config", str(world.worker.config), "--role", role, "--json"],
                               capture_output=True, text=True, timeout=30, cwd=ROOT)
        assert asked.returncode == 0, asked.stderr
        answer = json.loads(asked.stdout)  # each process answers on its own control socket, for its own role
        assert answer["roles"] == [role] and shows in answer and lacks not in answer

    position = world.trade("buy", "1.50")
    world.settle()
    world.assert_mirrors_master()

    world.trade("buy", "0.40")  # an add to the netting position
    world.settle()
    world.assert_mirrors_master()

    world.close(position, "0.70")  # a partial close
    world.venue.venue("modify", account=MASTER, position_id=position, sl="1.00000", tp="1.50000")
    world.settle()
    world.assert_mirrors_master(mam_exact=False)

    world.close(position)
    settled = world.settle()
    world.assert_mirrors_master()
    # every deal came over the one TCP stream of the one connector process (a frame the bus replays over a
    # live one is dropped by the subscriber, so bus duplicates may be > 0; doubled orders are checked in finish)
    bus = settled["worker"]["bus"]
    assert bus["epoch"] == epoch and bus["bad_frames"] == 0 and bus["delivered"] > 0
    assert world.connector.status()["connector"]["published"] >= world.master_deals()
    world.finish(settled)


def test_connector_sigkill_loses_nothing_and_doubles_nothing(world):
    first_epoch = world.start(world.connector, world.worker)  # either role may come up first
    position = world.trade("sell", "1.20")
    world.settle()
    world.assert_mirrors_master()

    # between master trades: the connector dies, the master trades while it is down
    world.connector.kill()
    before = world.journalled()
    world.trade("sell", "0.30")
    world.close(position, "0.50")
    assert world.journalled() == before, "with no connector, nothing can reach the worker"
    world.connector.start()
    second_epoch = world.follow()  # a new publisher epoch: the worker backfills from the venue's history
    assert second_epoch != first_epoch
    world.settle()
    world.assert_mirrors_master(mam_exact=False)

    # right after a master trade, before the connector may have published it
    world.close(position, "0.40")
    world.connector.kill()
    world.connector.start()
    assert world.follow() not in (first_epoch, second_epoch)
    world.settle()
    world.assert_mirrors_master(mam_exact=False)

    world.close(position)
    settled = world.settle()
    world.assert_mirrors_master()
    assert world.connector.kills == 2 and world.worker.process.poll() is None, "the worker ran throughout"
    world.finish(settled)


def test_worker_sigkill_loses_nothing_and_doubles_nothing(world):
    epoch = world.start(world.worker, world.connector)

    published = world.connector.status()["connector"]["published"]
    # right after a master trade, the deal maybe on the wire, maybe journalled, maybe partly sent
    position = world.trade("buy", "1.20")
    world.worker.kill()
    # while the worker is down the connector publishes to nobody: these deals reach the worker only by backfill
    world.trade("buy", "0.50")
    world.close(position, "0.40")
    world.connector.wait(lambda s: s["connector"]["published"] >= published + 3, "the deals to be published")
    world.worker.start()
    assert world.follow() == epoch
    world.settle()
    world.assert_mirrors_master(mam_exact=False)

    # in the middle of a fan-out: the partial close's orders are at the venue, their fills not yet back
    world.close(position, "0.60")
    world.worker.wait(lambda s: s["worker"]["intents"].get("sent", 0) > 0, "orders to be sent")
    world.worker.kill()
    with read_only_store(world.store_path) as store:
        in_flight = store.intents_in_state("sent")
    assert in_flight, "the worker should die with orders in flight"
    world.worker.start()
    world.settle()
    world.assert_mirrors_master(mam_exact=False)

    world.close(position)
    settled = world.settle()
    world.assert_mirrors_master()
    assert world.worker.kills == 2 and world.connector.kills == 0
    with read_only_store(world.store_path) as store:  # resolved by looking the keys up at the venue: filled once
        assert {store.intent(r.key).state.value for r in in_flight} == {"filled"}
    assert world.follow() == epoch, "the connector ran throughout"
    world.finish(settled)


def test_a_role_whose_control_endpoint_is_taken_exits_with_one_line_and_starts_nothing(world):
    """Before the fix, the second process ran its role on without a control socket, and failed at shutdown."""
    world.worker.start()
    clash = subprocess.run([BRIDGE, "run", "--config", str(world.worker.config), "--role", "worker"],
                           capture_output=True, text=True, timeout=30, cwd=ROOT)
    assert clash.returncode == 1, clash.stderr
    # the daemon's log goes to stderr too (the resolved configuration, logged first): the error is one line, last
    *log_lines, line = clash.stderr.strip().splitlines()
    assert "Traceback" not in clash.stderr and not any(x.startswith("bridge: error") for x in log_lines)
    assert line.startswith(f"bridge: error: cannot start role worker: control socket {world.worker.control}: ")
    assert world.worker.status()["roles"] == ["worker"], "the first process answers on"


def test_control_connector_is_the_control_socket_of_a_connector_run_alone(tmp_path):
    venue = "[[venue]]\nname='v'\nplatform='sim'\nendpoint='tcp://127.0.0.1:5701'\n"
    path = tmp_path / "bridge.toml"
    path.write_text("[bus]\ncontrol='tcp://127.0.0.1:5609'\ncontrol_connector='tcp://127.0.0.1:5610'\n" + venue)
    config = bridge_config.load(path)
    assert [config.control_for(role) for role in ("all", "worker", "connector")] == [
        "tcp://127.0.0.1:5609", "tcp://127.0.0.1:5609", "tcp://127.0.0.1:5610"]
    path.write_text("[bus]\ncontrol='tcp://127.0.0.1:5609'\n" + venue)
    assert bridge_config.load(path).control_for("connector") == "tcp://127.0.0.1:5609"  # as before the key
    path.write_text("[bus]\ncontrol='tcp://127.0.0.1:5609'\ncontrol_connector='tcp://127.0.0.1:5609'\n" + venue)
    with pytest.raises(InputError, match="control_connector must differ from control"):
        bridge_config.load(path)
