"""Faults injected into the simulated MT4 terminal and its EA (:class:`Faults`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Faults:
    """Injected faults. Rates are probabilities, drawn from the terminal's ``fault_rng`` (seeded from its
    ``rng``, and drawn only when the rate is non-zero), never from the price generator.

    Trade server (``Terminal.order_send``/``order_close``/``order_modify``, the EA's path; a trade by hand
    meets only ``connected``):

    - ``requote``: the server answers 138 (requote) and nothing is traded.
    - ``busy``: the trade context stays busy past the EA's retry window: 146, nothing traded.
    - ``connected``: ``False``: every trading call fails with 6 (no connection); queries still answer
      from the terminal's cache, as MT4 does.

    EA (``SimulatedEA``):

    - ``timeout_after``: the trade executes and is journalled, but the EA 'dies' before replying:
      ``handle`` returns ``None`` (for the bridge, a timeout; a resend by key is answered from the journal).
    - ``timeout_before_journal``: the same, but the EA dies before writing the journal line, so only
      ``LOOKUP``'s search of the orders by comment finds the trade (a resend of an ``OPEN`` would trade again,
      as the real EA would).
    - ``drop_events``: an event is not published but is kept in the ring, so ``REPLAY`` heals the gap.
    - ``call_cost_us``: every command takes this long (on the injected clock if it can ``advance``).
    """

    requote: float = 0.0
    busy: float = 0.0
    timeout_after: float = 0.0
    timeout_before_journal: float = 0.0
    drop_events: float = 0.0
    connected: bool = True
    call_cost_us: int = 0
