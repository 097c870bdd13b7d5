"""The pool's state and ledger entries, and the exact money <-> units conversions.

All state is frozen; every operation returns a new :class:`Pool`.

Precision (every rounding is one of these):

* money is ``Decimal`` in cents (2 places); amounts with more places are refused;
* units have 8 decimal places; money -> units rounds half-even (deposits round
  *down*, so a buyer never gets more than paid for);
* NAV is shown with 10 decimal places (half-even), at least 2;
* a holder's equity is the pool's equity in cents split by units, largest
  remainder first (ties: more units, then the smaller id), so the holders' equity
  always adds up to the pool's equity exactly; a holder whose split differs by
  more than one cent from the ledger's own running figure fails the rollover.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal, localcontext

from allocation.pamm.errors import PammError
from allocation.pamm.settings import CENT, PoolSettings

UNIT = Decimal("0.00000001")
NAV_PLACES = Decimal("0.0000000001")
PRECISION = 60


@dataclass(frozen=True, slots=True)
class Holder:
    id: str
    units: Decimal = Decimal("0E-8")
    equity: Decimal = Decimal("0.00")  # at the last rollover
    hwm: Decimal = Decimal("0.00")  # high-water mark, money, moved by deposits and withdrawals
    fees_paid: Decimal = Decimal("0.00")
    fees_received: Decimal = Decimal("0.00")  # the manager's
    covered: Decimal = Decimal("0.00")  # first-loss: losses the manager absorbed for this investor
    joined_at: datetime | None = None  # first applied deposit (lock-up starts here)
    auto_close_below: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Request:
    id: int
    kind: str  # "deposit" | "withdrawal"
    holder: str
    amount: Decimal | None  # None: withdraw everything
    at: datetime
    auto_close_below: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Entry:
    """One movement. ``units`` moves from ``holder`` to ``counterparty`` when there is one.

    kinds: deposit, withdrawal (amount = cash in / paid out), fee (``detail`` names
    it; amount paid by ``holder`` to the manager), pnl (amount = change of pool
    equity), cover / recovery (first-loss transfers), rollover, rejected, halt,
    request.
    """

    seq: int
    at: datetime
    kind: str
    holder: str | None = None
    amount: Decimal = Decimal("0.00")
    units: Decimal = Decimal("0E-8")  # added to holder (negative: taken from it)
    counterparty: str | None = None  # gets -units
    hwm: Decimal | None = None  # the holder's high-water mark after this entry
    detail: str = ""
    covered: Decimal | None = None  # first-loss: the holder's covered balance after a withdrawal
    nav: Decimal | None = None  # rollover: the pool's NAV after it


@dataclass(frozen=True, slots=True)
class Pool:
    settings: PoolSettings
    opened_at: datetime
    holders: tuple[Holder, ...] = ()
    equity: Decimal = Decimal("0.00")  # marked now
    booked_equity: Decimal = Decimal("0.00")  # at the last rollover
    nav: Decimal | None = None  # at the last rollover
    peak_nav: Decimal | None = None
    last_rollover_at: datetime | None = None
    rollovers: int = 0
    pending: tuple[Request, ...] = ()
    halted: str | None = None
    next_request: int = 1
    seq: int = 0  # of the last entry
    clock: datetime | None = None  # of the last step; steps never go back in time

    @property
    def units(self) -> Decimal:
        return sum((h.units for h in self.holders), Decimal("0E-8"))

    def holder(self, holder_id: str) -> Holder | None:
        return next((h for h in self.holders if h.id == holder_id), None)


@dataclass(frozen=True, slots=True)
class Step:
    pool: Pool
    entries: tuple[Entry, ...] = field(default=())


# -- money -------------------------------------------------------------------

def money(value: object, what: str, *, positive: bool = False, allow_negative: bool = False) -> Decimal:
    """A cent amount, checked: finite Decimal, at most 2 places, sign as asked."""
    if isinstance(value, bool) or not isinstance(value, (Decimal, int)):
        raise PammError(f"{what} must be a decimal amount, got {value!r}")
    value = Decimal(value)
    if not value.is_finite():
        raise PammError(f"{what} must be finite, got {value}")
    if value != value.quantize(CENT, rounding=ROUND_DOWN):
        raise PammError(f"{what} {value} has more than 2 decimal places")
    if positive and value <= 0:
        raise PammError(f"{what} must be positive, got {value}")
    if not positive and not allow_negative and value < 0:
        raise PammError(f"{what} must not be negative, got {value}")
    return value.quantize(CENT)


def cents_down(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_DOWN)


def to_units(amount: Decimal, nav: Decimal, rounding: str = ROUND_HALF_EVEN) -> Decimal:
    with localcontext() as ctx:
        ctx.prec = PRECISION
        return (amount / nav).quantize(UNIT, rounding=rounding)


def nav_of(equity: Decimal, units: Decimal) -> Decimal:
    with localcontext() as ctx:
        ctx.prec = PRECISION
        return (equity / units).quantize(NAV_PLACES, rounding=ROUND_HALF_EVEN)


def value_of(units: Decimal, nav: Decimal) -> Decimal:
    """Exact value (not rounded) of units at a NAV."""
    with localcontext() as ctx:
        ctx.prec = PRECISION
        return units * nav


def show_nav(nav: Decimal) -> str:
    text = format(nav.normalize(), "f")
    whole, _, frac = text.partition(".")
    return f"{whole}.{frac.ljust(2, '0')}"


def split_equity(equity: Decimal, holders: tuple[Holder, ...] | list[Holder]) -> dict[str, Decimal]:
    """The pool's equity split by units to the cent, largest remainder first."""
    total = sum(h.units for h in holders)
    if total == 0:
        if equity != 0:
            raise PammError(f"pool equity {equity} with no units outstanding")
        return {h.id: Decimal("0.00") for h in holders}
    cents = int(equity.scaleb(2))
    atoms = {h.id: int(h.units.scaleb(8)) for h in holders}
    atoms_total = sum(atoms.values())
    floors = {k: cents * a // atoms_total for k, a in atoms.items()}
    rems = {k: cents * a % atoms_total for k, a in atoms.items()}
    left = cents - sum(floors.values())
    order = sorted(atoms, key=lambda k: (-rems[k], -atoms[k], k))
    for k in order[:left]:
        floors[k] += 1
    return {k: Decimal(v).scaleb(-2).quantize(CENT) for k, v in floors.items()}
