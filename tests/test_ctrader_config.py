"""A ``platform = "ctrader"`` venue in bridge.toml: typed, strict, secrets from files or the environment."""

from __future__ import annotations

import doctest

import pytest

import bridge.config.secrets
from bridge.daemon.config import parse
from bridge.domain.ids import Login, Platform, ServerId
from bridge.errors import InputError

PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


def doc(tmp_path, venue: dict | None = None, account: dict | None = None) -> dict:
    secret = tmp_path / "secret"
    secret.write_text("s3cret-app\n")
    secret.chmod(0o600)
    (tmp_path / "ca.pem").write_text(PEM)
    v = {"name": "ct", "platform": "ctrader", "host": "demo.ctraderapi.com", "port": 5035, "client_id": "42_app",
         "client_secret_file": str(secret), "ca_file": "ca.pem", "pool_size": 3, "timeout_ms": 2500,
         "account": [{"login": 40123456, "access_token_env": "T_ACCESS", "refresh_token_env": "T_REFRESH",
                      **(account or {})}]}
    v.update(venue or {})
    return {"venue": [v], "master": [{"account": "ct/40123456"}]}


@pytest.fixture(autouse=True)
def tokens(monkeypatch):
    monkeypatch.setenv("T_ACCESS", "access-xyz")
    monkeypatch.setenv("T_REFRESH", "refresh-xyz")


def test_a_ctrader_venue_reads_its_settings_and_secrets(tmp_path):
    config = parse(doc(tmp_path), "bridge.toml", tmp_path)
    (venue,) = config.venues
    c = venue.ctrader
    assert venue.server == ServerId(Platform.CTRADER, "ct")
    assert (c.host, c.port, c.client_id, c.pool_size, c.timeout_ms) == ("demo.ctraderapi.com", 5035, "42_app", 3, 2500)
    assert c.client_secret.reveal() == "s3cret-app" and c.ca_pem == PEM.encode()
    assert c.accounts[0].access_token.reveal() == "access-xyz"
    assert config.masters == (Login(venue.server, 40123456),)
    # a secret never shows in a repr (the resolved configuration may be logged)
    assert "s3cret" not in repr(config) and "access-xyz" not in repr(config)


@pytest.mark.parametrize("venue, account, message", [
    ({"client_secret": "plain"}, None, "client_secret must not be written in the configuration"),
    ({"client_secret_env": "X"}, None, "set exactly one of client_secret_file and client_secret_env"),
    (None, {"access_token_env": "NOT_SET_ANYWHERE"}, "environment variable NOT_SET_ANYWHERE is not set"),
    ({"port": 0}, None, "port must be an integer in 1..65535"),
    ({"seed": 3}, None, "seed is a setting of simulated venues"),
    ({"ca_file": "missing.pem"}, None, "ca_file"),
    ({"pool": 2}, None, "pool"),
    (None, {"login": "40123456"}, "login must be a positive integer"),
])
def test_bad_ctrader_settings_are_one_clear_error(tmp_path, venue, account, message):
    with pytest.raises(InputError, match=message):
        parse(doc(tmp_path, venue, account), "bridge.toml", tmp_path)


def test_a_secret_file_readable_by_others_is_refused(tmp_path):
    data = doc(tmp_path)
    (tmp_path / "secret").chmod(0o644)
    with pytest.raises(InputError, match="open to group and others .mode 0644.; make it the service user.s only: chmod 600"):
        parse(data, "bridge.toml", tmp_path)


def test_a_master_must_be_one_of_the_venues_accounts(tmp_path):
    data = doc(tmp_path)
    data["master"] = [{"account": "ct/999"}]
    with pytest.raises(InputError, match="venue 'ct' has no account 999"):
        parse(data, "bridge.toml", tmp_path)


def test_secrets_doctest():
    assert doctest.testmod(bridge.config.secrets).failed == 0


def test_the_staging_example_checks_once_its_secrets_exist(tmp_path, monkeypatch):
    from pathlib import Path

    from bridge.config.strict import load_toml

    text = Path("config/ctrader-staging.toml").read_text()
    (tmp_path / "sim-ca.pem").write_text(PEM)
    secret = tmp_path / "sim-secret"
    secret.write_text("sim-secret\n")
    secret.chmod(0o600)
    staged = tmp_path / "staging.toml"
    staged.write_text(text.replace("/tmp/sim-ca.pem", str(tmp_path / "sim-ca.pem"))
                      .replace("/tmp/sim-secret", str(secret)))
    for name in ("CT_MASTER_ACCESS", "CT_MASTER_REFRESH", "CT_FOLLOWERS_ACCESS", "CT_FOLLOWERS_REFRESH"):
        monkeypatch.setenv(name, name.lower())
    config = parse(load_toml(staged), str(staged), tmp_path)
    assert [str(m) for m in config.masters] == ["ctrader/ctrader-sim/1001"]
    assert len(config.copies) == 2 and config.venues[0].ctrader.accounts[1].access_token.reveal() == \
        "ct_followers_access"
