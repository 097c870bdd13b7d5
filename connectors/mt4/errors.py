"""What an EA error means for an order: every code of PROTOCOL.md's table -> the bridge's verdict.

An EA reply ``{"ok": false, "error": E, "text": ...}`` to a trading command (``OPEN``, ``CLOSE``,
``MODIFY``) is one of:

- a definite refusal: nothing was traded, the key may be sent again; an :class:`OrderResult`
  ``REJECTED`` with the bridge reason of :data:`REASONS` (``requote`` for 129/135/136/138, which the
  executor retries within the follower's max slippage; ``busy`` after the EA's own 500 ms of retries);
- ambiguous: ``128`` (trade timeout: the server may have executed it): :class:`AmbiguousOutcome`,
  look the key up before any resend.

Codes 0 and 1 are success (the EA answers them ``ok``; an error reply carrying one is taken as a
refusal we cannot explain, ``mt4-0``/``mt4-1``, never as a fill). Protocol-level strings:
``not-found`` (the ticket is not open) is ``position-not-found`` like 4108; ``unknown-symbol``;
``bad-frame``/``unknown-command`` are ``bad-request``. A code not in the table is ``mt4-<code>``: a
refusal we have not classified (a refusal leaves nothing to find).
"""

from __future__ import annotations

from connectors.mt4 import protocol as P

AMBIGUOUS = "ambiguous"

#: error -> the bridge's reason for a definite refusal
REASONS: dict[int | str, str] = {
    P.ERR_COMMON_ERROR: "bad-request",
    P.ERR_INVALID_TRADE_PARAMETERS: "bad-request",
    P.ERR_SERVER_BUSY: "busy",
    P.ERR_BROKER_BUSY: "busy",
    P.ERR_TRADE_CONTEXT_BUSY: "busy",
    P.ERR_NO_CONNECTION: "not-sent",
    P.ERR_INVALID_PRICE: "requote",
    P.ERR_PRICE_CHANGED: "requote",
    P.ERR_OFF_QUOTES: "requote",
    P.ERR_REQUOTE: "requote",
    P.ERR_INVALID_STOPS: "invalid-stops",
    P.ERR_INVALID_TRADE_VOLUME: "invalid-volume",
    P.ERR_MARKET_CLOSED: "market-closed",
    P.ERR_TRADE_DISABLED: "trading-disabled",
    P.ERR_NOT_ENOUGH_MONEY: "no-money",
    P.ERR_TRADE_TOO_MANY_ORDERS: "limit-positions",
    P.ERR_INVALID_TICKET: "position-not-found",
    P.ERR_TRADE_NOT_ALLOWED: "autotrading-disabled",
    P.ERR_LONGS_NOT_ALLOWED: "side-not-allowed",
    P.ERR_SHORTS_NOT_ALLOWED: "side-not-allowed",
    P.NOT_FOUND: "position-not-found",
    P.UNKNOWN_SYMBOL: "unknown-symbol",
    P.BAD_FRAME: "bad-request",
    P.UNKNOWN_COMMAND: "bad-request",
}

#: errors after which the order may have been executed
AMBIGUOUS_ERRORS = frozenset({P.ERR_TRADE_TIMEOUT})


def reason(error: int | str) -> str:
    """The verdict on an error reply to a trading command: :data:`AMBIGUOUS`, or a refusal's reason."""
    if isinstance(error, bool):  # never a code; refuse to read True as 1
        return f"mt4-{error}"
    if error in AMBIGUOUS_ERRORS:
        return AMBIGUOUS
    found = REASONS.get(error)
    return found if found is not None else f"mt4-{error}"


class EAError(Exception):
    """The EA answered a command with ``ok: false``."""

    def __init__(self, cmd: str, error: int | str, text: str) -> None:
        super().__init__(f"{cmd}: error {error}: {text}")
        self.cmd = cmd
        self.error = error
        self.text = text
