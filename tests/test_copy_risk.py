"""Risk limits and stop-outs (money.md section 2, allocation/copy/risk.py)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from allocation.copy.risk import StopOut, breached, drawdown, period_start
from allocation.copy.settings import Basis, CopySettings, Period, RiskLimit, resolve

D = Decimal
UTC = timezone.utc


def limit(period: Period = Period.DAY, basis: Basis = Basis.EQUITY, dd: str = "0.25", close: bool = False) -> RiskLimit:
    return RiskLimit(period, basis, D(dd), close)


def current(balance: str = "10000", equity: str = "10000") -> dict[Basis, Decimal]:
    return {Basis.BALANCE: D(balance), Basis.EQUITY: D(equity)}


# -- period_start -------------------------------------------------------------------------

def test_day_starts_at_utc_midnight():
    now = datetime(2024, 3, 6, 15, 42, 7, 123456, tzinfo=UTC)
    assert period_start(Period.DAY, now) == datetime(2024, 3, 6, tzinfo=UTC)


def test_week_starts_on_monday():
    # 2024-03-06 is a Wednesday; the Monday is 2024-03-04
    assert period_start(Period.WEEK, datetime(2024, 3, 6, 15, 0, tzinfo=UTC)) == datetime(2024, 3, 4, tzinfo=UTC)
    # Monday itself
    assert period_start(Period.WEEK, datetime(2024, 3, 4, 0, 0, tzinfo=UTC)) == datetime(2024, 3, 4, tzinfo=UTC)
    # Sunday belongs to the week that began six days before
    assert period_start(Period.WEEK, datetime(2024, 3, 10, 23, 59, tzinfo=UTC)) == datetime(2024, 3, 4, tzinfo=UTC)


def test_week_across_a_month_and_year_boundary():
    # 2025-01-01 is a Wednesday; its week began on Monday 2024-12-30
    assert period_start(Period.WEEK, datetime(2025, 1, 1, 9, 0, tzinfo=UTC)) == datetime(2024, 12, 30, tzinfo=UTC)


def test_month_starts_on_the_first():
    assert period_start(Period.MONTH, datetime(2024, 2, 29, 23, 59, tzinfo=UTC)) == datetime(2024, 2, 1, tzinfo=UTC)
    assert period_start(Period.MONTH, datetime(2024, 3, 1, 0, 0, tzinfo=UTC)) == datetime(2024, 3, 1, tzinfo=UTC)


def test_lifetime_has_no_start():
    assert period_start(Period.LIFETIME, datetime(2024, 3, 6, tzinfo=UTC)) is None


def test_non_utc_input_is_measured_in_utc():
    # 01:30 at +03:00 on Monday 2024-03-04 is 22:30 UTC on Sunday 2024-03-03
    now = datetime(2024, 3, 4, 1, 30, tzinfo=timezone(timedelta(hours=3)))
    day = period_start(Period.DAY, now)
    assert day == datetime(2024, 3, 3, tzinfo=UTC)
    assert day.utcoffset() == timedelta(0)
    assert period_start(Period.WEEK, now) == datetime(2024, 2, 26, tzinfo=UTC)
    # 02:00 at +05:00 on 1 April is still March in UTC
    april = datetime(2024, 4, 1, 2, 0, tzinfo=timezone(timedelta(hours=5)))
    assert period_start(Period.MONTH, april) == datetime(2024, 3, 1, tzinfo=UTC)


def test_negative_offset_moves_forward_into_the_next_utc_day():
    # 21:00 at -05:00 on 2024-03-31 is 02:00 UTC on 1 April
    now = datetime(2024, 3, 31, 21, 0, tzinfo=timezone(timedelta(hours=-5)))
    assert period_start(Period.DAY, now) == datetime(2024, 4, 1, tzinfo=UTC)
    assert period_start(Period.MONTH, now) == datetime(2024, 4, 1, tzinfo=UTC)


@pytest.mark.parametrize("period", list(Period))
def test_naive_time_is_refused(period):
    with pytest.raises(ValueError):
        period_start(period, datetime(2024, 3, 6, 12, 0))


@pytest.mark.parametrize("period", [Period.DAY, Period.WEEK, Period.MONTH])
def test_period_start_is_not_after_now(period):
    now = datetime(2024, 7, 17, 8, 5, tzinfo=timezone(timedelta(hours=-9)))
    start = period_start(period, now)
    assert start <= now
    assert start.hour == start.minute == start.second == start.microsecond == 0


# -- drawdown -----------------------------------------------------------------------------

def test_drawdown_from_peak():
    assert drawdown(D("10000"), D("7500")) == D("0.25")
    assert drawdown(D("8000"), D("7000")) == D("0.125")


def test_no_drawdown_at_or_above_peak():
    assert drawdown(D("10000"), D("10000")) == D(0)
    assert drawdown(D("10000"), D("12000")) == D(0)


def test_drawdown_with_no_positive_peak_is_zero():
    assert drawdown(D("0"), D("-50")) == D(0)
    assert drawdown(D("-10"), D("-50")) == D(0)


def test_drawdown_to_zero_and_below():
    assert drawdown(D("10000"), D("0")) == D(1)
    assert drawdown(D("10000"), D("-1000")) == D("1.1")


# -- breached -----------------------------------------------------------------------------

def test_above_the_limit_is_a_stop_out_with_its_reason():
    lim = limit(Period.DAY, Basis.EQUITY, "0.25")
    result = breached((lim,), {(Period.DAY, Basis.EQUITY): D("10000")}, current(equity="7400"))
    assert isinstance(result, StopOut)
    assert result.limit is lim
    assert result.drawdown == D("0.26")
    assert result.peak == D("10000")
    assert result.current == D("7400")
    reason = result.reason
    assert "26.00%" in reason
    assert "25.00%" in reason
    assert "equity" in reason and "day" in reason
    assert "10000" in reason and "7400" in reason


def test_exactly_at_the_limit_is_not_a_stop_out():
    result = breached((limit(dd="0.25"),), {(Period.DAY, Basis.EQUITY): D("10000")}, current(equity="7500"))
    assert result is None


def test_just_above_the_limit_is_a_stop_out():
    result = breached((limit(dd="0.25"),), {(Period.DAY, Basis.EQUITY): D("10000")}, current(equity="7499.99"))
    assert result is not None


def test_no_peak_recorded_means_no_drawdown():
    assert breached((limit(dd="0.01"),), {}, current(equity="1")) is None
    # a peak recorded for another period or basis does not count
    peaks = {(Period.WEEK, Basis.EQUITY): D("10000"), (Period.DAY, Basis.BALANCE): D("10000")}
    assert breached((limit(Period.DAY, Basis.EQUITY, "0.01"),), peaks, current(balance="100", equity="100")) is None


def test_current_above_a_stale_peak_is_the_peak():
    assert breached((limit(dd="0.01"),), {(Period.DAY, Basis.EQUITY): D("5000")}, current(equity="9000")) is None


def test_first_breached_limit_in_chain_order_is_reported():
    strategy = limit(Period.LIFETIME, Basis.EQUITY, "0.3")
    subscription = limit(Period.DAY, Basis.EQUITY, "0.05")  # not breached
    follower = limit(Period.WEEK, Basis.EQUITY, "0.1")
    eff = resolve(CopySettings(risk_limits=(strategy,)), CopySettings(risk_limits=(subscription,)),
                  CopySettings(risk_limits=(follower,)))
    peaks = {
        (Period.LIFETIME, Basis.EQUITY): D("20000"),  # 50% down
        (Period.DAY, Basis.EQUITY): D("10000"),  # 0% down
        (Period.WEEK, Basis.EQUITY): D("12500"),  # 20% down
    }
    result = breached(eff.risk_limits, peaks, current(equity="10000"))
    assert result is not None and result.limit is strategy
    assert result.drawdown == D("0.5")
    # without the strategy's limit the follower's is the first breached
    later = breached(eff.risk_limits[1:], peaks, current(equity="10000"))
    assert later is not None and later.limit is follower
    assert later.drawdown == D("0.2")


def test_unbreached_limits_give_none():
    peaks = {(Period.DAY, Basis.EQUITY): D("10000"), (Period.MONTH, Basis.BALANCE): D("10000")}
    limits = (limit(Period.DAY, Basis.EQUITY, "0.2"), limit(Period.MONTH, Basis.BALANCE, "0.2"))
    assert breached(limits, peaks, current(balance="9000", equity="8500")) is None
    assert breached((), peaks, current(balance="1", equity="1")) is None


def test_balance_basis_uses_balance():
    peaks = {(Period.DAY, Basis.BALANCE): D("10000"), (Period.DAY, Basis.EQUITY): D("10000")}
    lim = limit(Period.DAY, Basis.BALANCE, "0.1")
    # equity collapsed, balance did not: a balance limit holds
    assert breached((lim,), peaks, current(balance="9500", equity="5000")) is None
    # balance down 20%
    result = breached((lim,), peaks, current(balance="8000", equity="9900"))
    assert result is not None and result.limit is lim
    assert result.drawdown == D("0.2")
    assert result.current == D("8000")
    assert result.reason.startswith("balance drawdown 20.00%")


def test_equity_basis_uses_equity():
    peaks = {(Period.DAY, Basis.BALANCE): D("10000"), (Period.DAY, Basis.EQUITY): D("10000")}
    lim = limit(Period.DAY, Basis.EQUITY, "0.1")
    assert breached((lim,), peaks, current(balance="5000", equity="9500")) is None
    result = breached((lim,), peaks, current(balance="9900", equity="8500"))
    assert result is not None and result.drawdown == D("0.15")
    assert result.reason.startswith("equity drawdown 15.00%")


def test_stop_out_reason_shows_the_limit_with_two_decimals():
    lim = limit(Period.WEEK, Basis.EQUITY, "0.125")
    result = breached((lim,), {(Period.WEEK, Basis.EQUITY): D("3000")}, current(equity="2000"))
    assert result is not None
    assert "33.33%" in result.reason  # 1000 / 3000
    assert "12.50%" in result.reason
    assert "week" in result.reason


def test_close_positions_flag_is_carried_on_the_stop_out():
    lim = limit(dd="0.1", close=True)
    result = breached((lim,), {(Period.DAY, Basis.EQUITY): D("100")}, current(equity="80"))
    assert result is not None and result.limit.close_positions is True
