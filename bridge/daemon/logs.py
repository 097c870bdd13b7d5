"""``bridge run``'s log: text lines or JSON lines (``[log] format``), to stderr or ``[log] file``.

The code base logs with stdlib :mod:`logging`; Twisted logs with
:mod:`twisted.logger`. In JSON mode both end up as Twisted events (a stdlib
record becomes one: its logger name the namespace, its ``extra`` fields named
fields) written by :class:`JsonLines`, one object a line::

    {"time": "2026-01-05T10:00:00.123456+00:00", "level": "info", "logger": "bridge.worker",
     "message": "worker: journal ...", "event": "...", ...named fields}

In text mode the stdlib format stays what it was, and Twisted's own warnings
and errors (an unhandled error in a Deferred) go through it too.

The resolved configuration is logged once at start (:func:`log_config`) with
every secret masked (:func:`masked`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
from datetime import datetime, timezone
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import IO, Any

from twisted.logger import (
    FilteringLogObserver, LogLevel, LogLevelFilterPredicate, STDLibLogObserver, formatEvent, globalLogBeginner,
    globalLogPublisher,
)

from bridge.config.secrets import Secret
from bridge.domain.ids import Login, ServerId
from bridge.errors import InputError

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
MASK = "***"
SECRET_WORDS = ("password", "secret", "token", "passphrase", "api_key")
_LEVELS = {LogLevel.debug: "debug", LogLevel.info: "info", LogLevel.warn: "warning", LogLevel.error: "error",
           LogLevel.critical: "critical"}
_FROM_STDLIB = ((logging.CRITICAL, LogLevel.critical), (logging.ERROR, LogLevel.error),
                (logging.WARNING, LogLevel.warn), (logging.INFO, LogLevel.info))
_RECORD_KEYS = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}
# keys of Twisted's legacy events (twisted.python.log), not named fields
_LEGACY_KEYS = frozenset({"message", "isError", "system", "time", "format", "why", "failure", "printed"})
_TEXT = "log_stdlib_text"  # a stdlib record's message, already formatted (it may hold braces)


def open_stream(path: Path | None) -> IO[str]:
    if path is None:
        return sys.stderr
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)  # a new log file: the service user's only
        return open(fd, "a", encoding="utf-8", buffering=1)
    except OSError as exc:
        raise InputError(f"[log] file {path}: cannot open it for appending: {exc.strerror}") from None


def setup(log_format: str, path: Path | None = None) -> IO[str]:
    """Send every log line (stdlib's and Twisted's) to ``path`` (None: stderr) as ``log_format``."""
    stream = open_stream(path)
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.setLevel(logging.INFO)
    if log_format == "json":
        root.addHandler(ToTwisted())
        observer = JsonLines(stream)
    else:
        handler = logging.StreamHandler(stream)
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
        root.addHandler(handler)
        observer = STDLibLogObserver(name="twisted")
    level = LogLevel.info if log_format == "json" else LogLevel.warn
    globalLogBeginner.beginLoggingTo(
        [FilteringLogObserver(observer, [LogLevelFilterPredicate(defaultLogLevel=level)])],
        redirectStandardIO=False)
    return stream


class ToTwisted(logging.Handler):
    """A stdlib record -> a Twisted event on the global publisher."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level = next((lv for no, lv in _FROM_STDLIB if record.levelno >= no), LogLevel.debug)
            event: dict[str, Any] = {key: value for key, value in record.__dict__.items()
                                     if key not in _RECORD_KEYS and not key.startswith("log_")}
            event.update(log_time=record.created, log_level=level, log_namespace=record.name, log_format=None)
            event[_TEXT] = record.getMessage()
            if record.exc_info and record.exc_info[1] is not None:
                event["traceback"] = logging.Formatter().formatException(record.exc_info)
            globalLogPublisher(event)
        except Exception:
            self.handleError(record)


class JsonLines:
    """A Twisted log observer writing one JSON object a line."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream

    def __call__(self, event: dict) -> None:
        out = {"time": datetime.fromtimestamp(event.get("log_time") or 0, timezone.utc).isoformat(
                   timespec="microseconds"),
               "level": _LEVELS.get(event.get("log_level"), "info"),
               "logger": _logger(event),
               "message": event[_TEXT] if _TEXT in event else formatEvent(event)}
        for key, value in event.items():
            if not key.startswith("log_") and key not in _LEGACY_KEYS and key not in out:
                out[key] = value
        failure = event.get("log_failure")
        if failure is not None and "traceback" not in out:
            out["traceback"] = failure.getTraceback()
        self.stream.write(json.dumps(out, default=_plain, ensure_ascii=False) + "\n")
        self.stream.flush()


def _logger(event: dict) -> str:
    namespace = event.get("log_namespace") or "-"
    return "twisted" if namespace == "log_legacy" else namespace  # Twisted's own (legacy) log calls


def _plain(value: Any) -> Any:
    if isinstance(value, Secret):
        return MASK
    return str(value)


def masked(value: Any, key: str = "") -> Any:
    """``value`` as plain JSON data, every secret replaced by ``***`` (a :class:`Secret`, or a string
    under a key that names one: password, secret, token...); bytes (a CA) by their length."""
    if isinstance(value, Secret):
        return f"{MASK} ({value.source})"  # where it came from (a path, a variable name), never the value
    if isinstance(value, str):
        return MASK if any(word in key.lower() for word in SECRET_WORDS) else value
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, (bytes, bytearray)):
        return f"<{len(value)} bytes>"
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, (Decimal, Path, Login, ServerId)):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: masked(getattr(value, f.name), f.name) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): masked(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [masked(v, key) for v in value]
    return str(value)


def log_config(config, path: Path | str, log_format: str) -> None:
    """The resolved configuration, once, secrets masked: an ``event: config`` line with a ``config`` field
    in JSON; the same as JSON text in the message in text mode."""
    data = masked(config)
    log = logging.getLogger("bridge.config")
    if log_format == "json":
        log.info("resolved configuration from %s", path, extra={"event": "config", "config": data})
    else:
        log.info("resolved configuration from %s: %s", path, json.dumps(data, sort_keys=True))
