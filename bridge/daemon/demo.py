"""The demo: the whole bridge in one process on a simulated venue, with a scripted master session.

A netting master on venue ``sim-demo`` trades a seeded random session (opens,
adds, partial closes, SL/TP changes, reversals, closes; flat at the end),
copied by N copy-trading followers (mixed sizing modes, some in reverse) and a
three-account MAM group. The bus, journal, worker and executor are the
production ones; the store is a temporary SQLite file.

The summary's ``duplicates`` and ``missing`` are counted against the venue's
own records: every follower's deal history at the venue, compared with the
orders the bridge says were filled, and every follower left flat when the
master is flat.
"""

from __future__ import annotations

import random
import tempfile
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path

from allocation.copy import CopySettings, resolve
from allocation.copy.settings import SizingMode
from allocation.mam import Leftover, MamGroup, Method
from bridge.daemon.config import BridgeConfig, CopyConfig, MamConfig, SimAccount, VenueConfig
from bridge.domain.deal import DealKind, Side
from bridge.domain.ids import Login, Platform, ServerId

SERVER = ServerId(Platform.SIM, "sim-demo")
MASTER = Login(SERVER, 1000)
MAM_MEMBERS = (Login(SERVER, 3001), Login(SERVER, 3002), Login(SERVER, 3003))
MODES = (  # follower i copies with MODES[i % len]
    CopySettings(mode=SizingMode.BALANCE),
    CopySettings(mode=SizingMode.MULTIPLIER, multiplier=Decimal("0.5")),
    CopySettings(mode=SizingMode.EQUITY, reverse=True),
    CopySettings(mode=SizingMode.FIXED, fixed_lots=Decimal("0.10")),
)


def demo_config(followers: int, seed: int, store_dir: Path, *, fill_latency_us: int = 2000,
                slippage_points: int = 2, reject_rate: Decimal = Decimal("0.01"),
                endpoint: str = "inproc://copybridge-demo") -> BridgeConfig:
    rng = random.Random(seed)
    copy_logins = [Login(SERVER, 2001 + i) for i in range(followers)]
    accounts = [SimAccount(MASTER.number, Decimal(100_000), hedging=False)]
    accounts += [SimAccount(f.number, Decimal(rng.randrange(2_000, 60_000)), hedging=False) for f in copy_logins]
    accounts += [SimAccount(m.number, Decimal(e), hedging=False) for m, e in zip(MAM_MEMBERS, (45_000, 35_000, 20_000))]
    venue = VenueConfig("sim-demo", Platform.SIM, seed, fill_latency_us, tuple(accounts), slippage_points,
                        reject_rate)
    copies = tuple(CopyConfig(MASTER, f, resolve(None, None, MODES[i % len(MODES)])) for i, f in enumerate(copy_logins))
    mam = MamConfig("alpha", MASTER, MamGroup(Method.EQUITY, Leftover.LARGEST_REMAINDER),
                    tuple((m, Decimal(0)) for m in MAM_MEMBERS))
    return BridgeConfig(store_dir / "demo.sqlite", endpoint, endpoint + "-replay", 50, (venue,), (MASTER,), copies,
                        (mam,))


@dataclass
class Script:
    """A seeded master session of ``deals`` deals on one netting account, flat at the end."""

    deals: int
    seed: int

    def steps(self):
        """Yields (action, args) tuples; 'open' and 'add' carry lots, 'partial' a fraction, 'sltp' offsets."""
        rng = random.Random(self.seed)
        open_lots = Decimal(0)
        for i in range(self.deals):
            last = i == self.deals - 1
            if open_lots == 0:
                if last:
                    return
                lots = Decimal(rng.randrange(10, 300)) / 100
                yield ("open", rng.choice((Side.BUY, Side.SELL)), lots)
                open_lots = lots
                continue
            if last:
                yield ("close",)
                return
            kind = rng.choices(("add", "partial", "sltp", "reverse", "close"), weights=(3, 3, 2, 1, 2))[0]
            if kind == "add":
                lots = Decimal(rng.randrange(10, 100)) / 100
                yield ("add", lots)
                open_lots += lots
            elif kind == "partial" and open_lots >= Decimal("0.20"):
                lots = (open_lots * Decimal(rng.randrange(20, 70)) / 100).quantize(Decimal("0.01"))
                yield ("partial", lots)
                open_lots -= lots
            elif kind == "reverse":
                lots = open_lots + Decimal(rng.randrange(10, 200)) / 100
                yield ("reverse", lots)
                open_lots = lots - open_lots
            elif kind == "close":
                yield ("close",)
                open_lots = Decimal(0)
            else:
                yield ("sltp",)


def play(venue, step, state: dict) -> None:
    """Carry out one script step on the master through the venue's manual API."""
    action = step[0]
    position = state.get("position")
    if action == "open":
        state["side"] = step[1]
        state["position"] = venue.trade(MASTER, "EURUSD", step[1], step[2])
    elif action == "add":
        venue.trade(MASTER, "EURUSD", state["side"], step[1])
    elif action == "partial":
        venue.close(MASTER, position, step[1])
    elif action == "reverse":
        state["side"] = state["side"].opposite
        venue.trade(MASTER, "EURUSD", state["side"], step[1])
    elif action == "close":
        venue.close(MASTER, position)
        state.pop("position")
    elif action == "sltp":
        mid = venue.market.quote("EURUSD").bid
        away = Decimal("0.00500")
        sl, tp = (mid - away, mid + away) if state["side"] is Side.BUY else (mid + away, mid - away)
        venue.modify(MASTER, position, sl, tp)


def summarise(store, venue, config: BridgeConfig, modifies_trade: bool = True) -> dict:
    """The demo's figures, with duplicates and missing counted against the venue's records.

    ``modifies_trade``: an SL/TP change is a deal in the venue's history (the
    sim venue); on cTrader it is not, so there only trading orders are matched."""
    intents = store.db.query("SELECT follower_id, state, reason, action FROM intents")
    counts: dict[str, int] = {}
    skipped: dict[str, int] = {}
    filled_by: dict[str, int] = {}
    for row in intents:
        counts[row["state"]] = counts.get(row["state"], 0) + 1
        if row["state"] == "skipped":
            skipped[row["reason"] or "none"] = skipped.get(row["reason"] or "none", 0) + 1
        if row["state"] == "filled" and (modifies_trade or row["action"] != "modify"):
            filled_by[row["follower_id"]] = filled_by.get(row["follower_id"], 0) + 1
    followers = [c.follower for c in config.copies] + [m for g in config.mams for m, _ in g.members]
    duplicates = missing = flat_errors = 0
    for login in followers:
        trades = sum(1 for d in venue.deals_since(login, None).result if d.kind is not DealKind.BALANCE)
        mine = filled_by.get(str(login), 0)
        duplicates += max(0, trades - mine)
        missing += max(0, mine - trades)
        flat_errors += 1 if venue.positions(login).result else 0
    missing += counts.get("planned", 0) + counts.get("sent", 0) + counts.get("unknown", 0)
    latencies = sorted(r["fill_ns"] - r["detect_ns"] for r in store.db.query(
        "SELECT fill_ns, detect_ns FROM executions"))
    slippage = sorted(r["slippage_points"] for r in store.db.query(
        "SELECT slippage_points FROM executions WHERE slippage_points IS NOT NULL"))
    money = [Decimal(r["slippage_money"]) for r in store.db.query(
        "SELECT slippage_money FROM executions WHERE slippage_money IS NOT NULL")]
    return {
        "master_deals": store.db["master_deals"].count,
        "followers": len(followers),
        "orders": sum(v for k, v in counts.items() if k != "skipped"),
        "filled": counts.get("filled", 0),
        "rejected": counts.get("rejected", 0),
        "skipped": dict(sorted(skipped.items())),
        "duplicates": duplicates,
        "missing": missing,
        "followers_not_flat": flat_errors,
        "latency_ms": {"p50": _ms(_rank(latencies, 50)), "p99": _ms(_rank(latencies, 99)),
                       "max": _ms(latencies[-1] if latencies else None)},
        "slippage_points": {"mean": str(_mean(slippage)), "p99": _rank(slippage, 99)},
        # in the followers' account currency (every demo account is in USD); positive cost them
        "slippage_money": {"total": str(sum(money, Decimal(0)).quantize(Decimal("0.01"))),
                           "mean": str((sum(money, Decimal(0)) / len(money)).quantize(Decimal("0.0001"))
                                       if money else Decimal(0))},
    }


def temp_dir() -> Path:
    return Path(tempfile.mkdtemp(prefix="copybridge-demo-"))


def _rank(values: list[int], pct: int):
    if not values:
        return None
    return values[min(len(values) - 1, max(0, -(-len(values) * pct // 100) - 1))]


def _ms(ns: int | None) -> str | None:
    return None if ns is None else str((Decimal(ns) / 1_000_000).quantize(Decimal("0.001")))


def _mean(values: list[int]) -> Decimal:
    return (Decimal(sum(values)) / len(values)).quantize(Decimal("0.01")) if values else Decimal(0)


def moved_to(sim_config: BridgeConfig, server: ServerId, venue: VenueConfig) -> BridgeConfig:
    """The sim demo's configuration with every account moved to ``venue`` (on ``server``), routes and all."""

    def moved(login: Login) -> Login:
        return Login(server, login.number)

    return replace(
        sim_config,
        venues=(venue,),
        masters=tuple(moved(m) for m in sim_config.masters),
        copies=tuple(replace(c, master=moved(c.master), follower=moved(c.follower)) for c in sim_config.copies),
        mams=tuple(replace(g, master=moved(g.master), members=tuple((moved(m), s) for m, s in g.members))
                   for g in sim_config.mams),
    )
