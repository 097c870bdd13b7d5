"""A ``platform = "mt5"`` venue in bridge.toml: one [[venue.account]] per terminal, each with its provider."""

from __future__ import annotations

from decimal import Decimal

import pytest

from bridge.daemon.config import parse
from bridge.errors import InputError


def doc(accounts: list[dict], **venue) -> dict:
    return {"venue": [{"name": "mt", "platform": "mt5", "poll_interval_ms": 3, "server_offset_s": 7200,
                       "account": accounts, **venue}],
            "master": [{"account": f"mt/{accounts[0]['login']}"}]}


def test_each_provider_reads_its_own_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("MT5_PW", "pw-5002")
    config = parse(doc([{"login": 5001, "provider": "mt5linux", "host": "10.0.0.5", "port": 18813},
                        {"login": 5002, "provider": "native", "server": "Broker-Live", "path": "C:/mt5/t.exe",
                         "password_env": "MT5_PW"},
                        {"login": 5003, "provider": "simulator", "balance": Decimal("2500.50"), "hedging": False}]),
                   "bridge.toml", tmp_path)
    m = config.venues[0].mt5
    assert (m.poll_interval_ms, m.server_offset_s) == (3, 7200)
    linux, native, sim = m.accounts
    assert (linux.provider, linux.host, linux.port) == ("mt5linux", "10.0.0.5", 18813)
    assert (native.server, native.path, native.password.reveal()) == ("Broker-Live", "C:/mt5/t.exe", "pw-5002")
    assert (sim.balance, sim.hedging) == (Decimal("2500.50"), False)
    assert "pw-5002" not in repr(config)


@pytest.mark.parametrize("accounts, venue, message", [
    ([{"login": 1, "provider": "wine"}], {}, "provider 'wine' must be one of native, mt5linux, simulator"),
    ([{"login": 1, "provider": "native", "server": "S", "password": "x"}], {},
     "password must not be written in the configuration"),
    ([{"login": 1, "provider": "mt5linux", "balance": 5}], {}, "balance"),
    ([{"login": 1, "provider": "simulator"}], {"host": "x"}, "host is not a setting of platform 'mt5'"),
    ([{"login": 1, "provider": "simulator"}], {"server_offset_s": 99_999}, "within \\+-14 h"),
    ([{"login": 1, "provider": "simulator"}, {"login": 1, "provider": "simulator"}], {}, "listed twice"),
])
def test_bad_mt5_settings_are_one_clear_error(tmp_path, accounts, venue, message):
    with pytest.raises(InputError, match=message):
        parse(doc(accounts, **venue), "bridge.toml", tmp_path)


def test_the_mt5_staging_example_parses_and_its_header_starts_the_terminals_it_lists():
    import re
    from pathlib import Path

    from bridge.daemon.config import load

    path = Path(__file__).resolve().parents[1] / "config" / "mt5-staging.toml"
    config = load(path)  # what `bridge run --config` reads
    [venue] = config.venues
    m = venue.mt5
    assert (str(venue.server), m.server_offset_s, m.poll_interval_ms) == ("mt5/mt5-sim", 7200, 5)
    assert [(a.login, a.provider, a.host, a.port) for a in m.accounts] == [
        (5001, "mt5linux", "127.0.0.1", 18812), (6001, "mt5linux", "127.0.0.1", 18813),
        (6002, "mt5linux", "127.0.0.1", 18814)]
    assert [str(a) for a in config.masters] == ["mt5/mt5-sim/5001"]
    assert [(str(c.follower), c.settings.mode.value, c.settings.multiplier) for c in config.copies] == [
        ("mt5/mt5-sim/6001", "balance", Decimal(1)), ("mt5/mt5-sim/6002", "multiplier", Decimal("0.5"))]
    # the header's commands start exactly these terminals, and its script trades the master
    text = path.read_text()
    started = re.findall(r"^#\s+bridge sim mt5 --port (\d+) --login (\d+) --(hedging|netting)", text, re.M)
    assert [(int(login), int(port)) for port, login, _ in started] == [(a.login, a.port) for a in m.accounts]
    assert [mode for _, _, mode in started] == ["netting", "hedging", "netting"]
    assert "bridge run --config config/mt5-staging.toml" in text
    assert 'rpyc.classic.connect("127.0.0.1", 18812)' in text and "login=5001" in text
