"""Strict reading of TOML tables: every key known, every value checked, errors name the key.

TOML floats are read as ``Decimal`` (``tomllib`` with ``parse_float=Decimal``),
so ``step = 0.01`` is exactly one hundredth.

>>> t = Table({"step": Decimal("0.01")}, "config/demo.toml [symbol]")
>>> t.decimal("step")
Decimal('0.01')
>>> t.finish()
"""

from __future__ import annotations

import tomllib
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar

from bridge.domain.volume import parse_decimal
from bridge.errors import InputError

E = TypeVar("E", bound=Enum)
_MISSING = object()


def load_toml(path: str | Path) -> dict:
    path = Path(path)
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh, parse_float=Decimal)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, expected a TOML file") from None
    except PermissionError:
        raise InputError(f"{path}: permission denied") from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text") from None


class Table:
    """One TOML table being read; ``finish()`` rejects any key nobody asked for."""

    def __init__(self, data: Any, where: str) -> None:
        if not isinstance(data, dict):
            raise InputError(f"{where}: expected a table, got {type(data).__name__}")
        self.data = data
        self.where = where
        self._seen: set[str] = set()

    def __contains__(self, key: str) -> bool:
        return key in self.data

    def _get(self, key: str, default: Any) -> Any:
        self._seen.add(key)
        if key in self.data:
            return self.data[key]
        if default is _MISSING:
            raise InputError(f"{self.where}: missing key {key!r}")
        return default

    def raw(self, key: str, default: Any = _MISSING) -> Any:
        return self._get(key, default)

    def str(self, key: str, default: Any = _MISSING) -> Any:
        value = self._get(key, default)
        if value is not default and (not isinstance(value, str) or not value):
            raise InputError(f"{self.where}: {key} must be a non-empty string")
        return value

    def bool(self, key: str, default: Any = _MISSING) -> Any:
        value = self._get(key, default)
        if value is not default and not isinstance(value, bool):
            raise InputError(f"{self.where}: {key} must be true or false")
        return value

    def decimal(self, key: str, default: Any = _MISSING) -> Any:
        value = self._get(key, default)
        if value is default:
            return value
        try:
            return parse_decimal(value, key)
        except (TypeError, ValueError) as exc:
            raise InputError(f"{self.where}: {exc}") from None

    def enum(self, key: str, cls: type[E], default: Any = _MISSING) -> Any:
        value = self._get(key, default)
        if value is default:
            return value
        try:
            return cls(value)
        except ValueError:
            names = ", ".join(str(m.value) for m in cls)
            raise InputError(f"{self.where}: {key} {value!r} is not one of {names}") from None

    def _child(self, key: str) -> str:
        """``file [table]`` at the top, ``file [table].key`` below it."""
        return f"{self.where}.{key}" if "[" in self.where else f"{self.where} [{key}]"

    def table(self, key: str) -> "Table | None":
        value = self._get(key, None)
        return None if value is None else Table(value, self._child(key))

    def tables(self, key: str) -> list["Table"]:
        value = self._get(key, [])
        if not isinstance(value, list):
            raise InputError(f"{self.where}: {key} must be an array of tables ([[{key}]])")
        return [Table(item, f"{self._child(key)}[{i}]") for i, item in enumerate(value)]

    def finish(self) -> None:
        unknown = sorted(set(self.data) - self._seen)
        if unknown:
            known = ", ".join(sorted(self._seen)) or "none"
            raise InputError(f"{self.where}: unknown key {unknown[0]!r} (known here: {known})")
