"""The provider seam: where an MT5 venue's terminals come from.

A *provider* is an object with the MetaTrader5 package's functions
(``initialize``, ``terminal_info``, ``account_info``, ``symbols_get``,
``symbol_info``, ``symbol_info_tick``, ``symbol_select``, ``positions_get``,
``history_deals_get``, ``order_send``, ``last_error``, ``shutdown``) bound to
one terminal logged in to one account. ``initialize()`` is called *without*
arguments by the venue (on start and on every reconnect): a provider carries
its own credentials. The connector never knows which provider it has.

- :func:`simulator`: the simulated terminal (``connectors.mt5.terminal.Terminal``),
  whose methods already are that surface; its ``initialize()`` without a login
  keeps the account the terminal was built with.
- :func:`native`: the Windows ``MetaTrader5`` package, imported lazily. The
  package drives *one* terminal per Python process, so a process can hold at
  most one native provider; more accounts need more processes (or mt5linux).
- :func:`mt5linux`: the hook for a terminal under Wine reached over rpyc. It is
  implemented in :data:`RPYC_PROVIDER_MODULE` (``connectors/mt5/rpyc_provider.py``,
  written separately), whose ``RpycTerminal(host, port, timeout_s)`` is one link to
  the terminal (connected when made; once lost, lost for good, raising a
  ``ConnectionError``). This function wraps it in :class:`Relinking`, which makes a
  new link on the venue's next ``initialize()``.

A provider that cannot be made raises :class:`ProviderError` with one line
naming the problem.
"""

from __future__ import annotations

import importlib
import sys

#: the module the mt5linux provider lives in, and the function it must define
RPYC_PROVIDER_MODULE = "connectors.mt5.rpyc_provider"
RPYC_PROVIDER_CLASS = "RpycTerminal"


class ProviderError(Exception):
    """A provider cannot be made here (the message is one line naming why)."""


def simulator(terminal):
    """A simulated terminal is its own provider."""
    return terminal


class LoggedIn:
    """A MetaTrader5-shaped module bound to one account: ``initialize()`` passes the account's
    credentials; every other function is the module's own."""

    def __init__(self, module, *, login: int | None = None, password: str | None = None,
                 server: str | None = None, path: str | None = None, timeout_ms: int = 60_000,
                 portable: bool = False) -> None:
        self._module = module
        self._login = login
        self._password = password
        self._server = server
        self._path = path
        self._timeout_ms = timeout_ms
        self._portable = portable

    def initialize(self) -> bool:
        kwargs: dict = {"timeout": self._timeout_ms, "portable": self._portable}
        if self._login is not None:
            kwargs.update(login=self._login, password=self._password, server=self._server)
        if self._path is not None:
            return self._module.initialize(self._path, **kwargs)
        return self._module.initialize(**kwargs)

    def __getattr__(self, name: str):
        return getattr(self._module, name)

    def __repr__(self) -> str:  # never the password
        return f"LoggedIn(login={self._login!r}, server={self._server!r}, path={self._path!r})"


_native_taken: list[int | None] = []


def native(*, login: int | None = None, password: str | None = None, server: str | None = None,
           path: str | None = None, timeout_ms: int = 60_000, portable: bool = False) -> LoggedIn:
    """The ``MetaTrader5`` package for this process's one terminal (Windows only)."""
    try:
        module = importlib.import_module("MetaTrader5")
    except ImportError as exc:
        where = "" if sys.platform == "win32" else f" (it exists for Windows only, this is {sys.platform}: " \
                                                   "use provider 'mt5linux')"
        raise ProviderError(f"mt5 native provider: cannot import the MetaTrader5 package{where}: {exc}") from None
    if _native_taken and _native_taken[0] != login:
        raise ProviderError(f"mt5 native provider: this process already drives the terminal of account "
                            f"{_native_taken[0]}; the MetaTrader5 package holds one terminal per process")
    _native_taken[:] = [login]
    return LoggedIn(module, login=login, password=password, server=server, path=path, timeout_ms=timeout_ms,
                    portable=portable)


class Relinking(LoggedIn):
    """A provider over a link that, once lost, stays lost (an rpyc connection): ``initialize()`` makes a new
    link when there is none or the last one is lost, then initialises the terminal with the credentials.
    Until a link is made every call raises ``ConnectionError`` (the pool then reports the terminal down)."""

    def __init__(self, make_link, **credentials) -> None:
        super().__init__(None, **credentials)
        self._make_link = make_link

    def initialize(self) -> bool:
        link = self._module
        if link is None or not getattr(link, "connected", True):
            if link is not None:
                self._module = None
                link.close()
            self._module = self._make_link()  # a ConnectionError if the other end cannot be reached
        return super().initialize()

    def __getattr__(self, name: str):
        link = self.__dict__.get("_module")
        if link is None:
            raise ConnectionError(f"mt5 terminal not linked yet (wanted {name})")
        return getattr(link, name)


def mt5linux(*, host: str, port: int, login: int | None = None, password: str | None = None,
             server: str | None = None, path: str | None = None, timeout_s: float = 30.0) -> Relinking:
    """A terminal under Wine behind an rpyc classic server (see the module doc: the hook). Nothing is
    connected here: the venue's first ``initialize()`` links (and a lost link is made again there)."""
    try:
        module = importlib.import_module(RPYC_PROVIDER_MODULE)
    except ImportError as exc:
        raise ProviderError(f"mt5 mt5linux provider: {RPYC_PROVIDER_MODULE} is not available: {exc}") from None
    make = getattr(module, RPYC_PROVIDER_CLASS, None)
    if make is None:
        raise ProviderError(f"mt5 mt5linux provider: {RPYC_PROVIDER_MODULE} has no {RPYC_PROVIDER_CLASS}")
    return Relinking(lambda: make(host, port, timeout_s), login=login, password=password, server=server,
                     path=path)
