"""``reallocate`` handling: re-split an open master position by the holders' new shares.

After a rollover that applied deposits or withdrawals, each open master position
is split across the holders by their equity, with the MAM ``equity`` method and
its rounding (:mod:`allocation.mam`: floor to the step, leftover steps by
largest remainder, ties to the larger equity then the smaller id). This is the
bookkeeping view of who owns which part of the position; no order is sent.
(``autocorrect``, which closes part of each position on a withdrawal through the
executors, sits in the daemon, outside this pure core.)
"""

from __future__ import annotations

from allocation.leg import Allocation
from allocation.mam import MamGroup, Method, SubAccount, allocate_block
from allocation.pamm.errors import PammError
from allocation.pamm.ledger import Pool
from bridge.domain.deal import Side
from bridge.domain.volume import SymbolSpec


def resplit_position(pool: Pool, volume: int, spec: SymbolSpec, side: Side) -> Allocation:
    holders = [h for h in pool.holders if h.equity > 0]
    if not holders:
        raise PammError("the pool has no holder with equity to split a position across")
    accounts = [SubAccount(h.id, spec, balance=h.equity, equity=h.equity) for h in holders]
    return allocate_block(volume, spec, side, MamGroup(Method.EQUITY), accounts)
