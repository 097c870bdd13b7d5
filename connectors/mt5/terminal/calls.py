"""How one public call of the simulated terminal behaves, like a call of the MetaTrader5 package.

- :class:`Fail`: raised inside a call, it becomes the call's result (``None``, ``False`` for
  ``initialize``/``login``/``symbol_select``) and ``(code, text)`` becomes ``last_error()``.
- :func:`api_call`: the decorator of every public method of :class:`~.terminal.Terminal`: the per-call
  cost on the injected clock, one call at a time (the terminal's lock), the "not initialised" check and
  the ``last_error`` bookkeeping.
- :func:`as_float`: an exact value (``Decimal``, ``int`` or ``None``) as the float of a record field.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING

from connectors.mt5.terminal import constants as C

if TYPE_CHECKING:
    from connectors.mt5.terminal.terminal import Terminal


class Fail(Exception):
    """An API call fails: ``None`` to the caller, ``(code, text)`` to ``last_error``."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(code, text)
        self.code = code
        self.text = text


def as_float(value: Decimal | int | None) -> float:
    return 0.0 if value is None else float(value)


def api_call(method):
    """Wrap a public method: per-call cost, one call at a time, connection check, last_error bookkeeping."""
    failed = False if method.__name__ in ("initialize", "login", "symbol_select") else None

    def wrapper(self: "Terminal", *args, **kwargs):
        self._spend()
        with self.lock:
            return _call(self, args, kwargs)

    def _call(self: "Terminal", args, kwargs):
        try:
            if method.__name__ not in ("initialize", "last_error", "shutdown") and not self._initialized:
                raise Fail(C.RES_E_INTERNAL_FAIL_CONNECT, "No IPC connection")
            result = method(self, *args, **kwargs)
        except Fail as e:
            self._error = (e.code, e.text)
            return failed
        if method.__name__ != "last_error":
            self._error = (C.RES_S_OK, "Success")
        return result

    wrapper.__name__ = method.__name__
    wrapper.__doc__ = method.__doc__
    wrapper.__wrapped__ = method
    return wrapper
