"""``bridge report``: a store built through the store's own API with chosen latencies and slippages gives
exact counts and percentiles; every format parses; the HTML's charts are there and its store texts are
escaped (and, where Chromium is installed, render); bad windows are one line and exit 2."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path

import pytest

from allocation.leg import Action, Reason
from bridge.cli.main import main
from bridge.domain.deal import DealKind, MasterDeal, Side
from bridge.domain.ids import DealId, Login, OrderId, Platform, PositionId, ServerId
from bridge.report.query import read_window
from bridge.report.summary import bucket_of, summarise
from bridge.report.window import to_ns, window
from bridge.store import AccountRow, ExecutionRow, IntentRow, IntentState, Store
from connectors.interface import OrderResult, OrderStatus, idempotency_key

ROOT = Path(__file__).resolve().parents[1]
DAY = datetime(2024, 3, 4, tzinfo=timezone.utc)
T0 = to_ns(DAY + timedelta(hours=12))
MS = 1_000_000
MASTER_A = Login(ServerId(Platform.SIM, "master"), 1001)
MASTER_B = Login(ServerId(Platform.SIM, "master"), 1002)
LIVE = ServerId(Platform.MT5, "Broker-Live")
F1 = Login(LIVE, 7001)  # USD
F2 = Login(LIVE, 7002)  # EUR
ODD = Login(ServerId(Platform.MT5, "Odd<b>&Co"), 9)  # a server name that needs escaping in HTML
EVIL = "<script>alert(1)</script>"
WINDOW = ["--from", "2024-03-04", "--to", "2024-03-05"]
# F1's ten fills: whole latency (i + 1) ms, slippage in points:
F1_SLIPPAGE = [-12, -5, -1, 0, 0, 1, 2, 3, 5, 10]


class Builder:
    """Deals, intents, results and execution records written through the store's API."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.n = 0

    def deal(self, master: Login, detect_ns: int, legs: list[tuple[Login, dict]]) -> None:
        """One master deal detected at ``detect_ns`` and a leg per (follower, outcome); outcome keys:
        ``fill`` (whole latency ns), ``points``, ``money`` (str), ``reject`` (reason), ``skip`` (Reason),
        ``stay`` (an intent state it is left in: planned or sent)."""
        self.n += 1
        deal = MasterDeal(deal_id=DealId(master.platform, self.n), position_id=PositionId(master.platform, self.n),
                          account=master, symbol="EURUSD", kind=DealKind.OPEN, side=Side.BUY, volume=1_000_000,
                          time=DAY, price=Decimal("1.08500"))
        seq = self.store.journal_deal(deal, detect_ns)
        decide = detect_ns + 100_000
        intents = []
        for follower, outcome in legs:
            skip = outcome.get("skip")
            intents.append(IntentRow(
                key=idempotency_key(str(deal.deal_id), str(follower), 0), deal_seq=seq, follower_id=str(follower),
                leg=0, action=Action.NONE if skip else Action.OPEN, symbol="EURUSD", side=Side.BUY,
                volume=0 if skip else 500_000, ideal=Decimal("500000"), planned_ns=decide, reason=skip,
                state=IntentState.SKIPPED if skip else IntentState.PLANNED))
        self.store.plan(seq, intents)
        send = decide + 200_000
        for intent, (follower, outcome) in zip(intents, legs):
            if outcome.get("skip") or outcome.get("stay") == "planned":
                continue
            self.store.mark_sent(intent.key, send)
            if outcome.get("stay") == "sent":
                continue
            if "reject" in outcome:
                self.store.mark_rejected(intent.key, outcome["reject"], send + MS)
                continue
            fill = detect_ns + outcome["fill"]
            self.store.mark_filled(intent.key, OrderResult(
                key=intent.key, status=OrderStatus.FILLED, time=DAY, order_id=OrderId(follower.platform, self.n),
                position_id=PositionId(follower.platform, self.n), volume=500_000, price=Decimal("1.08510")), fill)
            self.store.record_execution(ExecutionRow(
                intent_key=intent.key, follower_id=str(follower), master_account=str(master),
                venue=str(follower.server), detect_ns=detect_ns, decide_ns=decide, send_ns=send, fill_ns=fill,
                master_price=Decimal("1.08500"), fill_price=Decimal("1.08510"),
                slippage_points=outcome.get("points"),
                slippage_money=None if outcome.get("money") is None else Decimal(outcome["money"])))


@pytest.fixture
def store_path(tmp_path) -> Path:
    path = tmp_path / "store.db"
    with Store.open(path) as store:
        store.upsert_account(AccountRow(F1, "follower", "USD", True))
        store.upsert_account(AccountRow(F2, "follower", "EUR", False))
        build = Builder(store)
        for i in range(10):
            f2 = ({"reject": "no-money"} if i == 8 else {"reject": "market-closed"} if i == 9
                  else {"fill": (i + 1) * 2 * MS, "points": 1, "money": "0.25"})
            build.deal(MASTER_A, T0 + i * 1_000 * MS,
                       [(F1, {"fill": (i + 1) * MS, "points": F1_SLIPPAGE[i], "money": "-0.10"}), (F2, f2)])
        # master B: at the window's very start (inclusive), a rejection with a hostile reason, a skip,
        # an order still in flight and one never sent
        build.deal(MASTER_B, to_ns(DAY), [(ODD, {"reject": EVIL}), (F1, {"skip": Reason.CLOSE_ONLY}),
                                         (F2, {"stay": "sent"})])
        build.deal(MASTER_B, to_ns(DAY) + 1, [(F1, {"stay": "planned"})])
        # outside the window: the day before, and exactly at --to (exclusive)
        build.deal(MASTER_A, to_ns(DAY) - 1, [(F1, {"fill": 999 * MS, "points": 50, "money": "9"})])
        build.deal(MASTER_A, to_ns(DAY + timedelta(days=1)), [(F1, {"fill": 999 * MS, "points": 50, "money": "9"})])
    return path


def add_pamm(path: Path, rows: list[tuple]) -> None:
    """Pools and their rollover entries in the store's PAMM tables (only what the report reads is meaningful)."""
    with Store.open(path) as store:
        now = "2024-03-01T00:00:00+00:00"
        for pool in sorted({r[0] for r in rows}):
            store.db.execute("INSERT INTO pamm_pools (id, master, handling, schedule, settings, opened_at, state, "
                             "steps, updated_at) VALUES (?, 'sim/sim/1', 'reallocate', 'manual', '{}', ?, '{}', 0, ?)",
                             (pool, now, now))
        store.db.conn.executemany("INSERT INTO pamm_entries (pool, seq, at, kind, amount, units, detail, nav) "
                                  "VALUES (?, ?, ?, ?, '0.00', '0', '', ?)", rows)
        store.db.conn.commit()


def run(capsys, *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(["report", *argv])
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def report_json(capsys, store_path, *extra) -> dict:
    code, out, err = run(capsys, "--store", str(store_path), *WINDOW, "--format", "json", *extra)
    assert code == 0, err
    return json.loads(out)


# -- figures ---------------------------------------------------------------------------------------

def test_counts_by_master_follower_and_venue_are_exact(capsys, store_path):
    data = report_json(capsys, store_path)
    overall = data["overall"]
    # in the window: 20 orders of master A, 3 (+1 skipped) of master B; the two outside are not counted
    assert (overall["orders"], overall["filled"], overall["rejected"], overall["pending"], overall["skipped"]) \
        == (23, 18, 3, 2, 1)
    assert overall["rejected_by_reason"] == {EVIL: 1, "market-closed": 1, "no-money": 1}
    assert overall["skipped_by_reason"] == {"close-only": 1}
    masters = {g["group"]: g for g in data["by_master"]}
    assert set(masters) == {str(MASTER_A), str(MASTER_B)}
    assert (masters[str(MASTER_A)]["orders"], masters[str(MASTER_A)]["filled"]) == (20, 18)
    assert masters[str(MASTER_B)]["rejected_by_reason"] == {EVIL: 1}
    assert (masters[str(MASTER_B)]["pending"], masters[str(MASTER_B)]["skipped"]) == (2, 1)
    followers = {g["group"]: g for g in data["by_follower"]}
    assert followers[str(F2)]["rejected_by_reason"] == {"market-closed": 1, "no-money": 1}
    assert (followers[str(F1)]["orders"], followers[str(F1)]["filled"], followers[str(F1)]["pending"]) == (11, 10, 1)
    venues = {g["group"]: g for g in data["by_venue"]}
    assert set(venues) == {str(LIVE), str(ODD.server)}
    assert (venues[str(LIVE)]["orders"], venues[str(LIVE)]["filled"]) == (22, 18)


def test_latency_percentiles_are_nearest_rank_of_the_chosen_latencies(capsys, store_path):
    followers = {g["group"]: g for g in report_json(capsys, store_path)["by_follower"]}
    f1, f2 = followers[str(F1)]["latency"], followers[str(F2)]["latency"]
    # F1: 1..10 ms -> p50 the 5th, p99 the 10th; F2: 2, 4 .. 16 ms (8 fills)
    assert (f1["total"]["p50_ns"], f1["total"]["p99_ns"]) == (5 * MS, 10 * MS)
    assert (f1["total"]["p50_ms"], f1["total"]["p99_ms"]) == ("5.000", "10.000")
    assert (f2["total"]["p50_ns"], f2["total"]["p99_ns"]) == (8 * MS, 16 * MS)
    assert f1["detect_decide"] == {"p50_ms": "0.100", "p99_ms": "0.100", "p50_ns": 100_000, "p99_ns": 100_000}
    assert f1["decide_send"]["p50_ns"] == 200_000
    assert f1["send_fill"]["p50_ns"] == 5 * MS - 300_000
    assert followers[str(ODD)]["latency"]["total"] is None  # no execution


def test_slippage_mean_percentiles_buckets_and_money_per_currency(capsys, store_path):
    data = report_json(capsys, store_path)
    f1 = {g["group"]: g for g in data["by_follower"]}[str(F1)]
    assert f1["slippage_points"] == {
        "count": 10, "mean": "0.30", "p50": 0, "p99": 10,
        "buckets": {"<=-10": 1, "-9..-5": 1, "-4..-2": 0, "-1": 1, "0": 2, "1": 1, "2..4": 2, "5..9": 1, ">=10": 1},
    }
    assert f1["slippage_money"] == {"USD": "-1.00"}
    # all: F1's ten and F2's eight (+1 each, 0.25 EUR each); money is kept per currency, never added across
    overall = data["overall"]
    assert overall["slippage_points"]["count"] == 18
    assert overall["slippage_points"]["mean"] == str((Decimal(3 + 8) / 18).quantize(Decimal("0.01")))
    assert overall["slippage_money"] == {"EUR": "2.00", "USD": "-1.00"}
    assert bucket_of(-10) == "<=-10" and bucket_of(-4) == "-4..-2" and bucket_of(4) == "2..4" and bucket_of(99) == ">=10"


def test_a_window_takes_from_inclusive_and_to_exclusive(store_path):
    span = window("2024-03-04T12:00:00", "2024-03-04T12:00:05")  # master A's first five deals
    data = read_window(store_path, span)
    result = summarise(span, data.orders)
    assert (result.overall.orders, result.overall.filled) == (10, 10)
    shifted = window("2024-03-04T13:00:00+01:00", "2024-03-04T13:00:05+01:00")  # the same instants
    assert summarise(shifted, read_window(store_path, shifted).orders).overall == result.overall


# -- formats ---------------------------------------------------------------------------------------

def test_the_table_shows_each_scope_and_the_figures(capsys, store_path):
    code, out, err = run(capsys, "--store", str(store_path), *WINDOW)
    assert code == 0 and err == ""
    assert "all: 23 orders, 18 filled, 3 rejected, 2 pending, 1 skipped" in out
    for heading in ("per master", "per follower", "per venue", "latency by stage", "slippage distribution"):
        assert heading in out
    f1_line = next(line for line in out.splitlines() if line.startswith(str(F1)))
    assert f1_line.split()[1:9] == ["11", "10", "0", "1", "1", "5.000", "10.000", "0.30"]
    assert "no PAMM pools" in out


def test_csv_parses_with_a_row_per_group_and_every_column(capsys, store_path):
    code, out, _ = run(capsys, "--store", str(store_path), *WINDOW, "--format", "csv")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["scope"], r["group"]) for r in rows] == [
        ("all", "all"), ("master", str(MASTER_A)), ("master", str(MASTER_B)),
        ("follower", str(F1)), ("follower", str(F2)), ("follower", str(ODD)),
        ("venue", str(LIVE)), ("venue", str(ODD.server))]
    f1 = rows[3]
    assert (f1["orders"], f1["filled"], f1["latency_total_p50_ms"], f1["latency_total_p99_ms"]) == \
        ("11", "10", "5.000", "10.000")
    assert (f1["slippage_mean_points"], f1["slippage_bucket[<=-10]"], f1["slippage_money[USD]"],
            f1["slippage_money[EUR]"]) == ("0.30", "1", "-1.00", "")
    assert rows[0][f"rejected[{EVIL}]"] == "1" and rows[4]["rejected[no-money]"] == "1"
    assert rows[0]["skipped[close-only]"] == "1"


class Page(HTMLParser):
    """What the tests look for in the page: svg ids, texts, scripts, external references."""

    def __init__(self) -> None:
        super().__init__()
        self.svgs: list[str] = []
        self.tags: list[str] = []
        self.text: list[str] = []
        self.polylines: list[str] = []
        self.references: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if tag == "svg":
            self.svgs.append(attrs.get("id", ""))
        if tag == "polyline":
            self.polylines.append(attrs["points"])
        for name in ("src", "href"):
            if name in attrs:
                self.references.append(attrs[name])

    def handle_data(self, data):
        self.text.append(data)


def parse_page(text: str) -> Page:
    page = Page()
    page.feed(text)
    page.close()
    return page


def test_html_is_one_page_with_three_charts_and_escaped_store_texts(capsys, store_path, tmp_path):
    out_file = tmp_path / "report.html"
    code, out, err = run(capsys, "--store", str(store_path), *WINDOW, "--format", "html", "--output", str(out_file))
    assert code == 0 and out == "" and str(out_file) in err
    text = out_file.read_text(encoding="utf-8")
    page = parse_page(text)
    assert page.svgs == ["latency-histogram", "slippage-over-time", "pamm-nav"]
    assert "script" not in page.tags and page.references == []  # no JS, nothing fetched
    assert EVIL not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "Odd<b>" not in text and "Odd&lt;b&gt;&amp;Co" in text
    joined = "".join(page.text)
    assert EVIL in joined and str(ODD) in joined  # the parser reads the escaped texts back exactly
    assert "no PAMM pools" in joined
    assert text.count('class="bar"') == 20 and text.count('class="point"') == 18


def test_html_draws_a_nav_curve_per_pool_with_rollovers_in_the_window(capsys, store_path):
    pool = "<i>pool</i>"
    add_pamm(store_path, [
        (pool, 1, "2024-03-04T00:00:00+00:00", "rollover", "1000.00"),
        (pool, 2, "2024-03-04T06:00:00+00:00", "deposit", None),
        (pool, 3, "2024-03-04T12:00:00+00:00", "rollover", "1012.50"),
        (pool, 4, "2024-03-04T23:00:00+00:00", "rollover", "1005.25"),
        (pool, 5, "2024-03-05T00:00:00+00:00", "rollover", "9999"),  # at --to: outside
        ("beta", 1, "2024-03-04T10:00:00+02:00", "rollover", "50"),
    ])
    code, out, _ = run(capsys, "--store", str(store_path), *WINDOW, "--format", "html")
    assert code == 0
    page = parse_page(out)
    assert page.svgs == ["latency-histogram", "slippage-over-time", "pamm-nav-0", "pamm-nav-1"]
    assert [len(p.split()) for p in page.polylines] == [3, 1]  # "<i>pool</i>" sorts before "beta"
    assert pool not in out and "&lt;i&gt;pool&lt;/i&gt;" in out
    data = report_json(capsys, store_path)
    assert data["pamm_nav"] == {
        "beta": [{"seq": 1, "at": "2024-03-04T08:00:00+00:00", "nav": "50"}],
        pool: [{"seq": 1, "at": "2024-03-04T00:00:00+00:00", "nav": "1000.00"},
               {"seq": 3, "at": "2024-03-04T12:00:00+00:00", "nav": "1012.50"},
               {"seq": 4, "at": "2024-03-04T23:00:00+00:00", "nav": "1005.25"}]}


def chromium() -> str | None:
    return next((p for name in ("chromium", "chromium-browser")
                 if (p := shutil.which(name) or (f"/usr/bin/{name}" if os.path.exists(f"/usr/bin/{name}") else None))),
                None)


@pytest.mark.skipif(chromium() is None, reason="no chromium or chromium-browser installed (CI starts bare)")
def test_headless_chromium_renders_the_three_svg_charts(capsys, store_path, tmp_path):
    page_file = tmp_path / "report.html"
    code, _, err = run(capsys, "--store", str(store_path), *WINDOW, "--format", "html", "--output", str(page_file))
    assert code == 0, err
    done = subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", page_file.as_uri()],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    dom = parse_page(done.stdout)
    assert dom.svgs == ["latency-histogram", "slippage-over-time", "pamm-nav"]
    assert done.stdout.count('class="bar"') == 20
    assert EVIL in "".join(dom.text) and "script" not in dom.tags  # rendered as text, never run


# -- empty windows, bad input, progress ---------------------------------------------------------------

def test_an_empty_window_is_an_empty_report_in_every_format(capsys, store_path):
    empty = ["--store", str(store_path), "--from", "2020-01-01", "--to", "2020-01-02"]
    code, out, err = run(capsys, *empty)
    assert code == 0 and err == ""
    assert "all: 0 orders, 0 filled, 0 rejected, 0 pending, 0 skipped (nothing in this window)" in out
    code, out, _ = run(capsys, *empty, "--json")
    data = json.loads(out)
    assert code == 0 and data["overall"]["orders"] == 0 and data["by_follower"] == []
    assert data["overall"]["latency"]["total"] is None and data["overall"]["slippage_points"]["mean"] is None
    code, out, _ = run(capsys, *empty, "--format", "csv")
    assert code == 0 and [r["group"] for r in csv.DictReader(io.StringIO(out))] == ["all"]
    code, out, _ = run(capsys, *empty, "--format", "html")
    page = parse_page(out)
    assert code == 0 and page.svgs == ["latency-histogram", "slippage-over-time", "pamm-nav"]
    assert "no executions in this window" in "".join(page.text)


@pytest.mark.parametrize("argv,words", [
    (["--from", "2024-03-05", "--to", "2024-03-04"], "--from 2024-03-05T00:00:00+00:00 is not before --to"),
    (["--from", "2024-03-04", "--to", "2024-03-04"], "is not before --to"),
    (["--from", "yesterday", "--to", "2024-03-04"], "--from: 'yesterday' is not a date"),
    (["--from", "2024-03-04", "--to", "2024-13-01"], "--to: '2024-13-01' is not a date"),
    (["--from", "2024-03-04"], "Missing option '--to'"),
    (["--from", "2024-03-04", "--to", "2024-03-05", "--format", "pdf"], "Invalid value for '--format'"),
    (["--from", "2024-03-04", "--to", "2024-03-05", "--format", "csv", "--json"], "--json and --format csv disagree"),
])
def test_bad_windows_and_options_are_one_line_and_exit_2(capsys, store_path, argv, words):
    code, out, err = run(capsys, "--store", str(store_path), *argv)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("bridge: error: ") and words in err


def test_the_store_is_named_by_config_or_store_and_must_be_one(capsys, store_path, tmp_path):
    config = tmp_path / "bridge.toml"
    config.write_text(f'[store]\npath = "{store_path}"\n[[venue]]\nname = "sim-demo"\nplatform = "sim"\n'
                      '  [[venue.account]]\n  login = 1000\n  balance = 50000\n')
    code, out, _ = run(capsys, "--config", str(config), *WINDOW, "--json")
    assert code == 0 and json.loads(out)["overall"]["orders"] == 23
    for argv, words in ((["--config", str(config), "--store", str(store_path)], "exactly one of --config"),
                        ([], "exactly one of --config"),
                        (["--store", str(tmp_path / "missing.db")], "no store at"),
                        (["--store", str(config)], "is not a copybridge store")):
        code, out, err = run(capsys, *argv, *WINDOW)
        assert code == 2 and out == "" and err.count("\n") == 1 and words in err
    assert not (tmp_path / "missing.db").exists()  # a report never creates a store


def bridge(*argv: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from bridge.cli.main import main; main()", "report", *argv],
                          cwd=ROOT, timeout=60, **kwargs)


def test_a_progress_bar_on_a_terminal_and_none_when_piped(store_path):
    piped = bridge("--store", str(store_path), *WINDOW, capture_output=True, text=True)
    assert piped.returncode == 0 and piped.stderr == "" and "per master" in piped.stdout
    import pty
    leader, follower = pty.openpty()
    try:
        on_tty = bridge("--store", str(store_path), *WINDOW, stdout=subprocess.PIPE, stderr=follower)
        os.close(follower)
        seen = b""
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the terminal's other end is closed and drained
                break
            if not chunk:
                break
            seen += chunk
    finally:
        os.close(leader)
    assert on_tty.returncode == 0 and b"per master" in on_tty.stdout
    assert b"reading orders" in seen
