"""The DWX ZeroMQ Server's wire format, as facts (DWX.md): ports, command strings, reply fields, refusals.

Commands are one ZeroMQ frame of ``;``-separated text; a trading one always has eleven fields:
``TRADE;ACTION;TYPE;SYMBOL;PRICE;SL;TP;COMMENT;LOTS;MAGIC;TICKET`` (:func:`trade`). ``HEARTBEAT`` is a
command of its own. Replies are dict literals read by :mod:`.reply`; :func:`trade_record` turns one entry of
``GET_OPEN_TRADES``'s ``_trades`` into the record shape the MT4 connector's ``convert``/``deals`` read
(``ticket``, ``symbol``, ``type``, ``lots``, ``open_price``, ``sl``, ``tp``, ``magic``, ``comment``), so a DWX
snapshot goes through the same conversions as a copybridge EA's ``TRADES``.
"""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

from connectors.mt4 import errors
from connectors.mt4.protocol import OP_BUY, OP_SELL

#: the DWX EA's default ports: it PULLs commands on 32768, PUSHes replies on 32769, PUBlishes prices on 32770
COMMAND_PORT, REPLY_PORT, PRICE_PORT = 32768, 32769, 32770

#: ``TRADE;<action>;...`` actions
OPEN, MODIFY, CLOSE, CLOSE_PARTIAL = "OPEN", "MODIFY", "CLOSE", "CLOSE_PARTIAL"
GET_OPEN_TRADES = "GET_OPEN_TRADES"
HEARTBEAT = "HEARTBEAT"

#: the ``_action`` of the reply to each command
REPLY_ACTION = {OPEN: "EXECUTION", MODIFY: "MODIFY", CLOSE: "CLOSE", CLOSE_PARTIAL: "CLOSE",
                GET_OPEN_TRADES: "OPEN_TRADES", HEARTBEAT: "heartbeat"}

#: the EA's ``OrderComment`` field is cut by MT4 at 31 characters; ``;`` would split the command
TIME_FORMAT = "%Y.%m.%d %H:%M:%S"

#: DWX's own refusal words (``_response``) -> the bridge's reasons; numbers are MQL4 codes (``errors.py``)
REFUSALS = {
    "LOT_SIZE_ERROR": "dwx-max-lot-size",  # above the EA's MaximumLotSize input (default 0.01)
    "NUM_ORDERS_ERROR": "limit-positions",  # OrdersTotal() at the EA's MaximumOrders input (default 1)
    "NOT_FOUND": "position-not-found",
    "CLOSE_PARTIAL_FAILED": "position-not-found",
    "TRADE_CONTEXT_BUSY__ABORTED_COMMAND": "busy",
    "WAIT_LIMIT_EXCEEDED": "busy",
    "NO_BROKER_CONNECTION__ABORTED_COMMAND": "not-sent",
    "EA_IS_STOPPED": "not-sent",
    "TRADING_IS_NOT_ALLOWED__ABORTED_COMMAND": "autotrading-disabled",
    "EA_IS_DISABLED__ABORTED_COMMAND": "autotrading-disabled",
    "DLLS_DISABLED__ABORTED_COMMAND": "autotrading-disabled",
    "LIBS_DISABLED__ABORTED_COMMAND": "autotrading-disabled",
}
#: ``_response`` values that say how a command went, not why it failed
PROGRESS = frozenset({"CLOSE_MARKET", "CLOSE_PARTIAL", "TRADE_CONTEXT_BUSY", "TRADE_CONTEXT_NOW_FREE",
                      "CLOSE_PENDING"})


class DwxRecordError(ValueError):
    """A reply whose fields are not what the DWX EA writes (one line)."""


def trade(action: str, *, type: int = 0, symbol: str = "NULL", price: object = 0, sl: object = 0, tp: object = 0,
          comment: str = "", lots: object = 0, magic: int = 0, ticket: int = 0) -> str:
    """One ``TRADE`` command (eleven fields). SL/TP are distances in points, as the EA reads them."""
    fields = [action, str(type), symbol, str(price), str(sl), str(tp), comment, str(lots), str(magic), str(ticket)]
    for field in fields:
        if ";" in field:
            raise ValueError(f"a DWX command field cannot hold ';': {field!r}")
    return "TRADE;" + ";".join(fields)


def refusal(reply: dict) -> str | None:
    """Why a reply refused its command (a bridge reason), or None when it names no failure.

    The last failure word the EA appended counts (a close retried three times says each attempt's code)."""
    found = None
    every = reply.every("_response") if hasattr(reply, "every") else [reply.get("_response")]
    for word in every:
        if not isinstance(word, str) or word in PROGRESS:
            continue
        if word.lstrip("-").isdigit():
            verdict = errors.reason(int(word))
            found = "ambiguous" if verdict == errors.AMBIGUOUS else verdict
        else:
            found = REFUSALS.get(word, f"dwx-{word.lower()}")
    return found


def text_of(reply: dict) -> str:
    """The reply's own words, for the log: every ``_response`` and ``response_value``."""
    words = [str(w) for w in (reply.every("_response") if hasattr(reply, "every") else [])]
    for name in ("_response_value", "response_value"):
        if name in reply:
            words.append(str(reply[name]))
    return " ".join(words)


def _number(entry: dict, name: str, ticket: object) -> Decimal:
    value = entry.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        raise DwxRecordError(f"trade {ticket}: {name} must be a number, got {value!r}")
    return Decimal(value)


def trade_record(ticket: object, entry: object) -> dict:
    """One ``_trades`` entry as a TRADE record (``convert.venue_position``/``deals`` read it)."""
    if isinstance(ticket, bool) or not isinstance(ticket, int) or ticket <= 0:
        raise DwxRecordError(f"trade key {ticket!r} is not a ticket number")
    if not isinstance(entry, dict):
        raise DwxRecordError(f"trade {ticket}: not a dict")
    kind = entry.get("_type")
    if isinstance(kind, bool) or not isinstance(kind, int):
        raise DwxRecordError(f"trade {ticket}: _type must be an integer, got {kind!r}")
    symbol, comment, opened = entry.get("_symbol"), entry.get("_comment", ""), entry.get("_open_time")
    magic = entry.get("_magic", 0)
    if not isinstance(symbol, str) or not isinstance(comment, str) or not isinstance(opened, str):
        raise DwxRecordError(f"trade {ticket}: _symbol, _comment and _open_time must be strings")
    if isinstance(magic, bool) or not isinstance(magic, int):
        raise DwxRecordError(f"trade {ticket}: _magic must be an integer, got {magic!r}")
    try:
        opened_s = int(datetime.strptime(opened, TIME_FORMAT).replace(tzinfo=timezone.utc).timestamp())
    except ValueError:
        raise DwxRecordError(f"trade {ticket}: _open_time {opened!r} is not YYYY.MM.DD HH:MM:SS") from None
    return {"ticket": ticket, "symbol": symbol, "type": kind, "lots": _number(entry, "_lots", ticket),
            "open_price": _number(entry, "_open_price", ticket), "open_time_msc": opened_s * 1000,
            "sl": _number(entry, "_SL", ticket), "tp": _number(entry, "_TP", ticket), "magic": magic,
            "comment": comment}


def open_trades(reply: dict) -> list[dict]:
    """A ``GET_OPEN_TRADES`` reply's market orders (buy and sell; pending orders left out), by ticket."""
    if reply.get("_action") != "OPEN_TRADES" or not isinstance(reply.get("_trades"), dict):
        raise DwxRecordError(f"not an OPEN_TRADES reply: _action {reply.get('_action')!r}, "
                             f"_response {reply.get('_response')!r}")
    records = [trade_record(ticket, entry) for ticket, entry in reply["_trades"].items()]
    return sorted((r for r in records if r["type"] in (OP_BUY, OP_SELL)), key=lambda r: r["ticket"])


def number(value: object, what: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        raise DwxRecordError(f"{what} must be a number, got {value!r}")
    return Decimal(value)
