"""The demo on simulated MetaTrader 5 terminals: the same session, accounts and routes, through the MT5 connector.

``bridge demo --platform mt5`` moves every demo account to a simulated MT5
terminal (``connectors.mt5.terminal``, one per account, all sharing one
market), built from a ``platform = "mt5"`` venue exactly as ``bridge run``
builds one (``provider = "simulator"``): each terminal has its own worker
thread, the master's terminal is polled every ``poll_interval_ms``. The master
trades at its terminal the way a script using the MetaTrader5 package would
(``order_send``); duplicates and missing orders are counted against the
followers' terminals' own deal histories and positions.
"""

from __future__ import annotations

import random
from decimal import Decimal

from twisted.internet import defer

from bridge.daemon.demo import moved_to
from bridge.daemon.config import BridgeConfig, MT5Account, MT5Settings, VenueConfig
from bridge.domain.deal import DealKind, Side
from bridge.domain.ids import DealId, Login, Platform, PositionId, ServerId
from connectors.mt5.terminal import constants as C

MT5_SERVER = ServerId(Platform.MT5, "mt5-demo")
DEVIATION = 20  # points the master's trader accepts


def on_mt5(sim_config: BridgeConfig, *, poll_interval_ms: int = 5) -> BridgeConfig:
    """The sim demo's configuration, every account moved to a simulated MT5 terminal."""
    (venue,) = sim_config.venues

    settings = MT5Settings(tuple(MT5Account(a.login, "simulator", balance=a.balance, currency=a.currency,
                                            hedging=a.hedging) for a in venue.accounts),
                           poll_interval_ms=poll_interval_ms, server_offset_s=7200)
    return moved_to(sim_config, MT5_SERVER, VenueConfig(MT5_SERVER.name, Platform.MT5, 0, 0, (), mt5=settings))


def terminals(venue) -> dict[int, object]:
    """The simulated terminal of every account of an MT5 venue built from :func:`on_mt5`'s configuration."""
    return {login: worker.provider for login, worker in venue.pool.workers.items()}


class Desk:
    """The master's trader at the terminal: what ``demo.play`` needs of a venue, as ``order_send`` calls."""

    def __init__(self, venue, seed: int = 7) -> None:
        self.terminals = terminals(venue)
        self.market = next(iter(self.terminals.values())).market
        self.rng = random.Random(seed)

    def _send(self, login: Login, request: dict):
        t = self.terminals[login.number]
        result = t.order_send({"type_time": C.ORDER_TIME_GTC, "type_filling": C.ORDER_FILLING_FOK,
                               "deviation": DEVIATION, **request})
        if result is None or result.retcode != C.TRADE_RETCODE_DONE:
            raise RuntimeError(f"the demo master's order was refused: {result or t.last_error()}")
        return result

    def _move(self) -> None:
        """The market moves a random-walk step before each of the master's actions (stops are not
        checked: the terminals' prices stay at the levels their accounts last saw, as between ticks)."""
        self.market.step(self.rng)

    def trade(self, login: Login, symbol: str, side: Side, lots) -> PositionId:
        self._move()
        t = self.terminals[login.number]
        tick = t.symbol_info_tick(symbol)
        buy = side is Side.BUY
        sent = self._send(login, {"action": C.TRADE_ACTION_DEAL, "symbol": symbol, "volume": float(lots),
                                  "type": C.ORDER_TYPE_BUY if buy else C.ORDER_TYPE_SELL,
                                  "price": tick.ask if buy else tick.bid})
        (deal,) = t.history_deals_get(ticket=sent.order)  # ticket: the deals of that order
        return PositionId(Platform.MT5, deal.position_id)

    def master_trades(self, login: Login) -> list[DealId]:
        """The ids of the trades in the terminal's deal history (what the bridge must journal)."""
        history = self.terminals[login.number].history_deals_get(0, 2**31)
        return [DealId(Platform.MT5, d.ticket) for d in history if d.type in (C.DEAL_TYPE_BUY, C.DEAL_TYPE_SELL)]

    def _held(self, login: Login, position: PositionId):
        t = self.terminals[login.number]
        held = t.positions_get(ticket=position.value)
        if not held and not t.hedging:  # netting: one position per symbol, whatever ticket the script holds
            held = t.positions_get()
        if not held:
            raise RuntimeError(f"the demo master holds no position {position.value}")
        return held[0]

    def close(self, login: Login, position: PositionId, lots=None) -> None:
        self._move()
        held = self._held(login, position)
        tick = self.terminals[login.number].symbol_info_tick(held.symbol)
        buy = held.type == C.POSITION_TYPE_BUY
        volume = held.volume if lots is None else float(lots)
        self._send(login, {"action": C.TRADE_ACTION_DEAL, "symbol": held.symbol, "volume": volume,
                           "type": C.ORDER_TYPE_SELL if buy else C.ORDER_TYPE_BUY, "position": held.ticket,
                           "price": tick.bid if buy else tick.ask})

    def modify(self, login: Login, position: PositionId, sl: Decimal, tp: Decimal) -> None:
        held = self._held(login, position)
        while float(sl) == held.sl and float(tp) == held.tp:  # unchanged levels are refused (10025): wait a tick
            before = self.market.quote(held.symbol).bid
            self._move()
            moved = self.market.quote(held.symbol).bid - before
            sl, tp = sl + moved, tp + moved
        self._send(login, {"action": C.TRADE_ACTION_SLTP, "symbol": held.symbol, "position": held.ticket,
                           "sl": float(sl), "tp": float(tp)})


class _Trade:
    kind = DealKind.OPEN  # any trade: the summary counts trades, not their kinds


class Records:
    """The terminals' own records of an account, shaped as the sim venue's ``deals_since`` and ``positions``."""

    def __init__(self, venue) -> None:
        self.terminals = terminals(venue)

    def deals_since(self, login: Login, after=None) -> defer.Deferred:
        history = self.terminals[login.number].history_deals_get(0, 2**31)
        return defer.succeed([_Trade() for d in history if d.type in (C.DEAL_TYPE_BUY, C.DEAL_TYPE_SELL)])

    def positions(self, login: Login) -> defer.Deferred:
        return defer.succeed(list(self.terminals[login.number].positions_get()))
