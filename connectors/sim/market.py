"""The simulated market: symbols, their specs, and a random-walk price per symbol.

Prices are held as integer *points* (one point = ``10 ** -digits``), so a
random walk never accumulates Decimal noise; they leave this module as
``Decimal`` values with exactly ``digits`` places.

Each symbol has a bid and a fixed spread: ``ask = bid + spread``. Buys fill at
the ask and sells at the bid (closing a buy sells, closing a sell buys).
:meth:`Market.step` moves every bid by a whole number of points drawn
uniformly from ``-volatility..+volatility``, in symbol order, using only the
``random.Random`` it is given; the same seed and the same calls therefore give
the same prices. A bid never falls below one spread.

Profit is computed in the symbol's quote currency as
``(close - open) * volume / 100`` for a buy (the reverse for a sell): volume is
in hundredths of base units, so ``volume / 100`` is the base amount (for
XAUUSD, 1 lot = 100 oz = 10,000 units; for US500, 1 lot = 1 index unit). A
profit in another currency is converted to the account currency at the mid
price of a symbol pairing the two currencies (USDJPY for a JPY profit on a USD
account). See :meth:`Market.profit`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

from bridge.domain.deal import Side
from bridge.domain.volume import UNITS_PER_BASE, SymbolSpec

CENT = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class SymbolDef:
    """One simulated symbol: its trading spec and its starting market.

    ``bid``, ``spread`` and ``volatility`` are in points (``10 ** -digits``).
    """

    symbol: str
    base: str
    quote: str
    contract_size: str
    digits: int
    bid: int
    spread: int
    volatility: int
    min_lots: str = "0.01"
    max_lots: str = "100"
    step_lots: str = "0.01"

    def spec(self) -> SymbolSpec:
        return SymbolSpec.from_lots(
            self.symbol,
            contract_size=self.contract_size,
            min_lots=self.min_lots,
            max_lots=self.max_lots,
            step_lots=self.step_lots,
            digits=self.digits,
        )


#: Real-looking defaults (early-2024 levels). US500 trades 1 index unit per lot.
DEFAULT_SYMBOLS: tuple[SymbolDef, ...] = (
    SymbolDef("EURUSD", "EUR", "USD", "100000", 5, bid=108500, spread=12, volatility=8),
    SymbolDef("GBPUSD", "GBP", "USD", "100000", 5, bid=126500, spread=16, volatility=10),
    SymbolDef("USDJPY", "USD", "JPY", "100000", 3, bid=150000, spread=14, volatility=10),
    SymbolDef("XAUUSD", "XAU", "USD", "100", 2, bid=203000, spread=30, volatility=40),
    SymbolDef("US500", "US500", "USD", "1", 2, bid=510000, spread=50, volatility=60),
)


@dataclass(frozen=True, slots=True)
class Quote:
    symbol: str
    bid: Decimal
    ask: Decimal

    def price(self, side: Side) -> Decimal:
        """The price a deal on ``side`` fills at: buys at the ask, sells at the bid."""
        return self.ask if side is Side.BUY else self.bid

    @property
    def mid(self) -> Decimal:
        return (self.bid + self.ask) / 2


class Market:
    """Symbols and their current prices."""

    def __init__(self, symbols: tuple[SymbolDef, ...] = DEFAULT_SYMBOLS) -> None:
        self._defs: dict[str, SymbolDef] = {}
        self._specs: dict[str, SymbolSpec] = {}
        self._bids: dict[str, int] = {}
        for d in symbols:
            if d.symbol in self._defs:
                raise ValueError(f"symbol {d.symbol} defined twice")
            if d.spread <= 0 or d.bid <= d.spread or d.volatility < 0:
                raise ValueError(f"{d.symbol}: bid and spread must be positive, bid above the spread")
            self._defs[d.symbol] = d
            self._specs[d.symbol] = d.spec()
            self._bids[d.symbol] = d.bid

    # -- symbols ----------------------------------------------------------
    @property
    def symbols(self) -> tuple[str, ...]:
        return tuple(self._defs)

    def __contains__(self, symbol: object) -> bool:
        return symbol in self._defs

    def spec(self, symbol: str) -> SymbolSpec:
        """The symbol's spec (KeyError if unknown)."""
        return self._specs[symbol]

    def definition(self, symbol: str) -> SymbolDef:
        return self._defs[symbol]

    def point(self, symbol: str) -> Decimal:
        return Decimal(1).scaleb(-self._defs[symbol].digits)

    def to_price(self, symbol: str, points: int) -> Decimal:
        return Decimal(points).scaleb(-self._defs[symbol].digits)

    def on_tick(self, symbol: str, price: Decimal) -> bool:
        """Whether ``price`` has no more decimals than the symbol's digits."""
        return price == price.quantize(self.point(symbol))

    # -- prices -----------------------------------------------------------
    def quote(self, symbol: str) -> Quote:
        d = self._defs[symbol]
        bid = self._bids[symbol]
        return Quote(symbol, self.to_price(symbol, bid), self.to_price(symbol, bid + d.spread))

    def fill_price(self, symbol: str, side: Side, slippage_points: int = 0) -> Decimal:
        """The price a ``side`` deal fills at, moved by ``slippage_points`` (positive = worse for the trader)."""
        d = self._defs[symbol]
        bid = self._bids[symbol]
        points = bid + d.spread if side is Side.BUY else bid
        points += slippage_points if side is Side.BUY else -slippage_points
        return self.to_price(symbol, max(points, 1))

    def set_bid(self, symbol: str, bid: Decimal) -> None:
        """Put the bid at ``bid`` (a Decimal on the symbol's tick), for scripted scenarios."""
        if not isinstance(bid, Decimal) or not self.on_tick(symbol, bid) or bid <= 0:
            raise ValueError(f"{symbol}: bid must be a positive Decimal with at most {self._defs[symbol].digits} places")
        self._bids[symbol] = int(bid.scaleb(self._defs[symbol].digits))

    def step(self, rng: random.Random) -> None:
        """Move every bid by a uniform random number of points in ``-volatility..volatility``."""
        for symbol, d in self._defs.items():
            if d.volatility:
                moved = self._bids[symbol] + rng.randint(-d.volatility, d.volatility)
                self._bids[symbol] = max(moved, d.spread + 1)

    # -- money ------------------------------------------------------------
    def profit(self, symbol: str, side: Side, volume: int, open_price: Decimal, close_price: Decimal,
               currency: str) -> Decimal:
        """Realised profit of ``volume`` of a ``side`` position, in ``currency``, rounded to cents."""
        diff = close_price - open_price if side is Side.BUY else open_price - close_price
        in_quote = diff * volume / UNITS_PER_BASE
        return self.convert(in_quote, self._defs[symbol].quote, currency).quantize(CENT, ROUND_HALF_EVEN)

    def convert(self, amount: Decimal, source: str, target: str) -> Decimal:
        """``amount`` of ``source`` in ``target`` at the mid price (ValueError if no symbol pairs them)."""
        if source == target:
            return amount
        for d in self._defs.values():
            if d.base == source and d.quote == target:
                return amount * self.quote(d.symbol).mid
            if d.base == target and d.quote == source:
                return amount / self.quote(d.symbol).mid
        raise ValueError(f"no symbol converts {source} to {target}")

    def quote_value(self, symbol: str, currency: str) -> Decimal:
        """One unit of ``symbol``'s quote currency in ``currency``, at the mid price now."""
        return self.convert(Decimal(1), self._defs[symbol].quote, currency)

    def can_convert(self, source: str, target: str) -> bool:
        return source == target or any(
            {d.base, d.quote} == {source, target} for d in self._defs.values())

    def quote_currencies(self) -> set[str]:
        return {d.quote for d in self._defs.values()}
