"""Master deals of one MT4 account: EA events, or ``HISTORY`` + ``TRADES``, -> MasterDeals; position chains.

Position identity. MT4 has no positions, only orders (tickets). A partial close
moves the closed part to the history under the old ticket (comment ``to #<new>``)
and reopens the remainder under a NEW ticket (comment ``from #<old>``). The bridge
names a position by the ticket that opened it, the chain's **root**;
:class:`Chains` holds the links (remainder -> the ticket it was split from) learnt
from comments, events and our own CLOSE replies, and answers ``root(ticket)``.

Deal ids. Every ticket comes from one counter, is opened at most once and closed at
most once, so ids are stable whichever way a deal is read (an event now, the history
after a restart), and unique:

- an open of ticket T (a root) and a balance operation T: ``2 T``;
- the close, full or partial, of ticket T: ``2 T + 1`` (a partial close of T names T's
  closed part; the remainder R's own close is ``2 R + 1``);
- an SL/TP change (MT4 keeps no history of them: events only): ``SLTP_IDS +
  time_msc * 1000 + ticket mod 1000``, raised above the account's previous one, as on MT5.

Ids therefore grow along one position (open < partial closes < close) but not across
positions (closing an old ticket after opening a new one); the worker takes each id
once, and :func:`after` resumes a backfill after a deal by *finding* it, not by
comparing ids.

Venue order (the backfill's): by time (``open_time_msc`` for an open,
``close_time_msc`` for a history entry), then opens before history entries, then
the order entries entered the history (opens by ticket): the order in which the EA's
scan publishes the same changes as events.

Kinds: a root ticket's open is OPEN with the chain's whole volume at the open (its own
lots plus its remainder's, recursively); a history entry with a remainder is
PARTIAL_CLOSE (the closed lots, of the chain's volume before), one without is CLOSE;
type 6 is BALANCE (no symbol, position 0). MT4 is always hedging: no ADD, no REVERSAL.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable

from bridge.domain.deal import DealKind, MasterDeal, Side
from bridge.domain.ids import DealId, Login, Platform, PositionId
from bridge.domain.volume import SymbolSpec
from connectors.interface import Stops
from connectors.mt4 import convert
from connectors.mt4 import protocol as P

M4 = Platform.MT4
SLTP_IDS = 10 ** 18
#: an SL/TP id's time, backed off by this much when a backfill resumes after one
RESUME_MARGIN_MS = 1000

SpecOf = Callable[[str], SymbolSpec]


def open_id(ticket: int) -> DealId:
    return DealId(M4, 2 * ticket)


def close_id(ticket: int) -> DealId:
    return DealId(M4, 2 * ticket + 1)


def sltp_id(time_msc: int, ticket: int, previous: int | None) -> int:
    candidate = SLTP_IDS + time_msc * 1000 + ticket % 1000
    return candidate if previous is None or candidate > previous else previous + 1


class Chains:
    """The partial-close links of one account: remainder ticket -> the ticket it was split from."""

    def __init__(self) -> None:
        self.parent: dict[int, int] = {}

    def link(self, remainder: int, ticket: int) -> None:
        if remainder != ticket:
            self.parent[remainder] = ticket

    def learn(self, record: dict) -> None:
        """Read a TRADE/CLOSED record's comment: ``from #N`` (a remainder) or ``to #N`` (split into N)."""
        comment = record.get("comment") or ""
        ticket = record["ticket"]
        parent = convert.parent_of(comment)
        if parent is not None:
            self.link(ticket, parent)
        child = convert.child_of(comment)
        if child is not None:
            self.link(child, ticket)

    def root(self, ticket: int) -> int:
        seen = {ticket}
        while ticket in self.parent:
            ticket = self.parent[ticket]
            if ticket in seen:  # a broken server's comments: stop rather than loop
                break
            seen.add(ticket)
        return ticket

    def is_root(self, ticket: int) -> bool:
        return ticket not in self.parent


# -- events -> master deals ---------------------------------------------------------
def event_deal(event: dict, account: Login, spec_of: SpecOf, clock: convert.ServerClock, chains: Chains,
               last_sltp: int | None = None) -> MasterDeal | None:
    """One EA event (``open``/``partial``/``close``/``modify``/``balance``) as a master deal; ``chains`` learns
    a partial close's remainder. None for an event that is not a deal (an unknown ``ev``)."""
    ev = event.get("ev")
    if ev == P.EV_BALANCE:
        return MasterDeal(open_id(event["ticket"]), PositionId(M4, 0), account, "", DealKind.BALANCE, Side.BUY, 0,
                          clock.utc_ms(event["time_msc"]))
    if ev not in (P.EV_OPEN, P.EV_PARTIAL, P.EV_CLOSE, P.EV_MODIFY):
        return None
    symbol = event["symbol"]
    s = spec_of(symbol)
    side = convert.side_of(event["type"])
    ticket = event["ticket"]
    if ev == P.EV_OPEN:
        chains.learn(event)
        return MasterDeal(open_id(ticket), PositionId(M4, chains.root(ticket)), account, symbol, DealKind.OPEN, side,
                          convert.volume_of(event["lots"], s), clock.utc_ms(event["open_time_msc"]), 0,
                          convert.price(event["open_price"], s.digits), convert.stop(event["sl"], s.digits),
                          convert.stop(event["tp"], s.digits))
    if ev == P.EV_PARTIAL:
        chains.link(event["remainder"], ticket)
        closed = convert.volume_of(event["closed_lots"], s)
        rest = convert.volume_of(event["remainder_lots"], s)
        return MasterDeal(close_id(ticket), PositionId(M4, chains.root(ticket)), account, symbol,
                          DealKind.PARTIAL_CLOSE, side, closed, clock.utc_ms(event["time_msc"]), closed + rest,
                          convert.price(event["close_price"], s.digits))
    if ev == P.EV_CLOSE:
        chains.learn(event)
        volume = convert.volume_of(event["lots"], s)
        return MasterDeal(close_id(ticket), PositionId(M4, chains.root(ticket)), account, symbol, DealKind.CLOSE,
                          side, volume, clock.utc_ms(event["close_time_msc"]), volume,
                          convert.price(event["close_price"], s.digits))
    return MasterDeal(DealId(M4, sltp_id(event["time_msc"], ticket, last_sltp)), PositionId(M4, chains.root(ticket)),
                      account, symbol, DealKind.SLTP, side, 0, clock.utc_ms(event["time_msc"]),
                      convert.volume_of(event["lots"], s), None, convert.stop(event["sl"], s.digits),
                      convert.stop(event["tp"], s.digits))


# -- the history -> master deals ------------------------------------------------------
def classify(history: list[dict], trades: list[dict], account: Login, spec_of: SpecOf, clock: convert.ServerClock,
             chains: Chains | None = None) -> list[MasterDeal]:
    """Every master deal ``HISTORY`` (in the order entries entered it) and ``TRADES`` show, in venue order
    (see the module doc). ``chains`` (a fresh one if None) learns every link."""
    chains = chains if chains is not None else Chains()
    records: dict[int, dict] = {}
    for record in [*history, *trades]:
        if record["type"] == P.OP_BALANCE:
            continue
        chains.learn(record)
        records[record["ticket"]] = record
    child = {parent: remainder for remainder, parent in chains.parent.items() if parent in records}

    def created(ticket: int, depth: int = 0) -> int:
        """The chain's volume when ``ticket`` was created: its own lots plus its remainder's."""
        record = records[ticket]
        own = convert.volume_of(record["lots"], spec_of(record["symbol"]))
        nxt = child.get(ticket)
        return own + created(nxt, depth + 1) if nxt in records and depth < 10_000 else own

    keyed: list[tuple[tuple[int, int, int], MasterDeal]] = []
    for ticket, record in records.items():
        if not chains.is_root(ticket) and chains.parent[ticket] in records:
            continue  # a remainder: no open of its own
        s = spec_of(record["symbol"])
        deal = MasterDeal(open_id(ticket), PositionId(M4, chains.root(ticket)), account, record["symbol"],
                          DealKind.OPEN, convert.side_of(record["type"]), created(ticket),
                          clock.utc_ms(record["open_time_msc"]), 0, convert.price(record["open_price"], s.digits),
                          convert.stop(record["sl"], s.digits), convert.stop(record["tp"], s.digits))
        keyed.append(((record["open_time_msc"], 0, ticket), deal))
    for index, record in enumerate(history):
        ticket = record["ticket"]
        when = record["close_time_msc"]
        if record["type"] == P.OP_BALANCE:
            deal = MasterDeal(open_id(ticket), PositionId(M4, 0), account, "", DealKind.BALANCE, Side.BUY, 0,
                              clock.utc_ms(when))
            keyed.append(((when, 1, index), deal))
            continue
        s = spec_of(record["symbol"])
        own = convert.volume_of(record["lots"], s)
        partial = ticket in child
        before = created(ticket) if partial else own
        kind = DealKind.PARTIAL_CLOSE if partial and before > own else DealKind.CLOSE
        deal = MasterDeal(close_id(ticket), PositionId(M4, chains.root(ticket)), account, record["symbol"], kind,
                          convert.side_of(record["type"]), own, clock.utc_ms(when), before,
                          convert.price(record["close_price"], s.digits))
        keyed.append(((when, 1, index), deal))
    keyed.sort(key=lambda pair: pair[0])
    return [deal for _, deal in keyed]


def after(deals: list[MasterDeal], last: DealId | None, clock: convert.ServerClock) -> list[MasterDeal]:
    """The deals that follow ``last`` in venue order (all if None). ``last`` is found by id; an SL/TP id
    (not in any history) resumes from its time less :data:`RESUME_MARGIN_MS` (the worker drops what it
    has); an id no longer in the history resumes after the deals with an id up to it."""
    if last is None:
        return list(deals)
    for n, deal in enumerate(deals):
        if deal.deal_id == last:
            return deals[n + 1:]
    if last.value >= SLTP_IDS:
        since = clock.utc_ms(max(0, (last.value - SLTP_IDS) // 1000 - RESUME_MARGIN_MS))
        return [d for d in deals if d.time >= since]
    return [d for d in deals if d.deal_id.value > last.value]


# -- SL/TP as state ------------------------------------------------------------------------
def stops_of(trade: dict, spec: SymbolSpec) -> Stops:
    return convert.stop(trade["sl"], spec.digits), convert.stop(trade["tp"], spec.digits)


def sltp_deals(changed: list[dict], account: Login, spec_of: SpecOf, clock: convert.ServerClock, chains: Chains,
               now_msc: int, told: dict, last_id: int | None = None) -> list[MasterDeal]:
    """One SLTP deal per open trade of ``changed`` (its position's stops now), found at server time ``now_msc``
    (MT4 keeps no time of an amend): ids from :func:`sltp_id` of that time, above ``last_id``. ``told`` (root ->
    (stops, id) of the last SLTP deal made for the position, updated here): a position whose stops are those told
    keeps that deal's id, so one change found twice (a backfill asked again, the EA's event and a backfill) is
    one id."""
    out = []
    for t in sorted(changed, key=lambda t: t["ticket"]):
        s = spec_of(t["symbol"])
        root = chains.root(t["ticket"])
        stops = stops_of(t, s)
        last = told.get(root)
        if last is not None and last[0] == stops:
            deal_id = last[1]
        else:
            deal_id = last_id = sltp_id(now_msc, t["ticket"], last_id)
        told[root] = (stops, deal_id)
        found_msc = (deal_id - SLTP_IDS) // 1000  # when first found (an id told keeps its time too)
        out.append(MasterDeal(DealId(M4, deal_id), PositionId(M4, root), account, t["symbol"], DealKind.SLTP,
                              convert.side_of(t["type"]), 0, clock.utc_ms(found_msc),
                              convert.volume_of(t["lots"], s), None, *stops))
    return out


def told_deal(deal: MasterDeal, told: dict) -> MasterDeal:
    """A live ``deal`` as delivered, ``told`` kept: an SLTP deal takes the id ``told`` holds for its position if
    it tells the same stops (a backfill recovered the change already), then ``told`` holds its; a close forgets
    the position."""
    root = deal.position_id.value
    if deal.kind is DealKind.CLOSE:
        told.pop(root, None)
    if deal.kind is not DealKind.SLTP:
        return deal
    last = told.get(root)
    if last is not None and last[0] == (deal.sl, deal.tp) and last[1] != deal.deal_id.value:
        deal = replace(deal, deal_id=DealId(M4, last[1]))
    told[root] = ((deal.sl, deal.tp), deal.deal_id.value)
    return deal


def key_of(record: dict) -> str | None:
    return convert.bridge_key(record.get("comment") or "", record.get("magic") or 0)
