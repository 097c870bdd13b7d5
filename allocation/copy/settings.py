"""Copy settings and the chain that resolves them (money.md section 2).

Settings sit on a chain, least specific first: provider strategy ->
subscription -> follower account (-> what-if overrides). Each level is a
:class:`CopySettings` whose fields are ``None`` where that level says nothing.
:func:`resolve` folds a chain into :class:`Effective` settings, by each
setting's rule:

====================  ==========================================================
mode, fixed_lots,     overridable: the most specific value wins
risk_fraction, tiny,
max_risk_coefficient,
max_trade_risk,
signal_lifetime,
max_slippage_points
multiplier            multiplies along the chain
reverse               XOR along the chain
symbol_map            each level's mapping applied in chain order
include / exclude     every level's filter applies (to the master's symbol;
                      shell-style patterns such as ``XAU*`` allowed)
sides                 intersection (``sides`` is the side the *follower*
                      trades, after ``reverse``)
min_lots / max_lots   max of the mins, min of the maxes; compared with the
                      volume after multipliers, in the follower symbol's lots
copy_sl / copy_tp     off anywhere -> off (default on)
skip_pending          on anywhere -> on (default off)
close_only            the subscription's value beats the follower's, which
                      beats the strategy's
risk_limits           additive: every level's limits apply
====================  ==========================================================
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import timedelta
from decimal import Decimal
from enum import Enum
from fnmatch import fnmatchcase

from allocation.errors import AllocationError
from bridge.domain.deal import Side
from bridge.domain.volume import parse_decimal


class SizingMode(str, Enum):
    MULTIPLIER = "multiplier"  # master lots x k
    FIXED = "fixed"  # fixed_lots x k
    BALANCE = "balance"  # master volume x follower balance / master balance x k
    EQUITY = "equity"  # the same with equity
    CONTRACT = "contract"  # the master's exposure in base units x k, whatever the contract sizes
    RISK = "risk"  # lose at most risk_fraction of balance at the master's stop-loss, x k

    def __str__(self) -> str:
        return self.value


class TinyTrades(str, Enum):
    SKIP = "skip"  # skip a volume below min - step/2 (one within half a step goes to the minimum)
    FORCE = "force"  # place the minimum if min / computed <= max_risk_coefficient

    def __str__(self) -> str:
        return self.value


class CloseOnly(str, Enum):
    BY_POSITION = "by-position"  # no new positions, closes still copied
    BY_SYMBOL = "by-symbol"  # opens only in symbols the follower already holds
    IMMEDIATELY = "immediately"  # close everything now

    def __str__(self) -> str:
        return self.value


class Period(str, Enum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    LIFETIME = "lifetime"

    def __str__(self) -> str:
        return self.value


class Basis(str, Enum):
    BALANCE = "balance"
    EQUITY = "equity"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class RiskLimit:
    """Stop copying when drawdown over ``period`` exceeds ``max_drawdown`` (a fraction)."""

    period: Period
    basis: Basis
    max_drawdown: Decimal
    close_positions: bool = False

    def __post_init__(self) -> None:
        if not Decimal(0) < self.max_drawdown <= Decimal(1):
            raise AllocationError(f"risk limit max_drawdown must be in (0, 1], got {self.max_drawdown}")


@dataclass(frozen=True, slots=True)
class CopySettings:
    """One level of the chain. ``None`` (or empty) means: not set at this level."""

    mode: SizingMode | None = None
    multiplier: Decimal | None = None
    fixed_lots: Decimal | None = None
    risk_fraction: Decimal | None = None
    reverse: bool | None = None
    symbol_map: tuple[tuple[str, str], ...] = ()
    include: frozenset[str] | None = None
    exclude: frozenset[str] | None = None
    sides: frozenset[Side] | None = None
    min_lots: Decimal | None = None
    max_lots: Decimal | None = None
    tiny: TinyTrades | None = None
    max_risk_coefficient: Decimal | None = None
    max_trade_risk: Decimal | None = None
    copy_sl: bool | None = None
    copy_tp: bool | None = None
    skip_pending: bool | None = None
    close_only: CloseOnly | None = None
    risk_limits: tuple[RiskLimit, ...] = ()
    signal_lifetime: timedelta | None = None
    max_slippage_points: int | None = None

    def __post_init__(self) -> None:
        if self.max_slippage_points is not None and (
                not isinstance(self.max_slippage_points, int) or self.max_slippage_points < 0):
            raise AllocationError(f"max_slippage_points must be a whole number >= 0, got {self.max_slippage_points!r}")
        for name in ("multiplier", "fixed_lots", "risk_fraction", "min_lots", "max_lots",
                     "max_risk_coefficient", "max_trade_risk"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, Decimal) or value < 0):
                raise AllocationError(f"{name} must be a non-negative decimal, got {value!r}")
        if self.risk_fraction is not None and self.risk_fraction > 1:
            raise AllocationError(f"risk_fraction is a fraction of balance (0..1), got {self.risk_fraction}")
        if self.max_trade_risk is not None and self.max_trade_risk > 1:
            raise AllocationError(f"max_trade_risk is a fraction of balance (0..1), got {self.max_trade_risk}")
        if self.min_lots is not None and self.max_lots is not None and self.min_lots > self.max_lots:
            raise AllocationError(f"min_lots {self.min_lots} is above max_lots {self.max_lots}")
        if self.sides is not None and not self.sides:
            raise AllocationError("sides must allow at least one side")
        if self.signal_lifetime is not None and self.signal_lifetime <= timedelta(0):
            raise AllocationError("signal_lifetime must be positive")


@dataclass(frozen=True, slots=True)
class Effective:
    """Settings after the chain is resolved: every value known."""

    mode: SizingMode = SizingMode.BALANCE
    multiplier: Decimal = Decimal(1)
    fixed_lots: Decimal | None = None
    risk_fraction: Decimal | None = None
    reverse: bool = False
    maps: tuple[tuple[tuple[str, str], ...], ...] = ()
    includes: tuple[frozenset[str], ...] = ()
    excludes: tuple[frozenset[str], ...] = ()
    sides: frozenset[Side] = frozenset(Side)
    min_lots: Decimal | None = None
    max_lots: Decimal | None = None
    tiny: TinyTrades = TinyTrades.SKIP
    max_risk_coefficient: Decimal = Decimal(5)
    max_trade_risk: Decimal | None = None
    copy_sl: bool = True
    copy_tp: bool = True
    skip_pending: bool = False
    close_only: CloseOnly | None = None
    risk_limits: tuple[RiskLimit, ...] = ()
    signal_lifetime: timedelta | None = None
    max_slippage_points: int | None = None  # worse fills are requoted; None: any price

    def map_symbol(self, symbol: str) -> str:
        for mapping in self.maps:
            for source, target in mapping:
                if source == symbol:
                    symbol = target
                    break
        return symbol

    def symbol_allowed(self, symbol: str) -> bool:
        for include in self.includes:
            if not any(fnmatchcase(symbol, pattern) for pattern in include):
                return False
        for exclude in self.excludes:
            if any(fnmatchcase(symbol, pattern) for pattern in exclude):
                return False
        return True

    def follower_side(self, master_side: Side) -> Side:
        return master_side.opposite if self.reverse else master_side


_OVERRIDABLE = ("mode", "fixed_lots", "risk_fraction", "tiny", "max_risk_coefficient",
                "max_trade_risk", "signal_lifetime", "max_slippage_points")


def resolve(
    strategy: CopySettings | None = None,
    subscription: CopySettings | None = None,
    follower: CopySettings | None = None,
    *overrides: CopySettings,
) -> Effective:
    """Fold the chain into effective settings (see the module docstring for the rules)."""
    chain = [level for level in (strategy, subscription, follower, *overrides) if level is not None]
    values: dict = {}
    for name in _OVERRIDABLE:
        for level in chain:
            if getattr(level, name) is not None:
                values[name] = getattr(level, name)
    multiplier = Decimal(1)
    reverse = False
    sides = frozenset(Side)
    mins, maxes = [], []
    for level in chain:
        if level.multiplier is not None:
            multiplier *= level.multiplier
        if level.reverse:
            reverse = not reverse
        if level.sides is not None:
            sides &= level.sides
        if level.min_lots is not None:
            mins.append(level.min_lots)
        if level.max_lots is not None:
            maxes.append(level.max_lots)
    close_only = next(
        (lvl.close_only for lvl in (subscription, *reversed([follower, *overrides]), strategy)
         if lvl is not None and lvl.close_only is not None),
        None,
    )
    return Effective(
        **values,
        multiplier=multiplier,
        reverse=reverse,
        maps=tuple(level.symbol_map for level in chain if level.symbol_map),
        includes=tuple(level.include for level in chain if level.include is not None),
        excludes=tuple(level.exclude for level in chain if level.exclude is not None),
        sides=sides,
        min_lots=max(mins) if mins else None,
        max_lots=min(maxes) if maxes else None,
        copy_sl=all(level.copy_sl is not False for level in chain),
        copy_tp=all(level.copy_tp is not False for level in chain),
        skip_pending=any(level.skip_pending for level in chain),
        close_only=close_only,
        risk_limits=tuple(limit for level in chain for limit in level.risk_limits),
    )


# -- from configuration ------------------------------------------------------

_KEYS = {f.name for f in fields(CopySettings)}


def settings_from_mapping(data: dict, where: str) -> CopySettings:
    """A level from a TOML table; unknown keys and bad values raise naming ``where.key``."""
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise AllocationError(f"{where}: unknown setting {unknown[0]!r} (known: {', '.join(sorted(_KEYS))})")
    out: dict = {}
    for key, value in data.items():
        path = f"{where}.{key}"
        try:
            out[key] = _CONVERT[key](value)
        except (ValueError, TypeError) as exc:
            raise AllocationError(f"{path}: {exc}") from None
    try:
        return CopySettings(**out)
    except AllocationError as exc:
        raise AllocationError(f"{where}: {exc}") from None


def _enum(cls):
    def convert(value):
        try:
            return cls(value)
        except ValueError:
            raise ValueError(f"{value!r} is not one of {', '.join(m.value for m in cls)}") from None
    return convert


def _bool(value):
    if not isinstance(value, bool):
        raise TypeError(f"expected true or false, got {value!r}")
    return value


def _decimal(value):
    return parse_decimal(value, "value")


def _names(value):
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise TypeError("expected a list of symbol names")
    if not value:
        raise ValueError("an empty list would match no symbol; leave the key out to match every symbol")
    return frozenset(value)


def _symbol_map(value):
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) and k and v
                                              for k, v in value.items()):
        raise TypeError("expected a table of SOURCE = \"TARGET\" symbol names")
    return tuple(value.items())


def _sides(value):
    names = {"both": frozenset(Side), "buy": frozenset({Side.BUY}), "sell": frozenset({Side.SELL})}
    if value not in names:
        raise ValueError(f"{value!r} is not one of both, buy, sell")
    return names[value]


def _points(value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError("expected a whole number of points >= 0")
    return value


def _seconds(value):
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError("expected a positive whole number of seconds")
    return timedelta(seconds=value)


def _risk_limits(value):
    if not isinstance(value, list):
        raise TypeError("expected an array of tables [[...risk_limits]]")
    limits = []
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise TypeError(f"entry {i} is not a table")
        unknown = set(item) - {"period", "basis", "max_drawdown", "close_positions"}
        if unknown:
            raise ValueError(f"entry {i}: unknown key {sorted(unknown)[0]!r}")
        if "max_drawdown" not in item:
            raise ValueError(f"entry {i}: max_drawdown is required")
        limits.append(RiskLimit(
            period=_enum(Period)(item.get("period", "lifetime")),
            basis=_enum(Basis)(item.get("basis", "equity")),
            max_drawdown=parse_decimal(item["max_drawdown"], "max_drawdown"),
            close_positions=_bool(item.get("close_positions", False)),
        ))
    return tuple(limits)


_CONVERT = {
    "mode": _enum(SizingMode), "multiplier": _decimal, "fixed_lots": _decimal,
    "risk_fraction": _decimal, "reverse": _bool, "symbol_map": _symbol_map,
    "include": _names, "exclude": _names, "sides": _sides, "min_lots": _decimal,
    "max_lots": _decimal, "tiny": _enum(TinyTrades), "max_risk_coefficient": _decimal,
    "max_trade_risk": _decimal, "copy_sl": _bool, "copy_tp": _bool, "skip_pending": _bool,
    "close_only": _enum(CloseOnly), "risk_limits": _risk_limits, "signal_lifetime": _seconds,
    "max_slippage_points": _points,
}
