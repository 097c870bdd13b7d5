"""The EA's result journal: the reply of every executed trading command, by the bridge's key.

One JSON line per entry, ``{"key", "cmd", "reply"}``, appended and flushed to the file
(``MQL4/Files/copybridge-<login>.journal`` in the real terminal) *before* the reply is sent;
the last ``memory`` entries are also held in memory, older ones are found by reading the file.
A torn last line (the EA died while writing it) is skipped when the file is read back.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

from connectors.mt4.protocol import JOURNAL_MEMORY, FrameError, decode, encode


class Journal:
    def __init__(self, path: Path | None = None, memory: int = JOURNAL_MEMORY) -> None:
        self.path = path
        self.memory = memory
        self._entries: OrderedDict[str, dict] = OrderedDict()
        self._spilled = False  # some entries are only in the file
        if path is not None and path.exists():
            for entry in self._read():
                self._remember(entry)

    def get(self, key: str) -> dict | None:
        """The entry ``{"key", "cmd", "reply"}`` journalled for ``key``, or ``None``."""
        entry = self._entries.get(key)
        if entry is None and self._spilled:
            entry = next((e for e in self._read() if e["key"] == key), None)
        return entry

    def record(self, key: str, cmd: str, reply: dict) -> None:
        entry = {"key": key, "cmd": cmd, "reply": reply}
        if self.path is not None:
            with open(self.path, "ab") as f:
                f.write(encode(entry) + b"\n")
                f.flush()
        self._remember(decode(encode(entry)))  # held as read back: what a restarted EA would answer

    def _remember(self, entry: dict) -> None:
        self._entries[entry["key"]] = entry
        self._entries.move_to_end(entry["key"])
        while len(self._entries) > self.memory:
            self._entries.popitem(last=False)
            self._spilled = True

    def _read(self):
        with open(self.path, "rb") as f:
            for line in f:
                try:
                    entry = decode(line)
                except FrameError:
                    continue
                if isinstance(entry.get("key"), str) and isinstance(entry.get("reply"), dict):
                    yield entry

    def __len__(self) -> int:
        return len(self._entries)
