"""MAM: split a manager's block across sub-accounts by the group's method.

Methods (money.md section 3):

========  ===========================================================
lot       each account's own multiplier of the master lots
percent   a fixed percentage of the block; percentages sum to 100
balance   block x balance / sum of balances
equity    block x equity / sum of equities
equal     block / number of accounts
fixed     a fixed volume (lots) per trade
========  ===========================================================

Rounding for the splitting methods (percent, balance, equity, equal), all in
exact integer arithmetic on canonical volumes:

1. the ideal share is ``block * w / W``; floor it to the account's step;
2. a floor above the account's maximum is clipped to the maximum
   (``clipped-to-maximum``); the excess is not handed to others, so no account
   carries more than its proportional exposure;
3. the leftover (the floored-off remainders, in whole canonical units) is
   handed out one step at a time, at most one step per account, in the order of
   the leftover policy: ``largest-remainder`` (default; ties go to the larger
   equity, then the smaller account id) or ``largest-equity``;
4. a share that ends below the account's minimum is skipped
   (``below-minimum``), or forced up to the minimum when the group allows it
   and the block still has room (``forced-to-minimum``), largest share first.

For ``lot`` and ``fixed`` each account's volume is computed on its own, floored
to its step and checked against its [min, max]; accounts then take their volume
from the block in order of larger equity, then account id, and an account the
block cannot cover gets what is left on its grid (``block-exhausted``).

The sum of the legs never exceeds the block, whatever the method. Results do
not depend on the order the accounts are given in.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import Enum

from allocation.errors import AllocationError
from allocation.leg import Action, Allocation, Leg, Reason
from bridge.domain.deal import Side
from bridge.domain.volume import UNITS_PER_BASE, SymbolSpec, parse_decimal


class Method(str, Enum):
    LOT = "lot"
    PERCENT = "percent"
    BALANCE = "balance"
    EQUITY = "equity"
    EQUAL = "equal"
    FIXED = "fixed"

    def __str__(self) -> str:
        return self.value

    @property
    def splits_block(self) -> bool:
        return self in _SPLITTING


_SPLITTING = frozenset({Method.PERCENT, Method.BALANCE, Method.EQUITY, Method.EQUAL})


class Leftover(str, Enum):
    LARGEST_REMAINDER = "largest-remainder"
    LARGEST_EQUITY = "largest-equity"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class SubAccount:
    """A MAM sub-account as the allocation sees it.

    ``setting`` is the percentage for ``percent``, the multiplier for ``lot``
    and the lots for ``fixed``; ``balance`` and ``equity`` drive their methods
    and the tie-breaks. ``spec`` is the symbol as this account's venue trades it.
    """

    account: str
    spec: SymbolSpec
    balance: Decimal = Decimal(0)
    equity: Decimal = Decimal(0)
    setting: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class MamGroup:
    method: Method
    leftover: Leftover = Leftover.LARGEST_REMAINDER
    force_minimum: bool = False


def allocate_block(
    block: int,
    block_spec: SymbolSpec,
    side: Side,
    group: MamGroup,
    accounts: list[SubAccount] | tuple[SubAccount, ...],
) -> Allocation:
    """Split ``block`` (canonical volume) across ``accounts`` by ``group``'s method."""
    _check_inputs(block, group, accounts)
    if group.method.splits_block:
        volumes, ideals, reasons = _split(block, group, accounts)
    else:
        volumes, ideals, reasons = _per_account(block, block_spec, group, accounts)
    legs = [
        Leg(a.account, Action.OPEN if volumes[i] else Action.NONE, a.spec.symbol, side,
            ideals[i], volumes[i], a.spec, reasons[i])
        for i, a in enumerate(accounts)
    ]
    legs.sort(key=lambda leg: leg.account)
    return Allocation(block, block_spec, side, tuple(legs))


# -- validation --------------------------------------------------------------

def _check_inputs(block: int, group: MamGroup, accounts) -> None:
    if not isinstance(block, int) or isinstance(block, bool) or block <= 0:
        raise AllocationError(f"block volume must be a positive integer, got {block!r}")
    if not accounts:
        raise AllocationError("a MAM group needs at least one account")
    seen: set[str] = set()
    for a in accounts:
        if a.account in seen:
            raise AllocationError(f"duplicate account {a.account!r}")
        seen.add(a.account)
    method = group.method
    if method in (Method.PERCENT, Method.LOT, Method.FIXED):
        for a in accounts:
            if a.setting < 0:
                raise AllocationError(f"account {a.account!r}: {method} setting must not be negative")
    if method is Method.PERCENT:
        total = sum(a.setting for a in accounts)
        if total != 100:
            raise AllocationError(f"percentages must sum to 100, they sum to {total.normalize():f}")


# -- splitting methods -------------------------------------------------------

def _weights(group: MamGroup, accounts) -> list[int]:
    """The accounts' weights as exact integers (Decimals scaled by a common power of ten)."""
    method = group.method
    if method is Method.EQUAL:
        return [1] * len(accounts)
    raw = [
        a.setting if method is Method.PERCENT else a.balance if method is Method.BALANCE else a.equity
        for a in accounts
    ]
    exponent = min(min(int(w.as_tuple().exponent) for w in raw), 0)
    return [max(int(w.scaleb(-exponent)), 0) for w in raw]


def _split(block: int, group: MamGroup, accounts):
    n = len(accounts)
    weights = _weights(group, accounts)
    total_weight = sum(weights)
    volumes = [0] * n
    reasons: list[Reason | None] = [None] * n
    ideals = [Decimal(0)] * n
    if total_weight == 0:
        return volumes, ideals, [Reason.NO_WEIGHT] * n

    numerators = [block * w for w in weights]  # ideal share = numerator / total_weight
    remainders = [0] * n  # in 1/total_weight canonical units
    distributable = 0
    clipped = [False] * n
    big_w = Decimal(total_weight)
    for i, a in enumerate(accounts):
        num = numerators[i]
        if num == 0:
            reasons[i] = Reason.NO_WEIGHT
            continue
        ideals[i] = Decimal(num) / big_w
        spec = a.spec
        step = spec.step_volume
        floor = num // (total_weight * step) * step
        if floor > spec.max_volume:
            volumes[i] = spec.max_volume
            clipped[i] = True
            reasons[i] = Reason.CLIPPED_TO_MAXIMUM
            continue
        volumes[i] = floor
        remainders[i] = num - floor * total_weight
        distributable += remainders[i]

    leftover = distributable // total_weight
    if leftover:
        if group.leftover is Leftover.LARGEST_REMAINDER:
            order = sorted(range(n), key=lambda i: (-remainders[i], -accounts[i].equity, accounts[i].account))
        else:
            order = sorted(range(n), key=lambda i: (-accounts[i].equity, accounts[i].account))
        for i in order:
            if clipped[i] or numerators[i] == 0:
                continue
            spec = accounts[i].spec
            step = spec.step_volume
            if step <= leftover and volumes[i] + step <= spec.max_volume:
                volumes[i] += step
                leftover -= step
                if leftover == 0:
                    break

    for i in range(n):
        if reasons[i] is None:
            exact = volumes[i] * total_weight
            if exact > numerators[i]:
                reasons[i] = Reason.LEFTOVER_STEP
            elif exact < numerators[i]:
                reasons[i] = Reason.FLOORED_TO_STEP
    _apply_minimums(block, group, accounts, volumes, reasons, numerators)
    return volumes, ideals, reasons


def _apply_minimums(block, group, accounts, volumes, reasons, wanted) -> None:
    """Skip (or force, if allowed and the block has room) every share below its minimum."""
    short = [i for i, a in enumerate(accounts) if wanted[i] and volumes[i] < a.spec.min_volume]
    if not short:
        return
    for i in short:
        volumes[i] = 0
        reasons[i] = Reason.BELOW_MINIMUM
    if not group.force_minimum:
        return
    room = block - sum(volumes)
    # largest share first, so a richer account is never skipped for a poorer one
    short.sort(key=lambda i: (-wanted[i], -accounts[i].equity, accounts[i].account))
    for i in short:
        minimum = accounts[i].spec.min_volume
        if minimum <= room:
            volumes[i] = minimum
            reasons[i] = Reason.FORCED_TO_MINIMUM
            room -= minimum


# -- lot and fixed -----------------------------------------------------------

def _per_account(block: int, block_spec: SymbolSpec, group: MamGroup, accounts):
    n = len(accounts)
    volumes = [0] * n
    reasons: list[Reason | None] = [None] * n
    ideals = [Decimal(0)] * n
    wanted = [0] * n  # the floored volume each account asks for, before minimums
    for i, a in enumerate(accounts):
        spec = a.spec
        if group.method is Method.LOT:
            ideal = block * a.setting * spec.contract_size / block_spec.contract_size
        else:
            ideal = parse_decimal(a.setting, "fixed lots") * spec.contract_size * UNITS_PER_BASE
        ideals[i] = ideal
        if ideal <= 0:
            reasons[i] = Reason.NO_WEIGHT
            continue
        volume = spec.floor(int(ideal))
        if volume > spec.max_volume:
            volume, reasons[i] = spec.max_volume, Reason.CLIPPED_TO_MAXIMUM
        elif volume != ideal:
            reasons[i] = Reason.FLOORED_TO_STEP
        volumes[i] = wanted[i] = volume
        if volume == 0:
            wanted[i] = 1  # asked for something, got less than a step: below minimum

    # take from the block in a fixed order, so that the sum never exceeds it
    order = sorted(range(n), key=lambda i: (-accounts[i].equity, accounts[i].account))
    room = block
    for i in order:
        if volumes[i] <= room:
            room -= volumes[i]
            continue
        spec = accounts[i].spec
        rest = spec.floor(room)
        volumes[i] = rest if rest >= spec.min_volume else 0
        reasons[i] = Reason.BLOCK_EXHAUSTED
        wanted[i] = 0  # not a minimum problem: the block ran out
        room -= volumes[i]
    _apply_minimums(block, group, accounts, volumes, reasons, wanted)
    return volumes, ideals, reasons
