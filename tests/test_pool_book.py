"""The pool book: PAMM pools in the store. Steps, rollovers with settlements and orders, atomicity
(a refused step or a ConservationError writes nothing), two connections, the codec, replay and tamper checks."""

from __future__ import annotations

import importlib
import json
import random
import threading
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

import allocation.pamm as pamm
from allocation.pamm import ConservationError, LossSharing, PammError, PoolSettings
from bridge.pools.book import PoolBook
from bridge.pools.codec import entry_from_dict, entry_to_dict, pool_from_dict, pool_to_dict
from bridge.store import AccountOrderRow, Store

rollover_module = importlib.import_module("allocation.pamm.rollover")  # the package re-exports a function of that name
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
MASTER = "sim/pamm/1000"
TABLES = ("pamm_pools", "pamm_steps", "pamm_entries", "pamm_settlements", "account_orders")


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def D(text) -> Decimal:
    return Decimal(str(text))


@pytest.fixture
def store(tmp_path):
    s = Store.open(tmp_path / "bridge.db")
    yield s
    s.close()


@pytest.fixture
def book(store):
    b = PoolBook(store)
    b.create("alpha", MASTER, PoolSettings(manager="M", performance_fee=D(20), lockup_seconds=86400,
                                           minimum_remaining=D(100)),
             handling="autocorrect", schedule="every 1h", opened_at=T0)
    return b


def funded(book: PoolBook) -> None:
    book.deposit("alpha", "M", D("1000.00"), at(1))
    book.deposit("alpha", "A", D("9000.00"), at(2), auto_close_below=D("4000.00"))
    book.rollover("alpha", at(60), D("0.00"), source="test")


def dump(store: Store) -> dict:
    """Every PAMM table's rows, to compare before and after a refused step."""
    return {t: [tuple(r.values()) for r in store.db.query(f"SELECT * FROM {t} ORDER BY rowid")] for t in TABLES}


def order(key: str, rollover: int, volume: int = 100_000) -> AccountOrderRow:
    return AccountOrderRow(key=key, origin="pamm", owner="alpha", batch=rollover, reason="autocorrect", account=MASTER,
                           position_id="7", symbol="EURUSD", side="buy", volume=volume, action="partial-close",
                           state="planned", detail="share 0.1", result=None, created_at="", updated_at="")


# -- create, load, list -------------------------------------------------------

def test_create_and_list(book):
    (row,) = book.pools()
    assert (row.id, row.master, row.handling, row.schedule) == ("alpha", MASTER, "autocorrect", "every 1h")
    assert row.opened_at == T0 and row.rollovers == 0 and row.last_rollover_at is None and row.nav is None
    assert row.units == 0 and row.equity == 0 and row.pending == 0 and row.due == 0 and row.steps == 0
    pool = book.load("alpha")
    assert pool == pamm.open_pool(book.load("alpha").settings, T0)
    assert pool.settings.performance_fee == D(20)


@pytest.mark.parametrize("pool_id, master, kwargs, message", [
    ("alpha", MASTER, {}, "already exists"),
    ("bad id", MASTER, {}, "pool id 'bad id'"),
    ("x" * 65, MASTER, {}, "1 to 64"),
    ("beta", "sim-demo/1000", {}, "malformed account"),
    ("beta", MASTER, {"handling": "spread"}, "handling 'spread'"),
    ("beta", MASTER, {"schedule": "hourly"}, "schedule 'hourly'"),
    ("beta", MASTER, {"opened_at": datetime(2026, 1, 1)}, "timezone-aware"),
])
def test_create_refuses_bad_input_and_writes_nothing(book, store, pool_id, master, kwargs, message):
    before = dump(store)
    with pytest.raises(PammError, match=message):
        book.create(pool_id, master, PoolSettings(manager="M"), **{"opened_at": T0, **kwargs})
    assert dump(store) == before


def test_unknown_pool_is_one_line(book):
    for call in (lambda: book.load("nope"), lambda: book.pool("nope"), lambda: book.entries("nope"),
                 lambda: book.deposit("nope", "A", D(1), at(1)), lambda: book.withdraw("nope", "A", None, at(1)),
                 lambda: book.rollover("nope", at(1), D(0), source="t"), lambda: book.settle("nope", 1, at(1)),
                 lambda: book.statement("nope", "A"), lambda: book.verify("nope"), lambda: book.settlements("nope")):
        with pytest.raises(PammError, match=r"^unknown pool 'nope'$"):
            call()


# -- steps and rollovers ---------------------------------------------------------

def test_deposits_queue_then_a_rollover_applies_them_and_leaves_a_due_settlement(book):
    step = book.deposit("alpha", "M", D("1000.00"), at(1))
    assert step.pool.pending[0].amount == D("1000.00") and book.pool("alpha").pending == 1
    book.deposit("alpha", "A", D("9000.00"), at(2), auto_close_below=D("4000.00"))
    result = book.rollover("alpha", at(60), D("0.00"), source="schedule")
    assert result.report.number == 1 and result.report.nav == D("1.00")
    row = book.pool("alpha")
    assert row.rollovers == 1 and row.equity == D("10000.00") and row.pending == 0 and row.due == D("10000.00")
    assert row.last_rollover_at == at(60) and row.steps == 4
    assert book.load("alpha").holder("A").auto_close_below == D("4000.00")
    (s,) = book.settlements("alpha")
    assert (s.rollover, s.amount, s.state, s.created_at, s.settled_at) == (1, D("10000.00"), "due", at(60), None)
    assert [s["action"] for s in book.steps("alpha")] == ["deposit", "deposit", "equity", "rollover"]
    assert {s["source"] for s in book.steps("alpha")[2:]} == {"schedule"}


def test_due_cash_counts_in_the_pool_equity_until_settled(book):
    funded(book)
    # the back office has not moved the 10,000 yet: the master account shows only the P/L (+500)
    result = book.rollover("alpha", at(120), D("500.00"), source="test")
    assert result.report.equity == D("10500.00") and result.report.nav == D("1.05")
    book.settle("alpha", 1, at(121))
    # now the account holds the cash: the same pool equity from the account alone
    result = book.rollover("alpha", at(180), D("10500.00"), source="test")
    assert result.report.equity == D("10500.00") and book.pool("alpha").due == 0


def test_withdrawal_makes_a_negative_settlement(book):
    funded(book)
    book.settle("alpha", 1, at(61))
    book.withdraw("alpha", "M", D("200.00"), at(62))
    result = book.rollover("alpha", at(120), D("10000.00"), source="test")
    assert result.report.equity == D("9800.00")
    assert [(s.rollover, s.amount, s.state) for s in book.settlements("alpha")] == \
        [(1, D("10000.00"), "settled"), (2, D("-200.00"), "due")]
    assert book.pool("alpha").due == D("-200.00")


def test_a_rollover_without_cash_makes_no_settlement(book):
    funded(book)
    book.rollover("alpha", at(120), D("100.00"), source="test")
    assert [s.rollover for s in book.settlements("alpha")] == [1]


def test_settle_twice_or_unknown_is_an_error(book, store):
    funded(book)
    settled = book.settle("alpha", 1, at(70))
    assert settled.state == "settled" and settled.settled_at == at(70)
    before = dump(store)
    with pytest.raises(PammError, match="already settled"):
        book.settle("alpha", 1, at(71))
    with pytest.raises(PammError, match="no settlement for rollover 9"):
        book.settle("alpha", 9, at(71))
    assert dump(store) == before


@pytest.mark.parametrize("call, message", [
    (lambda b: b.deposit("alpha", "B", D("-5"), at(70)), "must be positive"),
    (lambda b: b.deposit("alpha", "B", D("1.001"), at(70)), "more than 2 decimal places"),
    (lambda b: b.withdraw("alpha", "M", D("5000.00"), at(70)), "holds 1000.00"),
    (lambda b: b.withdraw("alpha", "Z", None, at(70)), "unknown investor 'Z'"),
    (lambda b: b.withdraw("alpha", "A", D("10.00"), at(70)), "lock-up"),
    (lambda b: b.deposit("alpha", "B", D("5.00"), at(30)), "time goes backwards"),
    (lambda b: b.rollover("alpha", at(60), D("0.00"), source="t"), "not after the last one"),
    (lambda b: b.rollover("alpha", at(90), D("-20000.00"), source="t"), "below zero"),
    (lambda b: b.rollover("alpha", at(90), 1.5, source="t"), "decimal amount"),
    (lambda b: b.deposit("alpha", "B", 5.0, at(70)), "decimal"),
])
def test_a_refused_step_leaves_every_table_unchanged(book, store, call, message):
    funded(book)
    before = dump(store)
    with pytest.raises(PammError, match=message):
        call(book)
    assert dump(store) == before


def test_a_conservation_error_rolls_the_whole_rollover_back(book, store, monkeypatch):
    funded(book)
    book.deposit("alpha", "B", D("500.00"), at(61))
    before = dump(store)
    real = rollover_module._close

    def cooked(pool, work, *args):
        work.equity += D("0.01")  # a cent from nowhere
        return real(pool, work, *args)

    monkeypatch.setattr(rollover_module, "_close", cooked)
    with pytest.raises(ConservationError):
        book.rollover("alpha", at(120), D("10000.00"), source="test",
                      orders_for=lambda r: [order("k1", r.report.number)])
    assert dump(store) == before
    assert book.load("alpha").pending[0].holder == "B"


def test_orders_are_written_planned_with_the_rollover_and_marked(book):
    funded(book)
    book.settle("alpha", 1, at(61))
    result = book.rollover("alpha", at(120), D("10000.00"), source="test",
                           orders_for=lambda r: [order("k1", r.report.number), order("k2", r.report.number)])
    assert result.report.number == 2
    assert [(o.key, o.state, o.batch) for o in book.orders("alpha")] == [("k1", "planned", 2), ("k2", "planned", 2)]
    sent = book.mark_order("k1", "sent")
    assert sent.state == "sent" and sent.result is None
    filled = book.mark_order("k1", "filled", "", {"status": "filled", "volume": 100_000, "price": "1.1"})
    assert filled.result == {"status": "filled", "volume": 100_000, "price": "1.1"}
    assert [o.key for o in book.orders("alpha", ("planned", "sent", "unknown"))] == ["k2"]
    assert [o.key for o in book.orders(None, ["filled"])] == ["k1"]
    assert book.orders("alpha", []) == []
    with pytest.raises(PammError, match="unknown pool order 'zz'"):
        book.mark_order("zz", "sent")
    with pytest.raises(PammError, match="order state 'lost'"):
        book.mark_order("k2", "lost")


@pytest.mark.parametrize("bad", [
    lambda n: [order("k1", n + 1)],  # for another rollover
    lambda n: [order("k1", n, volume=0)],
    lambda n: [order("k1", n), order("k1", n)],  # duplicate key
    lambda n: ["not an order"],
])
def test_a_bad_order_rolls_the_rollover_back(book, store, bad):
    funded(book)
    before = dump(store)
    with pytest.raises(Exception):
        book.rollover("alpha", at(120), D("0.00"), source="test", orders_for=lambda r: bad(r.report.number))
    assert dump(store) == before


def test_statement_shows_only_the_investor(book):
    funded(book)
    book.deposit("alpha", "B", D("2000.00"), at(61))
    book.rollover("alpha", at(120), D("10500.00"), source="test")
    statement = book.statement("alpha", "B")
    assert statement["investor"] == "B" and statement["deposited"] == "2000.00" and statement["pool"] == "alpha"
    text = json.dumps(statement)
    assert '"A"' not in text and '"M"' not in text and "pnl" not in text and "marked" not in text
    with pytest.raises(PammError, match="unknown investor 'Q'"):
        book.statement("alpha", "Q")


# -- two connections ----------------------------------------------------------------

def test_two_connections_interleave_and_see_each_other(tmp_path, book, store):
    other = Store.open(store.path)
    try:
        theirs = PoolBook(other)
        book.deposit("alpha", "M", D("1000.00"), at(1))
        theirs.deposit("alpha", "A", D("2000.00"), at(2))
        book.deposit("alpha", "B", D("3000.00"), at(3))
        theirs.rollover("alpha", at(60), D("0.00"), source="daemon")
        assert book.pool("alpha").equity == D("6000.00") and book.pool("alpha").steps == 5
        with pytest.raises(PammError, match="time goes backwards"):
            book.deposit("alpha", "C", D("1.00"), at(30))  # the other process's rollover moved the clock
        assert book.verify("alpha")["ok"] and theirs.verify("alpha")["ok"]
    finally:
        other.close()


def test_concurrent_writers_serialize(tmp_path, book, store):
    book.deposit("alpha", "M", D("1000.00"), at(1))
    start = datetime.now(timezone.utc)
    errors: list[BaseException] = []

    def investor(name: str) -> None:
        try:
            with Store.open(store.path) as mine:
                b = PoolBook(mine)
                for i in range(15):
                    b.deposit("alpha", name, D("10.00"), start + timedelta(seconds=1))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=investor, args=(n,)) for n in ("A", "B", "C")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert book.pool("alpha").steps == 46 and book.pool("alpha").pending == 46
    assert len(book.entries("alpha")) == 46 and book.verify("alpha")["steps"] == 46


# -- codec and replay -------------------------------------------------------------------

def random_run(book: PoolBook, rng: random.Random, n: int) -> int:
    """Drive pool 'alpha' through ``n`` random steps through the book; refused ones are skipped."""
    now, equity, done = T0, Decimal("0.00"), 0
    for _ in range(n):
        now += timedelta(minutes=rng.randint(1, 90))
        kind = rng.choice(["deposit", "deposit", "withdraw", "rollover", "rollover"])
        who = rng.choice(["M", "A", "B", "C"])
        try:
            if kind == "deposit":
                level = rng.choice([None, None, D("500.00")])
                book.deposit("alpha", who, Decimal(rng.randint(100, 500_000)).scaleb(-2), now, level)
            elif kind == "withdraw":
                book.withdraw("alpha", who, rng.choice([None, Decimal(rng.randint(1, 100_000)).scaleb(-2)]), now)
            else:
                pool = book.load("alpha")
                due = book.pool("alpha").due
                target = max(Decimal("0.00"), pool.equity * (1 + Decimal(rng.randint(-200, 250)) / 1000))
                equity = target.quantize(Decimal("0.01")) if pool.units else pool.equity
                book.rollover("alpha", now, equity - due, source="test")
                for s in book.settlements("alpha"):
                    if s.state == "due" and rng.random() < 0.5:
                        book.settle("alpha", s.rollover, now)
            done += 1
        except PammError:
            pass
    return done


@pytest.mark.parametrize("seed, sharing", [(1, LossSharing.PRO_RATA), (2, LossSharing.MANAGER_FIRST_LOSS),
                                           (3, LossSharing.PRO_RATA)])
def test_replay_equals_the_snapshot_after_200_random_steps(tmp_path, seed, sharing):
    with Store.open(tmp_path / f"r{seed}.db") as store:
        book = PoolBook(store)
        settings = PoolSettings(manager="M", loss_sharing=sharing, performance_fee=D(20), performance_every=2,
                                management_fee=D(2), entry_fee=D("1.5"), exit_fee=D("0.5"), freeze_seconds=1800,
                                minimum_remaining=D(50), stop_drawdown=D(70))
        book.create("alpha", MASTER, settings, opened_at=T0)
        done = random_run(book, random.Random(seed), 200)
        assert done > 100
        summary = book.verify("alpha")
        pool = book.load("alpha")
        assert summary["ok"] and summary["rollovers"] == pool.rollovers > 5
        assert summary["entries"] == len(book.entries("alpha")) == pool.seq
        # the codec round trip on this pool and its entries, exactly (digits and exponents)
        data = pool_to_dict(pool)
        assert pool_from_dict(json.loads(json.dumps(data))) == pool
        assert pool_to_dict(pool_from_dict(data)) == data
        for e in book.entries("alpha"):
            assert entry_from_dict(json.loads(json.dumps(entry_to_dict(e)))) == e
            assert entry_to_dict(entry_from_dict(entry_to_dict(e))) == entry_to_dict(e)


def test_codec_keeps_exponents_and_pending_requests(book):
    funded(book)
    book.withdraw("alpha", "M", None, at(26 * 60))
    pool = book.load("alpha")
    pool = replace(pool, equity=Decimal("10000.000"))  # an exponent the ledger would not make: kept anyway
    data = pool_to_dict(pool)
    assert data["equity"] == "10000.000" and data["holders"][0]["units"] == "9000.00000000"
    assert data["pending"][0]["amount"] is None and data["opened_at"] == "2026-01-01T00:00:00+00:00"
    back = pool_from_dict(data)
    assert str(back.equity) == "10000.000" and back.pending == pool.pending
    assert back.settings.loss_sharing is LossSharing.PRO_RATA
    with pytest.raises(Exception, match="float"):
        pool_to_dict(replace(pool, rollovers=1.5))


# -- tampering ---------------------------------------------------------------------------

def test_verify_detects_a_tampered_entry(book, store):
    funded(book)
    assert book.verify("alpha")["ok"]
    store.db.execute("UPDATE pamm_entries SET amount = '9001.00' WHERE pool = 'alpha' AND kind = 'deposit' "
                     "AND holder = 'A'")
    with pytest.raises(PammError, match=r"entry \d+ amount is '9001.00' but the replayed steps give '9000.00'"):
        book.verify("alpha")


def test_verify_detects_a_tampered_step(book, store):
    funded(book)
    store.db.execute("UPDATE pamm_steps SET args = json_set(args, '$.amount', '9100.00') "
                     "WHERE pool = 'alpha' AND seq = 2")
    with pytest.raises(PammError, match="the snapshot .* but the replayed steps give"):
        book.verify("alpha")


def test_verify_detects_a_tampered_snapshot_and_a_missing_step(book, store):
    funded(book)
    state = json.loads(store._one("SELECT state FROM pamm_pools WHERE id = 'alpha'")["state"])
    state["holders"][0]["auto_close_below"] = "3000.00"
    store.db.execute("UPDATE pamm_pools SET state = ? WHERE id = 'alpha'", (json.dumps(state),))
    with pytest.raises(PammError, match=r"holders\[0\].auto_close_below is '3000.00'"):
        book.verify("alpha")
    store.db.execute("DELETE FROM pamm_steps WHERE pool = 'alpha' AND seq = 4")
    with pytest.raises(PammError, match="step journal has 3 rows"):
        book.verify("alpha")


def test_verify_detects_entries_that_no_longer_fold_to_the_holders(book, store):
    funded(book)
    # both the stored entry and what a replay makes would have to change; make the entries disagree
    # with the snapshot only through rebuild by removing the last (rollover) entry
    store.db.execute("DELETE FROM pamm_entries WHERE pool = 'alpha' AND seq = (SELECT max(seq) FROM pamm_entries)")
    with pytest.raises(PammError, match="entries stored"):
        book.verify("alpha")
