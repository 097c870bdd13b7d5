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
