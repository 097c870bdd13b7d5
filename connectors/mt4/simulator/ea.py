"""The EA's logic, without sockets: one command in, one reply out; a scan, the events it found.

``SimulatedEA(terminal, *, epoch=None, ring=EVENT_RING, journal_path=None)``:

- ``handle(command: dict) -> dict | None``: the reply to one decoded command (``PROTOCOL.md``):
  ``{"id", "ok": True, "result"}`` or ``{"id", "ok": False, "error", "text"}``. ``None`` when there is
  no reply: a command without a usable ``id`` (counted in ``bad_frames``), or a ``timeout_after`` /
  ``timeout_before_journal`` fault that swallowed it (counted in ``swallowed``).
  Trading commands (``OPEN``, ``CLOSE``, ``MODIFY``) whose ``key`` is in the result journal are answered
  from it with ``"repeat": true`` and never executed again. Only executed trades are journalled: a refused
  command traded nothing and may be sent again with the same key.
- ``scan() -> list[dict]``: diffs the terminal (:class:`~.events.Scanner`), numbers the changes
  (``epoch``, ``seq``) into the ring, and returns the events to publish (a ``drop_events`` fault keeps an
  event in the ring but leaves it out of the list; ``dropped`` counts them).
- ``heartbeat() -> dict``: ``{"epoch", "seq", "time", "time_msc"}`` with the last ``seq``.

A new ``SimulatedEA`` on the same terminal is a restarted EA: a new epoch, ``seq`` from 1, the terminal's
current state as its starting snapshot, and the journal read back from ``journal_path``.

Also ``MANUAL_OPEN``/``MANUAL_CLOSE``/``MANUAL_MODIFY``: trades by hand (magic 0, no comment, no key, no
journal), which the real EA refuses.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Callable

from connectors.mt4 import protocol as P
from connectors.mt4.simulator.events import EventRing, Scanner
from connectors.mt4.simulator.journal import Journal
from connectors.mt4.simulator.orders import Order, TradeError, closed_record, time_string, trade_record
from connectors.mt4.simulator.terminal import Terminal

_MISSING = object()


class Refused(Exception):
    """A command answered with an error (an MQL4 code or a protocol-level string)."""

    def __init__(self, error: int | str, text: str) -> None:
        self.error = error
        self.text = text
        super().__init__(text)


class BadField(Exception):
    """A command field missing or of the wrong type (answered ``bad-frame``)."""


def _field(command: dict, name: str, kind: type, default: object = _MISSING):
    value = command.get(name, default)
    if value is _MISSING:
        raise BadField(f"{command['cmd']} needs {name!r}")
    if kind is Decimal and isinstance(value, int) and not isinstance(value, bool):
        value = Decimal(value)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise BadField(f"field {name!r} of {command['cmd']} must be {'a number' if kind is not str else 'a string'}")
    return value


class SimulatedEA:
    """The copybridge EA in one simulated terminal (one account)."""

    def __init__(self, terminal: Terminal, *, epoch: str | None = None, ring: int = P.EVENT_RING,
                 journal_path: Path | None = None) -> None:
        self.terminal = terminal
        self.epoch = epoch if epoch is not None else f"{terminal.fault_rng.getrandbits(64):016x}"
        self.ring = EventRing(ring)
        self.journal = Journal(journal_path)
        self.scanner = Scanner(terminal)
        self.bad_frames = 0
        self.swallowed = 0
        self.dropped = 0
        self._handlers: dict[str, Callable[[dict], dict]] = {
            P.OPEN: self._open, P.CLOSE: self._close, P.MODIFY: self._modify,
            P.TRADES: self._trades, P.HISTORY: self._history, P.ACCOUNT: self._account, P.SYMBOL: self._symbol,
            P.LOOKUP: self._lookup, P.REPLAY: self._replay, P.PING: self._ping,
            P.MANUAL_OPEN: self._manual_open, P.MANUAL_CLOSE: self._manual_close,
            P.MANUAL_MODIFY: self._manual_modify,
        }

    # ------------------------------------------------------------------ commands
    def handle(self, command: dict) -> dict | None:
        """The reply to one command, or ``None`` when none is sent."""
        try:
            P.check_command(command)
        except P.FrameError as exc:
            ident = command.get("id") if isinstance(command, dict) else None
            if not isinstance(ident, int) or isinstance(ident, bool):
                self.bad_frames += 1
                return None
            return self._error(ident, P.BAD_FRAME, str(exc))
        ident, cmd = command["id"], command["cmd"]
        handler = self._handlers.get(cmd)
        if handler is None:
            return self._error(ident, P.UNKNOWN_COMMAND, f"unknown command {cmd!r}")
        t = self.terminal
        t.spend(t.faults.call_cost_us)
        try:
            with t.lock:
                if cmd in P.TRADING:
                    return self._trade(command, handler)
                return {"id": ident, "ok": True, "result": handler(command)}
        except BadField as exc:
            return self._error(ident, P.BAD_FRAME, str(exc))
        except Refused as exc:
            return self._error(ident, exc.error, exc.text)
        except TradeError as exc:
            return self._error(ident, exc.code, exc.text)

    @staticmethod
    def _error(ident: int, error: int | str, text: str) -> dict:
        return {"id": ident, "ok": False, "error": error, "text": text}

    def _trade(self, command: dict, execute: Callable[[dict], dict]) -> dict | None:
        key = _field(command, "key", str)
        entry = self.journal.get(key)
        if entry is not None:
            return {**entry["reply"], "id": command["id"], "repeat": True}
        reply = {"id": command["id"], "ok": True, "result": execute(command)}
        faults, roll = self.terminal.faults, self.terminal._roll
        if roll(faults.timeout_before_journal):
            self.swallowed += 1
            return None
        self.journal.record(key, command["cmd"], reply)
        if roll(faults.timeout_after):
            self.swallowed += 1
            return None
        return reply

    def _symbol_of(self, command: dict) -> str:
        symbol = _field(command, "symbol", str)
        if symbol not in self.terminal.market:
            raise Refused(P.UNKNOWN_SYMBOL, f"unknown symbol {symbol!r}")
        return symbol

    def _open_ticket(self, command: dict) -> Order:
        ticket = _field(command, "ticket", int)
        order = next((o for o in self.terminal.open_orders() if o.ticket == ticket), None)
        if order is None:
            raise Refused(P.NOT_FOUND, f"ticket {ticket} is not open")
        return order

    def _check_slippage(self, command: dict, symbol: str, order_type: int, closing: bool) -> Decimal:
        """The current price, or 138 when it is more than ``slippage`` points worse than ``price``."""
        t = self.terminal
        current = t.market_price(symbol, order_type, closing=closing)
        price = _field(command, "price", Decimal, Decimal(0))
        slippage = _field(command, "slippage", int, 0)
        if price:
            buying = (order_type == P.OP_BUY) != closing
            worse = current - price if buying else price - current
            if worse > slippage * t.market.point(symbol):
                raise TradeError(P.ERR_REQUOTE)
        return current

    def _open(self, command: dict) -> dict:
        t = self.terminal
        symbol = self._symbol_of(command)
        order_type = _field(command, "type", int)
        if order_type not in (P.OP_BUY, P.OP_SELL):
            raise TradeError(P.ERR_INVALID_TRADE_PARAMETERS)
        lots = t.round_lots(symbol, _field(command, "lots", Decimal))
        sl, tp = _field(command, "sl", Decimal, Decimal(0)), _field(command, "tp", Decimal, Decimal(0))
        price = self._check_slippage(command, symbol, order_type, closing=False)
        ticket = t.order_send(symbol, order_type, lots, price, _field(command, "slippage", int, 0), sl, tp,
                              command["key"], _field(command, "magic", int, 0))
        return self._opened(t.order(ticket))

    @staticmethod
    def _opened(order: Order) -> dict:
        return {"ticket": order.ticket, "symbol": order.symbol, "type": order.type, "lots": order.lots,
                "price": order.open_price, "time": time_string(order.open_time), "time_msc": order.open_time_msc,
                "sl": order.sl, "tp": order.tp, "comment": order.comment, "magic": order.magic}

    def _close(self, command: dict) -> dict:
        t = self.terminal
        order = self._open_ticket(command)
        lots = _field(command, "lots", Decimal, Decimal(0))
        if lots == 0 or lots == order.lots:
            lots = order.lots
        elif lots > order.lots:
            raise TradeError(P.ERR_INVALID_TRADE_VOLUME)
        else:
            lots = t.round_lots(order.symbol, lots)
        price = self._check_slippage(command, order.symbol, order.type, closing=True)
        remainder = t.order_close(order.ticket, lots, price, _field(command, "slippage", int, 0))
        return self._closed(order.ticket, remainder)

    def _closed(self, ticket: int, remainder: int) -> dict:
        t = self.terminal
        closed = t.order(ticket)
        rest = t.order(remainder) if remainder else None
        return {"ticket": ticket, "closed_lots": closed.lots, "price": closed.close_price,
                "time": time_string(closed.close_time), "time_msc": closed.close_time_msc,
                "remainder": remainder, "remainder_lots": rest.lots if rest else Decimal(0),
                "profit": closed.profit}

    def _modify(self, command: dict) -> dict:
        order = self._open_ticket(command)
        sl, tp = _field(command, "sl", Decimal, Decimal(0)), _field(command, "tp", Decimal, Decimal(0))
        try:
            self.terminal.order_modify(order.ticket, sl, tp)
        except TradeError as exc:
            if exc.code != P.ERR_NO_RESULT:
                raise
        return {"ticket": order.ticket, "sl": sl, "tp": tp}

    # ------------------------------------------------------------------ queries
    def _trades(self, command: dict) -> dict:
        return {"trades": [trade_record(o) for o in self.terminal.open_orders()]}

    def _history(self, command: dict) -> dict:
        after = _field(command, "after_ticket", int, 0)
        since = _field(command, "since_msc", int, None) if "since_msc" in command else None
        return {"orders": [closed_record(h) for h in self.terminal.history_orders()
                           if h.ticket > after or (since is not None and h.close_time_msc >= since)]}

    def _account(self, command: dict) -> dict:
        return self.terminal.account()

    def _symbol(self, command: dict) -> dict:
        return self.terminal.symbol_info(self._symbol_of(command))

    def _lookup(self, command: dict) -> dict:
        key = _field(command, "key", str)
        entry = self.journal.get(key)
        if entry is not None:
            return {"found": True, "cmd": entry["cmd"], "reply": entry["reply"]["result"]}
        # an OPEN whose journal line was never written: the order carries the key as its comment
        t = self.terminal
        for order in [*t.open_orders(), *t.history_orders()] if key else ():
            if not order.is_balance and (order.comment == key or order.comment.startswith(key + "[")):
                return {"found": True, "cmd": P.OPEN, "reply": self._opened(order)}
        return {"found": False}

    def _replay(self, command: dict) -> dict:
        events = self.ring.since(_field(command, "after_seq", int))
        if events is None:
            return {"epoch": self.epoch, "gap": True}
        return {"epoch": self.epoch, "events": events}

    def _ping(self, command: dict) -> dict:
        return self.heartbeat()

    # ------------------------------------------------------------------ by hand (simulator only)
    def _manual_open(self, command: dict) -> dict:
        ticket = self.terminal.open(self._symbol_of(command), _field(command, "type", int),
                                    _field(command, "lots", Decimal), _field(command, "sl", Decimal, Decimal(0)),
                                    _field(command, "tp", Decimal, Decimal(0)))
        return self._opened(self.terminal.order(ticket))

    def _manual_close(self, command: dict) -> dict:
        order = self._open_ticket(command)
        remainder = self.terminal.close(order.ticket, _field(command, "lots", Decimal, Decimal(0)))
        return self._closed(order.ticket, remainder)

    def _manual_modify(self, command: dict) -> dict:
        order = self._open_ticket(command)
        sl, tp = _field(command, "sl", Decimal, Decimal(0)), _field(command, "tp", Decimal, Decimal(0))
        try:
            self.terminal.modify(order.ticket, sl, tp)
        except TradeError as exc:
            if exc.code != P.ERR_NO_RESULT:
                raise
        return {"ticket": order.ticket, "sl": sl, "tp": tp}

    # ------------------------------------------------------------------ events
    def scan(self) -> list[dict]:
        """New events since the last scan, numbered into the ring; those to publish (see the module doc)."""
        t = self.terminal
        published = []
        for body in self.scanner.scan():
            event = self.ring.add(self.epoch, body)
            if t._roll(t.faults.drop_events):
                self.dropped += 1
            else:
                published.append(event)
        return published

    def heartbeat(self) -> dict:
        now = self.terminal.now_msc()
        return {"epoch": self.epoch, "seq": self.ring.seq, "time": time_string(now // 1000), "time_msc": now}
