"""PAMM ledger under random step sequences: the books balance to the cent at every rollover.

Each example drives one pool through up to 60 random steps (deposits, withdrawals,
P/L marks, rollovers) in either loss-sharing mode with every fee switched on;
with the default settings below that is several thousand steps per run. Set
``HYPOTHESIS_PROFILE=pamm-long`` for a much longer run.
"""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import allocation.pamm as pamm
from allocation.pamm import LossSharing, PammError, PoolSettings

settings.register_profile("pamm-default", max_examples=300, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("pamm-long", max_examples=3000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
PROFILE = settings.get_profile(os.environ.get("HYPOTHESIS_PROFILE", "pamm-default")
                               if os.environ.get("HYPOTHESIS_PROFILE", "").startswith("pamm") else "pamm-default")

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
IDS = ["M", "A", "B", "C"]
cents = st.integers(min_value=1, max_value=5_000_000).map(lambda n: Decimal(n).scaleb(-2))
step = st.one_of(
    st.tuples(st.just("deposit"), st.sampled_from(IDS), cents),
    st.tuples(st.just("withdraw"), st.sampled_from(IDS), st.one_of(st.none(), cents)),
    st.tuples(st.just("pnl"), st.just(""), st.integers(-400, 400)),  # per mille of pool equity
    st.tuples(st.just("roll"), st.just(""), st.integers(1, 72)),  # hours
)
pool_settings = st.builds(
    PoolSettings,
    manager=st.just("M"),
    loss_sharing=st.sampled_from(list(LossSharing)),
    performance_fee=st.sampled_from([Decimal(0), Decimal(20), Decimal("33.3")]),
    performance_every=st.integers(1, 3),
    management_fee=st.sampled_from([Decimal(0), Decimal(2)]),
    entry_fee=st.sampled_from([Decimal(0), Decimal("1.5")]),
    exit_fee=st.sampled_from([Decimal(0), Decimal("0.7")]),
    minimum_remaining=st.sampled_from([Decimal(0), Decimal(50)]),
    stop_drawdown=st.sampled_from([None, Decimal(60)]),
)


@PROFILE
@given(pool_settings, st.lists(step, min_size=1, max_size=60))
# found by this test in CI: a performance fee under a cent raised the HWM with no ledger entry, so the
# rebuild from the entries disagreed with the pool (now such a fee is not charged and the HWM stays)
@example(PoolSettings(manager="M", performance_fee=Decimal(20)),
         [("deposit", "M", Decimal("0.01")), ("deposit", "A", Decimal("0.01")), ("roll", "", 1), ("pnl", "", 251),
          ("roll", "", 1)])
def test_books_balance_and_rebuild_at_every_rollover(config, steps):
    pool = pamm.open_pool(config, T0)
    entries: list = []
    now = T0
    fees_paid = Decimal(0)
    for kind, who, value in steps:
        now += timedelta(minutes=7)
        try:
            if kind == "deposit":
                result = pamm.request_deposit(pool, who, value, now)
            elif kind == "withdraw":
                result = pamm.request_withdrawal(pool, who, value, now)
            elif kind == "pnl":
                change = (pool.equity * value / 1000).quantize(Decimal("0.01"))
                result = pamm.apply_pnl(pool, change, now)
            else:
                now += timedelta(hours=value)
                result = pamm.rollover(pool, now)
        except PammError as exc:
            assert "ConservationError" not in type(exc).__name__, exc
            continue  # refused: the pool is unchanged because we keep the old one
        before = pool
        pool = result.pool
        entries.extend(result.entries)
        if kind != "roll":
            continue
        report = result.report
        # conservation: holders' equity adds up to the pool's to the cent
        assert sum(h.equity for h in pool.holders) == pool.equity == report.equity
        assert pool.units == report.units and all(h.units >= 0 for h in pool.holders)
        if pool.units:
            for h in pool.holders:  # each holder within a cent of units x NAV
                assert abs(h.units * pool.nav - h.equity) <= Decimal("0.01") + pool.units * Decimal("1e-10")
        paid = sum(h.fees_paid for h in pool.holders)
        assert paid == pool.holder("M").fees_received
        assert paid >= fees_paid
        fees_paid = paid
        moved = sum((e.amount for e in result.entries if e.kind == "deposit"), Decimal(0)) - sum(
            (e.amount for e in result.entries if e.kind == "withdrawal"), Decimal(0))
        assert pool.equity == before.equity + moved
        for h in pool.holders:
            assert h.equity >= 0 and h.hwm >= 0 and h.covered >= 0
            if h.id != "M" and config.loss_sharing is LossSharing.PRO_RATA:
                assert h.covered == 0
    rebuilt = pamm.rebuild(config, T0, entries)
    assert replace(rebuilt, clock=pool.clock, next_request=pool.next_request, pending=pool.pending,
                   holders=tuple(replace(h, auto_close_below=None) for h in rebuilt.holders)) == replace(
        pool, holders=tuple(replace(h, auto_close_below=None) for h in pool.holders))


@PROFILE
@given(st.lists(st.integers(-300, 300), min_size=1, max_size=30))
def test_first_loss_investors_lose_nothing_while_the_tranche_lasts(moves):
    config = PoolSettings(manager="M", loss_sharing=LossSharing.MANAGER_FIRST_LOSS)
    pool = pamm.open_pool(config, T0)
    now = T0 + timedelta(hours=1)
    pool = pamm.request_deposit(pool, "M", Decimal(3000), now).pool
    pool = pamm.request_deposit(pool, "A", Decimal(7000), now).pool
    pool = pamm.rollover(pool, now + timedelta(hours=1)).pool
    for i, m in enumerate(moves):
        now += timedelta(hours=2)
        pool = pamm.apply_pnl(pool, (pool.equity * m / 1000).quantize(Decimal("0.01")), now).pool
        report = pamm.rollover(pool, now + timedelta(hours=1)).report
        pool = pamm.rollover(pool, now + timedelta(hours=1)).pool
        a = pool.holder("A")
        if report.halted:
            assert pool.holder("M").units == 0
            break
        assert a.equity >= Decimal("7000.00") - Decimal("0.01") * (i + 1)  # a cent of rounding per period
