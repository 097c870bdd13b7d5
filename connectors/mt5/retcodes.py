"""What an ``order_send`` answer means: every trade server retcode, and ``None`` with its ``last_error``.

Outcomes (:class:`Outcome`):

- FILLED: 10009 DONE; 10010 DONE_PARTIAL with the volume the result reports.
  10025 NO_CHANGES counts as done for an SL/TP request: the stops already are
  what was asked (typically a resend after an ambiguous first attempt), and
  that is what a MODIFY wants.
- RETRY: the price moved (10004 requote, 10020 price changed, 10021 price off,
  10015 invalid price: the request's price was a stale quote). A REJECTED
  result with reason ``requote`` / ``price-changed``, which the executor resends
  with the same key at the new price while the master's price is still within
  the order's max slippage (``bridge.results.REQUOTES``).
- REJECTED: a definite refusal, with one of the bridge's reason codes
  (:data:`REASONS`); nothing executed, the key may be sent again.
- AMBIGUOUS: the request may have reached the server: ``order_send`` returned
  None after the pipe connected (``last_error`` -10001 send, -10002 receive,
  -10004 connect, -10005 timeout), or the server answered 10008 PLACED (accepted,
  not yet executed) or 10012 TIMEOUT. Never resent before a lookup by key.
- NOT_SENT: nothing left the terminal (any other ``last_error`` with None,
  e.g. -2 invalid params, -6 auth failed, -8 autotrading disabled; 10031 no
  connection to the server; 10024 too many requests): ``VenueUnavailable`` when
  the terminal is unusable, or REJECTED where the request itself is at fault.

Unknown retcodes are REJECTED ``mt5-<code>``: a code the server invented after
5.0.6231 is a refusal we have not classified, and a refusal leaves nothing to find.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from bridge.domain.ids import DealId, OrderId, Platform, PositionId
from connectors.interface import AmbiguousOutcome, OrderResult, OrderStatus, VenueUnavailable
from connectors.mt5 import codes as c

P = Platform.MT5


class Outcome(str, Enum):
    FILLED = "filled"
    RETRY = "retry"
    REJECTED = "rejected"
    AMBIGUOUS = "ambiguous"
    NOT_SENT = "not-sent"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class Verdict:
    outcome: Outcome
    reason: str | None = None  # the bridge's reason code for RETRY and REJECTED (and NOT_SENT requests)


_FILLED = Verdict(Outcome.FILLED)
_AMBIGUOUS = Verdict(Outcome.AMBIGUOUS)
_UNREACHABLE = Verdict(Outcome.NOT_SENT)  # the terminal or server cannot take orders: VenueUnavailable

#: every 5.0.6231 retcode -> its verdict
RETCODES: dict[int, Verdict] = {
    c.TRADE_RETCODE_DONE: _FILLED,
    c.TRADE_RETCODE_DONE_PARTIAL: _FILLED,
    c.TRADE_RETCODE_NO_CHANGES: _FILLED,  # see the module doc: SL/TP only (order_outcome)
    c.TRADE_RETCODE_REQUOTE: Verdict(Outcome.RETRY, "requote"),
    c.TRADE_RETCODE_PRICE_CHANGED: Verdict(Outcome.RETRY, "price-changed"),
    c.TRADE_RETCODE_PRICE_OFF: Verdict(Outcome.RETRY, "requote"),
    c.TRADE_RETCODE_INVALID_PRICE: Verdict(Outcome.RETRY, "requote"),
    c.TRADE_RETCODE_PLACED: _AMBIGUOUS,
    c.TRADE_RETCODE_TIMEOUT: _AMBIGUOUS,
    c.TRADE_RETCODE_CONNECTION: _UNREACHABLE,
    c.TRADE_RETCODE_TOO_MANY_REQUESTS: _UNREACHABLE,
    c.TRADE_RETCODE_REJECT: Verdict(Outcome.REJECTED, "rejected"),
    c.TRADE_RETCODE_CANCEL: Verdict(Outcome.REJECTED, "cancelled"),
    c.TRADE_RETCODE_ERROR: Verdict(Outcome.REJECTED, "mt5-error"),
    c.TRADE_RETCODE_INVALID: Verdict(Outcome.REJECTED, "bad-request"),
    c.TRADE_RETCODE_INVALID_EXPIRATION: Verdict(Outcome.REJECTED, "bad-request"),
    c.TRADE_RETCODE_INVALID_ORDER: Verdict(Outcome.REJECTED, "bad-request"),
    c.TRADE_RETCODE_INVALID_VOLUME: Verdict(Outcome.REJECTED, "invalid-volume"),
    c.TRADE_RETCODE_INVALID_CLOSE_VOLUME: Verdict(Outcome.REJECTED, "invalid-volume"),
    c.TRADE_RETCODE_LIMIT_VOLUME: Verdict(Outcome.REJECTED, "invalid-volume"),
    c.TRADE_RETCODE_INVALID_STOPS: Verdict(Outcome.REJECTED, "invalid-stops"),
    c.TRADE_RETCODE_FROZEN: Verdict(Outcome.REJECTED, "invalid-stops"),  # inside the freeze level
    c.TRADE_RETCODE_TRADE_DISABLED: Verdict(Outcome.REJECTED, "trading-disabled"),
    c.TRADE_RETCODE_SERVER_DISABLES_AT: Verdict(Outcome.REJECTED, "trading-disabled"),
    c.TRADE_RETCODE_ONLY_REAL: Verdict(Outcome.REJECTED, "trading-disabled"),
    c.TRADE_RETCODE_LOCKED: Verdict(Outcome.REJECTED, "trading-disabled"),
    c.TRADE_RETCODE_CLIENT_DISABLES_AT: Verdict(Outcome.REJECTED, "autotrading-disabled"),
    c.TRADE_RETCODE_MARKET_CLOSED: Verdict(Outcome.REJECTED, "market-closed"),
    c.TRADE_RETCODE_NO_MONEY: Verdict(Outcome.REJECTED, "no-money"),
    c.TRADE_RETCODE_ORDER_CHANGED: Verdict(Outcome.REJECTED, "order-changed"),
    c.TRADE_RETCODE_INVALID_FILL: Verdict(Outcome.REJECTED, "invalid-fill"),
    c.TRADE_RETCODE_LIMIT_ORDERS: Verdict(Outcome.REJECTED, "limit-orders"),
    c.TRADE_RETCODE_LIMIT_POSITIONS: Verdict(Outcome.REJECTED, "limit-positions"),
    c.TRADE_RETCODE_POSITION_CLOSED: Verdict(Outcome.REJECTED, "position-not-found"),
    c.TRADE_RETCODE_CLOSE_ORDER_EXIST: Verdict(Outcome.REJECTED, "close-order-exists"),
    c.TRADE_RETCODE_REJECT_CANCEL: Verdict(Outcome.REJECTED, "rejected"),
    c.TRADE_RETCODE_LONG_ONLY: Verdict(Outcome.REJECTED, "side-not-allowed"),
    c.TRADE_RETCODE_SHORT_ONLY: Verdict(Outcome.REJECTED, "side-not-allowed"),
    c.TRADE_RETCODE_CLOSE_ONLY: Verdict(Outcome.REJECTED, "close-only"),
    c.TRADE_RETCODE_FIFO_CLOSE: Verdict(Outcome.REJECTED, "fifo-close"),
}

#: ``order_send`` returned None: these ``last_error`` codes mean the request may be at the server
AMBIGUOUS_ERRORS = frozenset({c.RES_E_INTERNAL_FAIL_SEND, c.RES_E_INTERNAL_FAIL_RECEIVE,
                              c.RES_E_INTERNAL_FAIL_CONNECT, c.RES_E_INTERNAL_FAIL_TIMEOUT})
#: ... and these that the request itself was refused by the package (the order is at fault, not the link)
REQUEST_ERRORS = {c.RES_E_INVALID_PARAMS: "bad-request", c.RES_E_AUTO_TRADING_DISABLED: "autotrading-disabled"}


def verdict(retcode: int) -> Verdict:
    return RETCODES.get(retcode) or Verdict(Outcome.REJECTED, f"mt5-{retcode}")


def send_verdict(result, last_error: tuple[int, str]) -> Verdict:
    """The verdict on an ``order_send`` answer: a result's retcode, or ``None``'s ``last_error``."""
    if result is not None:
        return verdict(result.retcode)
    code = last_error[0]
    if code in AMBIGUOUS_ERRORS:
        return _AMBIGUOUS
    return Verdict(Outcome.NOT_SENT, REQUEST_ERRORS.get(code))


def order_outcome(key: str, modify: bool, result, last_error: tuple[int, str], when: datetime, *,
                  volume_of, price_of, position: int | None = None) -> OrderResult:
    """An ``order_send`` answer as an :class:`OrderResult`, or raises.

    ``volume_of`` (lots float -> canonical int) and ``price_of`` (float -> Decimal) convert the result's
    figures (``convert.volume_of`` / ``convert.price`` bound to the symbol). ``position``: the ticket of
    a close or SL/TP request, or for an open the ``position_id`` of its deal. Left None for an open, it
    is the order ticket, which is right on a hedging account only (spec 1.4: a new position's ticket is
    its opening order's); on netting an open may add to an older position, so pass the deal's.
    Raises :class:`AmbiguousOutcome` or :class:`VenueUnavailable`.
    """
    v = send_verdict(result, last_error)
    text = result.comment if result is not None else f"{last_error[0]} {last_error[1]}"
    if v.outcome is Outcome.AMBIGUOUS:
        raise AmbiguousOutcome(key, text)
    if v.outcome is Outcome.NOT_SENT:
        if v.reason is not None:
            return OrderResult(key, OrderStatus.REJECTED, when, reason=v.reason, message=text)
        raise VenueUnavailable(f"order {key}: {text} (not sent)")
    if v.outcome is not Outcome.FILLED:
        return OrderResult(key, OrderStatus.REJECTED, when, reason=v.reason, message=text)
    if result.retcode == c.TRADE_RETCODE_NO_CHANGES and not modify:
        return OrderResult(key, OrderStatus.REJECTED, when, reason="bad-request", message=text)
    if modify:
        return OrderResult(key, OrderStatus.FILLED, when,
                           position_id=PositionId(P, position) if position else None, message=text)
    pid = position if position else result.order
    return OrderResult(key, OrderStatus.FILLED, when, OrderId(P, result.order) if result.order else None,
                       PositionId(P, pid) if pid else None, DealId(P, result.deal) if result.deal else None,
                       volume_of(result.volume), price_of(result.price) if result.price else None, message=text)

