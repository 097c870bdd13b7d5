"""A PAMM pool's state and ledger entries as JSON-safe dicts, and back, exactly.

Rules (the store keeps these in ``pamm_pools.state``/``settings`` and ``pamm_entries``):

* a ``Decimal`` is its ``str()``: every digit and the exponent kept
  (``1.10`` stays ``1.10``, ``0E-8`` stays ``0E-8``), so a value read back is
  the identical Decimal, not only an equal one (an int in a Decimal field, the
  ledger's ``0`` for "no amount", reads back as the equal ``Decimal('0')``);
* a ``datetime`` is ISO-8601 with its UTC offset (the ledger refuses naive times);
* the loss-sharing mode is its text (``pro-rata``); ``None`` stays ``null``;
* ints and strings as they are. Floats never appear: a float where a Decimal
  belongs is refused (:class:`~bridge.store.errors.StoreError`).

Which field is which comes from the ledger dataclasses' own type hints, so a
field added to the ledger is encoded without touching this module.
"""

from __future__ import annotations

import typing
from dataclasses import fields
from datetime import datetime
from decimal import Decimal, InvalidOperation
from enum import Enum
from functools import cache
from typing import Any

from allocation.pamm import Entry, Holder, Pool, PoolSettings, Request
from bridge.store.errors import StoreError


@cache
def _kinds(cls: type) -> dict[str, type | None]:
    """Field name -> Decimal, datetime, an Enum class, or None (stored as is)."""
    hints = typing.get_type_hints(cls)
    out: dict[str, type | None] = {}
    for f in fields(cls):
        args = typing.get_args(hints[f.name]) or (hints[f.name],)
        out[f.name] = next((a for a in args if isinstance(a, type) and
                            (a in (Decimal, datetime) or issubclass(a, Enum))), None)
    return out


def _out(value: Any, kind: type | None, name: str) -> Any:
    if value is None:
        return None
    if kind is Decimal:
        if isinstance(value, bool) or not isinstance(value, (Decimal, int)) or not Decimal(value).is_finite():
            raise StoreError(f"{name} must be a finite Decimal, got {value!r}")
        return str(value)  # an int the ledger used for a zero (``amount or 0``) reads back as Decimal('0')
    if kind is datetime:
        if not isinstance(value, datetime) or value.tzinfo is None:
            raise StoreError(f"{name} must be a timezone-aware datetime, got {value!r}")
        return value.isoformat()
    if kind is not None:
        return value.value
    if isinstance(value, float):
        raise StoreError(f"{name} must not be a float, got {value!r}")
    return value


def _in(value: Any, kind: type | None, name: str) -> Any:
    if value is None or kind is None:
        return value
    try:
        if kind is Decimal:
            return Decimal(value)
        if kind is datetime:
            return datetime.fromisoformat(value)
        return kind(value)
    except (InvalidOperation, TypeError, ValueError):
        raise StoreError(f"stored {name} {value!r} is corrupt") from None


def _encode(obj: Any) -> dict:
    cls = type(obj)
    return {name: _out(getattr(obj, name), kind, f"{cls.__name__}.{name}") for name, kind in _kinds(cls).items()}


def _decode(cls: type, data: dict, **nested: Any) -> Any:
    kinds = _kinds(cls)
    unknown = sorted(set(data) - set(kinds))
    if unknown:
        raise StoreError(f"stored {cls.__name__} has an unknown field {unknown[0]!r}")
    values = {name: _in(data[name], kind, f"{cls.__name__}.{name}") for name, kind in kinds.items()
              if name in data and name not in nested}
    return cls(**values, **nested)


def settings_to_dict(settings: PoolSettings) -> dict:
    return _encode(settings)


def settings_from_dict(data: dict) -> PoolSettings:
    return _decode(PoolSettings, data)


def pool_to_dict(pool: Pool) -> dict:
    """The whole pool: settings, holders and pending requests included."""
    out = _encode(pool)
    out["settings"] = settings_to_dict(pool.settings)
    out["holders"] = [_encode(h) for h in pool.holders]
    out["pending"] = [_encode(r) for r in pool.pending]
    return out


def pool_from_dict(data: dict) -> Pool:
    return _decode(Pool, data, settings=settings_from_dict(data["settings"]),
                   holders=tuple(_decode(Holder, h) for h in data["holders"]),
                   pending=tuple(_decode(Request, r) for r in data["pending"]))


def entry_to_dict(entry: Entry) -> dict:
    """An entry with exactly the ``pamm_entries`` columns (less ``pool``)."""
    return _encode(entry)


def entry_from_dict(data: dict) -> Entry:
    return _decode(Entry, data)
