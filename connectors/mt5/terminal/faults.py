"""Faults injected into the simulated terminal (:class:`Faults`) and the texts of its IPC errors."""

from __future__ import annotations

from dataclasses import dataclass

from connectors.mt5.terminal import constants as C


@dataclass
class Faults:
    """Injected faults. Rates are probabilities per ``order_send``, drawn from the terminal's
    ``fault_rng`` (seeded from its ``rng``; only when non-zero), never from the price generator.

    ``ipc_before``: the call fails before the request reaches the server (nothing happens);
    ``ipc_after``: it fails after the server executed it (the deal is in the history, findable
    by magic/comment). Both return ``None`` with ``last_error() == (ipc_code, ...)``.
    ``requote``: the server answers 10004 with the current bid/ask. ``connected=False``: the
    terminal lost its server (``terminal_info().connected`` False, ``order_send`` fails with
    -10004). ``call_cost_us``: every API call takes that long on the injected clock.
    """

    ipc_before: float = 0.0
    ipc_after: float = 0.0
    ipc_code: int = C.RES_E_INTERNAL_FAIL_TIMEOUT
    requote: float = 0.0
    connected: bool = True
    call_cost_us: int = 0


def ipc_text(code: int) -> str:
    """The ``last_error`` text of an IPC failure with ``code``."""
    return {C.RES_E_INTERNAL_FAIL_CONNECT: "No IPC connection",
            C.RES_E_INTERNAL_FAIL_TIMEOUT: "IPC timeout"}.get(code, "Internal error")
