"""A pool of sessions (connections) for one venue, each account authorised on exactly one of them.

Accounts are dealt round-robin (sorted by id) over ``size`` connections, so a
fan-out to many followers leaves over all of them at once, each under its own
rate budget. One account per connection only: cTrader sends an account's
events to every connection that authorised it, and one copy is enough.
"""

from __future__ import annotations

from connectors.ctrader.session import Session
from connectors.interface import VenueUnavailable


class Pool:
    def __init__(self, accounts: list[int], size: int, make_session) -> None:
        if size < 1:
            raise ValueError("a pool needs at least one connection")
        ordered = sorted(accounts)
        size = min(size, max(len(ordered), 1))
        self.sessions: list[Session] = [make_session(i, ordered[i::size]) for i in range(size)]
        self._by_account = {ctid: s for s in self.sessions for ctid in s.accounts}

    def session_for(self, ctid: int) -> Session:
        session = self._by_account.get(ctid)
        if session is None:
            raise KeyError(f"ctrader: account {ctid} is not configured on this venue")
        if ctid not in session.ready:
            raise VenueUnavailable(f"ctrader: account {ctid} is not authorised now (connecting)")
        return session

    def any_session(self) -> Session:
        for session in self.sessions:
            if session.protocol is not None:
                return session
        raise VenueUnavailable("ctrader: no connection")
