"""The local server's credentials file (TOML): the application, its access tokens, and the accounts.

::

    [application]
    client_id = "copybridge-sim"         # ApplicationAuthReq.clientId
    client_secret = "sim-secret"         # ApplicationAuthReq.clientSecret

    [[tokens]]
    access_token = "master-token"        # for GetAccountListByAccessTokenReq and AccountAuthReq
    refresh_token = "master-refresh"     # for RefreshTokenReq
    expires_in = 2628000                 # optional, seconds (default 2,628,000, about 30 days)

    [[accounts]]
    ctid_trader_account_id = 1001        # the Open API account id (not the login the trader sees)
    trader_login = 5001                  # the login shown in cTrader
    token = "master-token"               # the access token that may use this account
    balance = "10000.00"                 # decimal string (or integer), in the account currency
    currency = "USD"                     # optional, default USD (a currency the symbols convert)
    type = "hedged"                      # optional: hedged (default) or netted
    live = false                         # optional, default false (isLive in the account list)
    leverage = 100                       # optional, default 100 (margin = notional / leverage)

Unknown keys, duplicate ids and tokens, and an account naming an unknown token
are errors (:class:`CredentialsError`, one line naming the key).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

DEFAULT_EXPIRES_IN = 2_628_000


class CredentialsError(ValueError):
    """The credentials file cannot be used as written."""


@dataclass(frozen=True, slots=True)
class Application:
    client_id: str
    client_secret: str


@dataclass(frozen=True, slots=True)
class Token:
    access_token: str
    refresh_token: str
    expires_in: int = DEFAULT_EXPIRES_IN


@dataclass(frozen=True, slots=True)
class AccountDef:
    ctid_trader_account_id: int
    trader_login: int
    token: str
    balance: Decimal
    currency: str = "USD"
    hedged: bool = True
    live: bool = False
    leverage: int = 100


@dataclass(frozen=True, slots=True)
class Credentials:
    application: Application
    tokens: tuple[Token, ...]
    accounts: tuple[AccountDef, ...]

    @classmethod
    def load(cls, path: str | Path) -> "Credentials":
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise CredentialsError(f"{path}: cannot read ({exc.strerror})") from None
        try:
            data = tomllib.loads(text, parse_float=Decimal)
        except tomllib.TOMLDecodeError as exc:
            raise CredentialsError(f"{path}: not valid TOML ({exc})") from None
        try:
            return cls.parse(data)
        except CredentialsError as exc:
            raise CredentialsError(f"{path}: {exc}") from None

    @classmethod
    def parse(cls, data: dict) -> "Credentials":
        _keys(data, "the file", {"application", "tokens", "accounts"}, {"application", "tokens", "accounts"})
        app = data["application"]
        _keys(app, "[application]", {"client_id", "client_secret"}, {"client_id", "client_secret"})
        application = Application(_text(app, "client_id", "[application]"), _text(app, "client_secret", "[application]"))
        tokens = tuple(_token(t, i) for i, t in enumerate(_tables(data, "tokens")))
        _unique([t.access_token for t in tokens] + [t.refresh_token for t in tokens], "token")
        names = {t.access_token for t in tokens}
        accounts = tuple(_account(a, i, names) for i, a in enumerate(_tables(data, "accounts")))
        _unique([a.ctid_trader_account_id for a in accounts], "ctid_trader_account_id")
        return cls(application, tokens, accounts)


def _tables(data: dict, name: str) -> list[dict]:
    tables = data[name]
    if not isinstance(tables, list) or not tables or not all(isinstance(t, dict) for t in tables):
        raise CredentialsError(f"[[{name}]] must be one or more tables")
    return tables


def _keys(table: object, where: str, allowed: set[str], required: set[str]) -> None:
    if not isinstance(table, dict):
        raise CredentialsError(f"{where} must be a table")
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise CredentialsError(f"{where}: unknown key {unknown[0]!r}")
    missing = sorted(required - set(table))
    if missing:
        raise CredentialsError(f"{where}: missing key {missing[0]!r}")


def _text(table: dict, key: str, where: str) -> str:
    value = table[key]
    if not isinstance(value, str) or not value.strip():
        raise CredentialsError(f"{where}: {key} must be a non-empty string")
    return value


def _int(table: dict, key: str, where: str, default: int | None = None, minimum: int = 1) -> int:
    value = table.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise CredentialsError(f"{where}: {key} must be an integer >= {minimum}, got {value!r}")
    return value


def _bool(table: dict, key: str, where: str, default: bool) -> bool:
    value = table.get(key, default)
    if not isinstance(value, bool):
        raise CredentialsError(f"{where}: {key} must be true or false, got {value!r}")
    return value


def _token(table: dict, i: int) -> Token:
    where = f"[[tokens]] #{i + 1}"
    _keys(table, where, {"access_token", "refresh_token", "expires_in"}, {"access_token", "refresh_token"})
    return Token(_text(table, "access_token", where), _text(table, "refresh_token", where),
                 _int(table, "expires_in", where, DEFAULT_EXPIRES_IN))


def _account(table: dict, i: int, tokens: set[str]) -> AccountDef:
    where = f"[[accounts]] #{i + 1}"
    _keys(table, where, {"ctid_trader_account_id", "trader_login", "token", "balance", "currency", "type", "live",
                         "leverage"}, {"ctid_trader_account_id", "trader_login", "token", "balance"})
    token = _text(table, "token", where)
    if token not in tokens:
        raise CredentialsError(f"{where}: token {token!r} is not in [[tokens]]")
    raw = table["balance"]
    if isinstance(raw, bool) or not isinstance(raw, (int, str, Decimal)):
        raise CredentialsError(f"{where}: balance must be a decimal string or a number")
    try:
        balance = Decimal(str(raw))
    except InvalidOperation:
        raise CredentialsError(f"{where}: balance {raw!r} is not a number") from None
    if not balance.is_finite() or balance < 0:
        raise CredentialsError(f"{where}: balance must be a non-negative number, got {raw!r}")
    kind = table.get("type", "hedged")
    if kind not in ("hedged", "netted"):
        raise CredentialsError(f"{where}: type must be hedged or netted, got {kind!r}")
    currency = table.get("currency", "USD")
    if not isinstance(currency, str) or not currency.isalpha():
        raise CredentialsError(f"{where}: currency must be a currency code such as USD")
    return AccountDef(_int(table, "ctid_trader_account_id", where), _int(table, "trader_login", where), token,
                      balance, currency.upper(), kind == "hedged", _bool(table, "live", where, False),
                      _int(table, "leverage", where, 100))


def _unique(values: list, what: str) -> None:
    seen = set()
    for v in values:
        if v in seen:
            raise CredentialsError(f"{what} {v!r} appears twice")
        seen.add(v)
