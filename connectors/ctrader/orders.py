"""Follower orders: one OrderRequest -> Open API requests -> one OrderResult, and lookup by key.

- Every order that trades is a ``NewOrderReq`` with ``clientOrderId`` = ``label``
  = the key, so the venue's own records find it by key (lookup, below).
- OPEN: MARKET on the order's side. CLOSE / PARTIAL_CLOSE: MARKET on the
  position's opposite side with ``positionId`` (reduces or closes that position,
  hedged or netted); the side is taken from the position as last seen, and a
  CLOSE sends its whole volume as last seen. With ``max_slippage_points`` and a
  ``reference_price`` either is a MARKET_RANGE order (``baseSlippagePrice`` =
  the reference, ``slippageInPoints`` = the limit, a point being 10^-digits):
  the venue fills inside the range or cancels, and a cancel with nothing
  executed is REJECTED "requote". Stops on an open are set by an
  ``AmendPositionSLTPReq`` after the fill (cTrader refuses absolute stops on
  market orders). MODIFY: ``AmendPositionSLTPReq``.
- ORDER_ACCEPTED is not a fill: the result waits for ORDER_FILLED (after any
  ORDER_PARTIAL_FILL), ORDER_REJECTED / ORDER_CANCELLED, or an OrderErrorEvent
  (error codes -> reasons in ``convert.REASONS``).
- Failures: nothing written -> ``VenueUnavailable``; written, then the connection
  lost or no final answer in time -> ``AmbiguousOutcome``. A request the server
  refused unprocessed (REQUEST_FREQUENCY_EXCEEDED or an expired token beyond
  the session's resends, ACCOUNT_NOT_AUTHORIZED while re-authorising, ...) ->
  ``VenueUnavailable``: it did not execute.
- Idempotency: a key already FILLED here returns that result; a key in flight
  returns the same outcome.

Lookup: a FILLED key known here answers at once; a key in flight waits for its
outcome. Otherwise the venue is asked: ``OrderListReq`` over a window around
the send (a week back for a key this process never sent, e.g. after a restart),
the order whose ``clientOrderId`` is the key and that executed (an open or a
close alike), then ``OrderDetailsReq`` for its deal. None once nothing
matched: the request was answered, refused, or is past its timeout (the
connection's in-flight requests have then been answered or failed). A MODIFY
leaves nothing to find and is safe to resend (the same stops again): None.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ctrader_open_api.messages import OpenApiMessages_pb2 as oa
from ctrader_open_api.messages import OpenApiModelMessages_pb2 as model
from twisted.internet import defer

from allocation.leg import Action
from bridge.domain.deal import Side
from connectors.ctrader import convert
from connectors.ctrader.session import ConnectionLost, ReplyTimeout
from connectors.interface import AmbiguousOutcome, OrderRequest, OrderResult, OrderStatus, VenueUnavailable

WEEK_MS = 7 * 24 * 3600 * 1000
MARGIN_MS = 60_000
NOT_PROCESSED = frozenset({"REQUEST_FREQUENCY_EXCEEDED", "ACCOUNT_NOT_AUTHORIZED", "CH_CLIENT_NOT_AUTHENTICATED",
                           "BLOCKED_PAYLOAD_TYPE", "OA_AUTH_TOKEN_EXPIRED", "CH_ACCESS_TOKEN_INVALID"})


@dataclass(slots=True)
class Sent:
    order: OrderRequest
    sent_ms: int
    outcome: defer.Deferred | None = None  # fires with the OrderResult, or fails
    done: bool = False
    waiters: list = field(default_factory=list)


class Orders:
    """Orders and lookups of one venue; ``venue`` gives sessions, symbols, positions and the clock."""

    def __init__(self, venue) -> None:
        self.venue = venue
        self.sent: dict[tuple[int, str], Sent] = {}
        self.filled: dict[tuple[int, str], OrderResult] = {}

    def execute(self, order: OrderRequest) -> defer.Deferred:
        ident = (order.account.number, order.key)
        if ident in self.filled:
            return defer.succeed(self.filled[ident])
        record = self.sent.get(ident)
        if record is not None and not record.done:
            return self._wait(record)
        return defer.maybeDeferred(self._send, order)

    @defer.inlineCallbacks
    def _send(self, order: OrderRequest):
        ctid = order.account.number
        session = self.venue.session_for(ctid)
        symbol_id = yield self.venue.symbol_id(order.symbol)
        if symbol_id is None:
            return convert.rejected(order.key, "SYMBOL_NOT_FOUND", f"no symbol {order.symbol}", self.venue.now_ms())
        if order.action is Action.OPEN:
            message = self._market(ctid, symbol_id, order, order.side, order.volume)
        elif order.action is Action.MODIFY:
            message = self._amend(ctid, order.position_id.value, order)
        else:
            message = self._closing(ctid, symbol_id, order)
        record = Sent(order, self.venue.now_ms())
        self.sent[(ctid, order.key)] = record
        record.outcome = self._stream(session, order, message)
        try:
            result = yield record.outcome
        except Exception as exc:
            self._finish(record, exc)
            raise
        if result.status is OrderStatus.FILLED and order.action is Action.OPEN and (order.sl or order.tp):
            yield self._stops_after_open(ctid, result, order)
        self._finish(record, result)
        return result

    @staticmethod
    def _market(ctid: int, symbol_id: int, order: OrderRequest, side: Side, volume: int):
        """A MARKET order keyed by ``order.key`` (MARKET_RANGE within the order's max slippage)."""
        message = oa.ProtoOANewOrderReq(ctidTraderAccountId=ctid, symbolId=symbol_id, orderType=model.MARKET,
                                        tradeSide=convert.trade_side(side), volume=volume,
                                        clientOrderId=order.key, label=order.key)
        if order.max_slippage_points is not None and order.reference_price is not None:
            message.orderType = model.MARKET_RANGE
            message.baseSlippagePrice = float(order.reference_price)
            message.slippageInPoints = order.max_slippage_points
        return message

    def _closing(self, ctid: int, symbol_id: int, order: OrderRequest):
        """A close or partial close: the opposite side of the position as last seen, with its positionId."""
        pid = order.position_id.value
        held = self.venue.open[ctid].get(pid)  # signed volume, None if not seen open
        side = order.side if not held else (Side.BUY if held > 0 else Side.SELL)
        volume = abs(held) if held and order.action is Action.CLOSE else order.volume
        message = self._market(ctid, symbol_id, order, side.opposite, volume)
        message.positionId = pid
        return message

    def _amend(self, ctid: int, position_id: int, order: OrderRequest):
        message = oa.ProtoOAAmendPositionSLTPReq(ctidTraderAccountId=ctid, positionId=position_id)
        if order.sl is not None:
            message.stopLoss = float(order.sl)
        if order.tp is not None:
            message.takeProfit = float(order.tp)
        return message

    @defer.inlineCallbacks
    def _stops_after_open(self, ctid: int, result: OrderResult, order: OrderRequest):
        session = self.venue.session_for(ctid)
        amend = self._amend(ctid, result.position_id.value, order)
        try:
            yield self._stream(session, order, amend)
        except Exception as exc:  # the position is open: the stops are the next reconcile's business
            self.venue.log.warning("ctrader: stops on %s not set: %s", result.position_id, exc)

    def _finish(self, record: Sent, outcome) -> None:
        record.done = True
        if isinstance(outcome, OrderResult) and outcome.status is OrderStatus.FILLED:
            self.filled[(record.order.account.number, record.order.key)] = outcome
        waiters, record.waiters = record.waiters, []
        for d in waiters:
            d.errback(outcome) if isinstance(outcome, Exception) else d.callback(outcome)

    def _wait(self, record: Sent) -> defer.Deferred:
        d = defer.Deferred()
        record.waiters.append(d)
        return d

    def _stream(self, session, order: OrderRequest, message) -> defer.Deferred:
        d = defer.Deferred()
        key, now = order.key, self.venue.now_ms

        def handle(frame) -> bool:
            name = frame.DESCRIPTOR.name
            if name == "ProtoOAExecutionEvent":
                kind = frame.executionType
                if kind in (model.ORDER_FILLED, model.ORDER_REPLACED):
                    d.callback(convert.filled(key, frame.order, frame.deal if frame.HasField("deal") else None,
                                              now()))
                    return True
                if kind in (model.ORDER_REJECTED, model.ORDER_CANCELLED, model.ORDER_EXPIRED):
                    if frame.order.executedVolume > 0:
                        d.callback(convert.filled(key, frame.order, None, now()))
                    else:
                        code = frame.errorCode or ("REQUOTE" if kind == model.ORDER_CANCELLED else "REJECTED")
                        d.callback(convert.rejected(key, code if code != "REQUOTE" else "TRADING_BAD_PRICES",
                                                    f"order {model.ProtoOAExecutionType.Name(kind)}", now()))
                    return True
                return False  # ORDER_ACCEPTED, ORDER_PARTIAL_FILL: not the end
            if name == "ProtoOAOrderErrorEvent":
                d.callback(convert.rejected(key, frame.errorCode, frame.description, now()))
                return True
            if name in ("ProtoOAErrorRes", "ProtoErrorRes"):
                if frame.errorCode in NOT_PROCESSED:
                    d.errback(VenueUnavailable(f"order {key}: {frame.errorCode} (not executed)"))
                else:
                    d.callback(convert.rejected(key, frame.errorCode, frame.description, now()))
                return True
            return False

        def fail(exc) -> None:
            if isinstance(exc, (ConnectionLost, ReplyTimeout)):
                exc = AmbiguousOutcome(key, str(exc))
            d.errback(exc)
        session.stream(message, handle, fail)
        return d

    # -- lookup ------------------------------------------------------------
    @defer.inlineCallbacks
    def lookup(self, account, key: str):
        ctid = account.number
        if (ctid, key) in self.filled:
            return self.filled[(ctid, key)]
        record = self.sent.get((ctid, key))
        if record is not None and not record.done:
            try:
                result = yield self._wait(record)
            except (AmbiguousOutcome, VenueUnavailable):
                result = None
            else:
                return result if result.status is OrderStatus.FILLED else None
        if record is not None and record.order.action is Action.MODIFY:
            return None
        session = self.venue.session_for(ctid)
        now = self.venue.now_ms()
        start = record.sent_ms - MARGIN_MS if record is not None else now - WEEK_MS + MARGIN_MS
        res = yield session.request(oa.ProtoOAOrderListReq(ctidTraderAccountId=ctid, fromTimestamp=start,
                                                           toTimestamp=now + MARGIN_MS))
        found = next((o for o in res.order if o.clientOrderId == key and o.executedVolume > 0), None)
        if found is None:
            return None
        details = yield session.request(oa.ProtoOAOrderDetailsReq(ctidTraderAccountId=ctid, orderId=found.orderId))
        deal = details.deal[-1] if details.deal else None
        result = convert.filled(key, details.order, deal, now)
        self.filled[(ctid, key)] = result
        return result
