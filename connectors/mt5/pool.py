"""The terminal pool: one worker per terminal (one logged-in account each).

Every call to a terminal is a function of its provider run by that terminal's
:class:`Worker`: with ``threads=True`` on the worker's own single-thread Twisted
``ThreadPool`` (a blocking IPC call never blocks the reactor or another
terminal; calls to one terminal run one at a time, in the order they were
made, like the terminal's single pipe), with ``threads=False`` inline (tests).
A function that needs several calls in a row (``order_send`` then
``last_error``) runs them in one hop, so nothing comes between them.

Accounts are never switched: a worker's terminal is checked on every
(re)connect to be logged in to the worker's account, and ``login()`` is never
called.

Up and down: a worker is *down* (``down`` holds why) before its first connect,
after a call failed with a connection error (``last_error`` -10000..-10005,
i.e. the pipe to the terminal, or a ``ConnectionError`` raised by a provider
over a network link, such as the mt5linux one), after a call outlived ``timeout_s``, or when
``terminal_info().connected`` is False (the terminal lost its trade server).
While down every call fails at once with :class:`VenueUnavailable` (nothing is
sent). A health check runs every :data:`HEALTH_S` on the injected clock: up,
it reads ``terminal_info()``; down, it calls ``initialize()`` again, then
``terminal_info()``, and the worker is up once the terminal says it is
connected (``on_change`` hears both transitions).
"""

from __future__ import annotations

import logging
from typing import Callable

from twisted.internet import defer, task
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

from connectors.interface import VenueUnavailable
from connectors.mt5 import codes as c

log = logging.getLogger(__name__)

#: seconds between health checks (and reconnect attempts) of each terminal
HEALTH_S = 1.0

#: ``last_error`` codes that mean the pipe to the terminal is broken (not the request)
CONNECTION_ERRORS = frozenset({c.RES_E_INTERNAL_FAIL, c.RES_E_INTERNAL_FAIL_SEND, c.RES_E_INTERNAL_FAIL_RECEIVE,
                               c.RES_E_INTERNAL_FAIL_INIT, c.RES_E_INTERNAL_FAIL_CONNECT,
                               c.RES_E_INTERNAL_FAIL_TIMEOUT})


class CallFailed(Exception):
    """A terminal function answered None (or False): ``code`` and ``text`` are its ``last_error``."""

    def __init__(self, what: str, error) -> None:
        code, text = error if error else (c.RES_E_FAIL, "no last_error")
        super().__init__(f"{what}: {code} {text}")
        self.code = code
        self.text = text

    @property
    def connection(self) -> bool:
        return self.code in CONNECTION_ERRORS


class WrongAccount(Exception):
    """The terminal is logged in to another account than the one it was configured for."""


def checked(t, name: str, *args, **kwargs):
    """``t.name(*args, **kwargs)``, raising :class:`CallFailed` for None/False (the package's failure)."""
    value = getattr(t, name)(*args, **kwargs)
    if value is None or value is False:
        raise CallFailed(name, t.last_error())
    return value


def connect(t, login: int):
    """``initialize()``, then check the terminal holds ``login`` and is connected to its server.
    Returns the AccountInfo record."""
    checked(t, "initialize")
    account = checked(t, "account_info")
    if account.login != login:
        raise WrongAccount(f"terminal configured for account {login} is logged in to {account.login}")
    info = checked(t, "terminal_info")
    if not info.connected:
        raise CallFailed("terminal_info", (c.RES_E_FAIL, "terminal not connected to its trade server"))
    return account


class Worker:
    """One terminal: its provider, its thread, its up/down state."""

    def __init__(self, login: int, provider, *, reactor, clock, threads: bool, timeout_s: float,
                 on_change: Callable[["Worker"], None] | None = None) -> None:
        self.login = login
        self.provider = provider
        self.reactor = reactor
        self.clock = clock
        self.timeout_s = timeout_s
        self.on_change = on_change
        self.threads = ThreadPool(1, 1, f"mt5-{login}") if threads else None
        self.down: str | None = "not connected yet"
        self.connects = 0
        self.failures = 0
        self.last_error: str | None = None
        self._checking = False
        self._waiters: list[defer.Deferred] = []
        self.ready: Callable | None = None
        self._on_shutdown = None
        self._health = task.LoopingCall(self.check)
        self._health.clock = clock

    # -- running calls -----------------------------------------------------
    def run(self, fn: Callable, *args, force: bool = False) -> defer.Deferred:
        """``fn(provider, *args)`` on this terminal's thread. Fails with :class:`VenueUnavailable` when the
        worker is down (unless ``force``), when a call fails with a connection error, or on timeout
        (the worker then goes down). Any other error passes through."""
        if self.down is not None and not force:
            return defer.fail(VenueUnavailable(f"mt5 terminal {self.login} is down: {self.down}"))
        d = self._hop(fn, *args)
        d.addErrback(self._failed)
        return d

    def run_raw(self, fn: Callable, *args) -> defer.Deferred:
        """Like :meth:`run` but errors (a timeout included, as ``defer.TimeoutError``) pass through
        untranslated: for ``order_send``, whose timeout is an ambiguous outcome, not an unavailable venue."""
        if self.down is not None:
            return defer.fail(VenueUnavailable(f"mt5 terminal {self.login} is down: {self.down}"))
        d = self._hop(fn, *args)
        d.addErrback(self._note_timeout)
        return d

    def _hop(self, fn: Callable, *args) -> defer.Deferred:
        if self.threads is None:
            return defer.maybeDeferred(fn, self.provider, *args)
        d = deferToThreadPool(self.reactor, self.threads, fn, self.provider, *args)
        return d.addTimeout(self.timeout_s, self.clock)

    def _note_timeout(self, failure):
        if failure.check(defer.TimeoutError):
            self.mark_down(f"no answer within {self.timeout_s} s")
        elif failure.check(ConnectionError):
            self.mark_down(str(failure.value))
        return failure

    def _failed(self, failure):
        if failure.check(defer.TimeoutError):
            self.mark_down(f"no answer within {self.timeout_s} s")
            raise VenueUnavailable(f"mt5 terminal {self.login}: no answer within {self.timeout_s} s")
        if (failure.check(CallFailed) and failure.value.connection) or failure.check(ConnectionError):
            self.mark_down(str(failure.value))
            raise VenueUnavailable(f"mt5 terminal {self.login}: {failure.value}")
        return failure

    # -- up and down -------------------------------------------------------
    def mark_down(self, why: str) -> None:
        self.last_error = why
        if self.down is None:
            self.down = why
            self.failures += 1
            log.warning("mt5 terminal %d is down: %s", self.login, why)
            if self.on_change is not None:
                self.on_change(self)

    def mark_up(self) -> None:
        if self.down is not None:
            self.down = None
            self.connects += 1
            log.info("mt5 terminal %d is up", self.login)
            if self.on_change is not None:
                self.on_change(self)
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.callback(self)

    def when_up(self) -> defer.Deferred:
        """Fires once the worker is up (at once if it is)."""
        if self.down is None:
            return defer.succeed(self)
        d = defer.Deferred()
        self._waiters.append(d)
        return d

    def start(self, ready: Callable[["Worker", object], defer.Deferred] | None = None) -> defer.Deferred:
        """Start the thread and the health check; connect. ``ready(worker, account_record)`` runs after
        every successful connect, before the worker counts as up (e.g. to load symbols)."""
        self.ready = ready
        if self.threads is not None and not self.threads.started:
            self.threads.start()
            # a reactor stopped with the venue still started (a signal during ``bridge demo``) must not leave
            # the process waiting for this thread at exit
            add = getattr(self.reactor, "addSystemEventTrigger", None)  # a test's clock has none
            self._on_shutdown = add("during", "shutdown", self.stop) if add is not None else None
        if not self._health.running:
            self._health.start(HEALTH_S, now=False)
        up = self.when_up()
        self.check()
        return up

    def stop(self) -> None:
        if self._health.running:
            self._health.stop()
        if self.threads is not None and self.threads.started:
            self.threads.stop()
        if self._on_shutdown is not None:
            trigger, self._on_shutdown = self._on_shutdown, None
            try:
                self.reactor.removeSystemEventTrigger(trigger)
            except (KeyError, ValueError, TypeError):  # it is running now: the shutdown itself called stop()
                pass

    def _connect(self) -> defer.Deferred:
        d = self.run(connect, self.login, force=True)
        if self.ready is not None:
            d.addCallback(lambda account: self.ready(self, account))
        d.addCallback(lambda _: self.mark_up())
        return d

    def check(self) -> defer.Deferred | None:
        """One health check (see the module doc)."""
        if self._checking:
            return None
        self._checking = True
        if self.down is not None:
            d = self._connect()
        else:
            d = self.run(checked, "terminal_info")
            d.addCallback(self._connected)
        d.addErrback(self._check_failed)
        d.addBoth(self._checked)
        return d

    def _connected(self, info) -> None:
        if not info.connected:
            self.mark_down("terminal not connected to its trade server")

    def _check_failed(self, failure) -> None:
        if failure.check(WrongAccount):
            log.error("mt5 terminal %d: %s", self.login, failure.value)
            waiters, self._waiters = self._waiters, []
            for d in waiters:
                d.errback(failure)
        reason = failure.getErrorMessage()
        if self.down is None:
            self.mark_down(reason)
        else:
            self.last_error = reason

    def _checked(self, _) -> None:
        self._checking = False

    def status(self) -> dict:
        return {"login": self.login, "up": self.down is None, "down": self.down, "connects": self.connects,
                "failures": self.failures, "last_error": self.last_error}


class TerminalPool:
    """The workers of one venue, by account login."""

    def __init__(self, terminals: dict[int, object], *, reactor, clock, threads: bool, timeout_s: float,
                 on_change: Callable[[Worker], None] | None = None) -> None:
        if not terminals:
            raise ValueError("an MT5 venue needs at least one terminal")
        self.workers = {login: Worker(login, provider, reactor=reactor, clock=clock, threads=threads,
                                      timeout_s=timeout_s, on_change=on_change)
                        for login, provider in terminals.items()}

    def worker(self, login: int) -> Worker:
        w = self.workers.get(login)
        if w is None:
            raise KeyError(f"mt5: account {login} has no terminal on this venue")
        return w

    def start(self, ready=None) -> defer.Deferred:
        d = defer.gatherResults([w.start(ready) for w in self.workers.values()], consumeErrors=True)
        return d.addErrback(lambda f: f.value.subFailure if f.check(defer.FirstError) else f)

    def stop(self) -> None:
        for w in self.workers.values():
            w.stop()

    def status(self) -> list[dict]:
        return [w.status() for w in self.workers.values()]
