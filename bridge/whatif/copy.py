"""What-if copy fan-out: one master open, every follower's exact settings.

Settings file format (``config/copy-settings.toml`` is a complete example)::

    [master]
    balance = 50000
    equity = 50000                 # defaults to the balance

    [symbol]                       # the master's symbol; followers trade it under its
    name = "EURUSD"                # mapped name with this spec unless they list their own
    contract_size = 100000
    min = 0.01
    max = 100
    step = 0.01

    [trade]                        # optional: the master deal to preview
    volume = 2.00                  # lots
    side = "buy"
    price = 1.10000                # needed by risk sizing and max_trade_risk
    sl = 1.09500
    tp = 1.11000
    age = 0                        # seconds between the master deal and the copy

    [strategy]                     # the provider strategy's settings (any copy setting)
    [subscription]                 # the subscription's settings

    [[follower]]
    id = "F1"
    balance = 8000
    equity = 8000                  # defaults to the balance
    quote_rate = 1                 # quote currency -> account currency
    copying = true                 # false: the follower stopped copying
    stopped_out = false            # true: a risk limit stopped it
    held_symbols = []              # for close_only = "by-symbol"
    [follower.settings]            # the follower's own settings
    [[follower.symbol]]            # the follower venue's symbols (default: the master's spec)

Copy settings keys: see ``allocation.copy.settings`` (mode, multiplier,
fixed_lots, risk_fraction, reverse, symbol_map, include, exclude, sides,
min_lots, max_lots, tiny, max_risk_coefficient, max_trade_risk, copy_sl,
copy_tp, skip_pending, close_only, risk_limits, signal_lifetime).

Command-line settings form one more level at the end of every follower's
chain (the most specific), so ``--multiplier 1.5`` on a follower whose file
multiplier is 2 gives 3, and ``--mode fixed`` overrides any file mode.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

from allocation.copy import CopySettings, Follower, Master, copy_deal, resolve, settings_from_mapping
from allocation.errors import AllocationError
from allocation.leg import Allocation
from bridge.config.strict import Table, load_toml
from bridge.domain.deal import DealKind, MasterDeal, Side
from bridge.domain.ids import DealId, Login, Platform, PositionId, ServerId
from bridge.errors import InputError
from bridge.whatif.inputs import SymbolFields, lots_to_volume, parse_pairs

_WHATIF_ACCOUNT = Login(ServerId(Platform.SIM, "what-if"), 0)


@dataclass
class CopyRequest:
    settings_file: Path | None = None
    volume: Decimal | None = None
    side: Side | None = None
    price: Decimal | None = None
    sl: Decimal | None = None
    tp: Decimal | None = None
    age_seconds: int | None = None
    master_balance: Decimal | None = None
    master_equity: Decimal | None = None
    symbol: dict = field(default_factory=dict)  # the master's symbol overrides
    follower_symbol: dict = field(default_factory=dict)  # the followers' default symbol overrides
    followers: tuple[str, ...] = ()  # ID=BALANCE[:EQUITY]
    quote_rate: Decimal | None = None
    settings: dict = field(default_factory=dict)  # copy settings from options, by settings key


@dataclass
class _FollowerInput:
    name: str
    balance: Decimal
    equity: Decimal
    quote_rate: Decimal | None = None
    copying: bool = True
    stopped_out: bool = False
    held_symbols: frozenset[str] = frozenset()
    settings: CopySettings | None = None
    symbols: list[SymbolFields] = field(default_factory=list)


def run(request: CopyRequest, now: datetime | None = None) -> Allocation:
    now = now or datetime.now(timezone.utc)
    master_symbol = SymbolFields()
    trade: dict = {"side": Side.BUY}
    master: dict = {}
    levels: dict[str, CopySettings | None] = {"strategy": None, "subscription": None}
    followers: dict[str, _FollowerInput] = {}
    if request.settings_file is not None:
        _read_file(request.settings_file, master_symbol, trade, master, levels, followers)

    _merge(trade, side=request.side, volume=request.volume, price=request.price, sl=request.sl,
           tp=request.tp, age=request.age_seconds)
    _merge(master, balance=request.master_balance, equity=request.master_equity)
    master_fields = master_symbol.override(**request.symbol)
    master_spec = master_fields.spec(what="master symbol")
    follower_default = SymbolFields(**vars(master_fields)).override(**request.follower_symbol)
    if trade.get("volume") is None:
        raise InputError("no master volume: pass --volume LOTS or set [trade] volume in the settings file")
    volume = lots_to_volume(master_spec, trade["volume"], "--volume")
    if "balance" not in master:
        raise InputError("no master balance: pass --master-balance or set [master] balance in the settings file")
    master.setdefault("equity", master["balance"])

    for spec_text in request.followers:
        name, balance, equity = _parse_follower(spec_text)
        if name in followers:
            raise InputError(f"duplicate follower {name!r}")
        followers[name] = _FollowerInput(name, balance, equity)
    if not followers:
        raise InputError("no followers: pass --follower ID=BALANCE[:EQUITY] or [[follower]] tables in the settings file")

    try:
        overrides = settings_from_mapping(request.settings, "command-line settings") if request.settings else None
    except AllocationError as exc:
        raise InputError(str(exc)) from None
    age = trade.get("age") or 0
    deal = MasterDeal(
        DealId(Platform.SIM, 1), PositionId(Platform.SIM, 1), _WHATIF_ACCOUNT, master_spec.symbol,
        DealKind.OPEN, trade["side"], volume, now - timedelta(seconds=age),
        price=trade.get("price"), sl=trade.get("sl"), tp=trade.get("tp"),
    )
    master_state = Master(master["balance"], master["equity"], master_spec)
    legs = []
    for f in followers.values():
        chain = [levels["strategy"], levels["subscription"], f.settings]
        effective = resolve(*chain, *([overrides] if overrides else []))
        mapped = effective.map_symbol(master_spec.symbol)
        specs = {s.name: s.spec(what=f"follower {f.name} symbol {s.name}") for s in f.symbols}
        if not f.symbols:
            specs[mapped] = follower_default.spec(name=mapped, what=f"follower {f.name} symbol")
        rate = f.quote_rate if f.quote_rate is not None else request.quote_rate
        state = Follower(f.name, f.balance, f.equity, specs, copying=f.copying, stopped_out=f.stopped_out,
                         held_symbols=f.held_symbols, quote_rates={mapped: rate} if rate is not None else {})
        legs.extend(copy_deal(deal, master_state, state, effective, now))
    legs.sort(key=lambda leg: leg.account)
    return Allocation(volume, master_spec, trade["side"], tuple(legs))


def _merge(target: dict, **values) -> None:
    for key, value in values.items():
        if value is not None:
            target[key] = value


def _parse_follower(text: str) -> tuple[str, Decimal, Decimal]:
    name, sep, rest = text.partition("=")
    balance_text, colon, equity_text = rest.partition(":")
    if not name.strip() or not sep or not balance_text.strip() or (colon and not equity_text.strip()):
        raise InputError(f"--follower {text!r}: expected ID=BALANCE or ID=BALANCE:EQUITY, e.g. F1=8000")
    [(_, balance)] = parse_pairs([f"{name}={balance_text}"], "--follower")
    equity = balance
    if colon:
        [(_, equity)] = parse_pairs([f"{name}={equity_text}"], "--follower")
    return name.strip(), balance, equity


def _read_file(path, master_symbol, trade, master, levels, followers) -> None:
    doc = Table(load_toml(path), str(path))
    master_symbol.read(doc.table("symbol"))
    t = doc.table("trade")
    if t is not None:
        _merge(trade, volume=t.decimal("volume", None), side=t.enum("side", Side, None),
               price=t.decimal("price", None), sl=t.decimal("sl", None), tp=t.decimal("tp", None))
        age = t.raw("age", None)
        if age is not None and (isinstance(age, bool) or not isinstance(age, int) or age < 0):
            raise InputError(f"{t.where}: age must be a whole number of seconds >= 0")
        _merge(trade, age=age)
        t.finish()
    m = doc.table("master")
    if m is not None:
        _merge(master, balance=m.decimal("balance", None), equity=m.decimal("equity", None))
        m.finish()
    for level in ("strategy", "subscription"):
        if level in doc:
            levels[level] = _settings(doc.raw(level), f"{path} [{level}]")
    for t in doc.tables("follower"):
        name = t.str("id")
        if name in followers:
            raise InputError(f"{t.where}: duplicate follower {name!r}")
        balance = t.decimal("balance")
        f = _FollowerInput(name, balance, t.decimal("equity", balance), t.decimal("quote_rate", None),
                           t.bool("copying", True), t.bool("stopped_out", False))
        held = t.raw("held_symbols", [])
        if not isinstance(held, list) or not all(isinstance(s, str) for s in held):
            raise InputError(f"{t.where}: held_symbols must be a list of symbol names")
        f.held_symbols = frozenset(held)
        if "settings" in t:
            f.settings = _settings(t.raw("settings"), f"{t.where}.settings")
        f.symbols = [SymbolFields().read(s) for s in t.tables("symbol")]
        t.finish()
        followers[name] = f
    doc.finish()


def _settings(data, where: str) -> CopySettings:
    if not isinstance(data, dict):
        raise InputError(f"{where}: expected a table of copy settings")
    try:
        return settings_from_mapping(data, where)
    except AllocationError as exc:
        raise InputError(str(exc)) from None
