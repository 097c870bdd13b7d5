"""Plan one master deal: every follower leg it causes, each with its idempotency key.

Pure: the caller passes snapshots (accounts, symbol specs, resolved settings,
the links from master positions to follower positions) and gets the intents
back; writing them, all in one transaction, is the store's job, and sending
them the executor's.

Routes:

* a **copy route** is one subscription: a follower copying the master with
  its resolved settings (:func:`allocation.copy.copy_deal` decides every leg);
* a netting follower of a hedging master holds one position for several
  master positions (its venue nets them): closing one of those master
  positions closes that one's share (a partial close of the follower's
  position), never the whole;
* a follower may hold several positions copying one master position: a
  hedging follower opens a new position for each of a netting master's adds.
  Such a follower's legs act on all of them: a close or an SL/TP change is one
  leg per position; a partial close of the whole (sized on the total, as
  money.md says) is taken from the oldest positions first, the last one
  partly; a remainder below the minimum closes that position whole;
* a **MAM route** is a group: an open or add is split across the members by
  the group's method (:func:`allocation.mam.allocate_block`); closes, partial
  closes, SL/TP changes and reversals follow each member's linked position
  exactly as a copy follower's do.

Keys: ``idempotency_key(master account | master deal id, follower, leg number)``,
so planning the same deal twice gives the same keys, and the store's primary
key stops a second copy. The master account is part of it because deal ids are
numbered per server: two masters' deals may share a number.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Mapping

from allocation.copy import Effective, Follower, LinkedPosition, Master, copy_deal
from allocation.leg import Action, Leg, Reason
from allocation.mam import MamGroup, SubAccount, allocate_block
from bridge.domain.deal import DealKind, MasterDeal
from bridge.domain.ids import Login, PositionId
from bridge.domain.volume import SymbolSpec
from connectors.interface import keys_of_deal


# A value, never changed once made. Not frozen: one is built per follower per deal, and a frozen
# dataclass costs about three times as much to build.
@dataclass(slots=True)
class AccountSnapshot:
    login: Login
    balance: Decimal
    equity: Decimal
    specs: Mapping[str, SymbolSpec]
    quote_rates: Mapping[str, Decimal] = field(default_factory=dict)
    copying: bool = True
    stopped_out: bool = False
    hedging: bool = False  # each open is its own position (MT4, hedging MT5/cTrader accounts)


# A value, never changed once made. Not frozen: one is built per follower per deal, and a frozen
# dataclass costs about three times as much to build.
@dataclass(slots=True)
class Link:
    """What a follower holds copying a master position: one position, or several (a hedging follower of
    a master that added), oldest first in ``positions`` as (position, volume); ``volume`` is the total."""

    follower_position: PositionId  # the oldest
    symbol: str
    side: object  # Side
    volume: int
    positions: tuple[tuple[PositionId, int], ...] = ()  # empty: just (follower_position, volume)
    # the follower position's whole volume when it also copies other master positions (a netting follower
    # of a hedging master): closing this master position then closes only this share of it
    shared_total: int | None = None

    @classmethod
    def of(cls, positions: list[tuple[PositionId, int]], symbol: str, side) -> "Link":
        return cls(positions[0][0], symbol, side, sum(v for _, v in positions),
                   tuple(positions) if len(positions) > 1 else ())

    @property
    def held(self) -> tuple[tuple[PositionId, int], ...]:
        return self.positions or ((self.follower_position, self.volume),)


@dataclass(frozen=True, slots=True)
class CopyRoute:
    follower: Login
    settings: Effective


@dataclass(frozen=True, slots=True)
class MamRoute:
    group_id: str
    group: MamGroup
    members: tuple[tuple[Login, Decimal], ...]  # (account, its setting for lot/percent/fixed)


# A value, never changed once made. Not frozen: one is built per follower per deal, and a frozen
# dataclass costs about three times as much to build.
@dataclass(slots=True)
class Intent:
    """One leg to send (or recorded as skipped), keyed for exactly-once delivery."""

    key: str
    follower: Login
    leg_no: int
    leg: Leg
    position_id: PositionId | None  # the follower position a close or modify acts on

    @property
    def sendable(self) -> bool:
        return self.leg.sent


def plan_deal(
    deal: MasterDeal,
    master: AccountSnapshot,
    copy_routes: list[CopyRoute],
    mam_routes: list[MamRoute],
    accounts: Mapping[Login, AccountSnapshot],
    links: Mapping[Login, Link],  # this deal's master position -> each follower's link
    now: datetime,
    hand_closed: frozenset[Login] = frozenset(),
) -> list[Intent]:
    """All intents for ``deal``; skipped legs are included, with their reasons, for the record.

    ``hand_closed``: followers who closed their copy of this master position by
    hand. Nothing is opened for them on it again (an add, a reversal's new
    side): their legs are recorded as ``not-linked``.
    """
    master_spec = master.specs[deal.symbol]
    master_state = Master(master.balance, master.equity, master_spec)
    # the deal's part hashed once; the master account in it, since deal ids are numbered per server
    keys = keys_of_deal(f"{deal.account}|{deal.deal_id.platform.value}:{deal.deal_id.value}")
    intents: list[Intent] = []
    extend = intents.extend
    for route in copy_routes:
        follower = route.follower
        link = links.get(follower)
        legs = copy_deal(deal, master_state, _follower(accounts[follower], link), route.settings, now)
        extend(_keyed(keys, follower, legs, link))
    for route in mam_routes:
        intents.extend(_plan_mam(deal, master_state, route, accounts, links, now, keys))
    if hand_closed:
        intents = [_skip_open(i, Reason.NOT_LINKED) if i.follower in hand_closed else i for i in intents]
    return intents


def _skip_open(intent: Intent, reason: Reason) -> Intent:
    leg = intent.leg
    if leg.action is not Action.OPEN:
        return intent
    skipped = Leg(leg.account, Action.NONE, leg.symbol, leg.side, leg.ideal, 0, leg.spec, reason)
    return Intent(intent.key, intent.follower, intent.leg_no, skipped, intent.position_id)


def _plan_mam(deal, master_state: Master, route: MamRoute, accounts, links, now, keys) -> list[Intent]:
    out: list[Intent] = []
    opens_block = deal.kind in (DealKind.OPEN, DealKind.ADD, DealKind.REVERSAL)
    if deal.kind not in (DealKind.OPEN, DealKind.ADD):
        # closes, partial closes, SL/TP and a reversal's close follow each member's own linked position
        plain = Effective()
        for login, _ in route.members:
            legs = copy_deal(deal, master_state, _follower(accounts[login], links.get(login)), plain, now)
            out.extend(_keyed(keys, login, legs[:1], links.get(login)))
    if opens_block:
        # an open, an add, or a reversal's new side: a block split across the members (after their closes)
        next_leg: dict[Login, int] = {}
        for intent in out:
            next_leg[intent.follower] = intent.leg_no + 1
        members = []
        for login, setting in route.members:
            account = accounts[login]
            spec = account.specs.get(deal.symbol)
            if spec is not None:  # a member whose server lacks the symbol takes no part in the split
                members.append(SubAccount(str(login), spec, account.balance, account.equity, setting))
        if members:
            allocation = allocate_block(deal.volume, master_state.spec, deal.side, route.group, members)
            by_name = {str(login): login for login, _ in route.members}
            for leg in allocation.legs:
                login = by_name[leg.account]
                out.extend(_keyed(keys, login, [leg], None, next_leg.get(login, 0)))
    return out


_NOTHING_HELD: frozenset[str] = frozenset()


def _follower(account: AccountSnapshot, link: Link | None) -> Follower:
    linked = None if link is None else LinkedPosition(link.symbol, link.side, link.volume)
    # positional, in Follower's field order (account, balance, equity, specs, linked, held_symbols, copying,
    # stopped_out, quote_rates): one is built per follower per deal
    return Follower(str(account.login), account.balance, account.equity, account.specs, linked, _NOTHING_HELD,
                    account.copying, account.stopped_out, account.quote_rates)


_ON_LINK = frozenset({Action.CLOSE, Action.PARTIAL_CLOSE, Action.MODIFY})


def _keyed(keys, follower: Login, legs: list[Leg], link: Link | None, first: int = 0) -> list[Intent]:
    """Each leg keyed (``keys``: the deal's key maker), split per position where it acts on several."""
    out = []
    text = str(follower)
    leg_no = first
    for leg in legs:
        if link is None or leg.action not in _ON_LINK:
            pieces = [(leg, None)]
        elif not link.positions:
            if leg.action is Action.CLOSE and link.shared_total and link.shared_total > link.volume:
                # the position holds other master positions' copies too: take out this one's share only
                leg = Leg(leg.account, Action.PARTIAL_CLOSE, leg.symbol, leg.side, leg.ideal, leg.volume, leg.spec,
                          leg.reason)
            pieces = [(leg, link.follower_position)]
        else:
            pieces = _per_position(leg, link)
        for piece, position in pieces:
            out.append(Intent(keys(text, leg_no), follower, leg_no, piece, position))
            leg_no += 1
    return out


def _per_position(leg: Leg, link: Link) -> list[tuple[Leg, PositionId | None]]:
    """A leg on a follower's several positions, as one leg per position it touches (oldest first)."""
    held = link.held
    if leg.action is not Action.PARTIAL_CLOSE:  # a close or an SL/TP change: every position
        return [(Leg(leg.account, leg.action, leg.symbol, leg.side,
                     Decimal(volume) if leg.action is Action.CLOSE else leg.ideal,
                     volume if leg.action is Action.CLOSE else 0, leg.spec, leg.reason, leg.sl, leg.tp), position)
                for position, volume in held]
    spec, remaining, pieces = leg.spec, leg.volume, []
    for position, volume in held:
        if remaining <= 0:
            break
        if remaining >= volume:
            pieces.append((Leg(leg.account, Action.CLOSE, leg.symbol, leg.side, Decimal(volume), volume, spec),
                           position))
        elif volume - remaining < spec.min_volume:
            pieces.append((Leg(leg.account, Action.CLOSE, leg.symbol, leg.side, Decimal(remaining), volume, spec,
                               Reason.REMAINDER_BELOW_MINIMUM), position))
        elif remaining < spec.min_volume:
            pieces.append((Leg(leg.account, Action.NONE, leg.symbol, leg.side, Decimal(remaining), 0, spec,
                               Reason.BELOW_MINIMUM), position))
        else:
            pieces.append((Leg(leg.account, Action.PARTIAL_CLOSE, leg.symbol, leg.side, Decimal(remaining),
                               remaining, spec), position))
        remaining -= volume
    last, position = pieces[-1]  # the whole's exact ideal and its reason stay on the record
    ideal = leg.ideal - sum((p.ideal for p, _ in pieces[:-1]), Decimal(0))
    pieces[-1] = (Leg(last.account, last.action, last.symbol, last.side, ideal, last.volume, last.spec,
                      last.reason or leg.reason), position)
    return pieces
