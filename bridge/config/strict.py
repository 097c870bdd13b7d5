"""Strict reading of TOML tables: every key known, every value checked, errors name the file, line and key.

TOML floats are read as ``Decimal`` (``tomllib`` with ``parse_float=Decimal``),
so ``step = 0.01`` is exactly one hundredth.

>>> t = Table({"step": Decimal("0.01")}, "config/demo.toml [symbol]")
>>> t.decimal("step")
Decimal('0.01')
>>> t.finish()

A document from :func:`load_toml` knows each key's line (:mod:`bridge.config.lines`),
so its tables' errors begin ``FILE:LINE:`` (the key's line, else its table's):

>>> doc = Table(Document({"store": {"path": 1}}, "bridge.toml", {("store",): 3, ("store", "path"): 4}),
...             "bridge.toml")
>>> doc.table("store").str("path")
Traceback (most recent call last):
bridge.errors.InputError: bridge.toml:4: [store]: path must be a non-empty string
"""

from __future__ import annotations

import re
import tomllib
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar

from bridge.config.lines import Path as KeyPath
from bridge.config.lines import key_lines, line_of
from bridge.domain.volume import parse_decimal
from bridge.errors import InputError

E = TypeVar("E", bound=Enum)
_MISSING = object()


class Document(dict):
    """A TOML document's top table, with the file it came from and each key's line."""

    def __init__(self, data: dict, file: str, lines: dict[KeyPath, int]) -> None:
        super().__init__(data)
        self.file = file
        self.lines = lines


_AT = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")


def load_toml(path: str | Path) -> Document:
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
        data = tomllib.loads(text, parse_float=Decimal)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        at = _AT.search(message)
        if at is None:
            raise InputError(f"{path}: not valid TOML: {message}") from None
        raise InputError(f"{path}:{at.group(1)}: not valid TOML: {message[:at.start()]} "
                         f"(column {at.group(2)})") from None
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, expected a TOML file") from None
    except PermissionError:
        raise InputError(f"{path}: permission denied") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text") from None
    return Document(data, str(path), key_lines(text))


class Table:
    """One TOML table being read; ``finish()`` rejects any key nobody asked for.

    ``where`` names it in errors: ``FILE:LINE: [venue][0].account[1]`` for a table of a
    :class:`Document` (its header's line), else the text given; :meth:`at` names one of its keys.
    """

    def __init__(self, data: Any, where: str, *, _doc: Document | None = None, _path: KeyPath = (),
                 _label: str = "") -> None:
        if isinstance(data, Document) and _doc is None:
            _doc = data
        self.doc = _doc
        self.path = _path
        self.label = _label
        self._text = where
        if not isinstance(data, dict):
            raise InputError(f"{self.where}: expected a table, got {type(data).__name__}")
        self.data = data
        self._seen: set[str] = set()

    @property
    def where(self) -> str:
        if self.doc is None:
            return self._text
        return self._name(line_of(self.doc.lines, self.path))

    def at(self, key: str) -> str:
        """``where``, at the line of ``key`` (of the table when the key is not in the file)."""
        if self.doc is None:
            return self._text
        return self._name(line_of(self.doc.lines, (*self.path, key)))

    def _name(self, line: int | None) -> str:
        name = self.doc.file if line is None else f"{self.doc.file}:{line}"
        return f"{name}: {self.label}" if self.label else name

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
            raise InputError(f"{self.at(key)}: {key} must be a non-empty string")
        return value

    def bool(self, key: str, default: Any = _MISSING) -> Any:
        value = self._get(key, default)
        if value is not default and not isinstance(value, bool):
            raise InputError(f"{self.at(key)}: {key} must be true or false")
        return value

    def decimal(self, key: str, default: Any = _MISSING) -> Any:
        value = self._get(key, default)
        if value is default:
            return value
        try:
            return parse_decimal(value, key)
        except (TypeError, ValueError) as exc:
            raise InputError(f"{self.at(key)}: {exc}") from None

    def enum(self, key: str, cls: type[E], default: Any = _MISSING) -> Any:
        value = self._get(key, default)
        if value is default:
            return value
        try:
            return cls(value)
        except ValueError:
            names = ", ".join(str(m.value) for m in cls)
            raise InputError(f"{self.at(key)}: {key} {value!r} is not one of {names}") from None

    def _child(self, key: str) -> str:
        """``file [table]`` at the top, ``file [table].key`` below it (``[table]``, ``[table].key`` in a Document)."""
        if self.doc is not None:
            return f"{self.label}.{key}" if self.label else f"[{key}]"
        return f"{self.where}.{key}" if "[" in self.where else f"{self.where} [{key}]"

    def _sub(self, value: Any, label: str, path: KeyPath) -> "Table":
        if self.doc is None:
            return Table(value, label)
        return Table(value, label, _doc=self.doc, _path=path, _label=label)

    def table(self, key: str) -> "Table | None":
        value = self._get(key, None)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise InputError(f"{self.at(key)}: {key} must be a table, got {type(value).__name__}")
        return self._sub(value, self._child(key), (*self.path, key))

    def tables(self, key: str) -> list["Table"]:
        value = self._get(key, [])
        if not isinstance(value, list):
            raise InputError(f"{self.at(key)}: {key} must be an array of tables ([[{key}]])")
        return [self._sub(item, f"{self._child(key)}[{i}]", (*self.path, key, i)) for i, item in enumerate(value)]

    def finish(self) -> None:
        unknown = sorted(set(self.data) - self._seen, key=lambda k: (line_of(self._lines, (*self.path, k)) or 0, k))
        if unknown:
            known = ", ".join(sorted(self._seen)) or "none"
            raise InputError(f"{self.at(unknown[0])}: unknown key {unknown[0]!r} (known here: {known})")

    @property
    def _lines(self) -> dict:
        return self.doc.lines if self.doc is not None else {}
