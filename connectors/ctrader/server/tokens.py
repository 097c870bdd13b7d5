"""Access tokens: which are valid, which accounts each may use, when they expire, and refreshing them.

A refresh issues a new access token and a new refresh token (drawn from the
server's ``random.Random``), moves the old token's accounts to the new one, and
revokes both old tokens: a second refresh with the same refresh token fails.
The caller (the server) then tells every connection that authorised those
accounts with the old token (``AccountsTokenInvalidatedEvent``).

Expiry: an access token lives ``expires_in`` seconds (from the credentials;
a refreshed one inherits its predecessor's lifetime), counted from its refresh,
or from the server's start for a token of the credentials file. An expired
access token stays known (its refresh token still works: refresh tokens do not
expire) but authorises nothing (``Grant.expired``; the session answers
OA_AUTH_TOKEN_EXPIRED).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from connectors.ctrader.server.credentials import Credentials


@dataclass(slots=True)
class Grant:
    access_token: str
    refresh_token: str
    expires_in: int
    accounts: list[int]
    issued_s: float | None = None  # clock seconds of the refresh that issued it; None: the server's start

    def expired(self, now_s: float, started_s: float) -> bool:
        return now_s >= (started_s if self.issued_s is None else self.issued_s) + self.expires_in


class TokenBook:
    def __init__(self, credentials: Credentials, rng: random.Random) -> None:
        self._rng = rng
        self._by_access: dict[str, Grant] = {}
        self._by_refresh: dict[str, Grant] = {}
        for t in credentials.tokens:
            accounts = [a.ctid_trader_account_id for a in credentials.accounts if a.token == t.access_token]
            grant = Grant(t.access_token, t.refresh_token, t.expires_in, accounts)
            self._by_access[t.access_token] = grant
            self._by_refresh[t.refresh_token] = grant

    def grant(self, access_token: str) -> Grant | None:
        """The grant of a valid access token, or None (unknown or revoked)."""
        return self._by_access.get(access_token)

    def may_use(self, access_token: str, account: int) -> bool:
        grant = self._by_access.get(access_token)
        return grant is not None and account in grant.accounts

    def refresh(self, refresh_token: str, now_s: float) -> tuple[Grant, Grant] | None:
        """``(old, new)`` grants (the new one issued at ``now_s``), or None if the refresh token is unknown or
        already used."""
        old = self._by_refresh.pop(refresh_token, None)
        if old is None:
            return None
        del self._by_access[old.access_token]
        new = Grant(self._draw("at"), self._draw("rt"), old.expires_in, list(old.accounts), now_s)
        self._by_access[new.access_token] = new
        self._by_refresh[new.refresh_token] = new
        return old, new

    def _draw(self, prefix: str) -> str:
        return f"{prefix}-{self._rng.getrandbits(64):016x}"
