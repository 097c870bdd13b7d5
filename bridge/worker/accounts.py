"""The account book: each account's balance, equity and kind, as its venue last reported them.

Sizing needs every follower's balance and equity (money.md section 2), and
asking each venue for them while a master deal waits would put one venue round
trip per follower in front of the first order. The book keeps what the venues
answered and follows these rules:

* an account (master or follower) is asked when the book has nothing for it,
  or what it has is older than ``max_age_ns`` (default one second): prices
  move equity between deals even when nothing trades;
* after a deal's orders are done, its master and every account the orders
  traded on are asked again (:meth:`AccountBook.refresh`), *after* the orders
  left: the next deal finds fresh figures without waiting for them. A deal's
  own effect on its master's figures never matters to its sizing: an open
  leaves the balance as it was, and closes are sized by the linked volume;
* a balance operation on a master (a deposit, a withdrawal: it comes as a
  deal) drops the master from the book, so the next deal asks again;
* an account whose venue cannot answer is dropped from the book, so the next
  deal asks again rather than trust old figures.

Balance operations on a follower (a deposit, a withdrawal) are seen within
``max_age_ns``, or at once after its next fill.
"""

from __future__ import annotations

import time
from typing import Callable, Iterable, Mapping

from twisted.internet import defer

from bridge.domain.ids import Login, ServerId
from bridge.worker.gather import gather
from connectors.interface import AccountInfo

DEFAULT_MAX_AGE_NS = 1_000_000_000


class AccountBook:
    def __init__(self, venues: Mapping[ServerId, object], *, max_age_ns: int = DEFAULT_MAX_AGE_NS,
                 clock_ns: Callable[[], int] = time.monotonic_ns) -> None:
        self.venues = venues
        self.max_age_ns = max_age_ns
        self.clock_ns = clock_ns
        self._known: dict[Login, tuple[int, AccountInfo]] = {}
        self.asked = 0  # venue calls made, for tests and status

    def infos(self, master: Login, followers: Iterable[Login]) -> defer.Deferred:
        """Fires with the AccountInfo of ``master`` and of each follower, in order."""
        now = self.clock_ns()
        logins = [master, *followers]
        answers: list = [None] * len(logins)
        asks, where = [], []
        for n, login in enumerate(logins):
            known = self._known.get(login)
            if known is not None and now - known[0] <= self.max_age_ns:
                answers[n] = known[1]
            else:
                asks.append(login)
                where.append(n)
        if not asks:
            return defer.succeed(answers)

        def fill(found: list[AccountInfo]) -> list[AccountInfo]:
            for n, info in zip(where, found):
                answers[n] = info
            return answers

        return self._ask(asks).addCallback(fill)

    def refresh(self, logins: Iterable[Login]) -> defer.Deferred:
        """Ask the venues again for ``logins`` (after they traded); fires when the book holds the answers.
        Never fails: an account that cannot be asked is forgotten instead."""
        logins = list(dict.fromkeys(logins))
        if not logins:
            return defer.succeed(None)
        d = self._ask(logins, forget_failed=True)
        return d.addCallbacks(lambda _: None, lambda _: None)

    def forget(self, login: Login) -> None:
        self._known.pop(login, None)

    def _ask(self, logins: list[Login], forget_failed: bool = False) -> defer.Deferred:
        self.asked += len(logins)
        asked_at = self.clock_ns()
        deferreds = []
        for login in logins:
            try:
                d = self.venues[login.server].account_info(login)
            except Exception:
                d = defer.fail()
            d.addCallback(self._keep, login, asked_at)
            if forget_failed:
                d.addErrback(self._lose, login)
            deferreds.append(d)
        return gather(deferreds)

    def _keep(self, info: AccountInfo, login: Login, asked_at: int) -> AccountInfo:
        self._known[login] = (asked_at, info)
        return info

    def _lose(self, failure, login: Login) -> None:
        self._known.pop(login, None)
        return None
