"""DWX replies: the text the DWX EA writes (a Python-dict-like literal, single quotes) read without ``eval``.

The DWX ZeroMQ Server builds every reply by string concatenation (DWX.md, "Replies"):
``{'_action': 'OPEN_TRADES', '_trades': {1002: {'_magic': 0, '_symbol': 'EURUSD', '_lots': 0.10000000, ...}}}``.
:func:`parse` reads exactly that subset and nothing else:

- a dict (``{`` key ``:`` value, ... ``}``, a trailing comma allowed), nested at most :data:`MAX_DEPTH` deep;
- keys: a string or an integer (``_trades`` is keyed by bare ticket numbers);
- values: a dict, a string, or a number;
- strings in single quotes, taken as written up to the next quote: the EA escapes nothing, so a quote inside
  an order comment ends the string early and the reply is refused (one line saying where);
- numbers: ``-?digits[.digits]``, an ``int`` or an exact ``Decimal`` (never a float);
- at most :data:`MAX_CHARS` characters (a reply of every open order of a busy account is far below it).

Anything else (a list, ``True``, ``None``, a call, an attribute, a name, a stray character, text after the
dict) is :class:`ReplyError` with one line: what, and at which character. One quirk of the EA is accepted:
an ``OPEN`` reply with ``DMA_MODE = false`` ends ``}}`` (the EA closes the dict twice); a single extra
``}`` after the dict is ignored.

A key written twice (the EA appends ``'_response'`` once per attempt, so a failed close reads
``'_response': '138', ..., '_response': 'CLOSE_MARKET'``) keeps the last value, as Python would, and
:meth:`Reply.every` gives all of them in order.
"""

from __future__ import annotations

import re
from decimal import Decimal

MAX_CHARS = 1_000_000
MAX_DEPTH = 4

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_SPACE = " \t\r\n"


class ReplyError(ValueError):
    """A reply that is not a DWX literal; the message is one line."""


class Reply(dict):
    """A parsed dict; ``every(key)`` lists each value ``key`` was given, in the order written."""

    def __init__(self) -> None:
        super().__init__()
        self.repeated: dict[object, list] = {}

    def every(self, key) -> list:
        if key in self.repeated:
            return list(self.repeated[key])
        return [self[key]] if key in self else []


def parse(text: str | bytes) -> Reply:
    """One reply's text as a :class:`Reply` (``ReplyError`` when it is anything else)."""
    if isinstance(text, bytes):
        if len(text) > MAX_CHARS:
            raise ReplyError(f"reply of {len(text)} bytes is over the {MAX_CHARS} limit")
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ReplyError(f"reply is not UTF-8 (byte {exc.start})") from None
    if len(text) > MAX_CHARS:
        raise ReplyError(f"reply of {len(text)} characters is over the {MAX_CHARS} limit")
    reader = _Reader(text)
    reader.space()
    if reader.peek() != "{":
        raise reader.error("a reply must start with '{'")
    value = reader.dict(1)
    reader.space()
    if reader.peek() == "}":  # DMA_MODE = false: the EA closes an OPEN reply twice
        reader.pos += 1
        reader.space()
    if reader.pos != len(text):
        raise reader.error("text after the reply")
    return value


class _Reader:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def error(self, what: str) -> ReplyError:
        near = self.text[self.pos:self.pos + 24]
        return ReplyError(f"{what} at character {self.pos}" + (f" (near {near!r})" if near else " (end of text)"))

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in _SPACE:
            self.pos += 1

    def expect(self, char: str) -> None:
        self.space()
        if self.peek() != char:
            raise self.error(f"expected {char!r}")
        self.pos += 1

    def dict(self, depth: int) -> Reply:
        if depth > MAX_DEPTH:
            raise self.error(f"dicts nested more than {MAX_DEPTH} deep")
        self.expect("{")
        out = Reply()
        while True:
            self.space()
            if self.peek() == "}":
                self.pos += 1
                return out
            key = self.key()
            self.expect(":")
            value = self.value(depth)
            if key in out:
                out.repeated.setdefault(key, [out[key]]).append(value)
            out[key] = value
            self.space()
            if self.peek() == ",":
                self.pos += 1
            elif self.peek() != "}":
                raise self.error("expected ',' or '}'")

    def key(self):
        char = self.peek()
        if char == "'":
            return self.string()
        if char == "-" or char.isdigit():
            value = self.number()
            if isinstance(value, int):
                return value
            raise self.error("a key must be a string or an integer")
        raise self.error("a key must be a string or an integer")

    def value(self, depth: int):
        self.space()
        char = self.peek()
        if char == "{":
            return self.dict(depth + 1)
        if char == "'":
            return self.string()
        if char == "-" or char.isdigit():
            return self.number()
        if char == "":
            raise self.error("the reply ends inside a dict")
        raise self.error("a value must be a dict, a string or a number")

    def string(self) -> str:
        start = self.pos + 1
        end = self.text.find("'", start)
        if end < 0:
            raise self.error("a string is never closed")
        self.pos = end + 1
        return self.text[start:end]

    def number(self) -> int | Decimal:
        match = _NUMBER.match(self.text, self.pos)
        if match is None:
            raise self.error("not a number")
        self.pos = match.end()
        written = match.group()
        return Decimal(written) if "." in written else int(written)
