"""A simulated MT4 terminal running the copybridge EA, speaking ``connectors/mt4/PROTOCOL.md`` (issue 6).

::

    from connectors.mt4.simulator import Terminal, Faults, SimulatedEA, EAServer

    terminal = Terminal(login=4001, balance="10000", clock=SimClock(), rng=random.Random(1))
    ea = SimulatedEA(terminal, ring=100, journal_path=None)
    server = EAServer(ea, zmq.Context.instance(), "tcp://127.0.0.1:*", "tcp://127.0.0.1:*", reactor=reactor)
    server.start()                      # answers on server.command_endpoint, publishes on server.event_endpoint
    ticket = terminal.open("EURUSD", 0, "0.10")     # a trade by hand: an ``open`` event follows

Modules:

- :mod:`.terminal`: :class:`Terminal`, the MT4 account and trade server (tickets, open and history pools,
  ``order_send``/``order_close``/``order_modify`` with MQL4 error codes, partial close = remainder under a new
  ticket ``from #<old>``, balance operations, margin/equity, SL/TP and stop-out on ``step()``), and
  :class:`SimClock`. Public for tests: ``open(symbol, type, lots, sl=0, tp=0, magic=0, comment="") -> ticket``,
  ``close(ticket, lots=None) -> remainder ticket or 0``, ``modify(ticket, sl, tp)``,
  ``balance_operation(amount, comment="") -> ticket``, ``step(n=1)``, ``set_bid(symbol, bid)``,
  ``open_orders()``/``history_orders()`` (:class:`~.orders.Order` records with MQL4 field names),
  ``account()``, ``symbol_info(symbol)``. Refusals raise :class:`TradeError` (``.code``).
- :mod:`.orders`: :class:`~.orders.Order`, :class:`TradeError`, server-time strings, the protocol's
  TRADE/CLOSED records.
- :mod:`.faults`: :class:`Faults` (requote, busy, timeout_after, timeout_before_journal, drop_events,
  connected, call_cost_us).
- :mod:`.ea`: :class:`SimulatedEA` (``handle(command) -> reply | None``, ``scan() -> events``,
  ``heartbeat()``); :mod:`.journal` its result journal; :mod:`.events` the pool diff and the event ring.
- :mod:`.serve`: :class:`EAServer` (ROUTER + PUB on a zmq context, driven by a Twisted reactor or ``Clock``)
  and ``main()`` (``bridge sim mt4``).
"""

from connectors.mt4.simulator.ea import SimulatedEA
from connectors.mt4.simulator.faults import Faults
from connectors.mt4.simulator.orders import Order, TradeError
from connectors.mt4.simulator.serve import EAServer
from connectors.mt4.simulator.terminal import SimClock, Terminal

__all__ = ["EAServer", "Faults", "Order", "SimClock", "SimulatedEA", "Terminal", "TradeError"]
