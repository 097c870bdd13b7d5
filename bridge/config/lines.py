"""Where each key of a TOML document is: a map from key paths to line numbers.

``tomllib`` reads values but keeps no positions, so errors about a key could
not name its line. :func:`key_lines` scans the same text (already accepted by
``tomllib``, so it is valid TOML) and maps every path to the line (1-based)
where it is defined. A path is a tuple of keys and, inside an array (of
tables, or an inline array), indices::

    [[venue]]                 ("venue", 0)                  line 1
    name = "a"                ("venue", 0, "name")          line 2
    [[venue.account]]         ("venue", 0, "account", 0)    line 3
    members = [{ x = 1 },     ("venue", 0, "account", 0, "members", 0, "x")
               { x = 2 }]     ("venue", 0, "account", 0, "members", 1)   line 5

Strings (multi-line ones too), comments and arrays spanning lines are skipped
as values, never read as keys. :func:`line_of` climbs to the nearest enclosing
path that has a line (a key inside an inline table without one of its own).

>>> lines = key_lines("[a]\\nb.c = '''\\nx = 1\\n'''\\n[[d]]\\n[[d]]\\ne = [1,\\n 2]\\n")
>>> lines[("a", "b", "c")], lines[("d", 1)], lines[("d", 1, "e", 1)], ("x",) in lines
(2, 6, 8, False)
"""

from __future__ import annotations

import re
import tomllib
from typing import Union

Path = tuple[Union[str, int], ...]

_BARE = re.compile(r"[A-Za-z0-9_-]+")
_SCALAR_END = re.compile(r"[,\]}\n#]")


def key_lines(text: str) -> dict[Path, int]:
    """Every table, array-of-tables entry, key and array element of ``text`` -> its line.

    ``text`` is TOML that ``tomllib`` accepted; should the scanner still lose its way, the
    map is empty (errors then name the file without a line) rather than an error of its own."""
    try:
        return _Scanner(text).run()
    except (_Lost, AttributeError, IndexError, tomllib.TOMLDecodeError):
        return {}


class _Lost(Exception):
    """The scanner ran past the end of the text (a bug: tomllib accepted it)."""


def line_of(lines: dict[Path, int], path: Path) -> int | None:
    """The line of ``path``, or of the nearest enclosing path that has one; None at the top."""
    for n in range(len(path), 0, -1):
        line = lines.get(path[:n])
        if line is not None:
            return line
    return None


class _Scanner:
    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0
        self.lines: dict[Path, int] = {}
        self.arrays: dict[Path, int] = {}  # an array of tables' path -> the index of its last entry

    # -- positions --------------------------------------------------------------------------
    @property
    def line(self) -> int:
        return self.s.count("\n", 0, self.i) + 1

    def _at(self, path: Path, line: int, explicit: bool = True) -> None:
        if explicit:
            self.lines[path] = line
        else:
            self.lines.setdefault(path, line)

    # -- characters -------------------------------------------------------------------------
    def _peek(self, n: int = 1) -> str:
        if self.i >= len(self.s):
            raise _Lost
        return self.s[self.i:self.i + n]

    def _blank(self, newlines: bool) -> None:
        """Skip spaces and tabs (and newlines and comments when ``newlines``)."""
        while self.i < len(self.s):
            c = self.s[self.i]
            if c in " \t\r" or (newlines and c == "\n"):
                self.i += 1
            elif c == "#" and newlines:
                end = self.s.find("\n", self.i)
                self.i = len(self.s) if end < 0 else end
            else:
                return

    def _rest_of_line(self) -> None:
        self._blank(False)
        if self.i < len(self.s) and self.s[self.i] == "#":
            end = self.s.find("\n", self.i)
            self.i = len(self.s) if end < 0 else end

    # -- the document -----------------------------------------------------------------------
    def run(self) -> dict[Path, int]:
        table: Path = ()
        while True:
            self._blank(True)
            if self.i >= len(self.s):
                return self.lines
            line = self.line
            if self._peek(2) == "[[":
                self.i += 2
                table = self._header(self._key(), line, array=True)
                self._blank(False)
                self.i += 2  # ]]
            elif self._peek() == "[":
                self.i += 1
                table = self._header(self._key(), line, array=False)
                self._blank(False)
                self.i += 1  # ]
            else:
                self._key_value(table)
            self._rest_of_line()

    def _header(self, keys: list[str], line: int, array: bool) -> Path:
        path: Path = ()
        for n, key in enumerate(keys):
            path += (key,)
            if n == len(keys) - 1 and array:
                self._at(path, line, explicit=False)
                index = self.arrays.get(path, -1) + 1
                self.arrays[path] = index
                path += (index,)
            elif path in self.arrays:
                path += (self.arrays[path],)
            elif n < len(keys) - 1:
                self._at(path, line, explicit=False)
        self._at(path, line)
        return path

    def _key_value(self, table: Path) -> None:
        line = self.line
        keys = self._key()
        for n in range(1, len(keys)):
            self._at(table + tuple(keys[:n]), line, explicit=False)
        path = table + tuple(keys)
        self._at(path, line)
        self._blank(False)
        self.i += 1  # =
        self._blank(False)
        self._value(path)

    def _key(self) -> list[str]:
        """A (dotted) key: bare, "basic" or 'literal' parts, decoded as tomllib decodes them."""
        keys = []
        while True:
            self._blank(False)
            c = self._peek()
            if c in "\"'":
                start = self.i
                self._string()
                keys.append(tomllib.loads("k = " + self.s[start:self.i])["k"])
            else:
                m = _BARE.match(self.s, self.i)
                keys.append(m.group())
                self.i = m.end()
            self._blank(False)
            if self._peek() != ".":
                return keys
            self.i += 1

    # -- values -----------------------------------------------------------------------------
    def _value(self, path: Path) -> None:
        c = self._peek()
        if c in "\"'":
            self._string()
        elif c == "[":
            self._array(path)
        elif c == "{":
            self._inline_table(path)
        else:
            m = _SCALAR_END.search(self.s, self.i)
            self.i = len(self.s) if m is None else m.start()

    def _string(self) -> None:
        quote = self._peek()
        if self._peek(3) == quote * 3:
            self.i += 3
            while True:
                if quote == '"' and self._peek() == "\\":
                    self.i += 2
                elif self._peek(3) == quote * 3:
                    self.i += 3
                    while self.s[self.i:self.i + 1] == quote:  # up to two quotes end the content: """a"""""
                        self.i += 1
                    return
                else:
                    self.i += 1
        self.i += 1
        while self._peek() != quote:
            self.i += 2 if quote == '"' and self._peek() == "\\" else 1
        self.i += 1

    def _array(self, path: Path) -> None:
        self.i += 1
        index = 0
        while True:
            self._blank(True)
            if self._peek() == "]":
                self.i += 1
                return
            self._at(path + (index,), self.line)
            self._value(path + (index,))
            self._blank(True)
            if self._peek() == ",":
                self.i += 1
            index += 1

    def _inline_table(self, path: Path) -> None:
        self.i += 1
        while True:
            self._blank(True)
            if self._peek() == "}":
                self.i += 1
                return
            if self._peek() == ",":
                self.i += 1
                continue
            self._key_value(path)
