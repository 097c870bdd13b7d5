"""Plan one master deal: every follower leg it causes, each with its idempotency key.

Pure: the caller passes snapshots (accounts, symbol specs, resolved settings,
the links from master positions to follower positions) and gets the intents
back; writing them, all in one transaction, is the store's job, and sending
them the executor's.

Routes:

* a **copy route** is one subscription: a follower copying the master with
  its resolved settings (:func:`allocation.copy.copy_deal` decides every leg);
* a netting master's *add*, for a hedging follower that already holds its
  copy, is skipped (``add-on-hedging-account``): the follower keeps one
  position per master position, so the master's close closes all of it;
* a **MAM route** is a group: an open or add is split across the members by
  the group's method (:func:`allocation.mam.allocate_block`); closes, partial
  closes, SL/TP changes and reversals follow each member's linked position
  exactly as a copy follower's do.

Keys: ``idempotency_key(master deal id, follower, leg number)``, so planning
the same deal twice gives the same keys, and the store's primary key stops a
second copy.
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


@dataclass(frozen=True, slots=True)
class AccountSnapshot:
    login: Login
    balance: Decimal
    equity: Decimal
    specs: Mapping[str, SymbolSpec]
    quote_rates: Mapping[str, Decimal] = field(default_factory=dict)
    copying: bool = True
    stopped_out: bool = False
    hedging: bool = False  # each open is its own position (MT4, hedging MT5/cTrader accounts)


@dataclass(frozen=True, slots=True)
class Link:
    """A follower position copied from a master position."""

    follower_position: PositionId
    symbol: str
    side: object  # Side
    volume: int


@dataclass(frozen=True, slots=True)
class CopyRoute:
    follower: Login
    settings: Effective


@dataclass(frozen=True, slots=True)
class MamRoute:
    group_id: str
    group: MamGroup
    members: tuple[tuple[Login, Decimal], ...]  # (account, its setting for lot/percent/fixed)


@dataclass(frozen=True, slots=True)
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
    intents: list[Intent] = []
    for route in copy_routes:
        account = accounts[route.follower]
        legs = copy_deal(deal, master_state, _follower(account, links.get(route.follower)), route.settings, now)
        intents.extend(_keyed(deal, route.follower, legs, links.get(route.follower)))
    for route in mam_routes:
        intents.extend(_plan_mam(deal, master_state, route, accounts, links, now))
    if hand_closed:
        intents = [_skip_open(i, Reason.NOT_LINKED) if i.follower in hand_closed else i for i in intents]
    if deal.kind is DealKind.ADD:
        # a hedging follower cannot grow its copy: an add would open a second position that the one link
        # per master position does not hold, and the master's close would leave it open. It keeps the one.
        intents = [_skip_open(i, Reason.ADD_ON_HEDGING)
                   if i.follower in links and accounts[i.follower].hedging else i for i in intents]
    return intents


def _skip_open(intent: Intent, reason: Reason) -> Intent:
    leg = intent.leg
    if leg.action is not Action.OPEN:
        return intent
    skipped = Leg(leg.account, Action.NONE, leg.symbol, leg.side, leg.ideal, 0, leg.spec, reason)
    return Intent(intent.key, intent.follower, intent.leg_no, skipped, intent.position_id)


def _plan_mam(deal, master_state: Master, route: MamRoute, accounts, links, now) -> list[Intent]:
    out: list[Intent] = []
    opens_block = deal.kind in (DealKind.OPEN, DealKind.ADD, DealKind.REVERSAL)
    if deal.kind not in (DealKind.OPEN, DealKind.ADD):
        # closes, partial closes, SL/TP and a reversal's close follow each member's own linked position
        plain = Effective()
        for login, _ in route.members:
            legs = copy_deal(deal, master_state, _follower(accounts[login], links.get(login)), plain, now)
            out.extend(_keyed(deal, login, legs[:1], links.get(login)))
    if opens_block:
        # an open, an add, or a reversal's new side: a block split across the members (leg 1 after a close)
        first_leg = 1 if deal.kind is DealKind.REVERSAL else 0
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
                out.extend(_keyed(deal, by_name[leg.account], [leg], None, first_leg))
    return out


def _follower(account: AccountSnapshot, link: Link | None) -> Follower:
    linked = None if link is None else LinkedPosition(link.symbol, link.side, link.volume)
    return Follower(str(account.login), account.balance, account.equity, account.specs, linked=linked,
                    copying=account.copying, stopped_out=account.stopped_out, quote_rates=account.quote_rates)


_ON_LINK = frozenset({Action.CLOSE, Action.PARTIAL_CLOSE, Action.MODIFY})
_KEYS: dict[object, object] = {}  # the newest deal's key maker: a fan-out hashes its deal's part once


def _keyed(deal: MasterDeal, follower: Login, legs: list[Leg], link: Link | None, first: int = 0) -> list[Intent]:
    keys = _KEYS.get(deal.deal_id)
    if keys is None:
        _KEYS.clear()
        keys = _KEYS[deal.deal_id] = keys_of_deal(f"{deal.deal_id.platform.value}:{deal.deal_id.value}")
    out = []
    text = str(follower)
    for leg_no, leg in enumerate(legs, start=first):
        position = link.follower_position if (link is not None and leg.action in _ON_LINK) else None
        out.append(Intent(keys(text, leg_no), follower, leg_no, leg, position))
    return out
