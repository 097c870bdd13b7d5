"""PAMM ledger: money.md section 4 worked examples, fees, HWM, loss sharing, protection, bad requests."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal as D

import pytest

import allocation.pamm as pamm
from allocation.pamm import LossSharing, PammError, PoolSettings
from bridge.domain.deal import Side
from bridge.domain.volume import SymbolSpec

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


def hours(n: float) -> datetime:
    return T0 + timedelta(hours=n)


class Sim:
    """A pool driven step by step, keeping every entry (for rebuild and statements)."""

    def __init__(self, **settings) -> None:
        self.pool = pamm.open_pool(PoolSettings(manager=settings.pop("manager", "M"), **settings), T0)
        self.entries: list = []
        self.clock = 0.0

    def _t(self) -> datetime:
        self.clock += 1
        return hours(self.clock)

    def _keep(self, step):
        self.pool = step.pool
        self.entries.extend(step.entries)
        return step

    def deposit(self, who, amount, **kw):
        return self._keep(pamm.request_deposit(self.pool, who, D(amount), self._t(), **kw))

    def withdraw(self, who, amount=None):
        return self._keep(pamm.request_withdrawal(self.pool, who, None if amount is None else D(amount), self._t()))

    def equity(self, value):
        return self._keep(pamm.set_equity(self.pool, D(value), self._t()))

    def pnl(self, value):
        return self._keep(pamm.apply_pnl(self.pool, D(value), self._t()))

    def roll(self, at: datetime | None = None):
        result = pamm.rollover(self.pool, at or self._t())
        if at is not None:
            self.clock = (at - T0) / timedelta(hours=1)
        self._keep(result)
        return result.report

    def h(self, who):
        return self.pool.holder(who)


# -- money.md section 4 worked examples ------------------------------------------

def test_units_and_nav_example():
    """10,000 at NAV 1.00 buys 10,000 units; after NAV 1.05 a new 10,000 buys 9,523.81 units."""
    s = Sim()
    s.deposit("A", "10000")
    r = s.roll()
    assert r.nav == D("1.00") and s.h("A").units == D("10000")
    s.equity("10500")
    s.deposit("B", "10000")
    r = s.roll()
    assert r.dealing_nav == D("1.05")
    assert s.h("B").units == D("9523.80952380")  # 8 places, rounded down
    assert s.h("B").units.quantize(D("0.01")) == D("9523.81")
    assert s.h("B").equity == D("10000.00") and s.h("A").equity == D("10500.00")
    assert r.equity == D("20500.00")


def test_reallocate_example():
    """Investor 1 has 1,000; 1 lot EURUSD; equity 1,450; investor 2 deposits 550 -> 0.73 / 0.27."""
    s = Sim()
    s.deposit("1", "1000")
    s.roll()
    s.equity("1450")  # 1 lot bought at 1.1555, marked at 1.1600: +450
    s.deposit("2", "550")
    s.roll()
    spec = SymbolSpec.from_lots("EURUSD", contract_size=D(100000), min_lots=D("0.01"), max_lots=D(100),
                                step_lots=D("0.01"))
    split = pamm.resplit_position(s.pool, spec.to_volume(D(1)), spec, Side.BUY)
    assert {leg.account: leg.lots for leg in split.legs} == {"1": D("0.73"), "2": D("0.27")}


# -- fees and high-water marks ------------------------------------------------

def test_performance_fee_only_above_own_hwm():
    s = Sim(performance_fee=D(20))
    s.deposit("A", "1000")
    s.roll()
    s.equity("1200")
    r = s.roll()
    a = s.h("A")
    assert a.fees_paid == D("40.00") and a.equity == D("1160.00") and a.hwm == D("1160.00")
    assert s.h("M").equity == D("40.00") and s.h("M").fees_received == D("40.00")
    assert r.nav == D("1.2")  # fees move units, NAV unchanged
    s.equity("1000")
    s.roll()
    s.equity("1100")
    s.roll()
    assert s.h("A").fees_paid == D("40.00")  # below the HWM: nothing
    s.equity("1300")  # A's units are worth 1300 * 1160/1200 = 1256.67 > 1160
    s.roll()
    assert s.h("A").fees_paid == D("40.00") + D("19.33")  # 20% of 96.67, down to the cent


def test_late_joiner_does_not_ride_a_recovery_free():
    s = Sim(performance_fee=D(10))
    s.deposit("A", "1000")
    s.roll()
    s.equity("800")
    s.deposit("B", "800")
    s.roll()  # B buys at NAV 0.8
    s.pnl("400")  # NAV back to 1.00
    s.roll()
    assert s.h("A").fees_paid == 0  # A is only back to its mark
    assert s.h("B").fees_paid == D("20.00")  # B made 200 above its own mark


def test_management_fee_accrues_by_elapsed_time():
    s = Sim(management_fee=D(2))
    s.deposit("A", "36500")
    s.roll(hours(1))
    s.roll(hours(1) + timedelta(days=1))
    assert s.h("A").fees_paid == D("2.00")  # 36500 x 2% / 365


def test_entry_and_exit_fees():
    s = Sim(entry_fee=D(1), exit_fee=D("0.5"))
    s.deposit("A", "1000")
    s.roll()
    assert s.h("A").equity == D("990.00") and s.h("A").fees_paid == D("10.00") and s.h("A").hwm == D("990.00")
    s.withdraw("A", "500")
    r = s.roll()
    assert s.h("A").equity == D("490.00")
    assert s.h("A").fees_paid == D("12.50")
    assert r.equity == D("502.50")  # paid out 497.50
    withdrawal = [e for e in s.entries if e.kind == "withdrawal"][-1]
    assert withdrawal.amount == D("497.50")


def test_performance_fee_on_withdrawal_between_fee_rollovers():
    s = Sim(performance_fee=D(20), performance_every=10)
    s.deposit("A", "1000")
    s.roll()
    s.equity("1200")
    s.withdraw("A", "600")  # half of the equity: half of the 200 profit crystallises
    s.roll()
    assert s.h("A").fees_paid == D("20.00")
    assert s.h("A").hwm == D("500.00")
    assert s.h("A").equity == D("600.00")


# -- loss sharing -------------------------------------------------------------------

def first_loss_pool(**kw) -> Sim:
    s = Sim(loss_sharing=LossSharing.MANAGER_FIRST_LOSS, **kw)
    s.deposit("M", "1000")
    s.deposit("A", "4000")
    s.deposit("B", "5000")
    s.roll()
    return s


def test_pro_rata_shares_a_loss_by_units():
    s = Sim()
    s.deposit("M", "1000")
    s.deposit("A", "9000")
    s.roll()
    s.pnl("-500")
    s.roll()
    assert s.h("M").equity == D("950.00") and s.h("A").equity == D("8550.00")


def test_first_loss_manager_absorbs_then_gains_repay_him():
    s = first_loss_pool()
    s.pnl("-600")
    r = s.roll()
    assert (s.h("M").equity, s.h("A").equity, s.h("B").equity) == (D("400.00"), D("4000.00"), D("5000.00"))
    assert s.h("A").covered == D("240.00") and s.h("B").covered == D("300.00")
    assert r.halted is None
    s.pnl("300")  # gains first repay the cover
    s.roll()
    assert (s.h("M").equity, s.h("A").equity, s.h("B").equity) == (D("700.00"), D("4000.00"), D("5000.00"))
    assert s.h("A").covered == D("112.34") and s.h("B").covered == D("140.43")
    # +300 at 9,700: M's units earn 21.65; A's 123.71 repays its 112.34 and keeps 11.37; B's 154.64 -> 14.21
    s.pnl("300")
    s.roll()
    assert (s.h("M").equity, s.h("A").equity, s.h("B").equity) == (D("974.42"), D("4011.37"), D("5014.21"))
    assert s.h("A").covered == 0 and s.h("B").covered == 0
    s.pnl("1000")  # no cover left: pro-rata again (x 1.1 each)
    s.roll()
    assert (s.h("M").equity, s.h("A").equity, s.h("B").equity) == (D("1071.86"), D("4412.51"), D("5515.63"))


def test_first_loss_tranche_used_up_halts_the_pool():
    s = first_loss_pool()
    s.pnl("-1500")
    r = s.roll()
    assert s.h("M").units == 0 and s.h("M").equity == 0
    assert s.h("A").equity + s.h("B").equity == D("8500.00")
    assert s.h("A").equity == D("3777.78") and s.h("B").equity == D("4722.22")
    assert r.halted == "manager's tranche used up" and r.close_all_positions
    with pytest.raises(PammError, match="halted"):
        s.deposit("C", "100")
    s.withdraw("A")  # withdrawals still work
    r = s.roll()
    assert s.h("A").units == 0 and not r.close_all_positions


def test_drawdown_stop_halts_pro_rata_pool():
    s = Sim(stop_drawdown=D(20))
    s.deposit("A", "1000")
    s.roll()
    s.equity("1250")
    s.roll()
    s.equity("1001")
    assert s.roll().halted is None
    s.equity("1000")  # 20% below the peak NAV 1.25
    r = s.roll()
    assert r.halted and r.close_all_positions and "close all positions" in s.entries[-2].detail


# -- protection and bad requests: clear error, nothing changed ----------------------

@pytest.mark.parametrize("call, message", [
    (lambda s: s.withdraw("A", "1000.01"), "holds 1000.00"),
    (lambda s: s.withdraw("A", "-5"), "must be positive"),
    (lambda s: s.deposit("A", "-5"), "must be positive"),
    (lambda s: s.deposit("A", "0"), "must be positive"),
    (lambda s: s.deposit("A", "1.001"), "more than 2 decimal places"),
    (lambda s: s.withdraw("Z", "1"), "unknown investor 'Z'"),
    (lambda s: s.withdraw("A", "950"), "below the minimum remaining balance"),
    (lambda s: s.equity("-1"), "below zero"),
])
def test_bad_requests_change_nothing(call, message):
    s = Sim(minimum_remaining=D(100))
    s.deposit("A", "1000")
    s.roll()
    before, n = s.pool, len(s.entries)
    with pytest.raises(PammError, match=message):
        call(s)
    assert s.pool is before and len(s.entries) == n


def test_lockup_and_full_withdrawal():
    s = Sim(lockup_seconds=86400, minimum_remaining=D(100))
    s.deposit("A", "1000")
    s.roll(hours(2))
    with pytest.raises(PammError, match="lock-up until 2024-01-02T02:00:00"):
        s.withdraw("A", "10")
    s.clock = 27
    s.withdraw("A")  # everything is allowed despite the minimum remaining
    s.roll()
    assert s.h("A").units == 0 and s.pool.equity == 0


def test_freeze_window_defers_requests():
    s = Sim(freeze_seconds=3600)
    s.deposit("A", "100")  # at hour 1
    r = s.roll(hours(1.5))
    assert r.units == 0 and len(s.pool.pending) == 1
    r = s.roll(hours(3))
    assert r.units == D("100") and not s.pool.pending


def test_manager_minimum_blocks_new_investors():
    s = Sim(manager_minimum=D(500))
    with pytest.raises(PammError, match="takes no new investors"):
        s.deposit("A", "100")
    s.deposit("M", "500")
    s.deposit("A", "100")  # queued with the manager's; checked again at the rollover
    r = s.roll()
    assert r.units == D("600") and not r.rejected
    with pytest.raises(PammError, match="manager must keep at least 500"):
        s.withdraw("M", "1")


def test_auto_close_withdraws_the_investor():
    s = Sim()
    s.deposit("A", "1000", auto_close_below=D(900))
    s.deposit("B", "1000")
    s.roll()
    s.equity("1790")
    s.roll()
    assert s.h("A").units == 0 and s.h("B").equity == D("895.00")
    assert any(e.kind == "auto-close" and e.holder == "A" for e in s.entries)


def test_request_that_no_longer_fits_is_rejected_at_rollover():
    s = Sim()
    s.deposit("A", "1000")
    s.roll()
    s.withdraw("A", "900")
    s.equity("800")
    r = s.roll()
    assert r.rejected and "asked for 900" in r.rejected[0]
    assert s.h("A").equity == D("800.00")


def test_rollover_is_atomic_on_a_conservation_failure(monkeypatch):
    import sys
    module = sys.modules["allocation.pamm.rollover"]
    s = Sim()
    s.deposit("A", "1000")
    pool = s.pool
    monkeypatch.setattr(module, "split_equity", lambda equity, holders: {h.id: D("0.00") for h in holders})
    with pytest.raises(pamm.ConservationError, match="not applied|!="):
        pamm.rollover(pool, hours(5))
    assert pool.pending and pool.rollovers == 0 and pool.units == 0


def test_time_never_goes_back():
    s = Sim()
    s.deposit("A", "1")
    with pytest.raises(PammError, match="backwards"):
        pamm.rollover(s.pool, T0)


# -- replay and privacy --------------------------------------------------------------

def test_rebuild_from_entries_gives_the_same_ledger():
    s = first_loss_pool(performance_fee=D(20), management_fee=D(2), entry_fee=D(1), exit_fee=D(1))
    s.pnl("-700")
    s.roll()
    s.pnl("1500")
    s.withdraw("A", "1000")
    s.roll()
    s.deposit("C", "777.77")
    s.roll()
    rebuilt = pamm.rebuild(s.pool.settings, T0, s.entries)
    from dataclasses import replace
    assert replace(rebuilt, clock=s.pool.clock, next_request=s.pool.next_request) == s.pool


def test_statement_shows_only_the_investors_own_money():
    s = Sim(performance_fee=D(20))
    s.deposit("A", "1000")
    s.deposit("B", "3000")
    s.roll()
    s.equity("4400")
    s.roll()
    st = pamm.investor_statement(s.pool, s.entries, "A")
    assert st["equity"] == "1080.00" and st["fees_paid"] == "20.00" and st["return"] == "80.00"
    assert {line["type"] for line in st["lines"]} <= {"deposit", "withdrawal", "fee", "rejected"}
    text = repr(st)
    assert "B" not in text.replace("HWM", "") and "pnl" not in text and "position" not in text
    with pytest.raises(PammError, match="unknown investor"):
        pamm.investor_statement(s.pool, s.entries, "Z")
