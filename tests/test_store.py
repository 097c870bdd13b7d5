"""The state store: migrations, the deal journal, atomic plans, intent states, links,
execution stats, configuration rows, and durability across SIGKILL (real files, no mocks)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from allocation.leg import Action, Reason
from bridge.domain.deal import DealKind, MasterDeal, Side
from bridge.domain.ids import DealId, Login, OrderId, Platform, PositionId, ServerId
from bridge.store import (
    MIGRATIONS, AccountRow, ExecutionRow, IntentRow, IntentState, MamGroupRow, MamMemberRow, Store,
    StoreError, StrategyRow, SubscriptionRow, apply_migrations,
)
from bridge.store.base import connect
from bridge.store.tracking import percentile
from connectors.interface import OrderResult, OrderStatus, idempotency_key
from tests.builders import MASTER_LOGIN, NOW, spec

REPO = Path(__file__).resolve().parents[1]
FOLLOWERS = [str(Login(ServerId(Platform.MT5, "Broker-Live"), n)) for n in (7002, 7001)]


def make_deal(n: int, *, account: Login = MASTER_LOGIN, kind: DealKind = DealKind.OPEN, **fields) -> MasterDeal:
    values = dict(
        deal_id=DealId(account.platform, 5000 + n),
        position_id=PositionId(account.platform, 9000 + n),
        account=account,
        symbol="EURUSD",
        kind=kind,
        side=Side.BUY,
        volume=1_000_000,
        time=NOW + timedelta(seconds=n),
        price=Decimal("1.08500"),
    )
    values.update(fields)
    return MasterDeal(**values)


def make_intents(seq: int, deal: MasterDeal, followers: list[str] = FOLLOWERS, legs: int = 1,
                 planned_ns: int = 1_000) -> list[IntentRow]:
    return [
        IntentRow(
            key=idempotency_key(str(deal.deal_id), follower, leg),
            deal_seq=seq, follower_id=follower, leg=leg, action=Action.OPEN, symbol=deal.symbol,
            side=deal.side, volume=500_000, ideal=Decimal("500000.333"), planned_ns=planned_ns,
            reason=Reason.FLOORED_TO_STEP, sl=Decimal("1.08000"), reference_price=deal.price,
        )
        for follower in followers for leg in range(legs)
    ]


def filled(key: str, n: int = 1, price: str = "1.08510") -> OrderResult:
    return OrderResult(key=key, status=OrderStatus.FILLED, time=NOW, order_id=OrderId(Platform.MT5, 100 + n),
                       position_id=PositionId(Platform.MT5, 200 + n), volume=500_000, price=Decimal(price),
                       message="done")


@pytest.fixture
def store(tmp_path):
    with Store.open(tmp_path / "store.db") as s:
        yield s


@pytest.fixture
def planned(store):
    """A journalled and planned deal: (seq, deal, intents)."""
    deal = make_deal(1)
    seq = store.journal_deal(deal, 10)
    intents = make_intents(seq, deal)
    store.plan(seq, intents)
    return seq, deal, intents


# -- opening and migrations ---------------------------------------------------

def test_open_sets_wal_full_sync_foreign_keys_and_busy_timeout(store):
    def pragma(name):
        return store.db.conn.execute(f"PRAGMA {name}").fetchone()[0]

    assert pragma("journal_mode") == "wal"
    assert pragma("synchronous") == 1  # NORMAL: see bridge/store/base.py on durability
    assert pragma("foreign_keys") == 1
    assert pragma("busy_timeout") == 5000


def test_migrations_are_applied_once_and_recorded(tmp_path):
    path = tmp_path / "store.db"
    names = [name for name, _ in MIGRATIONS]
    with Store.open(path) as first:
        assert first.migrated == names
        recorded = list(first.db.query("SELECT name, applied_at FROM migrations ORDER BY rowid"))
    assert [r["name"] for r in recorded] == names
    with Store.open(path) as again:
        assert again.migrated == []
        assert list(again.db.query("SELECT name, applied_at FROM migrations ORDER BY rowid")) == recorded


def old_link(store: Store, master_position: str, follower: str, follower_position: str, opened_by: str) -> None:
    """An open EURUSD buy link of 300,000, written as a schema before 0010 (no master_id) holds it."""
    with store.transaction():
        store.db.conn.execute(
            "INSERT INTO links (master_position, follower_id, follower_position, symbol, side, volume, state, "
            "opened_by) VALUES (?, ?, ?, 'EURUSD', 'buy', 300000, 'open', ?)",
            (master_position, follower, follower_position, opened_by))


def test_a_database_at_an_older_migration_is_upgraded_keeping_its_data(tmp_path):
    path = tmp_path / "store.db"
    db = connect(path)
    assert apply_migrations(db, MIGRATIONS[:1]) == ["0001_core"]
    assert "executions" not in db.table_names()
    db.close()
    with Store(connect(path)) as old:  # the 0001 schema is enough to journal
        seq = old.journal_deal(make_deal(1), 10)
        old_link(old, "sim:PositionId:7", FOLLOWERS[0], "mt5:PositionId:70", "cbkey")
        intents = make_intents(seq, make_deal(1))
        old.plan(seq, intents)
        old.mark_sent(intents[0].key, 20)
        old.mark_filled(intents[0].key, filled(intents[0].key), 30)
        before = old.intents_of_deal(seq)
    with Store.open(path) as store:
        assert store.migrated == ["0002_executions", "0003_links_per_position", "0004_intents_state_check", "0005_pamm",
                                  "0006_account_orders", "0007_masters", "0008_close_requests",
                                  "0009_deals_unique_per_account", "0010_links_per_master"]
        assert store.migrations() == [name for name, _ in MIGRATIONS]
        # the journal rebuilt (0009): its seqs, and the intents' foreign key to them, intact and enforced
        assert store.db.conn.execute("PRAGMA foreign_key_check").fetchall() == []
        assert store.db.conn.execute("PRAGMA foreign_keys").fetchone() == (1,)
        with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
            store.db.conn.execute("UPDATE intents SET deal_seq = 999 WHERE key = ?", (intents[1].key,))
        assert "executions" in store.db.table_names()
        assert store.deal_at(seq) == make_deal(1)
        assert store.intents_of_deal(seq) == before  # the intents survived their table's rebuild
        with pytest.raises(sqlite3.IntegrityError, match="CHECK"):  # and the state rule still holds
            store.db.conn.execute("UPDATE intents SET state = 'lost' WHERE key = ?", (intents[1].key,))
        with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
            store.db.conn.execute("UPDATE intents SET follower_id = ?, leg = ? WHERE key = ?",
                                  (intents[0].follower_id, intents[0].leg, intents[1].key))
        [link] = store.links_of_master(PositionId(Platform.SIM, 7))  # the link survived the rebuild
        assert (link.follower_position, link.volume, link.opened_by) == (PositionId(Platform.MT5, 70), 300_000,
                                                                         "cbkey")
        # 0010: no intent is named cbkey and no deal has position 7: the link's master is unknown ('')
        assert link.master_id == ""


def test_a_failing_migration_leaves_nothing_and_is_not_recorded(tmp_path):
    def broken(db):
        db.execute("CREATE TABLE half_done (x INTEGER)")
        raise RuntimeError("migration bug")

    path = tmp_path / "store.db"
    with pytest.raises(RuntimeError, match="migration bug"):
        Store.open(path, migrations=[*MIGRATIONS, ("0099_broken", broken)])
    with Store.open(path) as store:
        assert store.migrated == []
        assert "half_done" not in store.db.table_names()
        assert "0099_broken" not in store.migrations()


def test_reopen_keeps_data(tmp_path, planned):
    path = tmp_path / "store.db"
    seq, deal, intents = planned
    with Store.open(path) as other:  # a second connection to the same file sees the commits
        assert other.deal_at(seq) == deal
        assert other.intents_of_deal(seq) == sorted(intents, key=lambda i: (i.follower_id, i.leg))


# -- journal --------------------------------------------------------------------

def test_a_deal_journalled_twice_is_refused_the_second_time(store):
    deal = make_deal(1)
    seq = store.journal_deal(deal, 10)
    assert seq == 1
    assert store.journal_deal(deal, 20) is None
    assert store.journal_deal(make_deal(1, volume=2_000_000), 30) is None  # same venue deal id
    assert store.last_seq() == 1
    assert store.journal_entry(seq).detected_ns == 10


def test_deal_round_trip_is_exact(store):
    plus3 = timezone(timedelta(hours=3))
    deals = [
        make_deal(1, price=Decimal("1.10500"), sl=Decimal("1.1E+0"), tp=Decimal("0E-8"),
                  time=datetime(2024, 3, 4, 15, 0, 0, 123456, tzinfo=plus3)),
        make_deal(2, kind=DealKind.PARTIAL_CLOSE, side=Side.SELL, volume=300_000, position_volume=1_000_001,
                  price=Decimal("123456789.123456789123456789")),
        make_deal(3, account=Login(ServerId(Platform.CTRADER, "demo"), 42), kind=DealKind.REVERSAL,
                  position_volume=5, price=None, symbol="XAUUSD"),
        make_deal(4, kind=DealKind.SLTP, volume=0, price=None, sl=Decimal("-0.0"), tp=None),
    ]
    seqs = [store.journal_deal(deal, 100 + i) for i, deal in enumerate(deals)]
    for seq, deal in zip(seqs, deals):
        back = store.deal_at(seq)
        assert back == deal
        assert back.time.tzinfo == timezone.utc and back.time.microsecond == deal.time.microsecond
        assert type(back.deal_id) is DealId and type(back.position_id) is PositionId
        assert type(back.account) is Login and back.account == deal.account
        for name in ("price", "sl", "tp"):  # the same digits and exponent, not just equal
            value, stored = getattr(deal, name), getattr(back, name)
            assert (value is None and stored is None) or value.as_tuple() == stored.as_tuple()
    with pytest.raises(StoreError, match="no master deal with seq 99"):
        store.deal_at(99)


def test_deals_in_state_last_seq_and_last_deal_id(store):
    other = Login(ServerId(Platform.MT4, "Other"), 9)
    assert store.last_seq() == 0 and store.last_deal_id(MASTER_LOGIN) is None
    seqs = [store.journal_deal(make_deal(n, account=MASTER_LOGIN if n % 2 else other), n) for n in range(1, 6)]
    store.plan(seqs[1], [])
    assert [e.seq for e in store.deals_in_state("new")] == [seqs[0], seqs[2], seqs[3], seqs[4]]
    assert [e.seq for e in store.deals_in_state("planned")] == [seqs[1]]
    assert store.last_seq() == seqs[-1]
    assert store.last_deal_id(MASTER_LOGIN) == DealId(Platform.SIM, 5005)
    assert store.last_deal_id(other) == DealId(Platform.MT4, 5004)
    assert store.deal_seq(DealId(Platform.SIM, 5003)) == seqs[2]
    with pytest.raises(StoreError, match="unknown deal state"):
        store.deals_in_state("done")


def test_a_backfill_resumes_after_the_last_trade_not_after_an_sltp_change_or_balance_operation(store):
    # cTrader: SL/TP changes and balance operations are not deals in the venue's history and carry ids of
    # another sequence (here far above the real ones); resuming after one of them would skip real deals
    store.journal_deal(make_deal(1), 1)
    store.journal_deal(make_deal(2, kind=DealKind.SLTP, deal_id=DealId(Platform.SIM, 10**15 + 7)), 2)
    store.journal_deal(make_deal(3, kind=DealKind.BALANCE, deal_id=DealId(Platform.SIM, 10**12)), 3)
    assert store.last_deal_id(MASTER_LOGIN) == DealId(Platform.SIM, 10**12)
    assert store.last_deal_id(MASTER_LOGIN, trades_only=True) == DealId(Platform.SIM, 5001)


# -- plan -----------------------------------------------------------------------

def test_plan_writes_intents_and_marks_the_deal_planned(store, planned):
    seq, deal, intents = planned
    assert store.journal_entry(seq).state == "planned"
    assert store.deals_in_state("new") == []
    for intent in intents:
        assert store.intent(intent.key) == intent  # typed round trip
    assert store.intent("cb-nope") is None


def test_plan_is_idempotent(store, planned):
    seq, deal, intents = planned
    store.plan(seq, intents)  # the same again: nothing happens
    store.plan(seq, make_intents(seq, deal, legs=3))  # even with other intents: the deal is planned
    assert len(store.intents_of_deal(seq)) == len(intents)
    assert store.intent_counts() == {"planned": len(intents)}


def test_a_failure_mid_plan_leaves_no_intent_and_the_deal_new(store):
    deal = make_deal(1)
    seq = store.journal_deal(deal, 10)
    intents = make_intents(seq, deal)
    with pytest.raises(StoreError, match="nothing written.*UNIQUE"):
        store.plan(seq, [*intents, intents[0]])  # the duplicate fails after two rows are in
    assert store.intents_of_deal(seq) == []
    assert store.journal_entry(seq).state == "new"
    store.plan(seq, intents)  # and the deal can still be planned properly
    assert len(store.intents_of_deal(seq)) == 2


def test_plan_refuses_bad_input_before_writing(store):
    deal = make_deal(1)
    seq = store.journal_deal(deal, 10)
    other = make_intents(seq + 1, deal)
    with pytest.raises(StoreError, match="belongs to deal 2, not 1"):
        store.plan(seq, other)
    sent = make_intents(seq, deal)[0]
    with pytest.raises(StoreError, match="planned or skipped intents, or sent ones with attempts 1"):
        store.plan(seq, [IntentRow(**{**_fields(sent), "state": IntentState.SENT})])  # no sent_ns
    with pytest.raises(StoreError, match="not filled"):
        store.plan(seq, [IntentRow(**{**_fields(sent), "state": IntentState.FILLED})])
    with pytest.raises(StoreError, match="must be a Decimal"):
        store.plan(seq, [IntentRow(**{**_fields(sent), "ideal": 0.5})])
    with pytest.raises(StoreError, match="no master deal with seq 42"):
        store.plan(42, [])
    assert store.intents_of_deal(seq) == [] and store.journal_entry(seq).state == "new"


def test_plan_may_mark_an_intent_sent_in_its_own_transaction(store):
    deal = make_deal(1)
    seq = store.journal_deal(deal, 10)
    first, second = make_intents(seq, deal, followers=FOLLOWERS[:1], legs=2)
    store.plan(seq, [IntentRow(**{**_fields(first), "state": IntentState.SENT, "attempts": 1, "sent_ns": 77}),
                     second])
    rows = {row.key: row for row in store.intents_of_deal(seq)}
    assert (rows[first.key].state, rows[first.key].attempts, rows[first.key].sent_ns) == ("sent", 1, 77)
    assert rows[second.key].state == "planned"
    store.mark_filled(first.key, filled(first.key), 80)  # sent -> filled as usual
    assert store.intent(first.key).state == "filled"


def _fields(intent: IntentRow) -> dict:
    return {name: getattr(intent, name) for name in IntentRow.__dataclass_fields__}


def test_intents_in_state_are_ordered_by_deal_follower_leg(store):
    deals = [make_deal(n) for n in (1, 2)]
    seqs = [store.journal_deal(d, 1) for d in deals]
    for seq, deal in reversed(list(zip(seqs, deals))):
        rows = make_intents(seq, deal, legs=2)
        rows[0] = IntentRow(**{**_fields(rows[0]), "state": IntentState.SKIPPED, "volume": 0,
                               "action": Action.NONE, "reason": Reason.BELOW_MINIMUM})
        store.plan(seq, list(reversed(rows)))
    got = [(i.deal_seq, i.follower_id, i.leg) for i in store.intents_in_state("planned", "skipped")]
    assert got == sorted(got) and len(got) == 8
    assert [i.key for i in store.intents_in_state(IntentState.SKIPPED)] == [
        idempotency_key(str(deals[0].deal_id), FOLLOWERS[0], 0),
        idempotency_key(str(deals[1].deal_id), FOLLOWERS[0], 0)]
    with pytest.raises(StoreError):
        store.intents_in_state("lost")


# -- intent transitions ---------------------------------------------------------

def test_legal_transitions_record_what_happened(store, planned):
    _, _, intents = planned
    key = intents[0].key
    store.mark_sent(key, 2_000)
    store.mark_unknown(key, "timeout")
    assert store.intent(key).state == "unknown" and store.intent(key).message == "timeout"
    store.mark_sent(key, 3_000)  # looked up, not found: resent
    store.mark_filled(key, filled(key), 4_000)
    row = store.intent(key)
    assert row.state == IntentState.FILLED and row.attempts == 2
    assert (row.sent_ns, row.done_ns) == (3_000, 4_000)
    assert row.order_id == OrderId(Platform.MT5, 101) and row.filled_position_id == PositionId(Platform.MT5, 201)
    assert row.fill_price.as_tuple() == Decimal("1.08510").as_tuple() and row.fill_volume == 500_000

    other = intents[1].key
    store.mark_sent(other, 2_000)
    store.mark_rejected(other, OrderResult(key=other, status=OrderStatus.REJECTED, time=NOW,
                                           reason="no-money", message="Not enough money"), 5_000)
    row = store.intent(other)
    assert (row.state, row.reject_reason, row.message, row.done_ns) == ("rejected", "no-money",
                                                                         "Not enough money", 5_000)


def test_the_bridge_can_reject_a_planned_intent_with_a_reason(store, planned):
    key = planned[2][0].key
    store.mark_rejected(key, "signal-expired", 9)
    assert store.intent(key).reject_reason == "signal-expired" and store.intent(key).attempts == 0


@pytest.mark.parametrize("path, step, message", [
    ([], "filled", "planned -> filled"),
    ([], "unknown", "planned -> unknown"),
    (["sent"], "sent", "sent -> sent"),
    (["sent", "filled"], "sent", "filled -> sent"),
    (["sent", "filled"], "rejected", "filled -> rejected"),
    (["sent", "filled"], "filled", "filled -> filled"),
    (["rejected"], "sent", "rejected -> sent"),
])
def test_illegal_transitions_raise(store, planned, path, step, message):
    key = planned[2][0].key
    marks = {
        "sent": lambda: store.mark_sent(key, 1),
        "filled": lambda: store.mark_filled(key, filled(key), 2),
        "rejected": lambda: store.mark_rejected(key, "market-closed", 2),
        "unknown": lambda: store.mark_unknown(key),
    }
    for done in path:
        marks[done]()
    before = store.intent(key)
    with pytest.raises(StoreError, match=f"illegal transition {message}"):
        marks[step]()
    assert store.intent(key) == before


def test_skipped_intents_are_final_and_unknown_keys_are_reported(store):
    deal = make_deal(1)
    seq = store.journal_deal(deal, 1)
    row = IntentRow(**{**_fields(make_intents(seq, deal)[0]), "state": IntentState.SKIPPED})
    store.plan(seq, [row])
    with pytest.raises(StoreError, match="skipped -> sent"):
        store.mark_sent(row.key, 1)
    with pytest.raises(StoreError, match="no such intent"):
        store.mark_sent("cbmissing", 1)


def test_results_must_match_the_intent(store, planned):
    key, other = planned[2][0].key, planned[2][1].key
    store.mark_sent(key, 1)
    with pytest.raises(StoreError, match="is for order"):
        store.mark_filled(key, filled(other), 2)
    with pytest.raises(StoreError, match="needs a FILLED"):
        store.mark_filled(key, OrderResult(key=key, status=OrderStatus.REJECTED, time=NOW), 2)
    with pytest.raises(StoreError, match="needs a REJECTED"):
        store.mark_rejected(key, filled(key), 2)
    assert store.intent(key).state == "sent"


def test_an_enclosing_transaction_makes_several_calls_one_unit(store, planned):
    key = planned[2][0].key
    store.mark_sent(key, 1)
    master_position = PositionId(Platform.SIM, 9001)
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.mark_filled(key, filled(key), 2)
            store.link(master_position, FOLLOWERS[0], PositionId(Platform.MT5, 201), "EURUSD", Side.BUY,
                       500_000, key)
            raise RuntimeError("crash before commit")
    assert store.intent(key).state == "sent" and store.link_of(master_position, FOLLOWERS[0]) is None
    with store.transaction():
        store.mark_filled(key, filled(key), 2)
        store.link(master_position, FOLLOWERS[0], PositionId(Platform.MT5, 201), "EURUSD", Side.BUY, 500_000, key)
    assert store.intent(key).state == "filled" and store.link_of(master_position, FOLLOWERS[0]) is not None


# -- links ----------------------------------------------------------------------

def test_links_lifecycle(store):
    mp, f1, f2 = PositionId(Platform.SIM, 1), FOLLOWERS[0], FOLLOWERS[1]
    fp = PositionId(Platform.MT5, 11)
    store.link(mp, f1, fp, "EURUSD", Side.SELL, 300_000, "cbkey1")
    store.link(mp, f1, fp, "EURUSD", Side.SELL, 300_000, "cbkey1")  # a replayed fill: no-op
    store.link(mp, f2, PositionId(Platform.MT5, 12), "EURUSD", Side.SELL, 100_000, "cbkey2")
    link = store.link_of(mp, f1)
    assert (link.follower_position, link.side, link.volume, link.state, link.opened_by) == (
        fp, Side.SELL, 300_000, "open", "cbkey1")
    assert [lk.follower_id for lk in store.links_of_master(mp)] == sorted([f1, f2])
    with pytest.raises(StoreError, match="already open"):  # the same position, another key
        store.link(mp, f1, fp, "EURUSD", Side.SELL, 300_000, "cbkey9")
    # a hedging follower's second position for the same master position (the master added)
    added = PositionId(Platform.MT5, 99)
    store.link(mp, f1, added, "EURUSD", Side.SELL, 150_000, "cbkey9")
    assert [(lk.follower_position, lk.volume) for lk in store.links_of(mp, f1)] == [(fp, 300_000),
                                                                                (added, 150_000)]
    assert store.link_of(mp, f1).follower_position == fp  # the oldest
    with pytest.raises(StoreError, match="2 open links: name the follower position"):
        store.set_link_volume(mp, f1, 200_000)
    store.close_link(mp, f1, added)

    store.set_link_volume(mp, f1, 200_000)  # one open link left: it needs no name
    assert store.link_of(mp, f1).volume == 200_000
    store.close_link(mp, f1)
    assert store.link_of(mp, f1) is None
    with pytest.raises(StoreError, match="the link is closed"):
        store.close_link(mp, f1)
    with pytest.raises(StoreError, match="already closed"):
        store.link(mp, f1, fp, "EURUSD", Side.SELL, 300_000, "cbkey1")
    assert [lk.follower_id for lk in store.links_of_master(mp)] == [f2]
    with pytest.raises(StoreError, match="the link is missing"):
        store.set_link_volume(PositionId(Platform.SIM, 2), f1, 1)


def test_an_unlinked_position_is_never_returned_or_reopened(store):
    mp, f1 = PositionId(Platform.SIM, 1), FOLLOWERS[0]
    fp = PositionId(Platform.MT5, 11)
    store.link(mp, f1, fp, "EURUSD", Side.BUY, 300_000, "cbkey1")
    store.link(PositionId(Platform.SIM, 2), f1, PositionId(Platform.MT5, 12), "GBPUSD", Side.BUY, 1, "cbkey2")
    store.unlink(mp, f1)  # the follower closed it by hand
    assert store.link_of(mp, f1) is None
    assert [lk.master_position for lk in store.open_links(f1)] == [PositionId(Platform.SIM, 2)]
    assert store.links_of_master(mp) == []
    for again in (lambda: store.link(mp, f1, fp, "EURUSD", Side.BUY, 300_000, "cbkey1"),
                  lambda: store.set_link_volume(mp, f1, 100),
                  lambda: store.close_link(mp, f1),
                  lambda: store.unlink(mp, f1)):
        with pytest.raises(StoreError, match="unlinked"):
            again()
    with pytest.raises(StoreError, match="must be a PositionId"):
        store.link_of(DealId(Platform.SIM, 1), f1)


# -- execution tracking -----------------------------------------------------------

def test_execution_stats(store):
    def record(key, venue, follower, latency_ms, points=None, money=None):
        store.record_execution(ExecutionRow(
            intent_key=key, follower_id=follower, master_account=str(MASTER_LOGIN), venue=venue,
            detect_ns=1_000, decide_ns=2_000, send_ns=3_000, fill_ns=1_000 + latency_ms * 1_000_000,
            master_price=Decimal("1.08500"), fill_price=Decimal("1.08512"),
            slippage_points=points, slippage_money=money))

    for i in range(100):  # venue A: latencies 1..100 ms
        record(f"a{i}", "mt5/A", FOLLOWERS[i % 2], i + 1, points=i % 3,
               money=Decimal("0.10") if i % 2 else Decimal("-0.05"))
    record("b0", "mt5/B", FOLLOWERS[0], 7)
    record("b0", "mt5/B", FOLLOWERS[0], 9, points=-4, money=Decimal("-1.25"))  # recorded again: replaced

    a, b = store.execution_stats("venue")
    assert (a.group, a.count, a.p50_latency_ns, a.p99_latency_ns) == ("mt5/A", 100, 50_000_000, 99_000_000)
    assert a.p50_venue_latency_ns == 50_000_000 - 2_000
    assert a.mean_slippage_points == Decimal(99) / 100  # 33 x (0 + 1 + 2) + 0, over 100
    assert a.mean_slippage_money == Decimal("0.025") and isinstance(a.mean_slippage_money, Decimal)
    assert (b.count, b.p50_latency_ns, b.p99_latency_ns, b.mean_slippage_money) == (
        1, 9_000_000, 9_000_000, Decimal("-1.25"))
    assert [(s.group, s.count) for s in store.execution_stats("follower")] == [
        (FOLLOWERS[1], 50), (FOLLOWERS[0], 51)]
    assert [(s.group, s.count) for s in store.execution_stats("master")] == [(str(MASTER_LOGIN), 101)]
    assert store.execution("b0").slippage_money == Decimal("-1.25")
    assert store.execution("b0").fill_price.as_tuple() == Decimal("1.08512").as_tuple()
    with pytest.raises(StoreError, match="group_by"):
        store.execution_stats("symbol")
    with pytest.raises(StoreError, match="must be a Decimal"):
        record("c", "mt5/C", FOLLOWERS[0], 1, money=0.1)


def test_percentile_is_nearest_rank():
    assert percentile([5], 99) == 5
    assert percentile([1, 2, 3, 4], 50) == 2
    assert percentile(list(range(1, 1001)), 99) == 990


# -- configuration rows -------------------------------------------------------------

def test_accounts_and_specs(store):
    follower = Login.parse(FOLLOWERS[0])
    store.upsert_account(AccountRow(MASTER_LOGIN, "master", "USD", True))
    store.upsert_account(AccountRow(follower, "follower", "EUR", False))
    store.upsert_account(AccountRow(follower, "follower", "GBP", True))  # an update
    assert store.account(FOLLOWERS[0]) == AccountRow(follower, "follower", "GBP", True)
    assert [a.login for a in store.accounts("master")] == [MASTER_LOGIN]
    assert store.account(Login(ServerId(Platform.SIM, "x"), 1)) is None
    with pytest.raises(StoreError, match="role"):
        store.upsert_account(AccountRow(follower, "manager", "USD", True))

    gold = spec("XAUUSD", contract="100", step="0.01")
    store.upsert_spec(follower, spec())
    store.upsert_spec(follower, gold)
    assert store.spec(follower, "XAUUSD") == gold and store.spec(follower, "GBPUSD") is None
    assert store.specs(FOLLOWERS[0]) == {"EURUSD": spec(), "XAUUSD": gold}


def test_strategies_subscriptions_and_mam_groups(store):
    follower = Login.parse(FOLLOWERS[0])
    settings = {"mode": "multiplier", "multiplier": Decimal("1.5"), "symbols": ["EURUSD"]}
    store.upsert_strategy(StrategyRow("s1", MASTER_LOGIN, settings))
    assert store.strategy("s1").settings == {"mode": "multiplier", "multiplier": "1.5", "symbols": ["EURUSD"]}
    with pytest.raises(StoreError, match="float"):
        store.upsert_strategy(StrategyRow("s2", MASTER_LOGIN, {"multiplier": 1.5}))
    store.upsert_subscription(SubscriptionRow("sub1", "s1", follower, {"risk": "2"}, {"max_lots": "5"}))
    with pytest.raises(StoreError, match="unknown strategy"):
        store.upsert_subscription(SubscriptionRow("sub2", "nope", follower))
    store.set_subscription_active("sub1", False, "equity-stop")
    assert store.subscription("sub1") == SubscriptionRow("sub1", "s1", follower, {"risk": "2"},
                                                         {"max_lots": "5"}, False, "equity-stop")
    assert store.subscriptions("s1", active_only=True) == []

    group = MamGroupRow("g1", MASTER_LOGIN, "percent", "largest-remainder", True)
    members = [MamMemberRow("g1", follower, Decimal("60.5")),
               MamMemberRow("g1", Login.parse(FOLLOWERS[1]), Decimal("39.5"))]
    store.upsert_mam_group(group, members)
    assert store.mam_group("g1") == group
    assert store.mam_members("g1") == sorted(members, key=lambda m: str(m.account))
    store.upsert_mam_group(group, members[:1])  # members replaced
    assert store.mam_members("g1") == members[:1]
    with pytest.raises(StoreError, match="belongs to group"):
        store.upsert_mam_group(group, [MamMemberRow("g2", follower)])
    assert store.mam_members("g1") == members[:1]


# -- durability ---------------------------------------------------------------------

CHILD = """
import sys
from bridge.store import Store
from tests.test_store import make_deal, make_intents

store = Store.open(sys.argv[1])
deal = make_deal(1)
seq = store.journal_deal(deal, 10)
intents = make_intents(seq, deal)
store.plan(seq, intents)
store.mark_sent(intents[0].key, 20)
if sys.argv[2] == "after-commit":
    print("committed", seq, flush=True)
    sys.stdin.readline()  # killed here
else:
    second = make_deal(2)
    seq2 = store.journal_deal(second, 30)
    with store.transaction():
        store.plan(seq2, make_intents(seq2, second))
        store.mark_sent(intents[1].key, 40)
        print("in-transaction", seq2, flush=True)
        sys.stdin.readline()  # killed here, nothing of this block committed
"""


def _run_and_kill(path: Path, phase: str) -> list[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(path), phase], cwd=REPO, env=env,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = child.stdout.readline()  # blocks until the child has committed and says so
        assert line, f"child exited early: {child.stderr.read()}"
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait() == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        for stream in (child.stdin, child.stdout, child.stderr):
            stream.close()
    assert Path(f"{path}-wal").exists()  # killed without a checkpoint: the reopen recovers from the WAL
    return line.split()


def test_a_committed_plan_survives_sigkill(tmp_path):
    path = tmp_path / "store.db"
    word, seq = _run_and_kill(path, "after-commit")
    assert word == "committed"
    with Store.open(path) as store:
        assert store.migrated == []
        seq = int(seq)
        assert store.deal_at(seq) == make_deal(1)
        assert store.journal_entry(seq).state == "planned"
        intents = make_intents(seq, make_deal(1))
        assert store.intent(intents[0].key).state == "sent" and store.intent(intents[0].key).attempts == 1
        assert store.intent(intents[1].key) == intents[1]


def test_sigkill_inside_a_transaction_loses_only_that_transaction(tmp_path):
    path = tmp_path / "store.db"
    word, seq2 = _run_and_kill(path, "in-transaction")
    assert word == "in-transaction"
    with Store.open(path) as store:
        seq2 = int(seq2)
        assert store.journal_entry(seq2).state == "new"  # journalled (committed), not planned
        assert store.intents_of_deal(seq2) == []
        assert [e.seq for e in store.deals_in_state("new")] == [seq2]
        first = make_intents(1, make_deal(1))
        assert [store.intent(i.key).state for i in first] == ["sent", "planned"]
        # and the interrupted plan can be done now
        store.plan(seq2, make_intents(seq2, make_deal(2)))
        assert store.journal_entry(seq2).state == "planned"


def test_the_file_is_a_plain_sqlite_database(tmp_path, planned):
    conn = sqlite3.connect(tmp_path / "store.db")
    try:
        assert conn.execute("SELECT COUNT(*) FROM intents").fetchone() == (2,)
        assert conn.execute("SELECT ideal, volume FROM intents LIMIT 1").fetchone() == ("500000.333", 500_000)
    finally:
        conn.close()


def test_the_fast_row_writer_writes_what_the_careful_one_does():
    from bridge.store.intents import _checked_row, _intent_row

    deal = make_deal(1)
    for intent in make_intents(1, deal, legs=2):
        for variant in (intent, IntentRow(**{**_fields(intent), "position_id": PositionId(Platform.MT5, 9),
                                              "state": IntentState.SENT, "attempts": 1, "sent_ns": 5,
                                              "reason": None, "tp": Decimal("1.2")})):
            assert _intent_row(variant) == _checked_row(variant)


def test_pool_orders_move_to_account_orders_keeping_their_state(tmp_path):
    path = tmp_path / "store.db"
    db = connect(path)
    apply_migrations(db, [m for m in MIGRATIONS if m[0] < "0006"])
    db.execute("INSERT INTO pamm_pools (id, master, handling, schedule, settings, opened_at, state, steps, updated_at) "
               "VALUES ('alpha', 'sim/demo/1', 'autocorrect', 'manual', '{}', 't', '{}', 0, 't')")
    db.execute("INSERT INTO pamm_orders (key, pool, rollover, reason, account, position_id, symbol, side, volume, "
               "action, state, detail, result, created_at, updated_at) VALUES ('k1', 'alpha', 3, 'pool-stop', "
               "'sim/demo/1', '7', 'EURUSD', 'buy', 100000, 'close', 'unknown', 'timeout', NULL, 't1', 't2')")
    db.conn.commit()
    db.close()
    with Store.open(path) as store:
        assert store.migrated == ["0006_account_orders", "0007_masters", "0008_close_requests",
                                  "0009_deals_unique_per_account", "0010_links_per_master"]
        assert "pamm_orders" not in store.db.table_names()
        (row,) = store.account_orders(("pamm",), "alpha")
        assert (row.key, row.batch, row.reason, row.state, row.detail, row.volume, row.links) == \
            ("k1", 3, "pool-stop", "unknown", "timeout", 100_000, ())


def test_links_get_their_master_from_the_deal_that_opened_them(tmp_path):
    """0010 on a store with a link opened by a planned intent: its master is that deal's account."""
    path = tmp_path / "store.db"
    db = connect(path)
    apply_migrations(db, [m for m in MIGRATIONS if m[0] < "0010"])
    db.close()
    with Store(connect(path)) as old:
        deal = make_deal(1)
        seq = old.journal_deal(deal, 10)
        intents = make_intents(seq, deal)
        old.plan(seq, intents)
        old_link(old, str(deal.position_id), FOLLOWERS[0], "mt5:PositionId:70", intents[0].key)
    with Store.open(path) as store:
        assert store.migrated == ["0010_links_per_master"]
        [link] = store.links_of_master(deal.position_id)
        assert link.master_id == str(deal.account)
        assert store.links_of_master(deal.position_id, str(deal.account)) == [link]
        assert store.links_of_master(deal.position_id, "sim/elsewhere/1") == []
