"""Reading PAMM input for the CLI: the ``[pool]`` settings table, times, amounts; every error one line.

The ``[pool]`` table is the same in a ``bridge pamm simulate`` scenario and in
the POOL.toml of ``bridge pamm create`` (see config/pamm-pool.toml); ``start``
is required by a scenario and optional for ``create`` (default: now).
"""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, Callable

from allocation.pamm import LossSharing, PammError, PoolSettings
from bridge.config.strict import Table
from bridge.errors import InputError

_REQUIRED = object()


def pool_settings(t: Table, start_default: Any = _REQUIRED) -> tuple[PoolSettings, datetime | None]:
    """The ``[pool]`` table as PoolSettings and its ``start`` (``start_default`` when absent; required if not given)."""
    start = toml_time(t, "start", None if start_default is _REQUIRED else start_default,
                      required=start_default is _REQUIRED)
    kwargs = {"manager": t.str("manager"), "loss_sharing": t.enum("loss_sharing", LossSharing, LossSharing.PRO_RATA)}
    for key in ("initial_nav", "performance_fee", "management_fee", "entry_fee", "exit_fee", "manager_minimum",
                "minimum_remaining"):
        if key in t:
            kwargs[key] = t.decimal(key)
    for key in ("performance_every", "freeze_seconds", "lockup_seconds"):
        if key in t:
            value = t.raw(key)
            if not isinstance(value, int) or isinstance(value, bool):
                raise InputError(f"{t.where}: {key} must be a whole number")
            kwargs[key] = value
    if "stop_drawdown" in t:
        kwargs["stop_drawdown"] = t.decimal("stop_drawdown")
    t.finish()
    return ledger_call(lambda: PoolSettings(**kwargs), t.where), start


def toml_time(t: Table, key: str, default: Any, *, required: bool = False) -> Any:
    """A TOML date-time with a UTC offset (``default`` when the key is absent)."""
    value = t.raw(key, default)
    if value is None and required:
        raise InputError(f"{t.where}: missing key {key!r}")
    if value is None:
        return None
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise InputError(f"{t.where}: {key} must be a TOML date-time with a UTC offset, "
                         f"e.g. 2024-01-01T00:00:00Z")
    return value


def ledger_call(fn: Callable[[], Any], where: str = "") -> Any:
    """Run a ledger or pool-book call; a refusal (PammError) becomes a one-line InputError (exit 2)."""
    try:
        return fn()
    except PammError as exc:
        raise InputError(f"{where}: {exc}" if where else str(exc)) from None


def parse_time(text: str | None, what: str = "--at") -> datetime:
    """An ISO-8601 time with a UTC offset (``Z`` allowed); None: now, UTC."""
    if text is None:
        return datetime.now(timezone.utc)
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise InputError(f"{what} {text!r} is not an ISO-8601 time, e.g. 2026-01-01T21:00:00Z") from None
    if value.tzinfo is None:
        raise InputError(f"{what} {text!r} needs a UTC offset, e.g. 2026-01-01T21:00:00Z")
    return value


def parse_amount(text: str, what: str) -> Decimal:
    """A money amount as typed: a decimal number (the ledger checks sign and cents)."""
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise InputError(f"{what} {text!r} is not a number") from None
    if not value.is_finite():
        raise InputError(f"{what} {text!r} is not a finite number")
    return value
