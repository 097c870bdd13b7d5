"""The connector contract (tests/venue_contract.py) against every venue we have.

* ``sim``: the simulated venue in this process;
* ``sim-remote``: the same venue served by ``SimServer`` and reached through ``RemoteVenue`` over
  real tcp://127.0.0.1 sockets (what `python -m connectors.sim.serve` runs);
* ``ctrader``: the cTrader connector against the local cTrader Open API server over TLS on 127.0.0.1;
* ``mt5``: the MT5 connector over simulated terminals (one per account) on one market (tests/mt5_rig.py).
* ``mt4``: the MT4 connector over simulated terminals running the EA, each served on tcp://127.0.0.1
  (tests/mt4_rig.py); MT4 has no netting accounts, so the netting check is skipped there.
* ``dwx``: the MT4 connector for Darwinex's DWX EA over simulated DWX servers on tcp://127.0.0.1
  (tests/mt4_dwx_rig.py); the checks it cannot pass are skipped with the reason (its ``skips``).
* ``mt5-rpyc``: the same connector over the mt5linux provider against real ``bridge sim mt5`` processes
  (rpyc classic on 127.0.0.1), fresh ones for every check (tests/mt5_rpyc_rig.py).

A connector joins by adding a harness here (see the contract's module docstring).
"""

from __future__ import annotations

import pytest
import zmq
from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from connectors.sim.remote import RemoteVenue
from connectors.sim.server import SimServer
from tests.sim_builders import HEDGER, MASTER, NETTER, make_venue
from tests.test_sim_remote import pump as pump_sockets
from tests.venue_contract import CHECKS


class SimHarness:
    """The simulated venue in process: its Deferreds have fired by the time they are returned."""

    def __init__(self) -> None:
        self.sim, self.clock = make_venue()
        self.venue = self.sim
        self.master, self.hedger, self.netter = MASTER, HEDGER, NETTER

    def result(self, d: defer.Deferred):
        box = []
        d.addBoth(box.append)
        assert box, "an in-process sim venue answers at once"
        if isinstance(box[0], Failure):
            box[0].raiseException()
        return box[0]

    def result_or_none(self, d) -> None:
        if isinstance(d, defer.Deferred):
            self.result(d)

    def manual(self, account, symbol, side, lots):
        return self.sim.trade(account, symbol, side, lots)

    def manual_close(self, account, position, lots=None) -> None:
        self.sim.close(account, position, lots)

    def pump(self, until=lambda: True) -> None:
        assert until()

    def close(self) -> None:
        pass


class RemoteSimHarness(SimHarness):
    """The simulated venue behind a SimServer, reached through a RemoteVenue over tcp://127.0.0.1."""

    def __init__(self) -> None:
        super().__init__()
        self.ctx = zmq.Context()
        self.server = SimServer(self.ctx, self.sim, "tcp://127.0.0.1:*")
        self.venue = RemoteVenue(self.ctx, "sim", self.server.endpoint, Clock(), timeout_s=5)

    def result(self, d: defer.Deferred):
        box = []
        d.addBoth(box.append)
        pump_sockets(self.server, self.venue, until=lambda: bool(box))
        if isinstance(box[0], Failure):
            box[0].raiseException()
        return box[0]

    def pump(self, until=lambda: True) -> None:
        pump_sockets(self.server, self.venue, until=until)

    def close(self) -> None:
        self.venue.close()
        self.server.close()
        self.ctx.destroy(linger=0)


def _ctrader():
    from tests.ctrader_venue_rig import CTraderHarness  # the connector against the local cTrader server over TLS
    return CTraderHarness()


def _mt5():
    from tests.mt5_rig import MT5Harness  # the MT5 connector over simulated terminals
    return MT5Harness()


def _mt4():
    from tests.mt4_rig import MT4Harness  # the MT4 connector over simulated EAs on tcp://127.0.0.1
    return MT4Harness()


def _dwx():
    from tests.mt4_dwx_rig import DwxHarness  # the DWX connector over simulated DWX EAs on tcp://127.0.0.1
    return DwxHarness()


def _mt5_rpyc():
    pytest.importorskip("rpyc")
    from tests.mt5_rpyc_rig import MT5RpycHarness  # the MT5 connector over mt5linux against bridge sim mt5
    return MT5RpycHarness()


HARNESSES = {"sim": SimHarness, "sim-remote": RemoteSimHarness, "ctrader": _ctrader, "mt4": _mt4, "dwx": _dwx, "mt5": _mt5,
             "mt5-rpyc": _mt5_rpyc}


@pytest.fixture(params=sorted(HARNESSES))
def harness(request):
    h = HARNESSES[request.param]()
    yield h
    h.close()


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__.removeprefix("check_"))
def test_venue_contract(harness, check):
    reason = getattr(harness, "skips", {}).get(check.__name__.removeprefix("check_"))
    if reason:  # a venue that cannot do this by design says why
        pytest.skip(reason)
    check(harness)
