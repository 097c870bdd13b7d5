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
   equity, then the smaller account id) or ``largest-equity``; an account that
   would still be below its minimum with the extra step does not take one, so
   no leftover step is wasted on a share that is then skipped;
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
from decimal import Decimal, Inexact, InvalidOperation, localcontext
from itertools import compress, repeat
from enum import Enum
from math import lcm
from operator import attrgetter, gt, lt, mul, sub

from allocation.errors import AllocationError
from allocation.leg import Allocation, Reason
from bridge.domain.deal import Side
from bridge.domain.volume import UNITS_PER_BASE, SymbolSpec


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
    """Split ``block`` (canonical volume) across ``accounts`` by ``group``'s method.

    Works on parallel integer lists (one entry per account, in input order) so
    that a block across 10,000 accounts stays within the benchmark's budget;
    every ordering decision uses the documented keys, never the input order.
    """
    accounts = tuple(accounts)
    _check_inputs(block, group, accounts)
    if group.method.splits_block:
        volumes, reason, ideal = _split(block, group, accounts)
    else:
        volumes, reason, ideal = _per_account(block, block_spec, group, accounts)
    return Allocation.from_columns(block, block_spec, side, accounts, volumes, reason, ideal)


# -- validation --------------------------------------------------------------

def _check_inputs(block: int, group: MamGroup, accounts: tuple[SubAccount, ...]) -> None:
    if not isinstance(block, int) or isinstance(block, bool) or block <= 0:
        raise AllocationError(f"block volume must be a positive integer, got {block!r}")
    if not accounts:
        raise AllocationError("a MAM group needs at least one account")
    names = [a.account for a in accounts]
    if len(set(names)) != len(names):
        seen: set[str] = set()
        duplicate = next(n for n in names if n in seen or seen.add(n))
        raise AllocationError(f"duplicate account {duplicate!r}")
    method = group.method
    if method in (Method.PERCENT, Method.LOT, Method.FIXED):
        negative = next((a for a in accounts if a.setting < 0), None)
        if negative is not None:
            raise AllocationError(f"account {negative.account!r}: {method} setting must not be negative")
    if method is Method.PERCENT:
        total = sum(a.setting for a in accounts)
        if total != 100:
            raise AllocationError(f"percentages must sum to 100, they sum to {total.normalize():f}")


# -- orderings -----------------------------------------------------------------

def _by_equity_then_id(indices, accounts) -> list[int]:
    """Larger equity first, then smaller account id: two stable single-key sorts."""
    ranked = sorted(indices, key=lambda i: accounts[i].account)
    ranked.sort(key=lambda i: accounts[i].equity, reverse=True)  # reverse keeps the sort stable
    return ranked


def _leftover_order(policy: Leftover, eligible: list[int], remainders: list[int], accounts) -> list[int]:
    """Every eligible account, in the order the leftover policy hands out steps."""
    ranked = _by_equity_then_id(eligible, accounts)
    if policy is Leftover.LARGEST_REMAINDER:
        ranked.sort(key=remainders.__getitem__, reverse=True)
    return ranked


def _leftover_winners(policy: Leftover, eligible: list[int], remainders: list[int], accounts, k: int) -> list[int]:
    """The first ``k`` of :func:`_leftover_order`, without ranking everyone when remainders decide."""
    if k <= 0:
        return []
    if policy is Leftover.LARGEST_EQUITY or k >= len(eligible):
        return _leftover_order(policy, eligible, remainders, accounts)[:k]
    ranked = sorted(eligible, key=remainders.__getitem__, reverse=True)
    threshold = remainders[ranked[k - 1]]
    if remainders[ranked[k]] != threshold:
        return ranked[:k]
    above = [i for i in ranked[:k] if remainders[i] > threshold]
    tied = _by_equity_then_id([i for i in ranked if remainders[i] == threshold], accounts)
    return above + tied[: k - len(above)]


# -- splitting methods -------------------------------------------------------

def _weights(group: MamGroup, accounts) -> list[int]:
    """The accounts' weights as exact non-negative integers (Decimals over a common denominator)."""
    method = group.method
    if method is Method.EQUAL:
        return [1] * len(accounts)
    field = "setting" if method is Method.PERCENT else "balance" if method is Method.BALANCE else "equity"
    values = list(map(attrgetter(field), accounts))
    try:
        cents = _as_cents(values)
        if cents is not None:
            return cents
        ratios = list(map(Decimal.as_integer_ratio, values))
    except (ValueError, OverflowError, TypeError, InvalidOperation):
        raise AllocationError(f"every account's {field} must be a finite Decimal") from None
    denominators = {d for _, d in ratios}
    if denominators == {1}:
        return [n if n > 0 else 0 for n, _ in ratios]
    common = lcm(*denominators)
    return [n * (common // d) if n > 0 else 0 for n, d in ratios]


def _as_cents(values: list[Decimal]) -> list[int] | None:
    """Non-negative amounts with at most two decimals, as whole hundredths; None for anything else.

    ``int()`` truncates, so for non-negative values the scaled integers add up to
    the exact scaled sum only if none was truncated: one aggregate comparison
    proves every conversion exact. The context traps ``Inexact``, so a rounded
    product or sum falls back to the general path instead of passing the check.
    """
    with localcontext() as ctx:
        ctx.prec = 60
        ctx.traps[Inexact] = True
        try:
            if min(values) < 0:
                return None
            scaled = [int(v * _HUNDRED) for v in values]
            if sum(values) * _HUNDRED == sum(scaled):
                return scaled
        except Inexact:
            return None
    return None


_HUNDRED = Decimal(100)


def _grid(accounts) -> tuple[list[SymbolSpec], list[int], list[int], list[int]]:
    """Each account's spec, step, maximum and minimum, as lists (cheap when all share one spec)."""
    specs = list(map(attrgetter("spec"), accounts))
    first, n = specs[0], len(specs)
    if specs.count(first) == n:  # identity is checked first, so this is fast for one shared spec
        return specs, [first.step_volume] * n, [first.max_volume] * n, [first.min_volume] * n
    return (specs, [s.step_volume for s in specs], [s.max_volume for s in specs],
            [s.min_volume for s in specs])


def _split(block: int, group: MamGroup, accounts):
    n = len(accounts)
    weights = _weights(group, accounts)
    total = sum(weights)
    if total == 0:
        return [0] * n, lambda i: Reason.NO_WEIGHT, lambda i: Decimal(0)

    # ideal share of account i = wanted[i] / total, exactly. The per-account
    # arithmetic runs in map() over operator functions: C loops, no tuple unpacking.
    wanted = list(map(mul, weights, repeat(block)))
    specs, steps, maxima, minima = _grid(accounts)
    step = steps[0]
    if steps.count(step) == n:
        unit = total * step
        volumes = [want // unit * step for want in wanted]
    else:
        volumes = [want // (total * s) * s for want, s in zip(wanted, steps)]
    explicit: dict[int, Reason] = {}  # reasons not told by comparing volume with ideal
    if max(volumes) > min(maxima):
        for i in compress(range(n), map(gt, volumes, maxima)):
            volumes[i] = maxima[i]
            explicit[i] = Reason.CLIPPED_TO_MAXIMUM
    remainders = list(map(sub, wanted, map(mul, volumes, repeat(total))))
    for i in explicit:
        remainders[i] = 0  # a clipped account's excess is not handed out

    leftover = sum(remainders) // total
    if leftover:
        # eligible: has weight, not clipped, stays within its maximum and reaches its
        # minimum with the step (a step that still leaves an account short would be wasted)
        if (not explicit and 0 not in weights and max(volumes) + step <= min(maxima)
                and min(volumes) + step >= max(minima)):
            eligible = list(range(n))
        else:
            eligible = [i for i, (want, v, step_i, low, high) in
                        enumerate(zip(wanted, volumes, steps, minima, maxima))
                        if want and low <= v + step_i <= high and i not in explicit]
        if steps.count(step) == n:  # one grid: each winner takes exactly one step
            for i in _leftover_winners(group.leftover, eligible, remainders, accounts, leftover // step):
                volumes[i] += step
        else:  # mixed grids: one pass in policy order, a step to each that still fits
            for i in _leftover_order(group.leftover, eligible, remainders, accounts):
                if steps[i] <= leftover:
                    volumes[i] += steps[i]
                    leftover -= steps[i]

    _apply_minimums(block, group, accounts, volumes, explicit, wanted, minima)

    def reason(i: int) -> Reason | None:
        if i in explicit:
            return explicit[i]
        if not wanted[i]:
            return Reason.NO_WEIGHT
        if not volumes[i]:
            return Reason.BELOW_MINIMUM
        exact = volumes[i] * total
        if exact == wanted[i]:
            return None
        return Reason.LEFTOVER_STEP if exact > wanted[i] else Reason.FLOORED_TO_STEP

    big_total = Decimal(total)
    return volumes, reason, lambda i: Decimal(wanted[i]) / big_total


def _apply_minimums(block, group, accounts, volumes, explicit, wanted, minima) -> None:
    """Skip every share below its minimum; force them up if the group allows and the block has room."""
    _force_minimums(block, group, accounts, volumes, explicit, wanted, minima,
                    _skip_below_minimum(volumes, wanted, minima))


def _skip_below_minimum(volumes, wanted, minima) -> list[int]:
    """Zero every volume that asked for something but is below its minimum; return who.

    The reason, ``below-minimum``, is not stored: a weighted account left at
    zero with no explicit reason can only be below its minimum.
    """
    if min(volumes) >= max(minima):
        return []  # every account at or above every minimum: nothing is short
    short = [i for i in compress(range(len(volumes)), map(lt, volumes, minima)) if wanted[i]]
    for i in short:
        volumes[i] = 0
    return short


def _force_minimums(block, group, accounts, volumes, explicit, wanted, minima, short) -> None:
    if not short or not group.force_minimum:
        return
    room = block - sum(volumes)
    # largest share first, so a richer account is never skipped for a poorer one
    ranked = _by_equity_then_id(short, accounts)
    ranked.sort(key=wanted.__getitem__, reverse=True)
    for i in ranked:
        if minima[i] <= room:
            volumes[i] = minima[i]
            explicit[i] = Reason.FORCED_TO_MINIMUM
            room -= minima[i]


# -- lot and fixed -----------------------------------------------------------

def _per_account(block: int, block_spec: SymbolSpec, group: MamGroup, accounts):
    n = len(accounts)
    specs, steps, maxima, minima = _grid(accounts)
    settings = list(map(attrgetter("setting"), accounts))
    if group.method is Method.LOT:
        factors: dict[int, Decimal] = {}  # block units -> account units, per distinct spec
        for spec in specs:
            if id(spec) not in factors:
                factors[id(spec)] = block * spec.contract_size / block_spec.contract_size
        ideals = [k * factors[id(spec)] for k, spec in zip(settings, specs)]
    else:
        per_lot = [spec.contract_size * UNITS_PER_BASE for spec in specs]
        ideals = [k * u for k, u in zip(settings, per_lot)]
    volumes = [int(ideal) // step * step for ideal, step in zip(ideals, steps)]
    explicit: dict[int, Reason] = {}
    for i in [i for i, (v, m) in enumerate(zip(volumes, maxima)) if v > m]:
        volumes[i] = maxima[i]
        explicit[i] = Reason.CLIPPED_TO_MAXIMUM
    # what each account asks for, for the minimum check: less than a step still asks for something
    wanted = [v or (1 if ideal > 0 else 0) for v, ideal in zip(volumes, ideals)]

    # below-minimum shares leave first, so they take nothing from the block
    short = _skip_below_minimum(volumes, wanted, minima)
    if sum(volumes) > block:
        # the block cannot cover everyone: take from it by larger equity, then account id
        room = block
        for i in _by_equity_then_id(range(n), accounts):
            if volumes[i] <= room:
                room -= volumes[i]
                continue
            rest = room // steps[i] * steps[i]
            volumes[i] = rest if rest >= minima[i] else 0
            explicit[i] = Reason.BLOCK_EXHAUSTED
            room -= volumes[i]
    _force_minimums(block, group, accounts, volumes, explicit, wanted, minima, short)

    def reason(i: int) -> Reason | None:
        if i in explicit:
            return explicit[i]
        if ideals[i] <= 0:
            return Reason.NO_WEIGHT
        if not volumes[i]:
            return Reason.BELOW_MINIMUM
        return None if volumes[i] == ideals[i] else Reason.FLOORED_TO_STEP

    return volumes, reason, ideals.__getitem__
