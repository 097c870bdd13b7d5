"""Secrets in configuration: read from a file or an environment variable, never written in the TOML.

A secret key ``NAME`` is given as ``NAME_file = "/etc/copybridge/..."`` or
``NAME_env = "VARIABLE"`` (exactly one). A plain ``NAME = "..."`` is refused,
so a token never sits in a file that is copied around and pasted into tickets.
The value is read when the configuration is loaded (a missing file or variable
is a configuration error naming the key and its line); a secret file readable
by group or others is refused (``bridge run`` does not start). ``repr`` is
``***`` with where the secret came from, ``str`` only where it came from; the
value is only ever had from :meth:`Secret.reveal`.

>>> import os; os.environ["DOCTEST_TOKEN"] = "s3cret"
>>> s = Secret.from_env("DOCTEST_TOKEN", "where")
>>> s.reveal(), str(s), repr(s)
('s3cret', 'env:DOCTEST_TOKEN', 'Secret(*** from env:DOCTEST_TOKEN)')
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from bridge.errors import InputError


class Secret:
    __slots__ = ("_value", "source")

    def __init__(self, value: str, source: str) -> None:
        self._value = value
        self.source = source

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return f"Secret(*** from {self.source})"

    __str__ = lambda self: self.source  # noqa: E731

    def __eq__(self, other) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    @classmethod
    def literal(cls, value: str, source: str = "built-in") -> Secret:
        """A secret made in code (the demo's simulated venue), not read from configuration."""
        return cls(value, source)

    @classmethod
    def from_env(cls, variable: str, where: str) -> Secret:
        value = os.environ.get(variable)
        if not value:
            raise InputError(f"{where}: environment variable {variable} is not set or empty")
        return cls(value, f"env:{variable}")

    @classmethod
    def from_file(cls, path: Path, where: str) -> Secret:
        try:
            mode = path.stat().st_mode
            text = path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            raise InputError(f"{where}: secret file {path} does not exist") from None
        except (PermissionError, IsADirectoryError, UnicodeDecodeError) as exc:
            raise InputError(f"{where}: cannot read secret file {path}: {exc.__class__.__name__}") from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            who = " and ".join(w for w, bits in (("group", stat.S_IRWXG), ("others", stat.S_IRWXO)) if mode & bits)
            raise InputError(f"{where}: secret file {path} is open to {who} (mode {stat.S_IMODE(mode):04o}); "
                             f"make it the service user's only: chmod 600 {path}")
        if not text:
            raise InputError(f"{where}: secret file {path} is empty")
        return cls(text, f"file:{path}")


def read_secret(table, key: str, base: Path) -> Secret:
    """``key`` from ``key_file`` or ``key_env`` of a strict ``Table`` (exactly one of them)."""
    if key in table:
        table.raw(key)
        raise InputError(f"{table.at(key)}: {key} must not be written in the configuration; "
                         f"use {key}_file (a file readable only by the service user) or {key}_env")
    has_file, has_env = f"{key}_file" in table, f"{key}_env" in table
    if has_file == has_env:
        where = table.at(f"{key}_file") if has_file else table.where
        raise InputError(f"{where}: set exactly one of {key}_file and {key}_env")
    if has_env:
        return Secret.from_env(table.str(f"{key}_env"), f"{table.at(key + '_env')} {key}_env")
    path = Path(table.str(f"{key}_file"))
    return Secret.from_file(path if path.is_absolute() else base / path, f"{table.at(key + '_file')} {key}_file")
