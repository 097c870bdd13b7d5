"""Planning a master deal into keyed follower intents: copy routes and MAM routes."""

from __future__ import annotations

from decimal import Decimal

from allocation.copy import CopySettings, resolve
from allocation.copy.settings import SizingMode
from allocation.leg import Action, Reason
from allocation.mam import MamGroup, Method
from bridge.domain.deal import DealKind, MasterDeal, Side
from bridge.domain.ids import DealId, Login, Platform, PositionId, ServerId
from bridge.worker.planning import AccountSnapshot, CopyRoute, Link, MamRoute, plan_deal
from connectors.interface import KEY_LENGTH
from tests.builders import MASTER_LOGIN, NOW, spec

EURUSD = spec()
SPECS = {"EURUSD": EURUSD}
SERVER = ServerId(Platform.SIM, "followers")
F1, F2, F3 = (Login(SERVER, n) for n in (1, 2, 3))
MASTER = AccountSnapshot(MASTER_LOGIN, Decimal(50_000), Decimal(50_000), SPECS)
ACCOUNTS = {
    F1: AccountSnapshot(F1, Decimal(4_500), Decimal(4_500), SPECS),
    F2: AccountSnapshot(F2, Decimal(3_500), Decimal(3_500), SPECS),
    F3: AccountSnapshot(F3, Decimal(2_000), Decimal(2_000), SPECS),
}
MULTIPLIER = resolve(CopySettings(mode=SizingMode.MULTIPLIER))
MAM = MamRoute("alpha", MamGroup(Method.EQUITY), ((F1, Decimal(0)), (F2, Decimal(0)), (F3, Decimal(0))))


def deal(kind=DealKind.OPEN, lots="0.10", position_lots="0", side=Side.BUY, n=1) -> MasterDeal:
    return MasterDeal(DealId(Platform.SIM, n), PositionId(Platform.SIM, 500), MASTER_LOGIN, "EURUSD", kind, side,
                      EURUSD.to_volume(lots), NOW, position_volume=EURUSD.to_volume(position_lots),
                      price=Decimal("1.10000"))


def link(n: int, lots: str) -> Link:
    return Link(PositionId(Platform.SIM, 9000 + n), "EURUSD", Side.BUY, EURUSD.to_volume(lots))


def test_copy_open_gives_one_keyed_intent_per_follower_and_keys_are_stable():
    routes = [CopyRoute(F1, MULTIPLIER), CopyRoute(F2, MULTIPLIER)]
    first = plan_deal(deal(), MASTER, routes, [], ACCOUNTS, {}, NOW)
    again = plan_deal(deal(), MASTER, routes, [], ACCOUNTS, {}, NOW)
    assert [i.key for i in first] == [i.key for i in again]
    assert len({i.key for i in first}) == 2
    assert all(len(i.key) == KEY_LENGTH and i.key.startswith("cb") for i in first)
    assert [(i.follower, i.leg.action, i.leg.volume) for i in first] == [
        (F1, Action.OPEN, 1_000_000), (F2, Action.OPEN, 1_000_000)]
    other_deal = plan_deal(deal(n=2), MASTER, routes, [], ACCOUNTS, {}, NOW)
    assert not {i.key for i in other_deal} & {i.key for i in first}


def test_mam_open_is_the_worked_example_split():
    intents = plan_deal(deal(), MASTER, [], [MAM], ACCOUNTS, {}, NOW)
    assert [(i.follower, i.leg.volume, i.leg.reason) for i in intents] == [
        (F1, 500_000, Reason.LEFTOVER_STEP), (F2, 300_000, Reason.FLOORED_TO_STEP), (F3, 200_000, None)]
    assert all(i.position_id is None for i in intents)


def test_mam_partial_close_acts_on_each_members_linked_position():
    links = {F1: link(1, "0.05"), F2: link(2, "0.03"), F3: link(3, "0.02")}
    intents = plan_deal(deal(DealKind.PARTIAL_CLOSE, lots="0.05", position_lots="0.10"), MASTER, [], [MAM],
                        ACCOUNTS, links, NOW)
    got = [(i.follower, i.leg.action, i.leg.volume, i.position_id) for i in intents]
    assert got == [
        (F1, Action.PARTIAL_CLOSE, 200_000, links[F1].follower_position),  # half of 0.05 floored: 0.02
        (F2, Action.PARTIAL_CLOSE, 100_000, links[F2].follower_position),  # half of 0.03 floored: 0.01
        (F3, Action.PARTIAL_CLOSE, 100_000, links[F3].follower_position),
    ]


def test_mam_reversal_closes_every_member_then_splits_the_new_side():
    links = {F1: link(1, "0.05"), F2: link(2, "0.03"), F3: link(3, "0.02")}
    intents = plan_deal(deal(DealKind.REVERSAL, lots="0.20", position_lots="0.10", side=Side.SELL), MASTER, [],
                        [MAM], ACCOUNTS, links, NOW)
    closes = [i for i in intents if i.leg.action is Action.CLOSE]
    opens = [i for i in intents if i.leg.action is Action.OPEN]
    assert [(i.follower, i.leg_no, i.leg.volume) for i in closes] == [(F1, 0, 500_000), (F2, 0, 300_000),
                                                                      (F3, 0, 200_000)]
    assert [(i.follower, i.leg_no, i.leg.side, i.leg.volume) for i in opens] == [
        (F1, 1, Side.SELL, 900_000), (F2, 1, Side.SELL, 700_000), (F3, 1, Side.SELL, 400_000)]
    assert len({i.key for i in intents}) == 6


def test_a_follower_without_a_link_gets_a_recorded_skip_not_an_order():
    intents = plan_deal(deal(DealKind.CLOSE, lots="0.10", position_lots="0.10"), MASTER,
                        [CopyRoute(F1, MULTIPLIER)], [], ACCOUNTS, {}, NOW)
    [intent] = intents
    assert intent.leg.reason is Reason.NOT_LINKED and not intent.sendable


def test_a_mam_member_whose_server_lacks_the_symbol_takes_no_part_in_the_split():
    accounts = {**ACCOUNTS, F3: AccountSnapshot(F3, Decimal(2_000), Decimal(2_000), {})}
    intents = plan_deal(deal(), MASTER, [], [MAM], accounts, {}, NOW)
    assert [i.follower for i in intents] == [F1, F2]
    assert sum(i.leg.volume for i in intents) == 1_000_000


def held(*lots: str, base: int = 100) -> Link:
    return Link.of([(PositionId(Platform.SIM, base + n), EURUSD.to_volume(x)) for n, x in enumerate(lots)],
                   "EURUSD", Side.BUY)


def test_a_follower_holding_several_positions_closes_and_modifies_each():
    links = {F1: held("0.10", "0.05")}
    routes = [CopyRoute(F1, MULTIPLIER)]
    close = plan_deal(deal(DealKind.CLOSE, lots="0.15", position_lots="0.15"), MASTER, routes, [], ACCOUNTS,
                      links, NOW)
    assert [(i.leg_no, i.leg.action, i.leg.volume, i.position_id.value) for i in close] == [
        (0, Action.CLOSE, 1_000_000, 100), (1, Action.CLOSE, 500_000, 101)]
    assert len({i.key for i in close}) == 2
    sltp = plan_deal(MasterDeal(DealId(Platform.SIM, 7), PositionId(Platform.SIM, 500), MASTER_LOGIN, "EURUSD",
                                DealKind.SLTP, Side.BUY, 0, NOW, position_volume=EURUSD.to_volume("0.15"),
                                price=Decimal("1.1"), sl=Decimal("1.05000")), MASTER, routes, [], ACCOUNTS, links, NOW)
    assert [(i.leg.action, i.leg.sl, i.position_id.value) for i in sltp] == [
        (Action.MODIFY, Decimal("1.05000"), 100), (Action.MODIFY, Decimal("1.05000"), 101)]


def test_a_partial_close_over_several_positions_takes_the_oldest_first():
    routes = [CopyRoute(F1, MULTIPLIER)]
    links = {F1: held("0.10", "0.05")}
    # the master closes 60% of 0.15: the follower closes 0.09, all from its oldest position
    intents = plan_deal(deal(DealKind.PARTIAL_CLOSE, lots="0.09", position_lots="0.15"), MASTER, routes, [],
                        ACCOUNTS, links, NOW)
    assert [(i.leg.action, i.leg.volume, i.position_id.value) for i in intents] == [
        (Action.PARTIAL_CLOSE, 900_000, 100)]
    # 80%: 0.12 = the oldest whole (0.10) and 0.02 of the next
    intents = plan_deal(deal(DealKind.PARTIAL_CLOSE, lots="0.12", position_lots="0.15"), MASTER, routes, [],
                        ACCOUNTS, links, NOW)
    assert [(i.leg_no, i.leg.action, i.leg.volume, i.position_id.value) for i in intents] == [
        (0, Action.CLOSE, 1_000_000, 100), (1, Action.PARTIAL_CLOSE, 200_000, 101)]
    assert sum(i.leg.ideal for i in intents) == Decimal(1_200_000)  # the exact ideal is kept in the record


def test_pieces_below_the_minimum_follow_the_partial_close_rules_per_position():
    coarse = spec(min_lots="0.05", step="0.01")
    accounts = {F1: AccountSnapshot(F1, Decimal(4_500), Decimal(4_500), {"EURUSD": coarse})}
    routes = [CopyRoute(F1, MULTIPLIER)]

    def split(lots, *held_lots):
        links = {F1: Link.of([(PositionId(Platform.SIM, 100 + n), coarse.to_volume(x))
                              for n, x in enumerate(held_lots)], "EURUSD", Side.BUY)}
        total = sum(Decimal(x) for x in held_lots)
        intents = plan_deal(deal(DealKind.PARTIAL_CLOSE, lots=lots, position_lots=str(total)), MASTER, routes, [],
                            accounts, links, NOW)
        return [(i.leg.action, i.leg.volume, i.leg.reason, i.position_id.value) for i in intents]

    # 0.15 of 0.28: the oldest whole, then 0.05 of the second would leave 0.03 (< 0.05): it closes whole
    assert split("0.15", "0.10", "0.08", "0.10") == [
        (Action.CLOSE, 1_000_000, None, 100), (Action.CLOSE, 800_000, Reason.REMAINDER_BELOW_MINIMUM, 101)]
    # 0.11 of 0.26: the oldest whole, then 0.01 of the next: below the minimum, not sent, it stays open
    assert split("0.11", "0.10", "0.06", "0.10") == [
        (Action.CLOSE, 1_000_000, None, 100), (Action.NONE, 0, Reason.BELOW_MINIMUM, 101)]


def test_a_mam_reversal_numbers_the_new_side_after_every_close():
    links = {F1: held("0.05", "0.02"), F2: link(2, "0.03"), F3: link(3, "0.02")}
    intents = plan_deal(deal(DealKind.REVERSAL, lots="0.20", position_lots="0.10", side=Side.SELL), MASTER, [],
                        [MAM], ACCOUNTS, links, NOW)
    mine = [(i.leg_no, i.leg.action) for i in intents if i.follower == F1]
    assert mine == [(0, Action.CLOSE), (1, Action.CLOSE), (2, Action.OPEN)]
    assert len({i.key for i in intents}) == len(intents)
