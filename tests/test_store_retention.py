"""``bridge store``: pruning old order detail without weakening exactly-once, and an online backup.

The store is filled by the real pipeline (tests.test_pipeline's Session: a sim
venue, the worker, the executor); what the pruned store still does is checked
at the venue: an old deal delivered again is not copied again, and an old
position still open at the master is still closed at every follower.
"""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

import pytest

from bridge.cli.main import main
from bridge.domain.deal import Side
from bridge.store import Store
from bridge.store.errors import StoreError
from bridge.store.retention import backup, prune
from tests.test_pipeline import Session

DAY_NS = 86_400 * 1_000_000_000


def table(store: Store, sql: str, *args) -> list[tuple]:
    return [tuple(row) for row in store.db.conn.execute(sql, args)]


@pytest.fixture
def aged(tmp_path):
    """Position A opened and closed, position B opened, both 200 days ago; position C opened today."""
    s = Session(tmp_path / "bridge.sqlite")
    v, m = s.venue, s.master
    a = v.trade(m, "EURUSD", Side.BUY, "1.00")
    v.close(m, a)
    s.b = v.trade(m, "GBPUSD", Side.SELL, "0.50")
    with s.store.transaction():
        s.store.db.conn.execute("UPDATE master_deals SET detected_ns = detected_ns - ?", (200 * DAY_NS,))
    s.old_deals = v.deals_since(m, None).result
    v.trade(m, "USDJPY", Side.BUY, "0.30")
    yield s
    s.store.close()


def test_prune_drops_old_detail_and_keeps_what_exactly_once_needs(aged):
    s = aged
    deals_before = table(s.store, "SELECT * FROM master_deals ORDER BY seq")
    open_links = table(s.store, "SELECT * FROM links WHERE state = 'open' ORDER BY rowid")
    followers = len(s.followers)
    dry = prune(s.store, time.time_ns() - 90 * DAY_NS, dry_run=True)
    assert table(s.store, "SELECT count(*) FROM intents") == [(4 * followers,)]  # a dry run changes nothing

    result = prune(s.store, time.time_ns() - 90 * DAY_NS)
    assert result.as_dict() == dry.as_dict()
    assert (result.deals, result.intents, result.executions, result.links) == (3, 3 * followers, 3 * followers,
                                                                              followers)
    assert table(s.store, "SELECT * FROM master_deals ORDER BY seq") == deals_before  # the journal stays whole
    assert table(s.store, "SELECT * FROM links WHERE state = 'open' ORDER BY rowid") == open_links  # B's and C's
    assert table(s.store, "SELECT DISTINCT symbol FROM intents") == [("USDJPY",)]
    assert table(s.store, "SELECT count(*) FROM executions") == [(followers,)]
    assert prune(s.store, time.time_ns() - 90 * DAY_NS).deals == 0  # nothing left to prune

    trades = {f: s.venue_trades(f) for f in s.followers}
    for deal in s.old_deals:  # the old deals delivered again (a replay, a backfill from the start)
        assert s.worker.accept(deal) is False
    assert s.worker.duplicates == len(s.old_deals)
    assert {f: s.venue_trades(f) for f in s.followers} == trades  # nothing copied twice

    s.venue.close(s.master, s.b)  # the old position B, its detail pruned, still closes at every follower
    assert {f: s.venue_trades(f) for f in s.followers} == {f: n + 1 for f, n in trades.items()}
    assert all(p.symbol == "USDJPY" for f in s.followers for p in s.venue.positions(f).result)


def test_an_old_deal_with_an_order_not_final_is_kept(aged):
    s = aged
    (seq,) = table(s.store, "SELECT min(seq) FROM master_deals")[0]
    with s.store.transaction():
        s.store.db.conn.execute("UPDATE intents SET state = 'unknown' WHERE key = "
                                "(SELECT key FROM intents WHERE deal_seq = ? LIMIT 1)", (seq,))
    result = prune(s.store, time.time_ns() - 90 * DAY_NS)
    assert (result.deals, result.kept_unfinished) == (2, 1)
    assert table(s.store, "SELECT count(*) FROM intents WHERE deal_seq = ?", seq) == [(len(s.followers),)]


def test_a_backup_is_a_checked_private_copy(aged, tmp_path):
    s = aged
    done = backup(s.store, tmp_path / "copy.sqlite")
    assert done["check"] == "ok" and done["deals"] == 4 and done["bytes"] > 0
    assert stat.S_IMODE(os.stat(tmp_path / "copy.sqlite").st_mode) == 0o600
    with Store.open(tmp_path / "copy.sqlite") as copy:
        assert table(copy, "SELECT * FROM intents ORDER BY key") == table(s.store, "SELECT * FROM intents ORDER BY key")
        assert copy.migrated == []
    with pytest.raises(StoreError, match="exists: a backup never overwrites"):
        backup(s.store, tmp_path / "copy.sqlite")


# -- the CLI ------------------------------------------------------------------------------

def run(capsys, *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(list(argv))
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


@pytest.fixture
def cfg(aged, tmp_path):
    path = tmp_path / "bridge.toml"
    path.write_text(f'[store]\npath = "{aged.path}"\n[[venue]]\nname = "demo"\nplatform = "sim"\n'
                    f'  [[venue.account]]\n  login = 1000\n  balance = 1000\n')
    return str(path)


def test_the_store_commands(cfg, capsys, tmp_path):
    code, out, err = run(capsys, "store", "info", "--config", cfg, "--json")
    assert code == 0, err
    figures = json.loads(out)
    assert figures["rows"]["master_deals"] == 4 and figures["bytes"] > 0
    assert "master_deals" in run(capsys, "store", "info", "--config", cfg)[1]

    code, out, err = run(capsys, "store", "prune", "--config", cfg, "--older-than", "90d", "--dry-run", "--json")
    assert code == 0, err
    assert json.loads(out)["deals"] == 3 and json.loads(out)["dry_run"] is True
    code, out, err = run(capsys, "store", "prune", "--config", cfg, "--older-than", "90")
    assert code == 0 and out.startswith("pruned the detail of 3 deal(s) older than 90: ")

    code, out, err = run(capsys, "store", "backup", "--config", cfg, "--to", str(tmp_path / "b.sqlite"))
    assert code == 0 and out.startswith(f"backup {tmp_path / 'b.sqlite'}: ") and "checked (ok)" in out
    for argv, expected in [
        (["backup", "--to", str(tmp_path / "b.sqlite")], "exists: a backup never overwrites a file"),
        (["backup", "--to", str(tmp_path / "nowhere" / "b.sqlite")], "is not a directory"),
        (["prune", "--older-than", "soon"], "--older-than 'soon': give days or hours"),
        (["prune", "--older-than", "0d"], "give days or hours"),
    ]:
        code, out, err = run(capsys, "store", argv[0], "--config", cfg, *argv[1:])
        assert code == 2 and err.startswith("bridge: error: ") and err.count("\n") == 1 and expected in err, err


def test_backups_into_a_directory_keep_the_newest(cfg, capsys, tmp_path, monkeypatch):
    folder = tmp_path / "backups"
    folder.mkdir()
    for day in ("20261201T030000Z", "20261202T030000Z", "20261203T030000Z"):
        (folder / f"copybridge-{day}.sqlite").write_text("an older backup")
    (folder / "notes.txt").write_text("not a backup")
    code, out, err = run(capsys, "store", "backup", "--config", cfg, "--to", str(folder), "--keep", "2", "--json")
    assert code == 0, err
    done = json.loads(out)
    assert done["deleted"] == [str(folder / "copybridge-20261201T030000Z.sqlite"),
                               str(folder / "copybridge-20261202T030000Z.sqlite")]
    assert sorted(p.name for p in folder.iterdir()) == ["copybridge-20261203T030000Z.sqlite",
                                                         Path(done["path"]).name, "notes.txt"]
    assert Path(done["path"]).name.startswith("copybridge-2") and done["check"] == "ok"
    code, out, err = run(capsys, "store", "backup", "--config", cfg, "--to", str(tmp_path / "x.sqlite"), "--keep", "2")
    assert code == 2 and "--keep goes with a directory" in err


def test_a_missing_store_is_one_line(tmp_path, capsys):
    path = tmp_path / "bridge.toml"
    path.write_text(f'[store]\npath = "{tmp_path / "none.sqlite"}"\n[[venue]]\nname = "demo"\nplatform = "sim"\n'
                    f'  [[venue.account]]\n  login = 1000\n  balance = 1000\n')
    code, out, err = run(capsys, "store", "info", "--config", str(path))
    assert code == 2 and "no such file (the daemon creates it at its first start)" in err and err.count("\n") == 1
