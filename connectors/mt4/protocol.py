"""The MT4 protocol's constants and frame codec (the contract is ``PROTOCOL.md`` in this folder).

Shared by the simulated EA (``connectors/mt4/simulator/``) and the connector
(``connectors/mt4/venue.py``); the MQL4 EA (``CopyBridgeEA.mq4``) writes the same
names by hand.
"""

from __future__ import annotations

import json
from decimal import Decimal

VERSION = 1

#: default ports of the EA's sockets (``bridge sim mt4 --endpoint tcp://HOST:PORT`` binds PORT and PORT + 1)
COMMAND_PORT = 32780
EVENT_PORT = 32781

#: PUB topics
TOPIC_EVENT = b"ev"
TOPIC_HEARTBEAT = b"hb"

#: commands
OPEN, CLOSE, MODIFY = "OPEN", "CLOSE", "MODIFY"
TRADES, HISTORY, ACCOUNT, SYMBOL, LOOKUP, REPLAY, PING = ("TRADES", "HISTORY", "ACCOUNT", "SYMBOL", "LOOKUP",
                                                          "REPLAY", "PING")
TRADING = frozenset({OPEN, CLOSE, MODIFY})
QUERIES = frozenset({TRADES, HISTORY, ACCOUNT, SYMBOL, LOOKUP, REPLAY, PING})
#: the simulator's manual trades (the real EA refuses them)
MANUAL_OPEN, MANUAL_CLOSE, MANUAL_MODIFY = "MANUAL_OPEN", "MANUAL_CLOSE", "MANUAL_MODIFY"
MANUAL = frozenset({MANUAL_OPEN, MANUAL_CLOSE, MANUAL_MODIFY})

#: events (the ``ev`` field)
EV_OPEN, EV_PARTIAL, EV_CLOSE, EV_MODIFY, EV_BALANCE = "open", "partial", "close", "modify", "balance"
EVENTS = (EV_OPEN, EV_PARTIAL, EV_CLOSE, EV_MODIFY, EV_BALANCE)

#: MQL4 order types
OP_BUY, OP_SELL, OP_BALANCE = 0, 1, 6

#: protocol-level errors (strings; MQL4 errors are integers)
BAD_FRAME, UNKNOWN_COMMAND, UNKNOWN_SYMBOL, NOT_FOUND = "bad-frame", "unknown-command", "unknown-symbol", "not-found"

#: MQL4 error codes (GetLastError)
ERR_NO_ERROR, ERR_NO_RESULT, ERR_COMMON_ERROR, ERR_INVALID_TRADE_PARAMETERS = 0, 1, 2, 3
ERR_SERVER_BUSY, ERR_NO_CONNECTION, ERR_TRADE_TIMEOUT = 4, 6, 128
ERR_INVALID_PRICE, ERR_INVALID_STOPS, ERR_INVALID_TRADE_VOLUME = 129, 130, 131
ERR_MARKET_CLOSED, ERR_TRADE_DISABLED, ERR_NOT_ENOUGH_MONEY = 132, 133, 134
ERR_PRICE_CHANGED, ERR_OFF_QUOTES, ERR_BROKER_BUSY, ERR_REQUOTE = 135, 136, 137, 138
ERR_TRADE_CONTEXT_BUSY, ERR_TRADE_TOO_MANY_ORDERS = 146, 148
ERR_INVALID_TICKET, ERR_TRADE_NOT_ALLOWED, ERR_LONGS_NOT_ALLOWED, ERR_SHORTS_NOT_ALLOWED = 4108, 4109, 4110, 4111

#: the texts MQL4's ErrorDescription (stdlib.mqh) gives, for replies and logs
ERROR_TEXT = {
    ERR_NO_ERROR: "no error", ERR_NO_RESULT: "no error returned, but the result is unknown",
    ERR_COMMON_ERROR: "common error", ERR_INVALID_TRADE_PARAMETERS: "invalid trade parameters",
    ERR_SERVER_BUSY: "trade server is busy", ERR_NO_CONNECTION: "no connection with trade server",
    ERR_TRADE_TIMEOUT: "trade timeout", ERR_INVALID_PRICE: "invalid price", ERR_INVALID_STOPS: "invalid stops",
    ERR_INVALID_TRADE_VOLUME: "invalid trade volume", ERR_MARKET_CLOSED: "market is closed",
    ERR_TRADE_DISABLED: "trade is disabled", ERR_NOT_ENOUGH_MONEY: "not enough money",
    ERR_PRICE_CHANGED: "price changed", ERR_OFF_QUOTES: "off quotes", ERR_BROKER_BUSY: "broker is busy",
    ERR_REQUOTE: "requote", ERR_TRADE_CONTEXT_BUSY: "trade context is busy",
    ERR_TRADE_TOO_MANY_ORDERS: "too many open and pending orders", ERR_INVALID_TICKET: "invalid ticket",
    ERR_TRADE_NOT_ALLOWED: "trade is not allowed in the expert properties",
    ERR_LONGS_NOT_ALLOWED: "longs are not allowed in the expert properties",
    ERR_SHORTS_NOT_ALLOWED: "shorts are not allowed in the expert properties",
}

#: the result journal and the event ring hold this many entries
JOURNAL_MEMORY = 10_000
EVENT_RING = 10_000
#: the EA's default timer, scan and heartbeat periods
TIMER_MS = 1
HEARTBEAT_MS = 500
#: the EA retries a busy trade context / server for this long before answering 146
BUSY_RETRY_MS = 500


class FrameError(ValueError):
    """A frame that is not a protocol message (the text names why)."""


def encode(message: dict) -> bytes:
    """One message as its frame: compact JSON, decimals written exactly (never through a float)."""
    return json.dumps(message, separators=(",", ":"), default=_exact).encode()


def decode(frame: bytes) -> dict:
    """A frame as a message; numbers with a fraction come back as ``Decimal`` (exact), integers as ``int``."""
    try:
        message = json.loads(frame, parse_float=Decimal)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FrameError(f"not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise FrameError(f"not a JSON object: {type(message).__name__}")
    return message


def check_command(message: dict) -> None:
    """A command must be flat (strings, integers and decimals) with an integer ``id`` and a string ``cmd``."""
    if not isinstance(message.get("id"), int) or isinstance(message.get("id"), bool):
        raise FrameError("a command needs an integer id")
    if not isinstance(message.get("cmd"), str):
        raise FrameError("a command needs a string cmd")
    for name, value in message.items():
        if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
            raise FrameError(f"field {name!r}: commands are flat (strings and numbers only)")


def _exact(value):
    """A Decimal as a JSON number. The text json writes for the float is its shortest repr, which is the
    Decimal's own digits whenever they round-trip (up to 15 significant digits: every price and lot size);
    anything else is refused rather than rounded."""
    if isinstance(value, Decimal):
        number = float(value)
        if Decimal(repr(number)) != value:
            raise FrameError(f"{value} has more digits than a frame carries exactly")
        return number
    raise TypeError(f"{type(value).__name__} is not JSON")
