"""The ``mt5linux`` provider: the MetaTrader5 module API over rpyc classic (issue 5, spec 1.6).

On Linux the terminal runs under Wine with the Windows MetaTrader5 package and an
rpyc *classic* server beside it (port 18812 by default); ``bridge sim mt5``
serves a simulated terminal the same way. :class:`RpycTerminal` speaks rpyc
classic itself, as the mt5linux clients do, without their problems (mt5linux
1.1.1 wants Python 3.12 and a Docker container and unpickles results; 0.1.9 and
pymt5linux hand back remote references, one round trip per attribute):

- ``rpyc.connect(host, port, service=rpyc.core.service.ClassicClient)`` (the
  server's ``eval``/``execute`` for this side, nothing of this side for the
  server: see Security), then one remote ``execute`` that imports ``MetaTrader5 as mt5`` and
  ``datetime`` and defines a small converter in the connection's namespace; the
  module's constants are copied once, at connect;
- every method (same names and signatures as the module's functions) is ONE
  round trip: ``conn.eval`` of source text ``_cb_plain(mt5.NAME(*args, **kwargs))``
  where the arguments are Python literals (``repr``; a datetime goes as the
  ``repr`` of the same instant in UTC, a naive one as it is). The converter turns
  the result on the server into a tree of plain tuples, numbers and strings,
  which rpyc sends by value; records travel as their type name plus
  ``(field, value)`` pairs (``_asdict()``, which the real C struct-sequences have
  too) and are rebuilt here as the namedtuples of
  :mod:`connectors.mt5.terminal.records` by field name. Nothing remote is ever
  unpickled and no remote reference is ever returned;
- a lost connection (refused, reset, closed, timed out) raises
  :class:`TerminalUnreachable` (the MT5 venue maps it to ``VenueUnavailable``;
  for ``order_send`` the outcome is then unknown and must be looked up).
  Errors of the API itself are as the module's: ``None`` and ``last_error()``.

Security (spec 1.6): an rpyc classic server executes whatever its client sends.
The reverse is not needed and is refused: ``rpyc.classic.connect`` would serve
rpyc's ``SlaveService`` on the client's side too (every attribute, pickling,
``eval``/``execute``/``getmodule`` in the client's interpreter), so any code
running in the server (a compromised Wine host, or simply another client of the
same classic server: it may execute anything there, and reach every connection
the server holds) could run code in the bridge. This provider connects with
rpyc's ``ClassicClient`` service instead (rpyc 6: ``MasterService`` for the
classic handles on the server, ``FakeSlaveService`` answering ``None`` to
``eval``/``execute``/``getmodule``/``namespace``) and rpyc's default, closed
configuration on its side (no public or private attributes, no pickling); it
only ever sends source text and receives plain values, so there is nothing of
its own for the server to hold. A classic server needs nothing else (it is
what mt5linux and ``rpyc_classic`` run; ``tests/test_mt5_rpyc.py`` shows both
that it works and that the server's side reaches nothing here). The link itself
is plain TCP without authentication and the server is still wide open to its
clients, so it is safe only on loopback or inside one trusted host. Across
hosts, run the bridge's connector role beside the terminal (natively on
Windows, or in the Wine Python) and speak the bus over ZeroMQ with CURVE instead.

Not proxied: ``copy_ticks_*``/``copy_rates_*`` (numpy arrays; the connector does
not use them).
"""

from __future__ import annotations

import functools
import inspect
import math
import socket
from datetime import date, datetime, timezone

from connectors.mt5.terminal import records

DEFAULT_PORT = 18812

#: Runs once per connection in the server's namespace (Python 3.8+ syntax: it may be the Wine Python).
_PRELUDE = '''
import datetime
import MetaTrader5 as mt5


def _cb_plain(x):
    if x is None or type(x) in (bool, int, float, str, bytes):
        return x
    if isinstance(x, bool):
        return bool(x)
    if isinstance(x, int):
        return int(x)
    if isinstance(x, float):
        return float(x)
    if isinstance(x, str):
        return str(x)
    if hasattr(x, "_asdict"):
        return ("r", type(x).__name__, tuple((str(k), _cb_plain(v)) for k, v in x._asdict().items()))
    if isinstance(x, (tuple, list)):
        return ("t", tuple(_cb_plain(v) for v in x))
    if isinstance(x, dict):
        return ("d", tuple((_cb_plain(k), _cb_plain(v)) for k, v in x.items()))
    if hasattr(x, "item"):
        return _cb_plain(x.item())
    raise TypeError("cannot send a %s back" % type(x).__name__)


def _cb_constants():
    return tuple((k, int(v) if isinstance(v, int) else v) for k, v in vars(mt5).items()
                 if k.isupper() and not k.startswith("_") and isinstance(v, (int, float, str)))
'''

_RECORDS = {name: getattr(records, name) for name in (
    "AccountInfo", "BookInfo", "OrderCheckResult", "OrderSendResult", "SymbolInfo", "TerminalInfo", "Tick",
    "TradeDeal", "TradeOrder", "TradePosition", "TradeRequest")}


class TerminalUnreachable(ConnectionError):
    """The rpyc link to the terminal is down (refused, reset, closed or timed out)."""


class ProtocolError(RuntimeError):
    """The server answered something this provider cannot read (not a MetaTrader5 module?)."""


# ---------------------------------------------------------------------------------------------- arguments
def _literal(value: object) -> str:
    """``value`` as Python source the server can evaluate (only plain values; a datetime in UTC)."""
    if value is None or type(value) in (bool, str):
        return repr(value)
    if isinstance(value, bool):
        return repr(bool(value))
    if isinstance(value, int):
        return repr(int(value))  # IntEnum and friends become their number
    if isinstance(value, float):
        value = float(value)
        return repr(value) if math.isfinite(value) else f"float({repr(value)!r})"
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(timezone.utc)
            return (f"datetime.datetime({value.year}, {value.month}, {value.day}, {value.hour}, {value.minute}, "
                    f"{value.second}, {value.microsecond}, tzinfo=datetime.timezone.utc)")
        return (f"datetime.datetime({value.year}, {value.month}, {value.day}, {value.hour}, {value.minute}, "
                f"{value.second}, {value.microsecond})")
    if isinstance(value, date):
        return f"datetime.date({value.year}, {value.month}, {value.day})"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_literal(k)}: {_literal(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (tuple, list)):
        items = ", ".join(_literal(v) for v in value)
        return f"({items},)" if isinstance(value, tuple) and len(value) == 1 else (
            f"({items})" if isinstance(value, tuple) else f"[{items}]")
    raise TypeError(f"cannot send a {type(value).__name__} to the terminal: {value!r}")


def call_source(name: str, args: tuple, kwargs: dict) -> str:
    """The source text the server evaluates for one call."""
    parts = [_literal(a) for a in args] + [f"{k}={_literal(v)}" for k, v in kwargs.items()]
    return f"_cb_plain(mt5.{name}({', '.join(parts)}))"


# ---------------------------------------------------------------------------------------------- results
def rebuild(value: object) -> object:
    """The local value of one converted result: records as namedtuples, tuples as tuples."""
    if not isinstance(value, tuple):
        if value is None or type(value) in (bool, int, float, str, bytes):
            return value
        raise ProtocolError(f"the server sent a {type(value).__name__}, not a plain value")
    if not value:
        raise ProtocolError("the server sent an untagged empty tuple")
    tag = value[0]
    if tag == "t" and len(value) == 2:
        return tuple(rebuild(v) for v in value[1])
    if tag == "d" and len(value) == 2:
        return {rebuild(k): rebuild(v) for k, v in value[1]}
    if tag == "r" and len(value) == 3:
        type_name, pairs = value[1], value[2]
        record = _RECORDS.get(type_name)
        if record is None:
            raise ProtocolError(f"the server sent an unknown record type {type_name!r}")
        fields = {k: rebuild(v) for k, v in pairs}
        missing = [f for f in record._fields if f not in fields]
        if missing:
            raise ProtocolError(f"{type_name} without {', '.join(missing)}")
        if type_name == "OrderSendResult" or type_name == "OrderCheckResult":
            request = fields.get("request")
            if isinstance(request, dict):
                fields["request"] = records.TradeRequest(*(request.get(f) for f in records.TradeRequest._fields))
        return record(*(fields[f] for f in record._fields))
    raise ProtocolError(f"the server sent a tuple tagged {tag!r}")


# ---------------------------------------------------------------------------------------------- the provider
def _remote(stub):
    """A method that forwards exactly the arguments given to ``mt5.<stub's name>`` (one round trip)."""
    signature = inspect.signature(stub)
    name = stub.__name__

    @functools.wraps(stub)
    def method(self, *args, **kwargs):
        bound = signature.bind(self, *args, **kwargs)
        return self._call(name, bound.args[1:], bound.kwargs)

    return method


def _connection_errors() -> tuple[type[BaseException], ...]:
    from rpyc.core.async_ import AsyncResultTimeout

    return (EOFError, OSError, AsyncResultTimeout)


class RpycTerminal:
    """The MetaTrader5 module of a terminal behind an rpyc classic server, as an object.

    ``mt5 = RpycTerminal("127.0.0.1", 18812)`` then ``mt5.initialize(...)``,
    ``mt5.order_send({...})``, ``mt5.ORDER_TYPE_BUY`` like ``import MetaTrader5 as mt5``.
    ``timeout_s`` bounds the TCP connect and every call.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = DEFAULT_PORT, timeout_s: float = 30.0) -> None:
        import rpyc
        from rpyc.core.netref import BaseNetref
        from rpyc.core.service import ClassicClient

        self.host = host
        self.port = port
        self.timeout_s = timeout_s
        self._netref = BaseNetref
        self._lost: str | None = None
        self._errors = _connection_errors()
        try:
            # rpyc.connect has no connect timeout of its own: probe the port within ours first
            socket.create_connection((host, port), timeout=timeout_s).close()
            # ClassicClient, not rpyc.classic.connect: the server gets nothing of this interpreter (Security)
            self._conn = rpyc.connect(host, port, service=ClassicClient,
                                      config={"sync_request_timeout": timeout_s})
            self._conn.execute(_PRELUDE)
            constants = self._conn.eval("_cb_constants()")
        except self._errors as exc:
            raise TerminalUnreachable(f"cannot reach the MT5 rpyc server at {host}:{port}: {_why(exc)}") from None
        if isinstance(constants, self._netref) or not isinstance(constants, tuple):
            raise ProtocolError("the server's MetaTrader5 constants did not come as plain values")
        self.constants = dict(constants)
        for k, v in self.constants.items():
            setattr(self, k, v)

    def __repr__(self) -> str:
        return f"RpycTerminal({self.host!r}, {self.port})"

    # -------------------------------------------------------------------------------- plumbing
    def _call(self, name: str, args: tuple, kwargs: dict) -> object:
        source = call_source(name, args, kwargs)
        if self._lost is not None:
            raise TerminalUnreachable(f"MT5 rpyc server {self.host}:{self.port}: {self._lost}")
        try:
            result = self._conn.eval(source)
        except self._errors as exc:
            if getattr(exc, "_remote_tb", None):  # raised by the call on the server (an OSError there), not the link
                raise
            # the terminal may still be running the call (order_send: outcome unknown); drop the suspect link
            self._lost = (f"no answer within {self.timeout_s:g} s, link dropped" if isinstance(exc, TimeoutError)
                          else f"connection lost ({_why(exc)})")
            self.close()
            raise TerminalUnreachable(f"MT5 rpyc server {self.host}:{self.port}: {self._lost} during {name}()") \
                from None
        if isinstance(result, self._netref):
            raise ProtocolError(f"{name}() came back as a remote reference, not a value")
        return rebuild(result)

    @property
    def connected(self) -> bool:
        return self._lost is None and not self._conn.closed

    def close(self) -> None:
        """Drop the connection (the terminal keeps running); later calls raise :class:`TerminalUnreachable`."""
        if self._lost is None:
            self._lost = "closed"
        try:
            self._conn.close()
        except Exception:  # noqa: BLE001 - closing a broken link may fail in any way; it is closed either way
            pass

    def __enter__(self) -> "RpycTerminal":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -------------------------------------------------------------------------------- the module's functions
    @_remote
    def initialize(self, path=None, *, login=None, password=None, server=None, timeout=60000, portable=False):
        """Connect the terminal (and log in); True on success."""

    @_remote
    def login(self, login, *, password=None, server=None, timeout=60000):
        """Log the terminal in to an account; True on success."""

    @_remote
    def shutdown(self):
        """Close the terminal's connection to the Python API (the rpyc link stays)."""

    @_remote
    def version(self):
        """(500, build, build date)."""

    @_remote
    def last_error(self):
        """(code, text) of the last call; (1, 'Success') after a good one."""

    @_remote
    def account_info(self):
        """AccountInfo."""

    @_remote
    def terminal_info(self):
        """TerminalInfo."""

    @_remote
    def symbols_total(self):
        """Number of symbols."""

    @_remote
    def symbols_get(self, group=None):
        """tuple[SymbolInfo]."""

    @_remote
    def symbol_info(self, symbol):
        """SymbolInfo (the symbol must be in Market Watch)."""

    @_remote
    def symbol_info_tick(self, symbol):
        """Tick."""

    @_remote
    def symbol_select(self, symbol, enable=None):
        """Add to (True) or remove from (False) Market Watch."""

    @_remote
    def positions_total(self):
        """Number of open positions."""

    @_remote
    def positions_get(self, *, symbol=None, group=None, ticket=None):
        """tuple[TradePosition]."""

    @_remote
    def orders_total(self):
        """Number of pending orders."""

    @_remote
    def orders_get(self, *, symbol=None, group=None, ticket=None):
        """tuple[TradeOrder] (pending)."""

    @_remote
    def history_deals_total(self, date_from, date_to):
        """Number of deals in the window."""

    @_remote
    def history_deals_get(self, date_from=None, date_to=None, *, group=None, ticket=None, position=None):
        """tuple[TradeDeal]: by window (and group), by order ticket, or by position."""

    @_remote
    def history_orders_total(self, date_from, date_to):
        """Number of history orders in the window."""

    @_remote
    def history_orders_get(self, date_from=None, date_to=None, *, group=None, ticket=None, position=None):
        """tuple[TradeOrder]."""

    @_remote
    def order_check(self, request):
        """OrderCheckResult."""

    @_remote
    def order_send(self, request):
        """OrderSendResult."""

    @_remote
    def order_calc_margin(self, action, symbol, volume, price):
        """Margin in the account currency."""

    @_remote
    def order_calc_profit(self, action, symbol, volume, price_open, price_close):
        """Profit in the account currency."""

    @_remote
    def market_book_add(self, symbol):
        """Subscribe to market depth."""

    @_remote
    def market_book_release(self, symbol):
        """Unsubscribe from market depth."""

    @_remote
    def market_book_get(self, symbol):
        """tuple[BookInfo]."""


def _why(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
