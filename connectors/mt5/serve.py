"""Serve one simulated MetaTrader 5 terminal over rpyc classic, the way mt5linux expects (issue 5).

On Linux the MetaTrader5 package is reached through an rpyc *classic* server
running in the Wine Python beside the terminal (spec: shared/specs/platforms.md
section 1.6): the client connects (port 18812 by default), does a remote
``import MetaTrader5 as mt5`` and calls the module's functions by sending source
text to ``conn.eval``. This module plays that server for one
:class:`~connectors.mt5.terminal.terminal.Terminal`:

- in this process ``sys.modules["MetaTrader5"]`` is a module object carrying
  the functions and constants of :mod:`connectors.mt5.terminal.api`, bound to
  the one terminal, so a client's remote ``import MetaTrader5`` gets it;
- the terminal's clock is real time (``time.time``) and its prices step on a
  timer thread (``tick_interval_s``), so a script trading by hand sees a market
  that moves;
- the server is rpyc's ``ThreadedServer`` with rpyc's classic ``SlaveService``,
  like the stock ``rpyc_classic`` server; every connection gets its own namespace,
  the terminal serialises the calls (one API call at a time, like the real pipe).

Security: an rpyc classic server executes *whatever* its client sends (any
import, any code, as this process's user), and clients unpickle what such a
server hands them. It is therefore bound to 127.0.0.1 by default; bind another
interface only inside one trusted host (a container network, say), never on a
network others can reach. A client that connects with ``rpyc.classic.connect``
serves rpyc's classic service itself, so code run here (by any other client)
can reach into *its* interpreter too; the bridge's mt5linux provider connects
as rpyc's ``ClassicClient`` and exposes nothing (see ``rpyc_provider``).

Run it as ``bridge sim mt5 --port 18812 --login 5001`` (or
``python -m connectors.mt5.serve ...``, the same command). Its first line of
output names the address it bound (``--port 0`` picks a free port).
"""

from __future__ import annotations

import random
import sys
import threading
import time
import types

from connectors.mt5.terminal import api
from connectors.mt5.terminal.terminal import Terminal

MODULE_NAME = "MetaTrader5"
DEFAULT_PORT = 18812

#: Names of :mod:`.api` that are this fake's own and not part of the MetaTrader5 module.
_NOT_EXPORTED = {"use", "current", "Terminal", "annotations"}


def build_module(terminal: Terminal) -> types.ModuleType:
    """A ``MetaTrader5`` module object whose functions act on ``terminal`` (and constants, record types)."""
    api.use(terminal)
    module = types.ModuleType(MODULE_NAME, "MetaTrader5 module API of a simulated terminal (copybridge)")
    for name, value in vars(api).items():
        if name.startswith("_") or name in _NOT_EXPORTED or isinstance(value, types.ModuleType):
            continue
        setattr(module, name, value)
    module.__version__ = api.__version__
    module.__author__ = api.__author__
    return module


def install(terminal: Terminal) -> types.ModuleType:
    """Make ``import MetaTrader5`` in this process return the module of ``terminal``."""
    module = build_module(terminal)
    sys.modules[MODULE_NAME] = module
    return module


class Ticker:
    """Steps the terminal's prices every ``interval_s`` seconds on a daemon thread."""

    def __init__(self, terminal: Terminal, interval_s: float) -> None:
        self.terminal = terminal
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mt5-sim-ticker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.terminal.step()


def make_terminal(*, login: int, password: str, server: str, balance: str, hedging: bool, leverage: int,
                  seed: int) -> Terminal:
    """A terminal on real time: ``time.time`` for its clock, a seeded generator for prices."""
    return Terminal(login=login, password=password, server=server, balance=balance, hedging=hedging,
                    leverage=leverage, clock=time.time, rng=random.Random(seed))


def make_server(host: str, port: int):
    """An rpyc classic ``ThreadedServer`` (``SlaveService``), listening but not yet serving.

    The socket listens here, not only in ``start()``: once the address is printed a
    client may connect at once (it waits in the backlog until ``start()`` accepts),
    instead of being refused in between."""
    from rpyc.core import SlaveService
    from rpyc.utils.server import ThreadedServer

    server = ThreadedServer(SlaveService, hostname=host, port=port, reuse_addr=True)
    server.listener.listen(server.backlog)  # start() listens again: harmless
    return server


if __name__ == "__main__":  # pragma: no cover - the same command as ``bridge sim mt5``
    from bridge.cli.main import main

    main(["sim", "mt5", *sys.argv[1:]])
