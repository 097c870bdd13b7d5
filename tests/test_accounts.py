"""The account book: follower figures kept between deals, refreshed after fills, never older than its limit."""

from __future__ import annotations

from decimal import Decimal

from twisted.internet import defer

from bridge.worker.accounts import AccountBook
from bridge.worker.gather import gather
from tests.sim_builders import HEDGER, MASTER, NETTER, make_venue


class Ticks:
    def __init__(self) -> None:
        self.now = 0

    def __call__(self) -> int:
        return self.now


def result(d):
    out = []
    d.addBoth(out.append)
    assert out, "the Deferred should have fired"
    if hasattr(out[0], "raiseException"):
        out[0].raiseException()
    return out[0]


def test_figures_are_kept_until_too_old_then_asked_again():
    venue, _ = make_venue()
    ticks = Ticks()
    book = AccountBook({venue.server: venue}, max_age_ns=1_000, clock_ns=ticks)
    master, hedger, netter = result(book.infos(MASTER, [HEDGER, NETTER]))
    assert (master.balance, hedger.balance, netter.balance) == (Decimal(10000), Decimal(5000), Decimal(5000))
    assert book.asked == 3
    venue.deposit(HEDGER, Decimal(500))
    ticks.now = 1_000  # at the limit: still kept
    assert result(book.infos(MASTER, [HEDGER]))[1].balance == Decimal(5000) and book.asked == 3
    ticks.now = 1_001  # older than the limit: asked again, the deposit shows
    assert result(book.infos(MASTER, [HEDGER]))[1].balance == Decimal(5500) and book.asked == 5


def test_a_refresh_after_fills_brings_the_new_figures_without_waiting_for_age():
    venue, _ = make_venue()
    book = AccountBook({venue.server: venue}, max_age_ns=10**12, clock_ns=Ticks())
    result(book.infos(MASTER, [NETTER]))
    venue.deposit(NETTER, Decimal(-1000))
    assert result(book.infos(MASTER, [NETTER]))[1].balance == Decimal(5000)  # kept: young enough
    result(book.refresh([NETTER]))
    assert result(book.infos(MASTER, [NETTER]))[1].balance == Decimal(4000)


def test_an_account_whose_venue_cannot_answer_is_forgotten_not_trusted():
    venue, _ = make_venue()
    book = AccountBook({venue.server: venue}, max_age_ns=10**12, clock_ns=Ticks())
    result(book.infos(MASTER, [HEDGER]))
    venue.disconnected = True
    assert result(book.refresh([HEDGER])) is None  # never fails
    asked = book.asked
    failure = []
    book.infos(MASTER, [HEDGER]).addErrback(failure.append)  # nothing kept for the hedger: asked, and fails
    assert failure and book.asked > asked
    venue.disconnected = False
    assert result(book.infos(MASTER, [HEDGER]))[1].balance == Decimal(5000)


def test_gather_keeps_order_and_reports_the_first_failure():
    later = defer.Deferred()
    d = gather([defer.succeed(1), later, defer.succeed(3)])
    assert not d.called
    later.callback(2)
    assert result(d) == [1, 2, 3]
    boom = gather([defer.succeed(1), defer.fail(ValueError("first")), defer.fail(KeyError("second"))])
    failures = []
    boom.addErrback(failures.append)
    assert failures and failures[0].check(ValueError)
    assert result(gather([])) == []
