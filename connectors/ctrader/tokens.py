"""Access tokens the connector holds, and refreshing them (``RefreshTokenReq``).

Several accounts usually share one token (one cTID grants many accounts). A
refresh revokes the old access token, so the server invalidates every account
authorised with it (``AccountsTokenInvalidatedEvent``); the sessions then
authorise them again with the new token. One refresh per token at a time:
concurrent callers share it.

A token whose lifetime is known (``expiresIn`` of a refresh, or the expiry of
an initial token given to the venue) is refreshed ahead of its expiry, by
``margin_s`` (an hour) or a fifth of its lifetime if that is shorter; a
scheduled refresh that fails (no connection) is tried again ``retry_s`` later.
One whose lifetime is not known is refreshed when the server says it expired
(OA_AUTH_TOKEN_EXPIRED; ``session.py``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ctrader_open_api.messages import OpenApiMessages_pb2 as oa
from twisted.internet import defer

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Token:
    access: str
    refresh: str


class TokenKeeper:
    def __init__(self, tokens: dict[int, Token], clock, margin_s: float = 3600.0, retry_s: float = 10.0) -> None:
        self._by_account = tokens  # ctid -> Token (shared objects: one per grant)
        self.clock = clock
        self.margin_s = margin_s
        self.retry_s = retry_s
        self.stopped = False
        self._refreshing: dict[int, list[defer.Deferred]] = {}  # id(Token) -> callers of the refresh in flight
        self._timers: dict[int, object] = {}
        self.refreshes = 0
        self.send = None  # (message) -> Deferred of the response, set by the pool
        self.on_refreshed: list = []  # (accounts, access, refresh, expires_in_s): e.g. kept for a restart

    def access(self, ctid: int) -> str:
        return self._by_account[ctid].access

    def refresh(self, ctid: int, stale: str | None = None) -> defer.Deferred:
        """Refresh the token of ``ctid`` (unless it is no longer ``stale``); fires with the new access token."""
        token = self._by_account[ctid]
        if stale is not None and token.access != stale:
            return defer.succeed(token.access)  # someone refreshed it already
        d = defer.Deferred()
        waiters = self._refreshing.get(id(token))
        if waiters is not None:
            waiters.append(d)
            return d
        self._refreshing[id(token)] = [d]  # before sending: a send that fails at once must reach d
        self.send(oa.ProtoOARefreshTokenReq(refreshToken=token.refresh)).addCallbacks(
            self._done, self._failed, (ctid, token), None, (token,), None)
        return d

    def _done(self, res, ctid: int, token: Token) -> None:
        token.access, token.refresh = res.accessToken, res.refreshToken
        self.refreshes += 1
        log.info("ctrader: access token refreshed (expires in %s s)", res.expiresIn)
        accounts = sorted(c for c, t in self._by_account.items() if t is token)
        for hook in self.on_refreshed:
            try:
                hook(accounts, token.access, token.refresh, res.expiresIn or None)
            except Exception as exc:  # keeping the tokens must not stop trading: say so loudly
                log.error("ctrader: refreshed tokens for %s could not be kept: %s", accounts, exc)
        if res.expiresIn:
            self.expires_in(ctid, res.expiresIn)
        for d in self._refreshing.pop(id(token), []):
            d.callback(token.access)

    def _failed(self, failure, token: Token) -> None:
        log.error("ctrader: token refresh failed: %s", failure.getErrorMessage())
        for d in self._refreshing.pop(id(token), []):
            d.errback(failure)

    def expires_in(self, ctid: int, seconds: float) -> None:
        """The token of ``ctid`` runs out in ``seconds``: refresh it ahead of that (at once if already late)."""
        self._schedule(ctid, max(seconds - min(self.margin_s, seconds / 5), 0))

    def _schedule(self, ctid: int, delay: float) -> None:
        token = self._by_account[ctid]
        old = self._timers.pop(id(token), None)
        if old is not None and old.active():
            old.cancel()
        if not self.stopped:
            self._timers[id(token)] = self.clock.callLater(delay, self._scheduled, ctid)

    def _scheduled(self, ctid: int) -> None:
        self.refresh(ctid).addErrback(lambda f: self._schedule(ctid, self.retry_s))

    def stop(self) -> None:
        self.stopped = True
        for timer in self._timers.values():
            if timer.active():
                timer.cancel()
