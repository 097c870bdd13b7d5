"""A DWX ZeroMQ Server (v2.0.1 RC8 behaviour, DWX.md) over real sockets, on the MT4 simulator's ``Terminal``.

``DwxServer(terminal, ctx, command_endpoint, reply_endpoint, price_endpoint=None, *, reactor, timer_ms=1,
max_orders=1, max_lot_size="0.01", max_slippage=3, dma_mode=True, lose_reply=0.0)``

binds a PULL (commands in) on ``command_endpoint``, a PUSH (replies out) on ``reply_endpoint`` and, when
given, a PUB on ``price_endpoint`` (bound and silent: price streaming is not simulated). ``start()`` runs the
EA's timer as a ``LoopingCall`` every ``timer_ms`` on ``reactor``: like ``OnTimer``, each tick reads **one**
command without blocking, answers it on the PUSH and then sends one empty frame (the EA's handler returns an
empty message that ``OnTimer`` sends after the reply).

Answered like the EA: ``HEARTBEAT``; ``TRADE;OPEN`` (``MaximumLotSize``/``MaximumOrders`` checked first;
the current Ask/Bid within ``MaximumSlippage``; SL/TP are point distances from the open price, set by a
modify after the fill when ``DMA_MODE``, else from the current price in the send; with ``DMA_MODE`` off the
reply ends ``}}`` as the EA's does); ``TRADE;MODIFY`` (distances from the open price); ``TRADE;CLOSE`` (up to
three attempts, each failure appended, then ``CLOSE_MARKET`` and ``SUCCESS`` even when every attempt failed);
``TRADE;CLOSE_PARTIAL`` (a size under 0.01 or above the order's lots closes it all);
``TRADE;GET_OPEN_TRADES`` (every open order, highest position first, numbers with 8 decimals, the comment
as written). The EA's other commands (``CLOSE_MAGIC``, ``CLOSE_ALL``, ``HIST``, ``TRACK_PRICES``,
``TRACK_RATES``) and unknown text get only the empty frame.

Faults: the terminal's own (:class:`~connectors.mt4.simulator.Faults`: requote, busy, connected) on every
trade, and ``lose_reply``: the fraction of trading commands executed whose reply is never sent.
"""

from __future__ import annotations

import logging
from collections import Counter
from decimal import ROUND_DOWN, Decimal, InvalidOperation

import zmq
from twisted.internet.task import LoopingCall

from connectors.mt4 import protocol as P
from connectors.mt4.dwx import protocol as D
from connectors.mt4.simulator.orders import Order, TradeError, time_string
from connectors.mt4.simulator.serve import bind_ports
from connectors.mt4.simulator.terminal import Terminal

log = logging.getLogger(__name__)

ZERO = Decimal(0)
MIN_CLOSE = Decimal("0.01")


def _n(value: Decimal) -> str:
    """A double as ``DoubleToString(value)`` writes it: eight decimals."""
    return f"{Decimal(value):.8f}"


def _q(text: str) -> str:
    return f"'{text}'"


def _dict(pairs: list[tuple[str, str]]) -> str:
    return "{" + ", ".join(f"'{k}': {v}" for k, v in pairs) + "}"


def _decimal(text: str) -> Decimal:
    """``StrToDouble``: the leading number of the text, 0 when there is none."""
    try:
        return Decimal(text.strip() or "0")
    except InvalidOperation:
        return ZERO


def _int(text: str) -> int:
    """``StrToInteger``: the integer part, 0 when there is none."""
    return int(_decimal(text).to_integral_value(ROUND_DOWN))


class DwxServer:
    def __init__(self, terminal: Terminal, ctx: zmq.Context, command_endpoint: str, reply_endpoint: str,
                 price_endpoint: str | None = None, *, reactor, timer_ms: int = 1, max_orders: int = 1,
                 max_lot_size: object = "0.01", max_slippage: int = 3, dma_mode: bool = True,
                 lose_reply: float = 0.0) -> None:
        self.terminal = terminal
        self.reactor = reactor
        self.timer_ms = timer_ms
        self.max_orders = max_orders
        self.max_lot_size = Decimal(str(max_lot_size))
        self.max_slippage = max_slippage
        self.dma_mode = dma_mode
        self.lose_reply = lose_reply
        self.pull = ctx.socket(zmq.PULL)
        self.push = ctx.socket(zmq.PUSH)
        self.pub = ctx.socket(zmq.PUB) if price_endpoint is not None else None
        self.sockets = [s for s in (self.pull, self.push, self.pub) if s is not None]
        try:
            for s in self.sockets:
                s.setsockopt(zmq.LINGER, 0)
            self.pull.bind(command_endpoint)
            self.push.bind(reply_endpoint)
            if self.pub is not None:
                self.pub.bind(price_endpoint)
        except zmq.ZMQError:
            self.stop()
            raise
        self.command_endpoint = self.pull.getsockopt_string(zmq.LAST_ENDPOINT)
        self.reply_endpoint = self.push.getsockopt_string(zmq.LAST_ENDPOINT)
        self.price_endpoint = self.pub.getsockopt_string(zmq.LAST_ENDPOINT) if self.pub is not None else None
        self.timer = LoopingCall(self.on_timer)
        self.timer.clock = reactor
        self.handled = 0
        self.commands: Counter = Counter()  # by action (HEARTBEAT, OPEN, GET_OPEN_TRADES, ...)
        self.lost = 0
        self.unknown = 0

    def start(self) -> None:
        self.timer.start(self.timer_ms / 1000, now=False)

    def stop(self) -> None:
        if getattr(self, "timer", None) is not None and self.timer.running:
            self.timer.stop()
        for s in self.sockets:
            if not s.closed:
                s.close()

    # -- the EA's OnTimer ------------------------------------------------------------
    def on_timer(self) -> None:
        if self.pull.closed:
            return
        try:
            frame = self.pull.recv(zmq.NOBLOCK)
        except zmq.Again:
            return
        try:
            reply = self.handle(frame.decode("utf-8", "replace"))
        except Exception:  # a bug must not stop the timer; the real EA would answer nothing either
            log.exception("dwx simulator: handling %r", frame[:80])
            reply = None
        for text in ([reply] if reply is not None else []) + [""]:
            try:
                self.push.send_string(text, zmq.NOBLOCK)
            except zmq.Again:  # no client connected: the EA's non-blocking send drops it too
                pass

    def handle(self, text: str) -> str | None:
        """The reply to one command text, or None (no reply: unknown, or a ``lose_reply`` fault)."""
        fields = (text.split(";") + [""] * 11)[:11]
        self.handled += 1
        self.commands[fields[1] if fields[0] == "TRADE" else fields[0]] += 1
        if fields[0] == D.HEARTBEAT:
            return _dict([("_action", _q("heartbeat")), ("_response", _q("loud and clear!"))])
        t = self.terminal
        handler = {D.OPEN: self._open, D.MODIFY: self._modify, D.CLOSE: self._close,
                   D.CLOSE_PARTIAL: self._close_partial, D.GET_OPEN_TRADES: self._open_trades}.get(fields[1])
        if fields[0] != "TRADE" or handler is None:
            self.unknown += 1
            return None
        if not t.faults.connected:
            return _dict([("_response", _q("NO_BROKER_CONNECTION__ABORTED_COMMAND"))])
        with t.lock:
            reply = handler(fields)
        if fields[1] != D.GET_OPEN_TRADES and t._roll(self.lose_reply):
            self.lost += 1
            return None
        return reply

    # -- commands ------------------------------------------------------------------------
    @staticmethod
    def _failure(exc: TradeError, value_key: str = "_response_value") -> list[tuple[str, str]]:
        return [("_response", _q(str(exc.code))), (value_key, _q(exc.text))]

    def _levels(self, order_type: int, symbol: str, base: Decimal, sl_points: Decimal, tp_points: Decimal):
        """``price -/+ distance * dir * point`` at the symbol's digits, as the EA computes SL/TP."""
        point = self.terminal.market.point(symbol)
        direction = 1 if order_type == P.OP_BUY else -1
        sl = (base - sl_points * direction * point).quantize(point)
        tp = (base + tp_points * direction * point).quantize(point)
        return sl, tp

    def _open(self, f: list[str]) -> str:
        t = self.terminal
        order_type, symbol, lots = _int(f[2]), f[3], _decimal(f[8])
        sl_points, tp_points = Decimal(_int(f[5])), Decimal(_int(f[6]))
        out = [("_action", _q("EXECUTION"))]
        if lots > self.max_lot_size:
            return _dict(out + [("_response", _q("LOT_SIZE_ERROR")), ("response_value", _q("MAX_LOT_SIZE_EXCEEDED"))])
        if len(t.open_orders()) >= self.max_orders:
            return _dict(out + [("_response", _q("NUM_ORDERS_ERROR")),
                                ("response_value", _q("MAX_NUMBER_OF_ORDERS_EXCEEDED"))])
        try:
            price = t.market_price(symbol, order_type) if symbol in t.market else ZERO
            sl = tp = ZERO
            if not self.dma_mode and symbol in t.market:
                sl, tp = self._levels(order_type, symbol, price, sl_points, tp_points)
            ticket = t.order_send(symbol, order_type, lots, price, self.max_slippage, sl, tp, f[7], _int(f[9]))
        except TradeError as exc:
            return _dict(out + self._failure(exc, "response_value"))
        order = t.order(ticket)
        out += [("_symbol", _q(symbol)), ("_magic", str(order.magic)), ("_ticket", str(ticket)),
                ("_open_time", _q(time_string(order.open_time))), ("_open_price", _n(order.open_price))]
        if not self.dma_mode:
            return _dict(out) + "}"  # the EA closes this reply twice
        if sl_points or tp_points:
            sl, tp = self._levels(order.type, symbol, order.open_price, sl_points, tp_points)
            try:
                t.order_modify(ticket, sl, tp)
                out += [("_sl", _n(sl)), ("_tp", _n(tp))]
            except TradeError as exc:
                out += self._failure(exc) + [("_response", _q("ERROR_SETTING_SL_TP"))]
        return _dict(out)

    def _open_order(self, ticket_text: str) -> Order | None:
        ticket = _int(ticket_text)
        return next((o for o in self.terminal.open_orders() if o.ticket == ticket), None)

    def _modify(self, f: list[str]) -> str:
        out = [("_action", _q("MODIFY"))]
        order = self._open_order(f[10])
        if order is None:
            return _dict(out + [("_response", _q("NOT_FOUND"))])
        sl, tp = self._levels(order.type, order.symbol, order.open_price, _decimal(f[5]), _decimal(f[6]))
        try:
            if sl < 0 or tp < 0:
                raise TradeError(P.ERR_INVALID_STOPS)
            self.terminal.order_modify(order.ticket, sl, tp)
        except TradeError as exc:
            return _dict(out + self._failure(exc) + [("_sl_attempted", _n(sl)), ("_tp_attempted", _n(tp))])
        return _dict(out + [("_sl", _n(sl)), ("_tp", _n(tp))])

    def _close_lots(self, order: Order, lots: Decimal, out: list) -> bool:
        t = self.terminal
        price = t.market_price(order.symbol, order.type, closing=True)
        try:
            t.order_close(order.ticket, lots, price, self.max_slippage)
        except TradeError as exc:
            out += self._failure(exc)
            return False
        out += [("_close_price", _n(price)), ("_close_lots", _n(lots))]
        return True

    def _close(self, f: list[str]) -> str:
        ticket = _int(f[10])
        out = [("_action", _q("CLOSE")), ("_ticket", str(ticket))]
        order = self._open_order(f[10])
        if order is None:
            return _dict(out + [("_response", _q("NOT_FOUND"))])
        for _ in range(3):
            if self._close_lots(order, order.lots, out):
                break
        return _dict(out + [("_response", _q("CLOSE_MARKET")), ("_response_value", _q("SUCCESS"))])

    def _close_partial(self, f: list[str]) -> str:
        ticket = _int(f[10])
        out = [("_action", _q("CLOSE")), ("_ticket", str(ticket))]
        order = self.terminal.order(ticket)
        if order is None:
            return _dict(out + [("_response", _q("CLOSE_PARTIAL_FAILED"))])
        out.append(("_response", _q("CLOSE_PARTIAL")))
        size = _decimal(f[8])
        if size < MIN_CLOSE or size > order.lots:
            size = order.lots
        self._close_lots(order, size, out)
        return _dict(out)

    def _open_trades(self, f: list[str]) -> str:
        entries = []
        for o in reversed(self.terminal.open_orders()):
            fields = [("_magic", str(o.magic)), ("_symbol", _q(o.symbol)), ("_lots", _n(o.lots)),
                      ("_type", str(o.type)), ("_open_price", _n(o.open_price)),
                      ("_open_time", _q(time_string(o.open_time))), ("_SL", _n(o.sl)), ("_TP", _n(o.tp)),
                      ("_pnl", _n(o.profit)), ("_comment", _q(o.comment))]
            entries.append(f"{o.ticket}: {_dict(fields)}")
        return "{'_action': 'OPEN_TRADES', '_trades': {" + ", ".join(entries) + "}}"


def bind_triple(terminal: Terminal, ctx: zmq.Context, host: str, port: int, *, reactor, attempts: int = 50,
                **options) -> DwxServer:
    """A :class:`DwxServer` on ``port`` (commands), ``port + 1`` (replies), ``port + 2`` (prices); port 0:
    three free ports in a row."""
    return bind_ports(ctx, host, port, 3, lambda p: DwxServer(
        terminal, ctx, f"tcp://{host}:{p}", f"tcp://{host}:{p + 1}", f"tcp://{host}:{p + 2}", reactor=reactor,
        **options), attempts=attempts)
