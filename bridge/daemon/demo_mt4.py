"""The demo on simulated MetaTrader 4 terminals: the same session, accounts and routes, through the MT4 connector.

``bridge demo --platform mt4`` moves every demo account to a simulated MT4
terminal running the copybridge EA's logic (``connectors.mt4.simulator``),
built from a ``platform = "mt4"`` venue exactly as ``bridge run`` builds one
(``provider = "simulator"``): each terminal is served on ``inproc://``
endpoints and the bridge's MT4 connector talks the EA protocol to it
(connectors/mt4/PROTOCOL.md). The master trades at its terminal as a trader by
hand would; duplicates and missing orders are counted against the followers'
terminals' own order histories.

MT4 accounts hedge: every trade is a ticket of its own. The demo's session
is written for a netting master, so the master's trader here keeps it netted
by hand: an *add* is one more ticket, a *partial* closes lots from the oldest
tickets first, a *close* closes every ticket, and a *reversal* closes every
ticket and opens the rest on the other side.
"""

from __future__ import annotations

import random
from decimal import Decimal

from twisted.internet import defer

from bridge.daemon.demo import moved_to
from bridge.daemon.config import BridgeConfig, MT4Account, MT4Settings, VenueConfig
from bridge.domain.deal import DealKind, Side
from bridge.domain.ids import Login, Platform, PositionId, ServerId
from connectors.mt4 import protocol as P

MT4_SERVER = ServerId(Platform.MT4, "mt4-demo")


def on_mt4(sim_config: BridgeConfig) -> BridgeConfig:
    """The sim demo's configuration, every account moved to a simulated MT4 terminal."""
    (venue,) = sim_config.venues

    settings = MT4Settings(tuple(MT4Account(a.login, "simulator", balance=a.balance, currency=a.currency)
                                 for a in venue.accounts), server_offset_s=7200)
    return moved_to(sim_config, MT4_SERVER, VenueConfig(MT4_SERVER.name, Platform.MT4, 0, 0, (), mt4=settings))


def terminals(venue) -> dict[int, object]:
    """The simulated terminal of every account of an MT4 venue built from :func:`on_mt4`'s configuration."""
    return {server.ea.terminal.login: server.ea.terminal for server in venue.simulated}


class Desk:
    """The master's trader at the terminal: what ``demo.play`` needs of a venue, kept netted by hand."""

    def __init__(self, venue, seed: int = 7) -> None:
        self.terminals = terminals(venue)
        self.market = next(iter(self.terminals.values())).market
        self.rng = random.Random(seed)

    def _tickets(self, login: Login) -> list:
        """The master's open tickets, oldest first."""
        return sorted(self.terminals[login.number].open_orders(), key=lambda o: o.ticket)

    def trade(self, login: Login, symbol: str, side: Side, lots) -> PositionId:
        self.market.step(self.rng)
        t = self.terminals[login.number]
        held = self._tickets(login)
        lots = Decimal(str(lots))
        if held and _side(held[0]) is not side:  # a reversal: flat first, then the rest the other way
            lots -= sum((o.lots for o in held), Decimal(0))
            for o in held:
                t.close(o.ticket)
        ticket = t.open(symbol, P.OP_BUY if side is Side.BUY else P.OP_SELL, lots)
        return PositionId(Platform.MT4, ticket)

    def close(self, login: Login, position: PositionId, lots=None) -> None:
        self.market.step(self.rng)
        t = self.terminals[login.number]
        left = None if lots is None else Decimal(str(lots))
        for o in self._tickets(login):
            if left is None or left >= o.lots:
                t.close(o.ticket)
                if left is not None:
                    left -= o.lots
            elif left > 0:
                t.close(o.ticket, left)
                left = Decimal(0)
            if left == 0:
                return

    def modify(self, login: Login, position: PositionId, sl: Decimal, tp: Decimal) -> None:
        t = self.terminals[login.number]
        for o in self._tickets(login):
            if (o.sl, o.tp) != (sl, tp):  # unchanged levels: MT4 answers error 1, nothing to do
                t.modify(o.ticket, sl, tp)

    def master_tickets(self, login: Login) -> int:
        """How many trades the master's terminal holds in its records (opens and closes)."""
        return trades_of(self.terminals[login.number])


def _side(order) -> Side:
    return Side.BUY if order.type == P.OP_BUY else Side.SELL


def trades_of(terminal) -> int:
    """Trades in a terminal's records: every ticket opened by an order (a partial close's remainder is
    not one) and every close or partial close (a closed ticket in the history)."""
    history = [o for o in terminal.history_orders() if o.type in (P.OP_BUY, P.OP_SELL)]
    tickets = [*terminal.open_orders(), *history]
    # a partially closed ticket's history comment names its remainder ("to #N"), which no order opened
    remainders = sum(1 for o in history if o.comment.startswith("to #"))
    return len(tickets) - remainders + len(history)


class _Trade:
    kind = DealKind.OPEN  # any trade: the summary counts trades, not their kinds


class Records:
    """The terminals' own records of an account, shaped as the sim venue's ``deals_since`` and ``positions``."""

    def __init__(self, venue) -> None:
        self.terminals = terminals(venue)

    def deals_since(self, login: Login, after=None) -> defer.Deferred:
        return defer.succeed([_Trade() for _ in range(trades_of(self.terminals[login.number]))])

    def positions(self, login: Login) -> defer.Deferred:
        return defer.succeed(list(self.terminals[login.number].open_orders()))
