"""``provider = "dwx"`` on a ``platform = "mt4"`` venue: parsed strictly, built as a DwxVenue that trades
through a simulated DWX server on 127.0.0.1."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from allocation.leg import Action
from bridge.daemon.config import MT4Account, parse
from bridge.daemon.venues import build_venue
from bridge.domain.deal import Side
from bridge.errors import InputError
from connectors.interface import OrderRequest, OrderStatus, idempotency_key
from connectors.mt4.dwx.simulator import bind_triple
from connectors.mt4.dwx.venue import DwxVenue
from tests.mt4_dwx_rig import DwxRig


def config(accounts: list[dict], **venue) -> dict:
    return {"store": {"path": "bridge.sqlite"}, "bus": {"deals": "inproc://d", "deals_replay": "inproc://r"},
            "venue": [{"name": "dwx", "platform": "mt4", **venue, "account": accounts}]}


def test_a_dwx_account_gets_its_replies_endpoint_from_the_port_and_a_poll_period():
    c = parse(config([{"login": 4001, "provider": "dwx", "endpoint": "tcp://127.0.0.5:32768"},
                      {"login": 4002, "provider": "dwx", "endpoint": "tcp://127.0.0.6:40000",
                       "replies_endpoint": "tcp://127.0.0.6:40100", "poll_ms": 10}]), "bridge.toml", Path("/tmp"))
    (venue,) = c.venues
    assert venue.mt4.accounts == (MT4Account(4001, "dwx", "tcp://127.0.0.5:32768", "tcp://127.0.0.5:32769"),
                                  MT4Account(4002, "dwx", "tcp://127.0.0.6:40000", "tcp://127.0.0.6:40100",
                                             poll_ms=10))


@pytest.mark.parametrize("accounts, message", [
    ([{"login": 1, "provider": "dwx"}], "missing key 'endpoint'"),
    ([{"login": 1, "provider": "dwx", "endpoint": "tcp://h:65535"}], "set replies_endpoint"),
    ([{"login": 1, "provider": "dwx", "endpoint": "tcp://h:1", "poll_ms": 0}], "poll_ms must be a positive integer"),
    ([{"login": 1, "provider": "dwx", "endpoint": "tcp://h:1", "poll_ms": "fast"}], "poll_ms must be"),
    ([{"login": 1, "provider": "dwx", "endpoint": "tcp://h:1", "events_endpoint": "tcp://h:9"}], "events_endpoint"),
    ([{"login": 1, "provider": "ea", "endpoint": "tcp://h:1", "poll_ms": 10}], "poll_ms"),
    ([{"login": 1, "provider": "dwx", "endpoint": "tcp://127.0.0.1:1"}, {"login": 2, "provider": "simulator"}],
     "go in a [[venue]] of their own"),
])
def test_bad_dwx_settings_name_the_key_in_one_line(accounts, message):
    with pytest.raises(InputError) as caught:
        parse(config(accounts), "bridge.toml", Path("/tmp"))
    text = str(caught.value)
    assert message in text and "bridge.toml" in text and "\n" not in text


def test_the_built_venue_trades_through_a_dwx_server_on_loopback():
    rig = DwxRig((4001,), start=False)  # its clock, market and pump; the venue is the one the config builds
    rig.venue.stop()
    try:
        server = bind_triple(rig.terminals[4001], rig.ctx, "127.0.0.1", 0, reactor=rig.clock, max_orders=10,
                             max_lot_size="10")
        server.start()
        rig.servers[4001] = server
        c = parse(config([{"login": 4001, "provider": "dwx", "endpoint": server.command_endpoint, "poll_ms": 20}],
                         server_offset_s=7200), "bridge.toml", Path("/tmp"))
        venue = build_venue(c.venues[0], rig.clock, rig.ctx)
        assert isinstance(venue, DwxVenue) and venue.poll_s == {4001: 0.02}
        rig.venue = venue
        rig.result(venue.start())
        key = idempotency_key("config", "f", 0)
        login = venue.login(4001)
        filled = rig.result(venue.execute(OrderRequest(key, login, Action.OPEN, "EURUSD", Side.SELL, 5_000_000)))
        assert filled.status is OrderStatus.FILLED and filled.volume == 5_000_000
        [order] = rig.terminals[4001].open_orders()
        assert (order.comment, order.lots, order.type) == (key, Decimal("0.50"), 1)
    finally:
        rig.close()

