"""A ``platform = "mt4"`` venue in bridge.toml: typed and strict (the EA's endpoints, or simulated terminals)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from bridge.daemon.config import MT4Account, parse
from bridge.errors import InputError


def config(accounts: list[dict], **venue) -> dict:
    return {"store": {"path": "bridge.sqlite"}, "bus": {"deals": "inproc://d", "deals_replay": "inproc://r"},
            "venue": [{"name": "m4", "platform": "mt4", **venue, "account": accounts}]}


def test_an_ea_account_gets_its_events_endpoint_from_the_command_port_and_a_simulated_one_its_balance():
    c = parse(config([{"login": 4001, "endpoint": "tcp://127.0.0.5:32780"},
                      {"login": 4002, "endpoint": "tcp://127.0.0.5:40000", "events_endpoint": "tcp://127.0.0.5:40100"},
                      {"login": 4003, "provider": "simulator", "balance": 2500}], server_offset_s=7200,
                     timeout_ms=3000), "bridge.toml", Path("/tmp"))
    (venue,) = c.venues
    assert venue.logins() == {4001, 4002, 4003}
    assert (venue.mt4.server_offset_s, venue.mt4.timeout_ms) == (7200, 3000)
    assert venue.mt4.accounts == (MT4Account(4001, "ea", "tcp://127.0.0.5:32780", "tcp://127.0.0.5:32781"),
                                  MT4Account(4002, "ea", "tcp://127.0.0.5:40000", "tcp://127.0.0.5:40100"),
                                  MT4Account(4003, "simulator", balance=Decimal(2500)))


@pytest.mark.parametrize("accounts, venue, message", [
    ([{"login": 1}], {}, "missing key 'endpoint'"),
    ([{"login": 1, "endpoint": "ipc:///tmp/ea"}], {}, "endpoint must be tcp://HOST:PORT"),
    ([{"login": 1, "endpoint": "tcp://host:0"}], {}, "endpoint must be tcp://HOST:PORT"),
    ([{"login": 1, "endpoint": "tcp://host:65535"}], {}, "set events_endpoint"),
    ([{"login": 1, "provider": "bogus", "endpoint": "tcp://h:1"}], {},
     "provider 'bogus' must be one of ea, dwx, simulator"),
    ([{"login": 1, "provider": "simulator"}, {"login": 1, "provider": "simulator"}], {}, "account 1 is listed twice"),
    ([{"login": 0, "provider": "simulator"}], {}, "login must be a positive integer"),
    ([{"login": 1, "provider": "simulator", "colour": "red"}], {}, "colour"),
    ([], {}, "needs at least one [[venue.account]]"),
    ([{"login": 1, "provider": "simulator"}], {"poll_interval_ms": 5}, "poll_interval_ms is not a setting of platform 'mt4'"),
    ([{"login": 1, "provider": "simulator"}], {"server_offset_s": 90_000}, "server_offset_s must be whole seconds"),
])
def test_bad_mt4_settings_name_the_key(accounts, venue, message):
    with pytest.raises(InputError) as caught:
        parse(config(accounts, **venue), "bridge.toml", Path("/tmp"))
    assert message in str(caught.value) and "bridge.toml" in str(caught.value)


def test_the_mt4_staging_example_loads_and_its_header_starts_the_terminals_it_lists():
    import ast
    import re

    from bridge.daemon.config import load

    path = Path(__file__).resolve().parents[1] / "config" / "mt4-staging.toml"
    config = load(path)  # what `bridge run --config` reads
    [venue] = config.venues
    m = venue.mt4
    assert (str(venue.server), m.server_offset_s, m.timeout_ms) == ("mt4/mt4-sim", 7200, 10_000)
    assert [(a.login, a.provider, a.endpoint, a.events_endpoint) for a in m.accounts] == [
        (4001, "ea", "tcp://127.0.0.1:32780", "tcp://127.0.0.1:32781"),
        (4002, "ea", "tcp://127.0.0.1:32782", "tcp://127.0.0.1:32783"),
        (4003, "ea", "tcp://127.0.0.1:32784", "tcp://127.0.0.1:32785")]
    assert [str(a) for a in config.masters] == ["mt4/mt4-sim/4001"]
    assert [(str(c.follower), c.settings.mode.value, c.settings.multiplier) for c in config.copies] == [
        ("mt4/mt4-sim/4002", "balance", Decimal(1)), ("mt4/mt4-sim/4003", "multiplier", Decimal("0.5"))]
    # the header's commands start exactly these terminals, and its script (valid Python) trades the master
    text = path.read_text()
    started = re.findall(r"^#\s+bridge sim mt4 --endpoint (tcp://127\.0\.0\.1:\d+) --login (\d+)", text, re.M)
    assert [(int(login), endpoint) for endpoint, login in started] == [(a.login, a.endpoint) for a in m.accounts]
    assert "bridge run --config config/mt4-staging.toml" in text
    script = [line[4:] for line in text.splitlines() if line.startswith("#   ") and "bridge " not in line]
    ast.parse("\n".join(script))
    assert 's.connect("tcp://127.0.0.1:32780")' in text and '"MANUAL_OPEN"' in text
