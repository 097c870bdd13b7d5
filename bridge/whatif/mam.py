"""What-if MAM split: a group file (optional) plus command-line options.

Group file format (``config/mam-group.toml`` is a complete example)::

    [group]
    method = "equity"              # lot | percent | balance | equity | equal | fixed
    leftover = "largest-remainder" # or "largest-equity"
    force_minimum = false

    [symbol]                       # the block's symbol; every account trades it
    name = "EURUSD"
    contract_size = 100000
    min = 0.01                     # lots
    max = 100
    step = 0.01

    [trade]                        # optional: the block to preview
    volume = 0.10                  # lots
    side = "buy"

    [[account]]
    id = "A"
    balance = 4500                 # for balance, and the tie-break's fallback
    equity = 4500                  # for equity, and the tie-breaks
    setting = 0                    # percent for percent, multiplier for lot, lots for fixed

Options given on the command line override the file; ``--account`` adds
accounts to the file's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from allocation.errors import AllocationError
from allocation.leg import Allocation
from allocation.mam import Leftover, MamGroup, Method, SubAccount, allocate_block
from bridge.config.strict import Table, load_toml
from bridge.domain.deal import Side
from bridge.errors import InputError
from bridge.whatif.inputs import SymbolFields, lots_to_volume, parse_pairs


@dataclass
class MamRequest:
    """Everything a MAM what-if needs; ``None`` means: take it from the file or the default."""

    group_file: Path | None = None
    method: Method | None = None
    leftover: Leftover | None = None
    force_minimum: bool | None = None
    volume: Decimal | None = None
    side: Side | None = None
    symbol: dict = field(default_factory=dict)  # name, contract_size, min, max, step overrides
    accounts: tuple[str, ...] = ()  # ID=VALUE
    equities: tuple[str, ...] = ()  # ID=EQUITY, tie-breaks


def run(request: MamRequest) -> Allocation:
    method, leftover, force, volume, side = None, Leftover.LARGEST_REMAINDER, False, None, Side.BUY
    symbol = SymbolFields()
    accounts: dict[str, dict] = {}
    if request.group_file is not None:
        doc = Table(load_toml(request.group_file), str(request.group_file))
        group = doc.table("group")
        if group is not None:
            method = group.enum("method", Method, None)
            leftover = group.enum("leftover", Leftover, leftover)
            force = group.bool("force_minimum", force)
            group.finish()
        symbol.read(doc.table("symbol"))
        trade = doc.table("trade")
        if trade is not None:
            volume = trade.decimal("volume", None)
            side = trade.enum("side", Side, side)
            trade.finish()
        for t in doc.tables("account"):
            name = t.str("id")
            if name in accounts:
                raise InputError(f"{t.where}: duplicate account {name!r}")
            accounts[name] = {k: t.decimal(k, Decimal(0)) for k in ("balance", "equity", "setting")}
            t.finish()
        doc.finish()

    method = request.method or method
    if method is None:
        raise InputError("no allocation method: pass --method or set [group] method in the group file")
    leftover = request.leftover or leftover
    force = force if request.force_minimum is None else request.force_minimum
    volume = request.volume if request.volume is not None else volume
    if volume is None:
        raise InputError("no block volume: pass --volume LOTS or set [trade] volume in the group file")
    side = request.side or side
    spec = symbol.override(**request.symbol).spec()
    block = lots_to_volume(spec, volume, "--volume")

    for name, value in parse_pairs(request.accounts, "--account", value_required=method is not Method.EQUAL):
        if name in accounts:
            raise InputError(f"duplicate account {name!r}")
        accounts[name] = _from_option(method, value or Decimal(0))
    for name, equity in parse_pairs(request.equities, "--equity"):
        if name not in accounts:
            raise InputError(f"--equity {name}: no such account")
        accounts[name]["equity"] = equity
    if not accounts:
        raise InputError("no accounts: pass --account ID=VALUE (repeatable) or [[account]] tables in the group file")

    subs = [SubAccount(name, spec, **values) for name, values in accounts.items()]
    try:
        return allocate_block(block, spec, side, MamGroup(method, leftover, force), subs)
    except AllocationError as exc:
        raise InputError(str(exc)) from None


def _from_option(method: Method, value: Decimal) -> dict:
    """What ``--account ID=VALUE`` means for each method."""
    if method in (Method.BALANCE, Method.EQUITY):
        return {"balance": value, "equity": value, "setting": Decimal(0)}
    return {"balance": Decimal(0), "equity": Decimal(0), "setting": value}
