"""A simulated MetaTrader 5 terminal with the MetaTrader5 package's API (issue 5).

Code written for the real package runs against it unchanged::

    from connectors.mt5.terminal import api as mt5          # instead of: import MetaTrader5 as mt5
    from connectors.mt5.terminal.terminal import Terminal

    mt5.use(Terminal(login=123, password="pw", server="SimBroker-Demo", hedging=True))
    mt5.initialize(login=123, password="pw", server="SimBroker-Demo")
    tick = mt5.symbol_info_tick("EURUSD")
    r = mt5.order_send({"action": mt5.TRADE_ACTION_DEAL, "symbol": "EURUSD", "volume": 0.1,
                        "type": mt5.ORDER_TYPE_BUY, "price": tick.ask, "deviation": 10, "magic": 1,
                        "comment": "key", "type_time": mt5.ORDER_TIME_GTC,
                        "type_filling": mt5.ORDER_FILLING_FOK})
    assert r.retcode == mt5.TRADE_RETCODE_DONE

Modules:

- :mod:`.constants`: every constant of the real package (5.0.6231), exact names and values.
- :mod:`.records`: the record types (namedtuples) with the exact field names and order.
- :mod:`.terminal`: :class:`~.terminal.Terminal` (one logged-in account on a simulated trade server,
  the market of :mod:`connectors.sim.market`, positions via :mod:`connectors.sim.account`): its state and
  public API. ``Faults``, ``SymbolSettings`` and ``SimClock`` are importable from it too. The work is done
  by functions of the modules below, each taking the terminal as its first argument:

  - :mod:`.calls`: how one public call behaves (lock, per-call cost, ``last_error``, ``Fail``).
  - :mod:`.clock`: :class:`~.clock.SimClock`, trade-server time; :mod:`.faults`: :class:`~.faults.Faults`.
  - :mod:`.symbols`: :class:`~.symbols.SymbolSettings`, ``SymbolInfo``, the ``group`` filter.
  - :mod:`.positions`: what MT5 keeps beside each position, ``TradePosition``, ``positions_get``'s filter.
  - :mod:`.history`: the orders and deals booked, their tickets, ``history_*_get``.
  - :mod:`.parsing`: a request dict (and the ``order_calc_*`` arguments) as exact values.
  - :mod:`.validation`: whether a request can execute (its retcode) and the plan to execute it.
  - :mod:`.execution`: executing the plan, the ``OrderSendResult`` answers and their comments.
  - :mod:`.risk`: margin, balance/equity figures, SL/TP triggers and stop-out.
- :mod:`.api`: module-level functions with the real names and signatures, bound to a current terminal
  with ``api.use(terminal)``.

What is simulated (spec: shared/specs/platforms.md section 1):

- Errors return ``None`` (``False`` for ``initialize``/``login``/``symbol_select``) and set
  ``last_error()``; queries return tuples of records, ``()`` when none match; records carry floats
  (money and volumes are exact ``Decimal``/integers inside).
- ``order_send``/``order_check`` with ``TRADE_ACTION_DEAL`` (hedging: every open a new position, close or
  partial close by ``position`` keeping the ticket; netting: add/reduce/close/reverse, deal entries
  IN/OUT/INOUT) and ``TRADE_ACTION_SLTP``; retcodes 10014 volume, 10030 filling (from the symbol's
  ``filling_mode`` bitmask and execution mode), 10004/10020 deviation (instant/request execution; market
  execution fills at the market), 10019 margin, 10018 market closed, 10027 Algo Trading off, 10016 stops,
  10036/10038 closes. Position ticket == identifier == opening order ticket. Comments cut to 31 characters.
- ``Terminal.step()`` moves prices (seeded ``random.Random``); SL/TP trigger on every price change and
  close with deals of reason 4/5; at a margin level at or below ``margin_so_so`` (30 %) the most losing
  position is stopped out (reason 6). ``Terminal.balance_operation()`` books a type-2 deal (order 0, symbol '').
- Every time is trade-server time: the injected clock (Unix seconds) plus ``server_offset``.
- One API call at a time (a lock), like the terminal's single pipe.
- Faults: IPC failure of ``order_send`` before or after the server executed it, requotes at a rate, a
  disconnected terminal, a per-call cost on the injected clock.

Not simulated yet: pending orders (``TRADE_ACTION_PENDING``/``MODIFY``/``REMOVE``, ``orders_get`` is
always ``()``), ``CLOSE_BY``, swaps and commissions, ticks/rates history and market depth
(``copy_*``/``market_book_*`` fail with ``RES_E_UNSUPPORTED``).
"""
