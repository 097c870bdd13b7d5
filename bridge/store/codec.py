"""How domain values are written to SQLite columns, and read back exactly.

=====================  ==================================================
Python                 column
=====================  ==================================================
``Decimal``            TEXT, ``str(d)`` (exponent kept: ``1.10`` stays ``1.10``)
volume (``int``)       INTEGER, canonical units
``Login``              TEXT, ``str(login)`` = ``platform/server/number``
``PositionId`` etc.    TEXT, ``str(id)`` = ``platform:Kind:number``
``datetime``           TEXT, ISO-8601 in UTC, microseconds (``MasterDeal.time``)
bridge clock times     INTEGER nanoseconds since the epoch, UTC (``*_ns``)
``bool``               INTEGER 0/1
settings (``dict``)    TEXT JSON; Decimals as strings, floats refused
=====================  ==================================================

Floats never reach a money, price or volume column: the encoders refuse them.
"""

from __future__ import annotations

import json
from functools import lru_cache
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

from bridge.domain.ids import DealId, Login, OrderId, Platform, PositionId
from bridge.store.errors import StoreError

V = TypeVar("V", PositionId, DealId, OrderId)


def dec_out(value: Decimal | None, what: str = "value") -> str | None:
    """A Decimal (or None) as TEXT; anything else (a float above all) is refused."""
    if value is None:
        return None
    if not isinstance(value, Decimal):
        raise StoreError(f"{what} must be a Decimal or None, not {type(value).__name__} {value!r}")
    if not value.is_finite():
        raise StoreError(f"{what} must be finite, got {value}")
    return str(value)


def dec_in(text: str | None) -> Decimal | None:
    """TEXT back to the identical Decimal (same digits, same exponent)."""
    if text is None:
        return None
    try:
        return Decimal(text)
    except InvalidOperation:
        raise StoreError(f"stored decimal {text!r} is corrupt") from None


def int_out(value: int | None, what: str = "value") -> int | None:
    """An int (not a bool, not a float) or None."""
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise StoreError(f"{what} must be an int, not {type(value).__name__} {value!r}")
    return value


def account_out(value: Login | str, what: str = "account") -> str:
    """A Login, or its ``platform/server/number`` text (checked), as TEXT."""
    if isinstance(value, Login):
        return str(value)
    if isinstance(value, str):
        try:
            Login.parse(value)
        except ValueError as e:
            raise StoreError(f"{what}: {e}") from None
        return value
    raise StoreError(f"{what} must be a Login or its text, not {type(value).__name__}")


def venue_id_out(value: PositionId | DealId | OrderId | None, kind: type, what: str) -> str | None:
    """A typed venue id of exactly ``kind`` (a DealId is no PositionId) as TEXT."""
    if value is None:
        return None
    if type(value) is not kind:
        raise StoreError(f"{what} must be a {kind.__name__}, not {type(value).__name__} {value!r}")
    return str(value)


_PLATFORMS = {p.value: p for p in Platform}


def venue_id_in(text: str | None, kind: type[V]) -> V | None:
    """Parse ``platform:Kind:number`` back to ``kind``; a different kind is corruption."""
    if text is None:
        return None
    return _venue_id_in(text, kind)


@lru_cache(maxsize=1 << 16)  # ids are immutable; a deal's fan-out reads the same ones again (links, closes)
def _venue_id_in(text: str, kind: type[V]) -> V:
    parts = text.split(":")
    if len(parts) != 3 or parts[1] != kind.__name__ or not parts[2].isdigit():
        raise StoreError(f"stored id {text!r} is not a {kind.__name__}")
    platform = _PLATFORMS.get(parts[0])  # as written by venue_id_out: no need for Platform.parse's leniency
    return kind(platform if platform is not None else Platform.parse(parts[0]), int(parts[2]))


def time_out(value: datetime) -> str:
    """An aware datetime as ISO-8601 UTC text."""
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise StoreError(f"time must be a timezone-aware datetime, got {value!r}")
    return value.astimezone(timezone.utc).isoformat()


def time_in(text: str) -> datetime:
    """ISO-8601 text back to an aware UTC datetime."""
    return datetime.fromisoformat(text).astimezone(timezone.utc)


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _refuse_floats(value: Any, what: str) -> None:
    if isinstance(value, float):
        raise StoreError(f"{what}: float {value!r} refused; use a string or a Decimal")
    if isinstance(value, dict):
        for item in value.values():
            _refuse_floats(item, what)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _refuse_floats(item, what)


def json_out(value: dict | None, what: str = "settings") -> str:
    """Settings as canonical JSON (sorted keys). Decimals become strings; floats are refused."""
    value = {} if value is None else value
    if not isinstance(value, dict):
        raise StoreError(f"{what} must be a dict, not {type(value).__name__}")
    _refuse_floats(value, what)
    try:
        return json.dumps(value, sort_keys=True, default=_json_default, separators=(",", ":"))
    except TypeError as e:
        raise StoreError(f"{what}: {e}") from None


def json_in(text: str | None) -> dict:
    """JSON back to a dict; a number with a fraction comes back as a Decimal, never a float."""
    if text is None:
        return {}
    return json.loads(text, parse_float=Decimal)
