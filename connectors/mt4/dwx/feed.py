"""Master deals from ``GET_OPEN_TRADES`` snapshots: what changed between two polls (:class:`SnapshotDiff`).

The DWX EA publishes no trade events and keeps no history the bridge can read, so a master is followed by
polling its open orders and comparing each snapshot with the one before:

- a ticket that appeared is an **open** (id ``2 T``, its own open time and price, as ``deals.py`` names an
  open), unless its comment is ``from #P``: then it is the remainder of ``P``'s **partial close**;
- a ticket that left is a **close** (id ``2 T + 1``) unless a remainder names it: a **partial close**
  (id ``2 T + 1`` too: MT4 keeps the closed part under the old ticket), of ``lots(P) - lots(R)``;
- a ticket whose lots went down in place (not something MT4 does; a broker plug-in might) is a
  partial close with a time-based id from the SL/TP range;
- a ticket (or a remainder, against its parent) whose SL or TP changed is an **sltp** deal
  (``deals.sltp_id``: time-based, above the account's previous one).

A position keeps the root ticket's id across partial closes (``deals.Chains``, fed from the comments). What
a snapshot cannot say: the close price, time and reason (closes carry no price and the poll's time), and
anything that opened and closed between two polls (never seen). Within one poll: opens, then partial and
full closes by ticket, then SL/TP changes. The first snapshot is the baseline: no deals.
"""

from __future__ import annotations

from datetime import datetime
from typing import Callable

from bridge.domain.deal import DealKind, MasterDeal
from bridge.domain.ids import DealId, Login, PositionId
from bridge.domain.volume import SymbolSpec
from connectors.mt4 import convert, deals
from connectors.mt4.deals import M4, Chains

SpecOf = Callable[[str], SymbolSpec]


class SnapshotDiff:
    """One account's last snapshot, and the deals of each new one."""

    def __init__(self, account: Login, chains: Chains, spec_of: SpecOf, clock: convert.ServerClock) -> None:
        self.account = account
        self.chains = chains
        self.spec_of = spec_of
        self.clock = clock
        self.trades: dict[int, dict] | None = None
        self.last_sltp: int | None = None
        self._at: datetime | None = None  # the time of the snapshot being compared (closes carry no time)

    def update(self, trades: list[dict], now: datetime) -> list[MasterDeal]:
        """The deals between the last snapshot and ``trades`` (read at ``now``, UTC); ``trades`` becomes the
        last snapshot. Raises KeyError for a symbol without a spec (the snapshot is then not taken)."""
        current = {t["ticket"]: t for t in trades}
        for t in trades:
            self.spec_of(t["symbol"])
        if self.trades is None:
            for t in trades:
                self.chains.learn(t)
            self.trades = current
            return []
        before = self.trades
        now_msc = self.clock.server_ms(now)
        self._at = now
        parent_of = {}
        for t in trades:
            if t["ticket"] not in before:
                parent = convert.parent_of(t["comment"])
                if parent is not None:
                    self.chains.link(t["ticket"], parent)
                    parent_of[t["ticket"]] = parent
        split = {parent: ticket for ticket, parent in parent_of.items() if parent in before and parent not in current}
        opens, closes, stops = [], [], []
        for ticket in sorted(set(current) - set(before)):
            t = current[ticket]
            if parent_of.get(ticket) in split:
                continue
            opens.append(self._open(t, parent_of.get(ticket)))
        for ticket in sorted(set(before) - set(current)):
            old = before[ticket]
            if ticket in split:
                closes.append(self._partial(old, current[split[ticket]]["lots"], deals.close_id(ticket)))
            else:
                closes.append(self._close(old))
        for ticket in sorted(current):
            t = current[ticket]
            old = before.get(ticket) or before.get(parent_of.get(ticket, 0))
            if old is None:
                continue
            if ticket in before and t["lots"] < old["lots"]:
                closes.append(self._partial(old, t["lots"], self._time_id(now_msc, ticket)))
            if (old["sl"], old["tp"]) != (t["sl"], t["tp"]):
                stops.append(self._sltp(t, now_msc))
        self.trades = current
        return opens + closes + stops

    # -- one deal each ----------------------------------------------------------------
    def _time_id(self, now_msc: int, ticket: int) -> DealId:
        self.last_sltp = deals.sltp_id(now_msc, ticket, self.last_sltp)
        return DealId(M4, self.last_sltp)

    def _open(self, t: dict, parent: int | None) -> MasterDeal:
        # a remainder whose parent was never seen (opened and partly closed between two polls): the position
        # opens, named by that parent, with the remainder's lots (the lots it opened with are unknown)
        ticket = t["ticket"] if parent is None else self.chains.root(t["ticket"])
        s = self.spec_of(t["symbol"])
        return MasterDeal(deals.open_id(ticket), PositionId(M4, ticket), self.account, t["symbol"], DealKind.OPEN,
                          convert.side_of(t["type"]), convert.volume_of(t["lots"], s),
                          self.clock.utc_ms(t["open_time_msc"]), 0, convert.price(t["open_price"], s.digits),
                          convert.stop(t["sl"], s.digits), convert.stop(t["tp"], s.digits))

    def _partial(self, old: dict, rest_lots, deal_id: DealId) -> MasterDeal:
        s = self.spec_of(old["symbol"])
        volume = convert.volume_of(old["lots"], s)
        closed = volume - convert.volume_of(rest_lots, s)
        return MasterDeal(deal_id, PositionId(M4, self.chains.root(old["ticket"])), self.account, old["symbol"],
                          DealKind.PARTIAL_CLOSE, convert.side_of(old["type"]), closed, self._now(), volume)

    def _close(self, old: dict) -> MasterDeal:
        s = self.spec_of(old["symbol"])
        volume = convert.volume_of(old["lots"], s)
        return MasterDeal(deals.close_id(old["ticket"]), PositionId(M4, self.chains.root(old["ticket"])),
                          self.account, old["symbol"], DealKind.CLOSE, convert.side_of(old["type"]), volume,
                          self._now(), volume)

    def _sltp(self, t: dict, now_msc: int) -> MasterDeal:
        s = self.spec_of(t["symbol"])
        return MasterDeal(self._time_id(now_msc, t["ticket"]), PositionId(M4, self.chains.root(t["ticket"])),
                          self.account, t["symbol"], DealKind.SLTP, convert.side_of(t["type"]), 0, self._now(),
                          convert.volume_of(t["lots"], s), None, convert.stop(t["sl"], s.digits),
                          convert.stop(t["tp"], s.digits))

    def _now(self) -> datetime:
        return self._at
