"""PAMM pools (money.md section 4): a pure unit ledger. No I/O, no clock, no floats.

A pool is one master account; the manager and the investors hold units of it.
NAV per unit = pool equity / units outstanding. The state is a frozen
:class:`Pool`; every operation takes a pool and returns a new one with the
ledger entries it wrote, or raises :class:`PammError` (one line) and changes
nothing. A daemon keeps the pool and the entries; this package only computes.

Steps (:mod:`.requests`): ``request_deposit``, ``request_withdrawal`` (queued,
checked now and again when applied), ``apply_pnl`` / ``set_equity`` (the master's
result), then :func:`rollover` (:mod:`.rollover`: crystallise, stop, fees,
auto-close, withdrawals, deposits, books checked to the cent; atomic).

Rules, in short (the modules say them exactly):

* Precision: money in cents; units 8 places; NAV 10 places (:mod:`.ledger`).
* Fees are per investor and paid by moving units to the manager at NAV:
  performance fee above the investor's own money high-water mark (at every
  ``performance_every``-th rollover and on any withdrawal), management fee per
  year pro rata temporis, entry and exit fees. The manager pays no fees.
* Loss sharing ``pro-rata`` or ``manager-first-loss`` (:mod:`.sharing`: losses
  covered from the manager's units, later gains repay the cover first, the pool
  halts when the manager's tranche is used up).
* Manager minimum stake: below it no new investor is taken, and the manager
  may not withdraw below it while investors are in.
* Protection: pool stop on drawdown from the highest NAV or on the tranche used
  up (halted: the report says close all positions; no more deposits);
  per-investor auto-close level; lock-up from the first applied deposit;
  minimum remaining balance on a partial withdrawal; pool equity never below 0.
* :func:`rebuild` folds the entries back into the same ledger;
  :func:`investor_statement` shows an investor only their own money.
"""

from allocation.pamm.errors import ConservationError, PammError
from allocation.pamm.ledger import Entry, Holder, Pool, Request, Step, show_nav, split_equity
from allocation.pamm.rebuild import rebuild
from allocation.pamm.reallocate import resplit_position
from allocation.pamm.requests import apply_pnl, open_pool, request_deposit, request_withdrawal, set_equity
from allocation.pamm.rollover import HolderState, RolloverReport, RolloverResult, rollover
from allocation.pamm.settings import LossSharing, PoolSettings
from allocation.pamm.statement import investor_statement

__all__ = [
    "ConservationError", "Entry", "Holder", "HolderState", "LossSharing", "PammError", "Pool", "PoolSettings",
    "Request", "RolloverReport", "RolloverResult", "Step", "apply_pnl", "investor_statement", "open_pool",
    "rebuild", "request_deposit", "request_withdrawal", "resplit_position", "rollover", "set_equity",
    "show_nav", "split_equity",
]
